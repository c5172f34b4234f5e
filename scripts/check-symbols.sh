#!/bin/sh
# check-symbols.sh - the exported interface of libvmem.so.1 is exactly the
# public API.
#
# Usage: scripts/check-symbols.sh [BUILDDIR | path/to/libvmem.so.1]
#        (default: build)
#
# Checks:
#  1. SONAME is libvmem.so.1;
#  2. the defined dynamic symbols (readelf --dyn-syms, without the ABS
#     entries that stand for version nodes), the global names in
#     lib/libvmem.map and the functions declared in include/vmem.h are one
#     and the same set;
#  3. every exported symbol is a function at its default version (name@@NODE),
#     in the node of lib/libvmem.map that lists it; the library defines
#     exactly the map's nodes, VMEM_1.0 among them (in 1.0 the only one;
#     later additions go into VMEM_1.1 and are listed as such);
#  4. the library imports no allocator from libc: `nm -D --undefined-only`
#     shows none of malloc, calloc, realloc, free (nor their relatives).
#
# Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
arg=${1:-build}
NODE=VMEM_1.0
SONAME=libvmem.so.1

case $arg in
*.so*) lib=$arg ;;
*)
	case $arg in
	/*) lib=$arg/lib/$SONAME ;;
	*) lib=$top/$arg/lib/$SONAME ;;
	esac
	;;
esac
[ -f "$lib" ] || {
	echo "check-symbols: $lib not found (build the library first)" >&2
	exit 2
}
. "$top/scripts/check-lib.sh"
require_tools check-symbols " (binutils)" readelf nm
scratch_dir
fail=0
err() {
	echo "check-symbols: FAIL: $*" >&2
	fail=1
}

echo "check-symbols: $lib"

# 1. SONAME
soname=$(readelf -d -W "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "$SONAME" ] || err "SONAME is '$soname', expected $SONAME"

# 2./3. exported symbols.  readelf -W columns:
#   Num: Value Size Type Bind Vis Ndx Name
readelf --dyn-syms -W "$lib" | awk 'NF >= 8 && $1 ~ /^[0-9]+:$/ && $7 != "UND" &&
	($5 == "GLOBAL" || $5 == "WEAK" || $5 == "GNU_UNIQUE") { print $4, $7, $8 }' >"$tmp/dyn"
# version nodes: ABS entries named after the node, without '@'
awk '$2 == "ABS" && $3 !~ /@/ { print $3 }' "$tmp/dyn" | sort >"$tmp/nodes"
awk '!($2 == "ABS" && $3 !~ /@/)' "$tmp/dyn" >"$tmp/exports"

# the version script: "name node" for every global name, and the nodes
awk '
	/^[[:space:]]*[A-Za-z_][A-Za-z0-9_.]*[[:space:]]*\{/ { node = $1; sub(/\{.*/, "", node); g = 1; next }
	/^[[:space:]]*}/ { node = ""; next }
	node != "" && /global:/ { g = 1; sub(/.*global:/, "") }
	node != "" && /local:/ { g = 0; next }
	node != "" && g { gsub(/[[:space:];]/, ""); if ($0 != "") print $0, node }
' "$top/lib/libvmem.map" | sort >"$tmp/map.pairs"
awk '/^[[:space:]]*[A-Za-z_][A-Za-z0-9_.]*[[:space:]]*\{/ { n = $1; sub(/\{.*/, "", n); print n }' \
	"$top/lib/libvmem.map" | sort >"$tmp/map.nodes"
cut -d' ' -f1 "$tmp/map.pairs" | sort >"$tmp/map.names"
[ -s "$tmp/map.names" ] || err "no global names in lib/libvmem.map"
grep -qx "$NODE" "$tmp/map.nodes" || err "lib/libvmem.map has no node $NODE"

# version nodes defined by the library are exactly those of the map
cmp -s "$tmp/nodes" "$tmp/map.nodes" ||
	err "version nodes: library defines '$(tr '\n' ' ' <"$tmp/nodes")', map has '$(tr '\n' ' ' <"$tmp/map.nodes")'"
# every export is a function at its default version, the node the map puts it in
while read -r type _ndx name; do
	case $name in
	*@@*) ;;
	*) err "$name is not exported at a default version (name@@NODE)" ;;
	esac
	[ "$type" = FUNC ] || err "$name is a $type, not a function"
done <"$tmp/exports"
sed 's/^[^ ]* [^ ]* //; s/@@*/ /' "$tmp/exports" | sort >"$tmp/elf.pairs"
cmp -s "$tmp/elf.pairs" "$tmp/map.pairs" ||
	err "symbol versions differ between the library and lib/libvmem.map:
$(diff "$tmp/elf.pairs" "$tmp/map.pairs" | grep '^[<>]' | sed 's/^</  library:/; s/^>/  map:    /')"
sed 's/^[^ ]* [^ ]* //; s/@.*//' "$tmp/exports" | sort >"$tmp/elf.names"
awk -v node="$NODE" '$2 != node { print "  " $1 " at " $2 }' "$tmp/elf.pairs" >"$tmp/later"
if [ -s "$tmp/later" ]; then
	echo "check-symbols: note: symbols added after $NODE:"
	cat "$tmp/later"
fi

# functions declared in the public header, as the compiler sees them
${CC:-cc} -aux-info "$tmp/aux" -S -o /dev/null -x c -I"$top/include" "$top/include/vmem.h"
grep "include/vmem.h:" "$tmp/aux" | sed 's|^/\*[^*]*\*/ *||' |
	sed -n 's/^[^(]*[ *]\([A-Za-z_][A-Za-z0-9_]*\) (.*/\1/p' |
	sort >"$tmp/header.names"
[ -s "$tmp/header.names" ] || err "no function declarations found in include/vmem.h"

for pair in "elf:map" "elf:header" "map:header"; do
	a=${pair%%:*}
	b=${pair##*:}
	if ! cmp -s "$tmp/$a.names" "$tmp/$b.names"; then
		err "exported ($a) and $b names differ:
$(diff "$tmp/$a.names" "$tmp/$b.names" | grep '^[<>]' | sed "s/^</  only in $a:/; s/^>/  only in $b:/")"
	fi
done

# 4. no allocator imported from libc
nm -D --undefined-only "$lib" | awk '{ print $NF }' | sed 's/@.*//' | sort -u >"$tmp/undef"
for fn in malloc calloc realloc reallocarray free posix_memalign aligned_alloc memalign \
	valloc pvalloc strdup strndup asprintf vasprintf open_memstream; do
	if grep -qx "$fn" "$tmp/undef"; then
		err "the library imports $fn"
	fi
done

if [ "$fail" -ne 0 ]; then
	echo "check-symbols: FAILED" >&2
	exit 1
fi
echo "check-symbols: ok: $(wc -l <"$tmp/elf.names") functions at $(tr '\n' ' ' <"$tmp/nodes")(as in lib/libvmem.map and include/vmem.h), SONAME $SONAME, no malloc/calloc/realloc/free"
