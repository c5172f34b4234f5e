#!/bin/sh
# check-abi.sh - compare the ABI of a freshly built libvmem.so.1 with the
# committed baseline abi/libvmem.abi (libabigail's abidiff).
#
# Usage:
#   scripts/check-abi.sh              build the library in a scratch debug
#                                     build directory and compare it
#   scripts/check-abi.sh BUILDDIR     compare BUILDDIR/lib/libvmem.so.1
#                                     (it must have debug info, -g)
#   scripts/check-abi.sh LIB.so.1 [DEBUGDIR]
#                                     compare a given library, e.g. an
#                                     installed one whose debug info lives
#                                     under DEBUGDIR (say, an unpacked
#                                     -dbgsym package's usr/lib/debug)
#   scripts/check-abi.sh --update [BUILDDIR]
#                                     regenerate abi/libvmem.abi from a
#                                     debug build of the current tree
#
# Only the public types count: the headers in include/ are passed with
# --headers-dir and private types are dropped.  The check fails when
# abidiff's exit status has bit 4 (ABI change: also an added or removed
# symbol or a changed parameter) or bit 8 (incompatible change) set, and
# on any abidiff error.  An intended change (a new symbol at a new version
# node, see the versioning policy in NEWS) is accepted by regenerating the
# baseline with --update and committing it together with the change.
#
# The baseline describes the x86_64 (amd64) ABI.
#
# Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
baseline=$top/abi/libvmem.abi
SONAME=libvmem.so.1

update=0
if [ "${1:-}" = --update ]; then
	update=1
	shift
fi
arg=${1:-}
debugdir=${2:-}

. "$top/scripts/check-lib.sh"
require_tools check-abi ": apt-get install abigail-tools" abidw abidiff
scratch_dir

has_debug_info() {
	readelf -S -W "$1" 2>/dev/null | grep -q '\.debug_info'
}

# Find or build the library.
case $arg in
'')
	echo "check-abi: building a debug libvmem in a scratch directory"
	meson setup "$tmp/build" "$top" --buildtype=debug -Dtests=false -Dman=false \
		-Dbench=false >"$tmp/setup.log" 2>&1 || {
		cat "$tmp/setup.log" >&2
		exit 2
	}
	ninja -C "$tmp/build" >"$tmp/ninja.log" 2>&1 || {
		cat "$tmp/ninja.log" >&2
		exit 2
	}
	lib=$tmp/build/lib/$SONAME
	;;
*.so*) lib=$arg ;;
/*) lib=$arg/lib/$SONAME ;;
*) lib=$(pwd)/$arg/lib/$SONAME ;;
esac
[ -f "$lib" ] || {
	echo "check-abi: $lib not found" >&2
	exit 2
}
if [ -z "$debugdir" ] && ! has_debug_info "$lib"; then
	echo "check-abi: $lib has no debug info: build with -g (buildtype debug or debugoptimized)" >&2
	exit 2
fi

if [ "$update" -eq 1 ]; then
	mkdir -p "$top/abi"
	# --short-locs, not --no-show-locs: abidiff --headers-dir2 decides which
	# types are public by their location, and silently filters out changes
	# to types that have none (e.g. a field inserted into vmem_stats_t).
	abidw --headers-dir "$top/include" --drop-private-types --no-corpus-path \
		--no-comp-dir-path --short-locs --type-id-style hash \
		${debugdir:+--debug-info-dir "$debugdir"} --out-file "$tmp/new.abi" "$lib"
	# Locations inside the library's .c files only churn the committed file
	# when code moves; types keep theirs (vmem.h), which the filter needs.
	sed -i "s/ filepath='[^']*\\.c' line='[0-9]*' column='[0-9]*'//g" "$tmp/new.abi"
	# sanity: the baseline must describe every exported function
	n=$(grep -c "<elf-symbol name='vmem_[a-z_]*' version='VMEM_1.0' .*type='func-type'" \
		"$tmp/new.abi" || true)
	if [ "$n" -lt 20 ]; then
		echo "check-abi: the new baseline lists only $n functions at VMEM_1.0" >&2
		exit 1
	fi
	mv "$tmp/new.abi" "$baseline"
	echo "check-abi: wrote $baseline ($n functions at VMEM_1.0) from $lib"
	exit 0
fi

[ -f "$baseline" ] || {
	echo "check-abi: no baseline $baseline: create it with scripts/check-abi.sh --update" >&2
	exit 2
}

echo "check-abi: abidiff $baseline $lib"
set +e
abidiff --headers-dir2 "$top/include" --drop-private-types --fail-no-debug-info \
	${debugdir:+--debug-info-dir2 "$debugdir"} "$baseline" "$lib" >"$tmp/report" 2>&1
rc=$?
set -e
cat "$tmp/report"
if [ $((rc & 3)) -ne 0 ]; then
	echo "check-abi: abidiff failed (exit status $rc)" >&2
	exit 2
fi
if [ $((rc & 12)) -ne 0 ]; then
	[ $((rc & 8)) -ne 0 ] && what="INCOMPATIBLE ABI change" || what="ABI change"
	echo "check-abi: FAIL: $what against abi/libvmem.abi (abidiff exit status $rc)." >&2
	echo "check-abi: additions belong in a new version node (VMEM_1.1) with an updated" >&2
	echo "check-abi: baseline (scripts/check-abi.sh --update); a break needs SONAME libvmem.so.2." >&2
	exit 1
fi
echo "check-abi: ok: no ABI change against abi/libvmem.abi"
