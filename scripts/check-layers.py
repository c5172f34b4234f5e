#!/usr/bin/env python3
"""check-layers.py - lib/ has no cycle between files.

Two graphs over the files of lib/ (not lib/etcd/, a separate library):
  - includes: a.c or a.h includes b.h;
  - calls: a function defined in a calls (or takes the address of) a
    function defined in b, where inline functions belong to the header
    that defines them.
Each must be acyclic.  The one exception the design allows is an arena
calling its source arena through the public API (import.c calling
vmem_xalloc/vmem_xfree), which goes to another arena, not back into the
same one; that edge is listed and left out.  Calls through function
pointers (the reap hook, callers' callbacks) are not seen by this script.

It also prints the layers it finds (files ordered so that every file
calls only files after it) and checks that the quantum caches and the
front door never name what only the arena layer may touch.

Usage: python3 scripts/check-layers.py [--dot]   (exit status 1 on a cycle)
"""
import os
import re
import sys

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
ALLOWED = {("import.c", "vmem.c")}  # an arena calling its source's public API
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "defined", "__attribute__",
            "__asm__", "asm", "_Static_assert", "offsetof", "__builtin_expect", "do", "else"}
# what the caches and the front door must not name: the arena's internals
ARENA_ONLY = re.compile(r"\b((?:BT|hash_\w+|tagslab_\w+|seg_\w+|tree_\w+|freelist_\w+|bt_\w+)(?=\s*\()|struct bt\b)")


def strip(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    return text


def functions(text):
    """(name, body) of every function defined at the top level."""
    out, depth, i = [], 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "{":
            if depth == 0:
                head = text[:i].rstrip()
                m = re.search(r"(\w+)\s*\([^()]*(\([^()]*\)[^()]*)*\)\s*(__attribute__\(\(.*?\)\)\s*)?$", head, re.S)
                start = i
                d = 0
                while True:
                    if text[i] == "{":
                        d += 1
                    elif text[i] == "}":
                        d -= 1
                        if d == 0:
                            break
                    i += 1
                if m and m.group(1) not in KEYWORDS and not re.search(r"=\s*$", head):
                    out.append((m.group(1), text[start:i]))
                i += 1
                continue
            depth += 1
        elif ch == "}":
            depth -= 1
        i += 1
    return out


def main():
    files = sorted(f for f in os.listdir(LIB) if f.endswith((".c", ".h")))
    raw = {f: open(os.path.join(LIB, f)).read() for f in files}
    src = {f: strip(raw[f]) for f in files}
    includes = {f: set(re.findall(r'^#include\s+"([\w.]+)"', raw[f], re.M)) & set(files)
                for f in files}

    owner, bodies = {}, {}
    for f in files:
        for name, body in functions(src[f]):
            owner.setdefault(name, f)
            bodies.setdefault(f, []).append((name, body))
    calls = {f: set() for f in files}
    for f in files:
        for _, body in bodies.get(f, []):
            for ident in set(re.findall(r"\b(\w+)\b", body)):
                g = owner.get(ident)
                if g is not None and g != f and (f, g) not in ALLOWED:
                    calls[f].add(g)

    bad = 0
    for label, graph in (("include", includes), ("call", calls)):
        cycle = find_cycle(graph)
        if cycle:
            print("check-layers: %s cycle: %s" % (label, " -> ".join(cycle)))
            bad = 1
    for f in ("qcache.c", "qcache.h", "rseq.h", "vmem.c"):
        for m in sorted(set(ARENA_ONLY.findall(src.get(f, "")))):
            print("check-layers: %s names the arena's internal %s" % (f, m))
            bad = 1
    if "--dot" in sys.argv:
        print("digraph lib {")
        for f in files:
            for g in sorted(calls[f]):
                print('  "%s" -> "%s";' % (f, g))
        print("}")
    if not bad:
        order = topo(calls)
        print("check-layers: no cycles among %d files (%d call edges, %d include edges; allowed: %s)"
              % (len(files), sum(map(len, calls.values())), sum(map(len, includes.values())),
                 ", ".join("%s -> %s" % e for e in sorted(ALLOWED))))
        print("check-layers: callers before callees: " + " ".join(f for f in order if f.endswith(".c")))
    return bad


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def topo(graph):
    order, seen = [], set()

    def visit(n):
        if n in seen:
            return
        seen.add(n)
        for m in sorted(graph.get(n, ())):
            visit(m)
        order.append(n)

    for n in sorted(graph):
        visit(n)
    return order[::-1]


if __name__ == "__main__":
    sys.exit(main())
