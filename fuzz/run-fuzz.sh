#!/usr/bin/env bash
# Run the libFuzzer targets for a while, from the committed corpus.
#
#   bash fuzz/run-fuzz.sh [BUILDDIR] [SECONDS] [OUTDIR]
#
# BUILDDIR   a clang meson build with fuzz/ in it (default build-fuzz); when
#            it has no fuzz targets (or does not exist), they are compiled
#            directly with clang into OUTDIR/bin
# SECONDS    per target (default 60); the targets run side by side
# OUTDIR     work area (default: a temporary directory): OUTDIR/<target>/
#            holds the corpus as it grew, crash-*/leak-*/timeout-* files
#            are what libFuzzer saved
#
# FUZZ_FLAGS adds libFuzzer flags, e.g. "-seed=1 -runs=5000" for a run that
# repeats exactly (CI uses that; exploration belongs in the long runs).
# The committed corpus (fuzz/corpus/<target>/) is only read.  Prints
# "# figure: fuzz execs N" and "# figure: fuzz crashes N"; exits 1 when a
# target crashed, with the input to reproduce it:
#   BUILDDIR/fuzz/fuzz_<target> OUTDIR/<target>/crash-...
# (or run it through fuzz_<target>_replay, built with any compiler).
set -uo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build-fuzz}
secs=${2:-60}
out=${3:-$(mktemp -d /tmp/vmem-fuzz.XXXXXX)}
targets=(arena import)
mkdir -p "$out"

bindir="$builddir/fuzz"
if [ ! -x "$bindir/fuzz_arena" ] || [ ! -x "$bindir/fuzz_import" ]; then
	# not wired into this build: compile the targets directly
	bindir="$out/bin"
	mkdir -p "$bindir"
	cc=${CC_FUZZ:-clang}
	if ! command -v "$cc" >/dev/null; then
		echo "run-fuzz: no clang, and $builddir has no fuzz targets" >&2
		exit 2
	fi
	flags=(-O1 -g -std=gnu11 -D_GNU_SOURCE -Iinclude -Ilib -Itests -pthread
	       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	       '-DVMEM_VERSION_STRING="1.0.0"')
	# one translation unit, as lib/meson.build builds it
	for f in lib/*.c; do printf '#include "%s"\n' "$PWD/$f"; done >"$bindir/vmem_unity.c"
	for i in "${!targets[@]}"; do
		t=${targets[$i]}
		echo "== compiling fuzz_$t with $cc"
		"$cc" "${flags[@]}" -DFUZZ_MODE="$i" fuzz/vmem_fuzz.c tests/model.c \
			"$bindir/vmem_unity.c" -o "$bindir/fuzz_$t" || exit 2
	done
fi

pids=()
for t in "${targets[@]}"; do
	mkdir -p "$out/$t"
	cp -n fuzz/corpus/"$t"/* "$out/$t/" 2>/dev/null
	echo "== fuzz_$t for ${secs}s (corpus $out/$t)"
	# shellcheck disable=SC2086 # FUZZ_FLAGS holds extra libFuzzer flags
	"$bindir/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -timeout=30 \
		-rss_limit_mb=4096 -max_len=4096 ${FUZZ_FLAGS:-} -artifact_prefix="$out/$t/" "$out/$t" \
		>"$out/$t.log" 2>&1 &
	pids+=($!)
done

status=0
execs=0
crashes=0
for i in "${!targets[@]}"; do
	t=${targets[$i]}
	wait "${pids[$i]}"
	rc=$?
	n=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$out/$t.log" | tail -1)
	execs=$((execs + ${n:-0}))
	found=$(find "$out/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
		-o -name 'oom-*' \) | wc -l)
	if [ "$rc" != 0 ] || [ "$found" != 0 ]; then
		crashes=$((crashes + (found > 0 ? found : 1)))
		status=1
		echo "== fuzz_$t FAILED (exit $rc); the report:"
		grep -m1 -A12 -E '^(vmem_fuzz|model).c:|ERROR: (AddressSanitizer|UndefinedBehavior|libFuzzer)|runtime error' \
			"$out/$t.log"
		find "$out/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
			-o -name 'oom-*' \) -printf '   reproduce: %p\n'
	else
		echo "== fuzz_$t: ${n:-0} inputs in ${secs}s, no crash"
	fi
done
echo "# figure: fuzz execs $execs"
echo "# figure: fuzz crashes $crashes"
exit $status
