#!/usr/bin/env bash
# Build libvmem and run every test: gcc and clang, ASan+UBSan and TSan with
# both, the check that lib/ has no cycle between files, 60 s of each fuzz
# target, symbol and ABI checks, and the Debian packaging test.  Installs
# what it needs when run as root on Debian/Ubuntu.
# Usage: bash tests/run-all.sh [--quick]
#   --quick   the gcc suite and the layer check only (about 7 minutes)
# The last line is "tests: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1

deps=(build-essential meson ninja-build pkg-config libcmocka-dev clang libclang-rt-14-dev g++ python3
	abigail-tools groff man-db valgrind etcd-server libcurl4-openssl-dev libjansson-dev openssl)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	missing=()
	for p in "${deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "== installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi

passed=0
failed=0
failures=()
record() { # name status
	if [ "$2" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

# Run one meson configuration; count its tests.
suite() { # name dir compiler meson-args...
	local name=$1 dir=$2 compiler=$3
	shift 3
	echo "== $name"
	rm -rf "$dir"
	if ! CC=$compiler meson setup "$dir" "$@" >"$dir.log" 2>&1 ||
	   ! ninja -C "$dir" >>"$dir.log" 2>&1; then
		cat "$dir.log"
		record "$name: build" 1
		return
	fi
	if grep -E 'warning:' "$dir.log"; then
		record "$name: warnings" 1
	fi
	meson test -C "$dir" --print-errorlogs --num-processes 2 | tee "$dir.test.log" | grep -vE '^ *[0-9]+/[0-9]+ .* OK '
	local ok fail
	ok=$(sed -nE 's/^Ok: +([0-9]+).*/\1/p' "$dir.test.log" | tail -1)
	fail=$(awk '/^(Fail|Unexpected Pass|Timeout):/ {s += $2} END {print s + 0}' "$dir.test.log")
	passed=$((passed + ${ok:-0}))
	failed=$((failed + fail))
	[ "$fail" = 0 ] && [ -n "$ok" ] || failures+=("$name: tests")
	[ -n "$ok" ] || failed=$((failed + 1))
}

suite "gcc" build-ci-gcc gcc
echo "== scripts/check-layers.py"
python3 scripts/check-layers.py
record "layers" $?
if [ $quick = 0 ]; then
	suite "clang" build-ci-clang clang
	# Sanitizers: a tenth of the stress, UB and races are failures, a child
	# of a multi-threaded fork may start threads under TSan.
	export VMEM_TEST_SANITIZED=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	export TSAN_OPTIONS="die_after_fork=0 halt_on_error=1 second_deadlock_stack=1"
	for cc in gcc clang; do
		suite "$cc ASan+UBSan" build-ci-asan-$cc $cc -Db_sanitize=address,undefined \
			-Db_lundef=false -Dbench=false -Dman=false
		suite "$cc TSan" build-ci-tsan-$cc $cc -Db_sanitize=thread -Db_lundef=false \
			-Dbench=false -Dman=false
	done
	unset VMEM_TEST_SANITIZED UBSAN_OPTIONS TSAN_OPTIONS
	if [ -f fuzz/run-fuzz.sh ]; then
		echo "== fuzz (60 s a target)"
		# a fixed seed and count: CI repeats the same inputs, so a red
		# run is a regression, not luck; scripts/reliability.sh explores
		FUZZ_FLAGS="-seed=1 -runs=5000" bash fuzz/run-fuzz.sh build-ci-clang 60
		record "fuzz" $?
	fi
	for s in scripts/check-symbols.sh scripts/check-abi.sh; do
		echo "== $s"
		bash "$s" build-ci-gcc
		record "$s" $?
	done
	if [ -f scripts/package-test.sh ] && [ "$(id -u)" = 0 ]; then
		echo "== scripts/package-test.sh"
		bash scripts/package-test.sh
		record "packaging" $?
	fi
fi

echo
if [ $failed != 0 ]; then
	printf 'failed: %s\n' "${failures[@]}"
fi
echo "tests: $passed passed, $failed failed"
[ $failed = 0 ]
