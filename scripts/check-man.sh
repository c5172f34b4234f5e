#!/bin/sh
# check-man.sh - lint the manual pages in man/ and compile their examples.
#
# Usage: scripts/check-man.sh [BUILDDIR]
#
#  * every page renders with `man --warnings` (and groff -ww) without a
#    single line of output, .so stubs included (resolved in a scratch man
#    tree, as man(1) does once they are installed);
#  * sections appear in man-pages(7) order, every section-3 page has
#    NAME, LIBRARY, SYNOPSIS, DESCRIPTION, RETURN VALUE, ERRORS,
#    ATTRIBUTES, VERSIONS, NOTES, EXAMPLES and SEE ALSO, and every
#    section-1 page NAME, SYNOPSIS, DESCRIPTION, OPTIONS, EXIT STATUS,
#    EXAMPLES and SEE ALSO;
#  * every page says which vmem it documents;
#  * every function named in lib/libvmem.map and lib/etcd/libvmem-etcd.map
#    has a page or a .so stub, and every stub points at an existing page;
#  * with BUILDDIR (a meson build dir with lib/libvmem.so), every EXAMPLES
#    program that has a main() is compiled with -Wall -Wextra -Werror
#    against include/ and linked with the built library, then run.  A
#    program that includes <vmem_etcd.h> is linked with lib/etcd's
#    libvmem-etcd.so too and run against an etcd this script starts itself
#    (one member on free ports of 127.0.0.1, in its scratch directory,
#    stopped by its PID on exit); without the etcd binary it is compiled
#    and linked but not run, and without the built library only compiled.
#
# Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-}
fail=0
tmp=$(mktemp -d)
etcd_pid=
cleanup() {
	if [ -n "$etcd_pid" ]; then
		kill "$etcd_pid" 2>/dev/null || true
		wait "$etcd_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

err() {
	echo "check-man: $*" >&2
	fail=1
}

mkdir -p "$tmp/man/man1" "$tmp/man/man3" "$tmp/man/man7"
cp "$top"/man/*.1 "$tmp/man/man1/"
cp "$top"/man/*.3 "$tmp/man/man3/"
cp "$top"/man/*.7 "$tmp/man/man7/"

order="NAME LIBRARY SYNOPSIS CONFIGURATION DESCRIPTION OPTIONS EXIT_STATUS RETURN_VALUE
ERRORS ENVIRONMENT FILES ATTRIBUTES VERSIONS STANDARDS HISTORY NOTES CAVEATS BUGS EXAMPLES
AUTHORS REPORTING_BUGS COPYRIGHT SEE_ALSO"
required3="NAME LIBRARY SYNOPSIS DESCRIPTION RETURN_VALUE ERRORS ATTRIBUTES VERSIONS NOTES
EXAMPLES SEE_ALSO"
required1="NAME SYNOPSIS DESCRIPTION OPTIONS EXIT_STATUS EXAMPLES SEE_ALSO"

rank() {
	i=0
	for s in $order; do
		i=$((i + 1))
		if [ "$s" = "$1" ]; then
			echo $i
			return
		fi
	done
	echo 0
}

cd "$tmp/man"
for page in man1/*.1 man3/*.3 man7/*.7; do
	name=$(basename "$page")
	# 1. rendering warnings (run from the man root so .so resolves)
	out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null) || true
	[ -z "$out" ] || err "$name: man --warnings:
$out"
	if grep -q '^\.so ' "$page"; then
		target=$(sed -n 's/^\.so //p' "$page")
		[ -f "$target" ] || err "$name: .so target $target does not exist"
		[ "$(wc -l <"$page")" -eq 1 ] || err "$name: a stub must be one .so line"
		continue
	fi
	out=$(groff -t -man -ww -z "$page" 2>&1) || true
	[ -z "$out" ] || err "$name: groff -ww:
$out"

	# 2. section order and presence
	secs=$(sed -n 's/^\.SH *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$page" | tr ' ' '_')
	last=0
	for s in $secs; do
		r=$(rank "$s")
		[ "$r" -ne 0 ] || err "$name: unknown section $s"
		[ "$r" -gt "$last" ] || err "$name: section $s out of man-pages(7) order"
		last=$r
	done
	case $name in
	*.1) required=$required1 ;;
	*.3) required=$required3 ;;
	*) required= ;;
	esac
	for s in $required; do
		echo "$secs" | grep -qx "$s" || err "$name: no $s section"
	done

	# 3. which vmem this is
	if [ "$name" != libvmem.7 ]; then
		grep -q '^This page documents$' "$page" && grep -q 'Bonwick and Adams' "$page" &&
			grep -q 'illumos kernel vmem' "$page" && grep -q "PMDK" "$page" ||
			err "$name: does not say which vmem it documents"
	fi
done

# 4. every exported function has a page
for fn in $(sed -n 's/^[[:space:]]*\(vmem_[a-z_]*\);.*/\1/p' "$top/lib/libvmem.map" \
	"$top/lib/etcd/libvmem-etcd.map"); do
	[ -f "man3/$fn.3" ] || err "no manual page for $fn"
	grep -q "^\.BI* .*[ *]$fn(" "man3/$(sed -n 's|^\.so man3/||p' "man3/$fn.3" | grep . || echo "$fn.3")" ||
		err "$fn is not in the SYNOPSIS of its page"
done

# An etcd of our own for the examples that need one: free ports on
# 127.0.0.1, data in the scratch directory.  Sets etcd_url and etcd_pid
# (not in a subshell: cleanup stops it by that PID).
start_etcd() {
	command -v etcd >/dev/null && command -v python3 >/dev/null || return 1
	ports=$(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))') || return 1
	cport=${ports% *}
	pport=${ports#* }
	url=http://127.0.0.1:$cport
	etcd --data-dir "$tmp/etcd" --listen-client-urls "$url" --advertise-client-urls "$url" \
		--listen-peer-urls "http://127.0.0.1:$pport" >"$tmp/etcd.log" 2>&1 &
	etcd_pid=$!
	i=0
	while [ $i -lt 100 ]; do
		if python3 -c "import urllib.request, sys
urllib.request.urlopen(urllib.request.Request('$url/v3/kv/range', data=b'{\"key\":\"AA==\"}'), timeout=1)" \
			2>/dev/null; then
			etcd_url=$url
			return 0
		fi
		kill -0 "$etcd_pid" 2>/dev/null || break
		sleep 0.2
		i=$((i + 1))
	done
	return 1
}

# 5. compile and run the examples
if [ -n "$builddir" ]; then
	builddir=$(cd "$top" && cd "$builddir" && pwd)
	[ -f "$builddir/lib/libvmem.so" ] || {
		err "$builddir/lib/libvmem.so not found"
		exit 1
	}
	etcd_lib=$builddir/lib/etcd
	[ -f "$etcd_lib/libvmem-etcd.so" ] || etcd_lib=
	etcd_url=
	n=0
	for page in man3/*.3 man7/*.7; do
		grep -q '^\.so ' "$page" && continue
		name=$(basename "$page")
		# the first .EX block after .SH EXAMPLES that defines main()
		awk '/^\.SH EXAMPLES/ { ex = 1 } ex && /^\.EE/ { if (buf ~ /main\(/) { printf "%s", buf; exit } buf = ""; inb = 0 }
		     ex && inb { buf = buf $0 "\n" } ex && /^\.EX/ { inb = 1; buf = "" }' "$page" |
			sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e 's/\\(dq/"/g' >"$tmp/$name.c"
		[ -s "$tmp/$name.c" ] || continue
		n=$((n + 1))
		cflags="-std=c11 -Wall -Wextra -Werror -I$top/include"
		if grep -q '#include <vmem_etcd.h>' "$tmp/$name.c"; then
			if [ -z "$etcd_lib" ]; then
				# shellcheck disable=SC2086
				${CC:-cc} $cflags -c -o "$tmp/$name.o" "$tmp/$name.c" 2>"$tmp/cc.log" ||
					err "$name: example does not compile:
$(cat "$tmp/cc.log")"
				echo "check-man: $name: compiled only (libvmem-etcd is not built)"
				continue
			fi
			libs="-L$etcd_lib -Wl,-rpath,$etcd_lib -lvmem-etcd -L$builddir/lib -Wl,-rpath,$builddir/lib -lvmem"
		else
			libs="-L$builddir/lib -Wl,-rpath,$builddir/lib -lvmem"
		fi
		# shellcheck disable=SC2086
		if ! ${CC:-cc} $cflags -o "$tmp/$name.bin" "$tmp/$name.c" $libs 2>"$tmp/cc.log"; then
			err "$name: example does not compile:
$(cat "$tmp/cc.log")"
			continue
		fi
		if grep -q '#include <vmem_etcd.h>' "$tmp/$name.c"; then
			if [ -z "$etcd_url" ] && [ -z "$etcd_pid" ]; then
				start_etcd ||
					echo "check-man: no etcd could be started: the examples that need one are compiled, not run"
			fi
			[ -n "$etcd_url" ] || continue
			if ! VMEM_ETCD_ENDPOINTS=$etcd_url "$tmp/$name.bin" >"$tmp/run.log" 2>&1; then
				err "$name: example exits non-zero against etcd at $etcd_url:
$(cat "$tmp/run.log")"
			fi
			continue
		fi
		if ! "$tmp/$name.bin" >"$tmp/run.log" 2>&1; then
			err "$name: example exits non-zero:
$(cat "$tmp/run.log")"
		fi
	done
	echo "check-man: compiled and ran $n examples${etcd_url:+ (those of libvmem-etcd against etcd at $etcd_url)}"
fi

if [ "$fail" -ne 0 ]; then
	echo "check-man: FAILED" >&2
	exit 1
fi
echo "check-man: all pages ok"
