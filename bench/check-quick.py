#!/usr/bin/env python3
# check-quick.py - the bench-quick smoke test (bench/meson.build).
#
#   check-quick.py VMEM_BENCH    run `VMEM_BENCH --quick --json --svg`, redraw the
#                                SVG with --svg-from-json, and check all of it
#   check-quick.py --svg FILE    check one SVG only (e.g. bench/results/w6.svg)
#
# A --quick run must succeed, print the table, keep stderr quiet (it is not a
# terminal), and write JSON and SVG that parse and hang together; every
# element of the SVG must lie inside its viewBox.  Timings are never asserted.
#
# SPDX-License-Identifier: BSD-2-Clause
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
# Mean advance of a character in em, close to DejaVu Sans (the sans-serif of
# Debian): measured at 0.51 for the chart's texts, 0.59 for its bold title.
# vmem-bench lays text out with more generous widths, so a text that it
# placed itself passes; a text it forgot to make room for does not.
EM = {"normal": 0.52, "bold": 0.60}


def fail(msg):
    print("bench-quick: FAIL: " + msg)
    sys.exit(1)


def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---- SVG geometry ---------------------------------------------------------

def mat_mul(m, n):
    a, b, c, d, e, f = m
    p, q, r, s, t, u = n
    return (a * p + c * q, b * p + d * q, a * r + c * s, b * r + d * s,
            a * t + c * u + e, b * t + d * u + f)


def parse_transform(text):
    m = (1, 0, 0, 1, 0, 0)
    for op, args in re.findall(r"(\w+)\s*\(([^)]*)\)", text):
        v = [float(x) for x in re.split(r"[\s,]+", args.strip()) if x]
        if op == "translate":
            n = (1, 0, 0, 1, v[0], v[1] if len(v) > 1 else 0)
        elif op == "rotate":
            a = math.radians(v[0])
            cx, cy = (v[1], v[2]) if len(v) == 3 else (0, 0)
            n = mat_mul((1, 0, 0, 1, cx, cy),
                        mat_mul((math.cos(a), math.sin(a), -math.sin(a), math.cos(a), 0, 0),
                                (1, 0, 0, 1, -cx, -cy)))
        else:
            fail("SVG transform %r is not one this check knows" % op)
        m = mat_mul(m, n)
    return m


def length(value, full):
    value = value.strip()
    return full * float(value[:-1]) / 100 if value.endswith("%") else float(value)


def corners(tag, el, style, vb):
    """The corners of an element's box, in its own coordinates."""
    g = lambda k: float(el.get(k, "0"))
    if tag == "rect":
        x, y = g("x"), g("y")
        w, h = length(el.get("width"), vb[2]), length(el.get("height"), vb[3])
        return [(x, y), (x + w, y + h)]
    if tag == "line":
        return [(g("x1"), g("y1")), (g("x2"), g("y2"))]
    if tag == "polyline":
        v = [float(x) for x in re.split(r"[\s,]+", el.get("points").strip()) if x]
        return list(zip(v[0::2], v[1::2]))
    if tag == "circle":
        r = g("r")
        return [(g("cx") - r, g("cy") - r), (g("cx") + r, g("cy") + r)]
    if tag == "text":
        text = "".join(el.itertext())
        size = style["font-size"]
        width = len(text) * size * EM[style["font-weight"]]
        x = g("x") - {"start": 0, "middle": width / 2, "end": width}[style["text-anchor"]]
        y = g("y")
        return [(x, y - 0.8 * size), (x + width, y + 0.25 * size)]
    return []


def svg_outside(root):
    """Elements that reach outside the viewBox: a list of descriptions."""
    vb = [float(v) for v in root.get("viewBox").split()]
    out = []

    def walk(el, m, style):
        tag = el.tag[len(NS):] if el.tag.startswith(NS) else el.tag
        if tag == "title":
            return
        style = dict(style)
        for k in style:
            if el.get(k) is not None:
                style[k] = float(el.get(k)) if k == "font-size" else el.get(k)
        if el.get("transform"):
            m = mat_mul(m, parse_transform(el.get("transform")))
        for x, y in corners(tag, el, style, vb):
            X, Y = m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]
            if not (vb[0] - 0.5 <= X <= vb[0] + vb[2] + 0.5 and vb[1] - 0.5 <= Y <= vb[1] + vb[3] + 0.5):
                what = "".join(el.itertext()).strip() if tag == "text" else ""
                out.append("<%s> %s reaches (%.0f, %.0f), outside %s" % (tag, what[:60], X, Y, vb))
                break
        if tag != "text":
            for kid in el:
                walk(kid, m, style)

    walk(root, (1, 0, 0, 1, 0, 0),
         {"font-size": float(root.get("font-size", "16")), "font-weight": "normal",
          "text-anchor": "start"})
    return out


def check_svg(path):
    root = ET.parse(path).getroot()
    if not root.tag.endswith("svg") or root.get("viewBox") is None:
        fail(path + ": not an SVG with a viewBox")
    outside = svg_outside(root)
    if outside:
        fail(path + ": drawn outside the canvas:\n  " + "\n  ".join(outside))
    return root


# ---- the run --------------------------------------------------------------

def check_table(out):
    for w in ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "ratio", "W1/(c)",
              "(g) empty library call pair", "(h) empty call pair + one atomic",
              "VMC_UNCHECKED", "2nd thread up"):
        if w not in out:
            fail("table lacks " + w)
    # the targets are worded as the project's goals, with the floors beside them
    for w in ("project target", "within target", "design goal"):
        if w not in out:
            fail("the ratios do not say " + repr(w))
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    if ("(f)/(c)" not in rows.get("W1/(c)", "") or "(g)/(b)" not in rows.get("W9/(b)", "")
            or "(h)/(b)" not in rows.get("W9t/(b)", "")):
        fail("the W1/(c), W9/(b) and W9t/(b) rows do not name their floors")
    if re.search(r"\s(NO|met)\s*$", out, re.M):
        fail("a ratio row still says NO or met")


def check_json(doc):
    if doc.get("quick") is not True or not isinstance(doc.get("cpu"), str):
        fail("header fields")
    figs = doc["figures"]
    seen = set()
    for fg in figs:
        where = "%s/%s/%s" % (fg["workload"], fg["variant"], fg["live"])
        seen.add(fg["workload"])
        if fg["skipped"]:
            if fg["median"] is not None:
                fail(where + ": skipped figure has a median")
            continue
        s = fg["samples"]
        if fg["reps"] < 5 or len(s) != fg["reps"] or not all(num(v) and v > 0 for v in s):
            fail(where + ": needs >= 5 positive samples")
        if not (fg["min"] == min(s) and fg["max"] == max(s)):
            fail(where + ": min/max do not match the samples")
        ss = sorted(s)
        n = len(ss)
        m = ss[n // 2] if n % 2 else (ss[n // 2 - 1] + ss[n // 2]) / 2
        if abs(fg["median"] - m) > 1e-4 * max(1.0, abs(m)):
            fail(where + ": median %r is not the median of %r" % (fg["median"], s))
        if fg["unit"] not in ("ns/pair", "Mpairs/s"):
            fail(where + ": unit")
    for w in ("B", "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W9"):
        if w not in seen:
            fail("no figures for " + w)
    w6 = [fg for fg in figs if fg["workload"] == "W6" and fg["variant"] == "vmem instantfit, fragmented"]
    if len(w6) < 3:
        fail("W6 needs at least three sizes")
    # W9's checked figure needs a process that has not started a thread yet
    w9 = {fg["variant"]: fg for fg in figs if fg["workload"] == "W9"}
    if len(w9) != 3 or any(fg["skipped"] for fg in w9.values()):
        fail("W9 needs its three variants measured, one thread first: %r" % sorted(w9))
    w7 = [fg for fg in figs if fg["workload"] == "W7"]
    if sorted(set(fg["threads"] for fg in w7)) != [1, 2]:
        fail("W7 needs 1 and 2 threads")
    mem = doc["memory"]
    if len(mem) < 3:
        fail("W8 memory rows")
    for r in mem:
        if (r["layout"] != "cached" and r["nalloc"] != r["live"]) or not num(r["bytes_per_segment"]) or r["bytes_per_segment"] <= 0:
            fail("W8 row %r" % r)
        if r["tag_bytes"] <= 0 or r["arena_bytes"] < r["tag_bytes"] + r["hash_bytes"]:
            fail("W8 byte counts inconsistent: %r" % r)
    names = [q["name"] for q in doc["ratios"]]
    for want in ("W1/(c)", "W2/W1", "W3/W1", "W4-instant/(a)", "W6 1e6/1e3", "W8 B/seg@1e6",
                 "W9/(b)", "W9u/(b)", "W9t/(b)", "W1q/(c)", "W1q/(d)", "W7q 2t/1t",
                 "W8q B/alloc@1e6"):
        if want not in names:
            fail("ratio " + want + " missing")
    for q in doc["ratios"]:
        met = q["value"] >= q["target"] if q["goal"] == ">=" else q["value"] <= q["target"]
        if not num(q["value"]) or q["value"] <= 0 or q["goal"] not in ("<=", ">=") or q["met"] != met:
            fail("ratio %r" % q)
    return len(figs)


def check_w6(svg, doc, nseries=5):
    if len(svg.findall(NS + "polyline")) < 2 or len(svg.findall(".//" + NS + "text")) < 8:
        fail("SVG lacks series or labels")
    title = "".join(svg.find(NS + "text").itertext())
    if doc["cpu"] not in title:
        fail("SVG title does not name the CPU")
    legend = [t for t in svg.findall(NS + "g/" + NS + "text") if t.get("font-size") is None]
    if len(svg.findall(NS + "polyline")) != nseries or len(legend) != nseries:
        fail("SVG: %d series and %d legend entries, expected %d of each" %
             (len(svg.findall(NS + "polyline")), len(legend), nseries))


def run(bench):
    with tempfile.TemporaryDirectory() as d:
        jpath, spath, rpath = (os.path.join(d, f) for f in ("out.json", "w6.svg", "redrawn.svg"))
        p = subprocess.run([bench, "--quick", "--json", jpath, "--svg", spath],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        print(p.stdout)
        if p.returncode != 0:
            fail("exit status %d, stderr: %s" % (p.returncode, p.stderr))
        if p.stderr:
            fail("stderr is not a terminal, yet got: %r" % p.stderr[:300])
        check_table(p.stdout)
        with open(jpath) as f:
            doc = json.load(f)
        nfigs = check_json(doc)
        svg = check_svg(spath)
        check_w6(svg, doc)
        # the figure again, from the JSON alone: the same drawing
        p = subprocess.run([bench, "--svg-from-json", jpath, "--svg", rpath],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0 or p.stdout or p.stderr:
            fail("--svg-from-json: exit status %d, %r" % (p.returncode, p.stdout + p.stderr))
        redrawn = check_svg(rpath)
        if [e.tag for e in svg.iter()] != [e.tag for e in redrawn.iter()] or \
                svg.get("viewBox") != redrawn.get("viewBox"):
            fail("--svg-from-json drew another figure than --svg")
        p = subprocess.run([bench, "--svg-from-json", spath, "--svg", rpath],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 1 or "not a JSON file" not in p.stderr:
            fail("--svg-from-json took an SVG for JSON: %d %r" % (p.returncode, p.stderr))
    print("bench-quick: ok, %d figures" % nfigs)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--svg":
        check_svg(sys.argv[2])
        print("bench-quick: %s: every element inside the viewBox" % sys.argv[2])
    elif len(sys.argv) == 2:
        run(sys.argv[1])
    else:
        fail("usage: check-quick.py VMEM_BENCH | check-quick.py --svg FILE")
