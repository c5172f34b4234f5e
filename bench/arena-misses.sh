#!/bin/sh
# arena-misses.sh - issue 15's counted targets: instructions and data-cache
# misses per alloc+free pair of the arena path, from cachegrind with a fixed
# cache model, so that they do not move with the host's memory system.
#
# For each loop (W1 instant fit, W2 next fit, W3 first fit, baseline (f),
# the tag+hash floor, and baseline (c), a locked LIFO whose own memory stays
# in cache, so that its misses are the loop's: its random reads of the
# array of live IDs) at 10^5 and 10^6 live IDs, bench/missdriver runs
# twice under cachegrind: with N rounds and with 0.  W2 also runs "wrapped",
# after 2^24 warm-up rounds in both runs: next fit's rotor has then gone
# round the whole arena at least once, as a PID allocator's does (skipped
# with --quick; these four runs take most of the time).  The random stream and
# everything else are the same in both runs, so (run_N - run_0) / N is what
# one round costs: Ir (instructions), D1 misses (D1mr + D1mw) and LLd
# misses (DLmr + DLmw).  W8 dense (tag+hash bytes per live segment at 10^6)
# runs natively: it is a count, not a timing.
#
# usage: bench/arena-misses.sh [--build DIR] [--rounds N] [--warmup N]
#                              [--quick] [--json FILE]
#   --build DIR   use this build (it must be --buildtype=release; it is
#                 brought up to date with ninja).  Default: set up and build
#                 build-misses/ at the top of the source tree, release, with
#                 -Dvalgrind=disabled (see below)
#   --rounds N    measured rounds per run (default 100000)
#   --warmup N    rounds before the measured ones, in both runs (default 0,
#                 as the issue measures)
#   --quick       a smoke test: 10^4 and 10^5 live, 10,000 rounds (the
#                 figures are not the issue's)
#   --json FILE   also write every figure and target as JSON
#
# A build with valgrind client requests (-Dvalgrind=auto, the default, with
# valgrind's headers installed) runs them under cachegrind on every tag
# change, which adds instructions that a native run does not execute; the
# script's own build leaves them out, and it warns about a --build that has
# them.  Needs valgrind and python3.  Takes about 6 minutes on one core.
#
# SPDX-License-Identifier: BSD-2-Clause
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=
rounds=100000
warmup=0
quick=0
json=
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=${2:?--build needs a directory}; shift 2 ;;
	--rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
	--warmup) warmup=${2:?--warmup needs a number}; shift 2 ;;
	--quick) quick=1; shift ;;
	--json) json=${2:?--json needs a file}; shift 2 ;;
	-h|--help) sed -n '2,/^# SPDX/p' "$0" | sed 's/^# \{0,1\}//; /^SPDX/d'; exit 0 ;;
	*) echo "arena-misses.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
case $rounds in ''|*[!0-9]*|0) echo "arena-misses.sh: --rounds takes a positive number" >&2; exit 2 ;; esac
case $warmup in ''|*[!0-9]*) echo "arena-misses.sh: --warmup takes a number" >&2; exit 2 ;; esac
if [ "$quick" = 1 ]; then
	sizes="10000 100000"
	[ "$rounds" = 100000 ] && rounds=10000
else
	sizes="100000 1000000"
fi
command -v valgrind >/dev/null || { echo "arena-misses.sh: valgrind is not installed" >&2; exit 1; }

if [ -z "$build" ]; then
	build=$src/build-misses
	if [ ! -f "$build/build.ninja" ]; then
		meson setup "$build" "$src" --buildtype=release -Dvalgrind=disabled -Dman=false \
			-Dtests=false -Detcd=disabled >/dev/null
	fi
fi
[ -f "$build/build.ninja" ] || { echo "arena-misses.sh: $build is not a meson build" >&2; exit 1; }
ninja -C "$build" bench/missdriver >/dev/null
drv=$build/bench/missdriver

# what the build is: its buildtype must be release; the valgrind feature
opts=$(python3 - "$build/meson-info/intro-buildoptions.json" <<'EOF'
import json, sys
o = {x["name"]: x["value"] for x in json.load(open(sys.argv[1]))}
print(o.get("buildtype", "?"), o.get("valgrind", "?"))
EOF
)
buildtype=${opts% *}
vgopt=${opts#* }
if [ "$buildtype" != release ]; then
	echo "arena-misses.sh: $build is --buildtype=$buildtype, not release" >&2
	exit 1
fi
if [ "$vgopt" != disabled ]; then
	echo "arena-misses.sh: warning: $build has -Dvalgrind=$vgopt: libvmem's client" \
		"requests run under cachegrind and add instructions" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/arena-misses.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# no address randomization, so that both runs see the same cache sets
norand=
if setarch "$(uname -m)" -R true 2>/dev/null; then
	norand="setarch $(uname -m) -R"
fi

model="--D1=32768,8,64 --I1=32768,8,64 --LL=1048576,16,64"
# cg NAME LOOP LIVE ROUNDS WARMUP: one cachegrind run, its summary in
# $tmp/NAME-LIVE-ROUNDS
cg() {
	out=$tmp/$1-$3-$4
	# shellcheck disable=SC2086
	nice $norand valgrind --tool=cachegrind --cache-sim=yes $model \
		--cachegrind-out-file="$out.cg" --log-file="$out.log" \
		"$drv" "$2" "$3" "$4" "$5" >/dev/null ||
		{ echo "arena-misses.sh: $2 $3 $4 $5 failed under cachegrind:" >&2; cat "$out.log" >&2; exit 1; }
	grep '^events:\|^summary:' "$out.cg" >"$out"
}

wrap=16777216 # 2^24 allocations: next fit's rotor has wrapped at least once
loops="w1 w2 w3 f c"
[ "$quick" = 1 ] || loops="$loops w2w"
for live in $sizes; do
	for name in $loops; do
		loop=$name w=$warmup
		[ "$name" = w2w ] && loop=w2 w=$((warmup + wrap))
		echo "cachegrind: $name, $live live, $rounds rounds and 0, warm-up $w" >&2
		cg "$name" "$loop" "$live" "$rounds" "$w"
		cg "$name" "$loop" "$live" 0 "$w"
	done
done
w8live=1000000
w8=$("$drv" w8 $w8live)

python3 - "$tmp" "$rounds" "$sizes" "$w8" "$w8live" "$json" "$buildtype" "$vgopt" "$warmup" \
	"$loops" <<'EOF'
import json, sys

tmp, rounds, sizes, w8, w8live, jpath, buildtype, vgopt, warmup, loops = sys.argv[1:]
loops = loops.split()
rounds, w8, warmup = int(rounds), float(w8), int(warmup)
sizes = [int(s) for s in sizes.split()]
lo, hi = sizes

def summary(loop, live, n):
    ev = {}
    with open("%s/%s-%d-%d" % (tmp, loop, live, n)) as f:
        for line in f:
            k, v = line.split(":", 1)
            ev[k] = v.split()
    return dict(zip(ev["events"], (int(x) for x in ev["summary"])))

names = {"w1": "W1 instant fit", "w2": "W2 next fit", "w3": "W3 first fit",
         "f": "(f) tag+hash floor", "c": "(c) the loop alone",
         "w2w": "W2 next fit, wrapped"}
rows, fig = [], {}
for live in sizes:
    for loop in loops:
        a, b = summary(loop, live, rounds), summary(loop, live, 0)
        d = lambda *ks: sum(a[k] - b[k] for k in ks) / rounds
        r = {"loop": loop, "name": names[loop], "live": live, "rounds": rounds,
             "ir": d("Ir"), "d1": d("D1mr", "D1mw"), "lld": d("DLmr", "DLmw")}
        rows.append(r)
        fig[loop, live] = r

print("arena-misses: cachegrind --D1=32768,8,64 --I1=32768,8,64 --LL=1048576,16,64,")
print("libvmem built --buildtype=%s -Dvalgrind=%s; per alloc+free pair = (run with %d"
      % (buildtype, vgopt, rounds))
print("rounds - run with 0) / %d%s" % (rounds, ", after %d warm-up rounds in both" % warmup
                                        if warmup else ""))
print()
print("%-22s %9s %10s %10s %10s" % ("loop", "live", "Ir/pair", "D1/pair", "LLd/pair"))
for r in rows:
    print("%-22s %9d %10.1f %10.2f %10.2f" % (r["name"], r["live"], r["ir"], r["d1"], r["lld"]))
print()
print("W8 dense: tag+hash bytes per live segment at %s live: %.1f" % (w8live, w8))

# the library's own share: what the loop misses by itself is (c)'s count
# (a locked LIFO whose memory stays in cache), mostly its random reads of
# the array of live IDs, which grows with the live set like the arena's
print()
print("the library's own LLd misses per pair (loop - (c)):")
print("%-22s %12s %12s %12s" % ("loop", "10^%d" % len(str(lo)[1:]), "10^%d" % len(str(hi)[1:]),
                                "ratio"))
own = {}
for loop in loops:
    if loop == "c":
        continue
    a, b = (fig[loop, n]["lld"] - fig["c", n]["lld"] for n in sizes)
    own[loop] = {"lo": a, "hi": b, "ratio": b / a if a >= 0.05 else None}
    print("%-22s %12.2f %12.2f %12s" % (names[loop], a, b,
                                        "%.2f" % (b / a) if a >= 0.05 else "-"))

# issue 15's targets; 'before' is the issue's figure, measured this way
def t(name, value, target, before=None, floor=None):
    return {"name": name, "value": value, "target": target, "before": before,
            "floor": floor, "met": value <= target}
e = "10^%d" % len(str(lo)[1:])
E = "10^%d" % len(str(hi)[1:])
targets = [
    t("LLd/pair W1, %s" % e, fig["w1", lo]["lld"], 2.0, 3.43 if lo == 100000 else None,
      fig["f", lo]["lld"]),
    t("LLd/pair W2, %s" % e, fig["w2", lo]["lld"], 3.0, 10.4 if lo == 100000 else None,
      fig["f", lo]["lld"]),
    t("LLd/pair W3, %s" % e, fig["w3", lo]["lld"], 2.0, 3.43 if lo == 100000 else None,
      fig["f", lo]["lld"]),
]
if "w2w" in loops:
    targets.append(t("LLd/pair W2 wrapped, %s" % e, fig["w2w", lo]["lld"], 3.0, None,
                     fig["f", lo]["lld"]))
for loop, w in (("w1", "W1"), ("w2", "W2"), ("w3", "W3"), ("w2w", "W2 wrapped")):
    if loop not in loops:
        continue
    f_lo = fig["f", lo]["lld"]
    targets.append(t("LLd/pair %s, %s / %s" % (w, E, e),
                     fig[loop, hi]["lld"] / fig[loop, lo]["lld"], 1.5, None,
                     fig["f", hi]["lld"] / f_lo if f_lo >= 0.05 else None))
targets += [
    t("Ir/pair W1, %s" % e, fig["w1", lo]["ir"], 451, 451 if lo == 100000 else None,
      fig["f", lo]["ir"]),
    t("Ir/pair W2, %s" % e, fig["w2", lo]["ir"], 500, 795 if lo == 100000 else None,
      fig["f", lo]["ir"]),
] + ([
    t("Ir/pair W2 wrapped, %s" % e, fig["w2w", lo]["ir"], 500, None, fig["f", lo]["ir"]),
] if "w2w" in loops else []) + [
    t("W8 dense B/seg, %s" % w8live, w8, 40, 54.8),
]
print()
print("%-32s %9s %8s %12s %12s  %s" % ("issue 15 target", "now", "target", "issue before",
                                       "floor (f)", "met"))
fmt = lambda v: "-" if v is None else "%.2f" % v
for q in targets:
    print("%-32s %9.2f %8s %12s %12s  %s" % (q["name"], q["value"], "<= %g" % q["target"],
                                             fmt(q["before"]), fmt(q["floor"]),
                                             "met" if q["met"] else "missed"))
if lo != 100000:
    print("\n(--quick: not the issue's sizes or rounds; a smoke test only)")
if jpath:
    with open(jpath, "w") as f:
        json.dump({"cache_model": "--D1=32768,8,64 --I1=32768,8,64 --LL=1048576,16,64",
                   "buildtype": buildtype, "valgrind_option": vgopt, "rounds": rounds,
                   "warmup": warmup, "pairs": rows,
                   "w8_dense": {"live": int(w8live), "bytes_per_segment": w8},
                   "library_own_lld": own,
                   "targets": targets}, f, indent=1)
        f.write("\n")
EOF
