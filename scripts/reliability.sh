#!/usr/bin/env bash
# The long reliability runs behind the README's "Reliability" section, in one
# command, and the figures they produce.
#
#   bash scripts/reliability.sh            long mode (about an hour on 2 cores)
#   bash scripts/reliability.sh --quick    CI mode (a few minutes)
#
# Options: --scale N (VMEM_TEST_SCALE for the tests; long default 10, quick 1),
#          --fuzz-seconds S (per fuzz target; long default 1800, quick 60),
#          --no-fuzz, --keep (keep the build directories and fuzz work area).
#
# It builds the library with gcc (build-reliability) and the fuzz targets
# with clang (build-reliability-fuzz, or compiled directly when the build has
# no fuzz/), runs test_faults, test_badinput, test_stress and test_dlopen,
# and both fuzz targets, then prints:
#
#   fuzz execs / crashes, faults injected / survived, operations stressed,
#   forks, dlopen cycles, bad inputs tried, leaked bytes
#
# Every test prints its figures on lines starting with "# figure: "; this
# script adds them up.  Exit status 0 only if every run passed, no fuzz target
# crashed and no byte leaked.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
scale=
fuzz_secs=
fuzz=1
keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--scale) scale=$2; shift ;;
	--fuzz-seconds) fuzz_secs=$2; shift ;;
	--no-fuzz) fuzz=0 ;;
	--keep) keep=1 ;;
	-h|--help) sed -n '2,24p' "$0"; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
if [ $quick = 1 ]; then
	scale=${scale:-1}
	fuzz_secs=${fuzz_secs:-60}
else
	scale=${scale:-10}
	fuzz_secs=${fuzz_secs:-1800}
fi

bld=build-reliability
fbld=build-reliability-fuzz
work=$(mktemp -d /tmp/vmem-reliability.XXXXXX)
figures=$work/figures
: >"$figures"
failed=()
start=$(date +%s)

echo "== building $bld (gcc)"
if [ ! -d "$bld" ]; then
	CC=${CC:-gcc} meson setup "$bld" -Dbench=false -Dman=false >"$work/setup.log" 2>&1 ||
		{ cat "$work/setup.log"; exit 2; }
fi
ninja -C "$bld" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 2; }

run_test() { # name
	local exe=$bld/tests/test_$1
	if [ ! -x "$exe" ]; then
		echo "== $1: not built"
		failed+=("$1: not built")
		return
	fi
	echo "== test_$1 (VMEM_TEST_SCALE=$scale)"
	local t0=$(date +%s)
	VMEM_TEST_SCALE=$scale CMOCKA_MESSAGE_OUTPUT=stdout "$exe" >"$work/$1.log" 2>&1
	local rc=$?
	grep -E '^# figure: ' "$work/$1.log" | tee -a "$figures"
	echo "   $(( $(date +%s) - t0 ))s, exit $rc"
	if [ $rc != 0 ]; then
		failed+=("test_$1")
		grep -E 'ERROR|FAILED|Failure|error' "$work/$1.log" | head -20
	fi
}

# the fuzzers run on their own while the tests run (two cores)
fpid=
if [ $fuzz = 1 ]; then
	if command -v clang >/dev/null; then
		if [ ! -d "$fbld" ]; then
			CC=clang meson setup "$fbld" -Dbench=false -Dman=false >"$work/fsetup.log" 2>&1
		fi
		ninja -C "$fbld" >"$work/fbuild.log" 2>&1
		echo "== fuzzing in the background: 2 targets x ${fuzz_secs}s"
		bash fuzz/run-fuzz.sh "$fbld" "$fuzz_secs" "$work/fuzz" >"$work/fuzz.log" 2>&1 &
		fpid=$!
	else
		echo "== no clang: no fuzzing"
		failed+=("fuzz: no clang")
	fi
fi

for t in badinput faults dlopen stress; do
	run_test $t
done

if [ -n "$fpid" ]; then
	wait "$fpid"
	rc=$?
	cat "$work/fuzz.log" | grep -vE '^# figure'
	grep -E '^# figure: ' "$work/fuzz.log" | tee -a "$figures"
	[ $rc = 0 ] || failed+=("fuzz (inputs kept in $work/fuzz)")
fi

sum() { # figure name
	awk -v k="# figure: $1 " 'index($0, k) == 1 { s += substr($0, length(k) + 1) } END { print s + 0 }' \
		"$figures"
}

echo
echo "Reliability figures ($( [ $quick = 1 ] && echo quick || echo long ) mode, VMEM_TEST_SCALE=$scale, $(( $(date +%s) - start ))s):"
printf '  %-34s %s\n' \
	"fuzz executions" "$(sum 'fuzz execs')" \
	"fuzz crashes" "$(sum 'fuzz crashes')" \
	"mapping faults injected" "$(sum 'faults injected')" \
	"mapping faults survived" "$(sum 'faults survived')" \
	"operations stressed (threads)" "$(sum 'operations stressed')" \
	"churn operations (leak check)" "$(sum 'churn operations')" \
	"forks" "$(sum 'forks')" \
	"dlopen/dlclose cycles" "$(sum 'dlopen cycles')" \
	"bad inputs tried" "$(sum 'bad inputs tried')" \
	"leaked bytes" "$(sum 'leaked bytes')"
[ "$(sum 'leaked bytes')" = 0 ] || failed+=("leaks")
[ "$(sum 'faults injected')" = "$(sum 'faults survived')" ] || failed+=("faults")

if [ $keep = 0 ] && [ ${#failed[@]} = 0 ]; then
	rm -rf "$work"
else
	echo "logs: $work"
fi
if [ ${#failed[@]} != 0 ]; then
	printf 'failed: %s\n' "${failed[@]}"
	exit 1
fi
echo "all passed"
