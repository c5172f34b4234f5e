#!/bin/sh
# libvmem-etcd.so.1 exports exactly the functions of vmem_etcd.h, each at
# VMEM_ETCD_1.0, and the map lists exactly them.  Usage: exports.sh LIB HEADER MAP
set -eu
lib=$1 header=$2 map=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
readelf --dyn-syms -W "$lib" | awk '$7 != "UND" && $7 != "ABS" && $8 ~ /@/ {print $8}' |
	sort >"$tmp/exported"
grep -oE '^int +vmem_etcd_[a-z_]+' "$header" | awk '{print $2 "@@VMEM_ETCD_1.0"}' |
	sort >"$tmp/declared"
sed -n 's/^[[:space:]]*\(vmem_etcd_[a-z_]*\);$/\1@@VMEM_ETCD_1.0/p' "$map" | sort >"$tmp/listed"
status=0
diff -u "$tmp/declared" "$tmp/exported" || status=1
diff -u "$tmp/declared" "$tmp/listed" || status=1
[ "$(wc -l <"$tmp/declared")" -eq 6 ] || { echo "expected 6 functions in the header"; status=1; }
exit $status
