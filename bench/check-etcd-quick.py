#!/usr/bin/env python3
# check-etcd-quick.py - the etcd-bench-quick smoke test (bench/meson.build).
#
#   check-etcd-quick.py VMEM_ETCD_BENCH
#
# Runs `VMEM_ETCD_BENCH --quick --json FILE` with TMPDIR set to a directory
# of its own, so that the etcd the bench starts keeps its data there, and
# checks that the run succeeds, prints the table, keeps stderr quiet (it is
# not a terminal), writes JSON that parses and hangs together, holds every
# figure of E1-E4, and leaves no etcd process and no data behind.  Timings
# are never asserted.
#
# SPDX-License-Identifier: BSD-2-Clause
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

KINDS = ["local span (vmem_add)", "local import (callback)"]


def fail(msg):
    print("etcd-bench-quick: FAIL: " + msg)
    sys.exit(1)


def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def processes_under(path):
    """PIDs whose command line names something under path."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if path.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def check_figure(f):
    for key in ("workload", "variant", "unit", "reps", "samples", "skipped"):
        if key not in f:
            fail("figure without %r: %r" % (key, f))
    if f["skipped"]:
        fail("figure %s %r was skipped: %s" % (f["workload"], f["variant"], f.get("note")))
    s = f["samples"]
    if len(s) != f["reps"] or not s or not all(num(x) for x in s):
        fail("figure %s %r: samples %r do not match reps %r" % (f["workload"], f["variant"], s, f["reps"]))
    if abs(statistics.median(s) - f["median"]) > 1e-6 * max(1.0, abs(f["median"])) * 10:
        fail("figure %s %r: median %r is not the median of %r" % (f["workload"], f["variant"], f["median"], s))
    if not (f["min"] <= f["median"] <= f["max"]) or f["min"] != min(s) or f["max"] != max(s):
        fail("figure %s %r: min/median/max do not hang together" % (f["workload"], f["variant"]))


def main():
    if len(sys.argv) != 2:
        fail("usage: check-etcd-quick.py VMEM_ETCD_BENCH")
    bench = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="etcd-bench-quick.") as tmp:
        out_json = os.path.join(tmp, "run.json")
        env = dict(os.environ, TMPDIR=tmp)
        env.pop("VMEM_ETCD_ENDPOINTS", None)
        run = subprocess.run([bench, "--quick", "--json", out_json], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=280)
        print(run.stdout)
        if run.returncode != 0:
            fail("exit status %d; stderr:\n%s" % (run.returncode, run.stderr))
        if run.stderr.strip():
            fail("stderr is not quiet:\n" + run.stderr)
        if not run.stdout.startswith("vmem-etcd-bench: libvmem-etcd "):
            fail("the table does not start with its header")
        for word in ("E1 random", "E1 fill+drain", "E2 p99.9/median", "E4: traffic",
                     "project target", "within target"):
            if word not in run.stdout:
                fail("the table lacks %r" % word)
        left = processes_under(tmp)
        if left:
            fail("processes left running under %s: %r" % (tmp, left))
        leftovers = [d for d in os.listdir(tmp) if d != "run.json"]
        if leftovers:
            fail("the bench left %r in TMPDIR" % leftovers)
        with open(out_json) as f:
            doc = json.load(f)

    if doc.get("bench") != "vmem-etcd-bench" or doc.get("format") != 1 or doc.get("quick") is not True:
        fail("JSON header: %r" % {k: doc.get(k) for k in ("bench", "format", "quick")})
    if [w["id"] for w in doc["workloads"]] != ["E1", "E2", "E3", "E4"]:
        fail("workloads: %r" % doc["workloads"])
    figs = doc["figures"]
    for f in figs:
        check_figure(f)
    by = {(f["workload"], f["variant"]): f for f in figs}
    etcd = "etcd pool, prefetch %d" % doc["settings"]["prefetch"]
    for kind in KINDS + [etcd]:
        for wl, what, unit in (("E1", "random churn", "ns/pair"), ("E1", "fill+drain", "ns/pair"),
                               ("E2", "median", "ns/alloc"), ("E2", "p99.9", "ns/alloc")):
            f = by.get((wl, "%s, %s" % (kind, what)))
            if f is None or f["unit"] != unit:
                fail("no %s figure %r in %s" % (wl, "%s, %s" % (kind, what), unit))
    for n in (1, 4, 8):
        v = "%d process%s" % (n, "es" if n > 1 else "")
        units = sorted(f["unit"] for f in figs if f["workload"] == "E3" and f["variant"] == v)
        if units != ["claims/s", "confl/claim"]:
            fail("E3 %r: units %r" % (v, units))
        claims = [f for f in figs if f["workload"] == "E3" and f["variant"] == v and f["unit"] == "claims/s"][0]
        if claims["threads"] != n or claims["min"] <= 0:
            fail("E3 %r: %r" % (v, claims))
    e4 = [f for f in figs if f["workload"] == "E4"]
    if len(e4) != 2 or any(f["unit"] != "req/1e6 IDs" or f["median"] <= 0 for f in e4):
        fail("E4 figures: %r" % e4)

    names = [r["name"] for r in doc["ratios"]]
    if names != ["E1 random", "E1 fill+drain", "E2 p99.9/median"]:
        fail("ratios: %r" % names)
    for r, target in zip(doc["ratios"], (1.1, 1.1, 10)):
        if r["goal"] != "<=" or r["target"] != target or not num(r["value"]) or r["met"] not in (True, False):
            fail("ratio %r" % r)

    tr = doc["traffic"]
    for key in ("e1_fill_drain", "e2_bursts"):
        t = tr[key]
        if not (t["ids"] > 0 and t["imports"] > 0 and t["requests"] > 0 and t["errors"] == 0):
            fail("traffic %s: %r" % (key, t))
        if t["claims"] < 1 or t["releases"] < 1:
            fail("traffic %s has no claim or no release: %r" % (key, t))
        if abs(t["requests_per_million_ids"] - t["requests"] * 1e6 / t["ids"]) > 1e-3 * t["requests_per_million_ids"]:
            fail("traffic %s: requests per 10^6 IDs do not follow from the counts" % key)
    e2 = tr["e2_bursts"]
    st = doc["settings"]
    if e2["imports"] != doc["tail"]["etcd"]["import_allocs"]:
        fail("E2: %r imports counted, %r allocations seen importing" % (e2["imports"], doc["tail"]["etcd"]["import_allocs"]))
    if e2["ids"] != e2["imports"] * st["tail_block"]:
        fail("E2 imported %r blocks of %r for %r IDs" % (e2["imports"], st["tail_block"], e2["ids"]))
    print("etcd-bench-quick: ok (%d figures, %d ratios)" % (len(figs), len(doc["ratios"])))


main()
