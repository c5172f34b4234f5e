#!/bin/sh
# package-test.sh - build, lint, install, test and remove the Debian packages:
# libvmem1 and libvmem-dev, and the cluster-pool packages libvmem-etcd1,
# libvmem-etcd-dev and vmem-pool.
#
# Run as root on Debian 12 (bookworm) after `apt-get update`:
#
#   scripts/package-test.sh
#
# Steps (each prints a header; the script stops at the first failure):
#   1. install the build dependencies and test tools with apt-get;
#   2. copy the work tree (tracked and untracked files that git does not
#      ignore) to a scratch directory outside the repository, and make the
#      orig tarball from it (source format 3.0 (quilt), version 1:1.0.0-1);
#   3. dpkg-buildpackage -us -uc: source and binary packages, the test
#      suite included (the etcd tests start etcd themselves), symbols of
#      both libraries checked at dpkg-gensymbols level 4;
#   4. inspect the binary packages (files, fields, symbols, hardening), and
#      that etcd-server is suggested, never depended on;
#   5. lintian -I -E --pedantic on the .changes: no tag at all may show
#      (overrides need a reason in debian/source/lintian-overrides);
#   6. check that DEB_BUILD_OPTIONS=nocheck is honoured and that the
#      nocheck build profile builds without libcmocka-dev;
#   7. install a stand-in for PMDK's old libvmem1/libvmem-dev 1.8-2 and a
#      program linked against it;
#   8. apt-get install the five packages, which must upgrade libvmem1 and
#      libvmem-dev over the stand-in; the old program must then fail with
#      the loader's "version `LIBVMEM_1.0' not found";
#   9. check the installed libraries (exports, ABI against abi/libvmem.abi
#      with the -dbgsym debug info, pkg-config files);
#  10. run the autopkgtests (debian/tests) against the installed packages,
#      directly and with `autopkgtest -B . -- null`;
#  11. check the manual pages (man -w vmem_xalloc, vmem_etcd_open,
#      vmem-pool; every page renders without warnings);
#  12. dpkg --compare-versions: the epoch sorts above PMDK's 1.8-2;
#  13. remove and purge the packages and check that they are gone.
#
# Environment: KEEP=1 keeps the scratch directory; SKIP_NOCHECK=1 skips
# step 6 (a second, test-less build); NOCHECK=1 builds the packages of
# step 3 without running the test suite (for quick iterations only).
#
# Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
unset PKG_CONFIG_PATH LD_LIBRARY_PATH LIBRARY_PATH CPATH C_INCLUDE_PATH DEB_BUILD_OPTIONS \
	DEB_BUILD_PROFILES 2>/dev/null || true

step_no=0
step() {
	step_no=$((step_no + 1))
	printf '\n==== [%d] %s ====\n' "$step_no" "$*"
}
die() {
	printf '\npackage-test: FAILED in step %d: %s\n' "$step_no" "$*" >&2
	exit 1
}
ok() {
	echo "  ok: $*"
}

[ "$(id -u)" -eq 0 ] || die "run as root (it installs and removes packages)"
[ -f "$top/debian/control" ] || die "no debian/control in $top"
start=$(date +%s)

work=$(mktemp -d /tmp/libvmem-pkg.XXXXXX)
chmod 755 "$work" # apt's _apt user reads the .debs from here
cleanup() {
	rc=$?
	if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
		echo "package-test: scratch directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------------------
step "install build dependencies and tools"
deps="build-essential debhelper devscripts dpkg-dev fakeroot lintian meson ninja-build pkgconf
libcmocka-dev abigail-tools man-db groff-base binutils git xz-utils autopkgtest
libcurl4-openssl-dev libjansson-dev etcd-server openssl python3"
# shellcheck disable=SC2086
if ! apt-get install -y --no-install-recommends $deps >"$work/apt.log" 2>&1; then
	echo "  apt-get install failed; running apt-get update and retrying"
	apt-get update >>"$work/apt.log" 2>&1 || true
	# shellcheck disable=SC2086
	apt-get install -y --no-install-recommends $deps >>"$work/apt.log" 2>&1 ||
		{ tail -20 "$work/apt.log"; die "cannot install the build dependencies"; }
fi
ok "$(echo "$deps" | wc -w) packages present"

# ---------------------------------------------------------------------------
step "copy the source tree and make the orig tarball"
cd "$top"
pkg=$(dpkg-parsechangelog -S Source)
version=$(dpkg-parsechangelog -S Version)   # 1:1.0.0-1
noepoch=${version#*:}                        # 1.0.0-1
upstream=${noepoch%-*}                       # 1.0.0
sde=$(dpkg-parsechangelog -S Timestamp)
meson_version=$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" meson.build | head -1)
[ "$upstream" = "$meson_version" ] ||
	die "debian/changelog upstream version $upstream differs from meson.build ($meson_version)"
src=$work/$pkg-$upstream
mkdir "$src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	# tracked and untracked files that .gitignore does not exclude
	git -C "$top" ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ -f "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done; true' sh |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude='./build*' --exclude=./.git --exclude='./debian/tmp' -cf - . | tar -xf - -C "$src"
fi
[ -f "$src/debian/rules" ] && [ -f "$src/meson.build" ] || die "copy of the tree is incomplete"
for f in debian/rules debian/tests/pkgconfig-consumer debian/tests/dlopen-plugin \
	debian/tests/etcd-pkgconfig-consumer debian/tests/etcd-cluster-pool scripts/check-symbols.sh \
	scripts/check-abi.sh tests/etcd/exports.sh; do
	[ -x "$src/$f" ] || die "$f is not executable (git update-index --chmod=+x $f)"
done
orig=$work/${pkg}_$upstream.orig.tar.xz
(cd "$work" && tar --sort=name --mtime="@$sde" --owner=0 --group=0 --numeric-owner \
	--exclude="$pkg-$upstream/debian" -cJf "$orig" "$pkg-$upstream")
ok "$src ($(find "$src" -type f | wc -l) files), $(basename "$orig")"
echo "  source format: $(cat "$src/debian/source/format"), version $version"

# ---------------------------------------------------------------------------
step "dpkg-buildpackage -us -uc (source and binaries, with the test suite)"
cd "$src"
t0=$(date +%s)
if [ "${NOCHECK:-0}" = 1 ]; then
	echo "  NOCHECK=1: the test suite is NOT run"
	export DEB_BUILD_OPTIONS=nocheck
fi
if ! dpkg-buildpackage -us -uc -Jauto >"$work/build.log" 2>&1; then
	tail -60 "$work/build.log"
	die "dpkg-buildpackage failed (full log: $work/build.log)"
fi
grep -E '^(Ok|Fail|Expected Fail|Unexpected Pass|Skipped|Timeout): ' "$work/build.log" | sed 's/^/  /' || true
if grep -q 'dpkg-gensymbols: warning' "$work/build.log"; then
	grep -A20 'dpkg-gensymbols: warning' "$work/build.log"
	die "dpkg-gensymbols reported a symbols difference"
fi
arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
changes=$work/${pkg}_${noepoch}_$arch.changes
deb1=$work/libvmem1_${noepoch}_$arch.deb
debdev=$work/libvmem-dev_${noepoch}_$arch.deb
debetcd=$work/libvmem-etcd1_${noepoch}_$arch.deb
debetcddev=$work/libvmem-etcd-dev_${noepoch}_$arch.deb
debpool=$work/vmem-pool_${noepoch}_$arch.deb
for f in "$changes" "$deb1" "$debdev" "$debetcd" "$debetcddev" "$debpool" \
	"$work/${pkg}_$noepoch.dsc" "$work/${pkg}_$noepoch.debian.tar.xz"; do
	[ -f "$f" ] || die "missing build result $(basename "$f")"
done
unset DEB_BUILD_OPTIONS
ok "built in $(($(date +%s) - t0)) s: $(cd "$work" && ls ./*.deb ./*.ddeb ./*.dsc 2>/dev/null | tr '\n' ' ')"
[ -z "$(git -C "$top" status --porcelain --ignored=no 2>/dev/null | grep -v '^??' || true)" ] ||
	echo "  note: the repository has uncommitted changes (the build did not touch it)"

# ---------------------------------------------------------------------------
step "inspect the binary packages"
field() { dpkg-deb -f "$1" "$2"; }
[ "$(field "$deb1" Version)" = "$version" ] || die "libvmem1 version is not $version"
[ "$(field "$deb1" Section)" = libs ] || die "libvmem1 Section is not libs"
[ "$(field "$debdev" Section)" = libdevel ] || die "libvmem-dev Section is not libdevel"
for d in "$deb1" "$debdev"; do
	[ "$(field "$d" Multi-Arch)" = same ] || die "$(basename "$d") is not Multi-Arch: same"
done
field "$debdev" Depends | grep -qF "libvmem1 (= $version)" || die "libvmem-dev does not depend on libvmem1 (= $version)"
field "$deb1" Breaks | grep -qF 'libvmem-dev (<< 1:1.0.0~)' || die "libvmem1 lacks Breaks: libvmem-dev (<< 1:1.0.0~)"
field "$debdev" Breaks | grep -qF 'libvmem1 (<< 1:1.0.0~)' || die "libvmem-dev lacks Breaks: libvmem1 (<< 1:1.0.0~)"
field "$deb1" Replaces | grep -qF 'libvmem-dev (<< 1:1.0.0~)' || die "libvmem1 lacks Replaces"
field "$debdev" Replaces | grep -qF 'libvmem1 (<< 1:1.0.0~)' || die "libvmem-dev lacks Replaces"
dpkg-deb -c "$deb1" | awk '{ print $6 }' | sed 's|^\./|/|' | grep -v '/$' >"$work/files1"
dpkg-deb -c "$debdev" | awk '{ print $6 }' | sed 's|^\./|/|' | grep -v '/$' >"$work/filesdev"
for f in /usr/lib/$ma/libvmem.so.1 /usr/lib/$ma/libvmem.so.$upstream; do
	grep -qx "$f" "$work/files1" || die "libvmem1 lacks $f"
done
for f in /usr/include/vmem.h /usr/lib/$ma/libvmem.so /usr/lib/$ma/pkgconfig/vmem.pc \
	/usr/share/man/man3/vmem_xalloc.3.gz /usr/share/man/man3/vmem_xfree.3.gz \
	/usr/share/man/man7/libvmem.7.gz; do
	grep -qx "$f" "$work/filesdev" || die "libvmem-dev lacks $f"
done
grep -qx '/usr/share/doc/libvmem-dev/changelog.gz' "$work/filesdev" || die "no upstream changelog (NEWS) in libvmem-dev"
mkdir -p "$work/x1"
dpkg-deb -x "$deb1" "$work/x1"
dpkg-deb -e "$deb1" "$work/x1/DEBIAN"
[ -f "$work/x1/DEBIAN/symbols" ] || die "libvmem1 ships no symbols file"
grep -q '^\* Build-Depends-Package: libvmem-dev' "$work/x1/DEBIAN/symbols" || die "symbols file lacks Build-Depends-Package"
nsym=$(grep -c '@VMEM_1.0 ' "$work/x1/DEBIAN/symbols")
[ "$nsym" -eq 21 ] || die "symbols file lists $nsym entries at VMEM_1.0 (expected 20 functions and the node)"
readelf -d "$work/x1/usr/lib/$ma/libvmem.so.$upstream" | grep -q 'BIND_NOW' || die "library not linked with -z now"
readelf -l -W "$work/x1/usr/lib/$ma/libvmem.so.$upstream" | grep -q 'GNU_RELRO' || die "library lacks RELRO"
ok "fields, files, symbols file ($nsym entries), hardening (relro, bindnow)"

# the cluster-pool packages
for d in "$debetcd" "$debetcddev" "$debpool"; do
	[ "$(field "$d" Version)" = "$version" ] || die "$(basename "$d") version is not $version"
	field "$d" Suggests | grep -qw etcd-server || die "$(basename "$d") does not suggest etcd-server"
	for f in Depends Pre-Depends Recommends; do
		field "$d" "$f" | grep -qw etcd-server && die "$(basename "$d") has etcd-server in $f"
	done
	true
done
[ "$(field "$debetcd" Section)" = libs ] || die "libvmem-etcd1 Section is not libs"
[ "$(field "$debetcddev" Section)" = libdevel ] || die "libvmem-etcd-dev Section is not libdevel"
[ "$(field "$debpool" Section)" = admin ] || die "vmem-pool Section is not admin"
[ "$(field "$debetcd" Multi-Arch)" = same ] && [ "$(field "$debetcddev" Multi-Arch)" = same ] ||
	die "libvmem-etcd1 and libvmem-etcd-dev are not Multi-Arch: same"
[ "$(field "$debpool" Multi-Arch)" = foreign ] || die "vmem-pool is not Multi-Arch: foreign"
# libvmem-etcd1 needs libvmem1 from the first version with VMEM_1.0, by the symbols file
field "$debetcd" Depends | grep -qF "libvmem1 (>= 1:1.0.0)" ||
	die "libvmem-etcd1 does not depend on libvmem1 (>= 1:1.0.0): $(field "$debetcd" Depends)"
field "$debetcd" Depends | grep -q 'libcurl4' && field "$debetcd" Depends | grep -q 'libjansson4' ||
	die "libvmem-etcd1 lacks libcurl4 or libjansson4 in Depends"
field "$debetcddev" Depends | grep -qF "libvmem-etcd1 (= $version)" ||
	die "libvmem-etcd-dev does not depend on libvmem-etcd1 (= $version)"
field "$debetcddev" Depends | grep -qF "libvmem-dev (= $version)" ||
	die "libvmem-etcd-dev does not depend on libvmem-dev (= $version) (vmem_etcd.h includes vmem.h)"
dpkg-deb -c "$debetcd" | awk '{ print $6 }' | sed 's|^\./|/|' | grep -v '/$' >"$work/filesetcd"
dpkg-deb -c "$debetcddev" | awk '{ print $6 }' | sed 's|^\./|/|' | grep -v '/$' >"$work/filesetcddev"
dpkg-deb -c "$debpool" | awk '{ print $6 }' | sed 's|^\./|/|' | grep -v '/$' >"$work/filespool"
for f in /usr/lib/$ma/libvmem-etcd.so.1 /usr/lib/$ma/libvmem-etcd.so.$upstream \
	/usr/share/doc/libvmem-etcd1/README.Debian; do
	grep -qx "$f" "$work/filesetcd" || die "libvmem-etcd1 lacks $f"
done
for f in /usr/include/vmem_etcd.h /usr/lib/$ma/libvmem-etcd.so /usr/lib/$ma/pkgconfig/vmem-etcd.pc \
	/usr/share/man/man3/vmem_etcd_open.3.gz /usr/share/man/man3/vmem_etcd_attach.3.gz \
	/usr/share/man/man3/vmem_etcd_close.3.gz /usr/share/man/man3/vmem_etcd_pool_create.3.gz \
	/usr/share/man/man3/vmem_etcd_pool_destroy.3.gz /usr/share/man/man3/vmem_etcd_get_stats.3.gz \
	/usr/share/man/man7/libvmem-etcd.7.gz; do
	grep -qx "$f" "$work/filesetcddev" || die "libvmem-etcd-dev lacks $f"
done
grep -qE '^/usr/share/doc/libvmem-etcd-dev/examples/cluster-ids\.c(\.gz)?$' "$work/filesetcddev" ||
	die "libvmem-etcd-dev lacks the example cluster-ids.c"
for f in /usr/bin/vmem-pool /usr/share/man/man1/vmem-pool.1.gz; do
	grep -qx "$f" "$work/filespool" || die "vmem-pool lacks $f"
done
# libvmem-dev as before: nothing of the cluster pools in it
grep -E 'etcd|cluster-ids' "$work/filesdev" && die "libvmem-dev ships files of the cluster pools"
mkdir -p "$work/xe" "$work/xp"
dpkg-deb -x "$debetcd" "$work/xe"
dpkg-deb -e "$debetcd" "$work/xe/DEBIAN"
dpkg-deb -x "$debpool" "$work/xp"
[ -f "$work/xe/DEBIAN/symbols" ] || die "libvmem-etcd1 ships no symbols file"
grep -q '^\* Build-Depends-Package: libvmem-etcd-dev' "$work/xe/DEBIAN/symbols" ||
	die "the libvmem-etcd1 symbols file lacks Build-Depends-Package"
nsym_etcd=$(grep -c '@VMEM_ETCD_1.0 ' "$work/xe/DEBIAN/symbols")
[ "$nsym_etcd" -eq 7 ] || die "symbols file lists $nsym_etcd entries at VMEM_ETCD_1.0 (expected 6 functions and the node)"
for elf in "$work/xe/usr/lib/$ma/libvmem-etcd.so.$upstream" "$work/xp/usr/bin/vmem-pool"; do
	readelf -d "$elf" | grep -q 'BIND_NOW' || die "$(basename "$elf") not linked with -z now"
	readelf -l -W "$elf" | grep -q 'GNU_RELRO' || die "$(basename "$elf") lacks RELRO"
done
readelf -h "$work/xp/usr/bin/vmem-pool" | grep -q 'DYN' || die "vmem-pool is not a PIE"
readelf -d "$work/xp/usr/bin/vmem-pool" | grep -q 'NEEDED.*libvmem-etcd' &&
	die "vmem-pool links libvmem-etcd.so.1 (it carries the internals it needs)"
ok "cluster-pool packages: fields, files, symbols file ($nsym_etcd entries), hardening, etcd-server only suggested"
ls "$work"/*.ddeb >/dev/null 2>&1 && echo "  debug symbols: $(cd "$work" && ls ./*.ddeb)"

# ---------------------------------------------------------------------------
step "lintian -I -E --pedantic $(basename "$changes")"
set +e
lintian -I -E --pedantic --color never "$changes" >"$work/lintian.log" 2>&1
lrc=$?
set -e
sed 's/^/  /' "$work/lintian.log"
if grep -qE '^[EWIPX]: ' "$work/lintian.log"; then
	die "lintian reported tags (fix them, or override them with a reason)"
fi
[ $lrc -eq 0 ] || die "lintian exited with status $lrc"
ok "lintian clean (no errors, warnings, info, pedantic or experimental tags)"

# ---------------------------------------------------------------------------
step "DEB_BUILD_OPTIONS=nocheck and the nocheck build profile"
if [ "${SKIP_NOCHECK:-0}" = 1 ]; then
	echo "  skipped (SKIP_NOCHECK=1)"
else
	# dh_auto_test must do nothing under nocheck
	out=$(cd "$src" && DEB_BUILD_OPTIONS=nocheck dh_auto_test 2>&1)
	[ -z "$out" ] || die "dh_auto_test ran something under DEB_BUILD_OPTIONS=nocheck: $out"
	out=$(cd "$src" && dh_auto_test --no-act 2>&1)
	echo "$out" | grep -q 'meson test\|ninja test\|ninja.* test' || die "dh_auto_test would not run the tests: $out"
	ok "dh_auto_test: '$out' normally, nothing under nocheck"
	nc=$work/nocheck
	mkdir -p "$nc"
	cp -a "$src" "$nc/"
	(cd "$nc/$(basename "$src")" && DEB_BUILD_OPTIONS=nocheck DEB_BUILD_PROFILES=nocheck \
		dpkg-buildpackage -us -uc -b -d -Pnocheck >"$work/build-nocheck.log" 2>&1) || {
		tail -30 "$work/build-nocheck.log"
		die "the nocheck build failed"
	}
	grep -q 'Dtests=false' "$work/build-nocheck.log" || die "the nocheck build configured the tests"
	if grep -qE '^(Ok|Fail):' "$work/build-nocheck.log"; then
		die "the nocheck build ran tests"
	fi
	dpkg-deb -c "$nc/libvmem1_${noepoch}_$arch.deb" | awk '{ print $6 }' | sed 's|^\./|/|' |
		grep -v '/$' | cmp -s - "$work/files1" || die "the nocheck build ships different files"
	for p in libvmem-etcd1:filesetcd libvmem-etcd-dev:filesetcddev vmem-pool:filespool; do
		dpkg-deb -c "$nc/${p%%:*}_${noepoch}_$arch.deb" | awk '{ print $6 }' | sed 's|^\./|/|' |
			grep -v '/$' | cmp -s - "$work/${p#*:}" || die "the nocheck build ships different files in ${p%%:*}"
	done
	ok "nocheck build: no tests configured or run, same files"
fi

# ---------------------------------------------------------------------------
step "install a stand-in for PMDK's libvmem1/libvmem-dev 1.8-2"
# Start from a system without any libvmem.
for p in vmem-pool libvmem-etcd-dev libvmem-etcd1 libvmem-dev libvmem1; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed'; then
		echo "  purging a previously installed $p"
		apt-get purge -y "$p:$arch" >/dev/null 2>&1 || dpkg --purge "$p" >/dev/null
	fi
done
old=$work/pmdk
mkdir -p "$old/src" "$old/lib/DEBIAN" "$old/lib/usr/lib/$ma" "$old/dev/DEBIAN" \
	"$old/dev/usr/include" "$old/dev/usr/lib/$ma" "$old/dev/usr/share/man/man3" \
	"$old/dev/usr/share/man/man7"
cat >"$old/src/libvmem.c" <<'EOF'
/* stand-in for PMDK's libvmem: same SONAME, version node LIBVMEM_1.0 */
#include <stddef.h>
typedef struct vmem VMEM;
VMEM *vmem_create(const char *dir, size_t size);
VMEM *vmem_create(const char *dir, size_t size) { (void)dir; (void)size; return NULL; }
void vmem_delete(VMEM *vmp);
void vmem_delete(VMEM *vmp) { (void)vmp; }
EOF
printf 'LIBVMEM_1.0 {\n global: vmem_create; vmem_delete;\n local: *;\n};\n' >"$old/src/libvmem.map"
cat >"$old/src/libvmem.h" <<'EOF'
#include <stddef.h>
typedef struct vmem VMEM;
VMEM *vmem_create(const char *dir, size_t size);
void vmem_delete(VMEM *vmp);
EOF
cat >"$old/src/oldprog.c" <<'EOF'
#include <stdio.h>
#include <libvmem.h>
int main(void) { printf("old program running: %p\n", (void *)vmem_create("/tmp", 1 << 24)); return 0; }
EOF
cc -shared -fPIC -O2 -o "$old/lib/usr/lib/$ma/libvmem.so.1.0.0" -Wl,-soname,libvmem.so.1 \
	-Wl,--version-script,"$old/src/libvmem.map" "$old/src/libvmem.c"
ln -s libvmem.so.1.0.0 "$old/lib/usr/lib/$ma/libvmem.so.1"
ln -s libvmem.so.1 "$old/dev/usr/lib/$ma/libvmem.so"
cp "$old/src/libvmem.h" "$old/dev/usr/include/"
printf '.TH VMEM_CREATE 3 PMDK\n.SH NAME\nvmem_create \\- PMDK stand-in\n' | gzip -9n >"$old/dev/usr/share/man/man3/vmem_create.3.gz"
printf '.TH LIBVMEM 7 PMDK\n.SH NAME\nlibvmem \\- PMDK stand-in\n' | gzip -9n >"$old/dev/usr/share/man/man7/libvmem.7.gz"
cat >"$old/lib/DEBIAN/control" <<EOF
Package: libvmem1
Version: 1.8-2
Architecture: $arch
Multi-Arch: same
Section: libs
Priority: optional
Maintainer: package-test <root@localhost>
Description: stand-in for PMDK's volatile memory allocator library (package-test)
EOF
cat >"$old/dev/DEBIAN/control" <<EOF
Package: libvmem-dev
Version: 1.8-2
Architecture: $arch
Multi-Arch: same
Section: libdevel
Priority: optional
Maintainer: package-test <root@localhost>
Depends: libvmem1 (= 1.8-2)
Description: stand-in for PMDK's volatile memory allocator, development files (package-test)
EOF
dpkg-deb --root-owner-group -b "$old/lib" "$old/libvmem1_1.8-2_$arch.deb" >/dev/null
dpkg-deb --root-owner-group -b "$old/dev" "$old/libvmem-dev_1.8-2_$arch.deb" >/dev/null
dpkg -i "$old/libvmem1_1.8-2_$arch.deb" "$old/libvmem-dev_1.8-2_$arch.deb" >"$work/pmdk.log" 2>&1 ||
	{ cat "$work/pmdk.log"; die "cannot install the PMDK stand-in"; }
cc -o "$old/oldprog" "$old/src/oldprog.c" -lvmem
"$old/oldprog" >/dev/null || die "the program built against the stand-in does not run"
ok "libvmem1 and libvmem-dev 1.8-2 installed; oldprog runs against them"

# ---------------------------------------------------------------------------
step "apt-get install the five packages (libvmem1 and libvmem-dev upgrade over 1.8-2)"
# --path-include: minimal images may exclude /usr/share/man in dpkg.cfg.d,
# and the manual pages are part of what is tested.
apt-get install -y -o 'DPkg::Options::=--path-include=/usr/share/man/*' "$deb1" "$debdev" \
	"$debetcd" "$debetcddev" "$debpool" >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log"; die "apt-get install of the built packages failed"; }
for p in libvmem1 libvmem-dev libvmem-etcd1 libvmem-etcd-dev vmem-pool; do
	v=$(dpkg-query -W -f='${Version}' "$p:$arch")
	[ "$v" = "$version" ] || die "$p is at version '$v' after install, expected $version"
done
[ ! -e /usr/include/libvmem.h ] || die "the stand-in's libvmem.h is still installed"
zcat /usr/share/man/man3/vmem_create.3.gz | grep -q 'PMDK stand-in' && die "the stand-in's vmem_create(3) is still installed"
ok "all five packages at $version; the old files are gone"
set +e
"$old/oldprog" >"$work/oldprog.out" 2>&1
orc=$?
set -e
sed 's/^/  oldprog: /' "$work/oldprog.out"
[ $orc -ne 0 ] || die "a program built against PMDK's libvmem still starts"
grep -q "version \`LIBVMEM_1.0' not found" "$work/oldprog.out" || die "no clear loader error for the old program"
ok "the old program stops at start-up with the loader's version error"

# ---------------------------------------------------------------------------
step "check the installed library and pkg-config file"
lib=/usr/lib/$ma/libvmem.so.1
[ -e "$lib" ] || die "$lib is not installed"
"$src/scripts/check-symbols.sh" "$lib" || die "check-symbols failed on the installed library"
ddeb=$(ls "$work"/libvmem1-dbgsym_"${noepoch}"_"$arch".*deb 2>/dev/null | head -1 || true)
if [ "$arch" != amd64 ]; then
	echo "  abi/libvmem.abi describes amd64: ABI check skipped on $arch"
elif [ -n "$ddeb" ]; then
	mkdir -p "$work/dbg"
	dpkg-deb -x "$ddeb" "$work/dbg"
	"$src/scripts/check-abi.sh" "$lib" "$work/dbg/usr/lib/debug" ||
		die "the installed library's ABI differs from abi/libvmem.abi"
else
	echo "  no -dbgsym package: ABI check of the installed library skipped"
fi
[ "$(pkg-config --modversion vmem)" = "$upstream" ] || die "pkg-config --modversion vmem is not $upstream"
pc_libdir=$(pkg-config --variable=libdir vmem)
pc_inc=$(pkg-config --variable=includedir vmem)
[ "$pc_libdir" = "/usr/lib/$ma" ] || die "vmem.pc libdir is $pc_libdir"
[ "$pc_inc" = /usr/include ] || die "vmem.pc includedir is $pc_inc"
[ -f "$pc_inc/vmem.h" ] && [ -e "$pc_libdir/libvmem.so" ] || die "vmem.pc points to missing files"
echo "  pkg-config --cflags --libs vmem: '$(pkg-config --cflags --libs vmem)'"
echo "  pkg-config --static --libs vmem: '$(pkg-config --static --libs vmem)'"
pkg-config --validate vmem || die "pkg-config --validate vmem failed"
elib=/usr/lib/$ma/libvmem-etcd.so.1
[ -e "$elib" ] || die "$elib is not installed"
readelf -d "$elib" | grep -q 'SONAME.*\[libvmem-etcd\.so\.1\]' || die "$elib: SONAME is not libvmem-etcd.so.1"
"$src/tests/etcd/exports.sh" "$elib" /usr/include/vmem_etcd.h "$src/lib/etcd/libvmem-etcd.map" ||
	die "the installed libvmem-etcd.so.1 does not export exactly vmem_etcd.h's functions at VMEM_ETCD_1.0"
[ "$(pkg-config --modversion vmem-etcd)" = "$upstream" ] || die "pkg-config --modversion vmem-etcd is not $upstream"
[ "$(pkg-config --variable=libdir vmem-etcd)" = "/usr/lib/$ma" ] || die "vmem-etcd.pc libdir is wrong"
pkg-config --print-requires vmem-etcd | grep -qx vmem || die "vmem-etcd.pc does not require vmem"
pkg-config --libs vmem-etcd | grep -q -- '-lvmem-etcd' && pkg-config --libs vmem-etcd | grep -q -- '-lvmem\b' ||
	die "pkg-config --libs vmem-etcd: $(pkg-config --libs vmem-etcd)"
echo "  pkg-config --cflags --libs vmem-etcd: '$(pkg-config --cflags --libs vmem-etcd)'"
pkg-config --validate vmem-etcd || die "pkg-config --validate vmem-etcd failed"
vmem-pool --help | grep -q '^usage: vmem-pool' || die "vmem-pool --help"
ok "installed libraries, ABI, exports of libvmem-etcd and pkg-config files"

# ---------------------------------------------------------------------------
step "autopkgtests (debian/tests) against the installed packages"
tests=$(sed -n 's/^Tests: *//p' "$src/debian/tests/control")
[ -n "$tests" ] || die "debian/tests/control lists no tests"
for t in $tests; do
	tdir=$work/autopkgtest-$t
	mkdir -p "$tdir"
	echo "  -- $t"
	if ! (cd "$src" && AUTOPKGTEST_TMP=$tdir sh "debian/tests/$t") >"$tdir.log" 2>&1; then
		sed 's/^/     /' "$tdir.log"
		die "autopkgtest $t failed"
	fi
	sed 's/^/     /' "$tdir.log"
done
ldd "$work/autopkgtest-pkgconfig-consumer/consumer" | grep -q "libvmem.so.1 => /.*lib/$ma/libvmem.so.1" ||
	die "the consumer does not use the installed library"
ldd "$work/autopkgtest-etcd-pkgconfig-consumer/etcd-consumer" |
	grep -q "libvmem-etcd.so.1 => /.*lib/$ma/libvmem-etcd.so.1" ||
	die "the etcd consumer does not use the installed libvmem-etcd"
echo "  -- autopkgtest -B . -- null (debian/tests/control, installed packages)"
if ! (cd "$src" && autopkgtest -B . -- null) >"$work/autopkgtest.log" 2>&1; then
	tail -40 "$work/autopkgtest.log"
	die "autopkgtest failed (log: $work/autopkgtest.log)"
fi
sed -n '/@@@@ summary/,$p' "$work/autopkgtest.log" | sed 's/^/     /'
ok "$(echo "$tests" | wc -w) autopkgtests passed, run directly and by autopkgtest"

# ---------------------------------------------------------------------------
step "manual pages"
p=$(man -w vmem_xalloc) || die "man -w vmem_xalloc finds nothing"
[ "$p" = /usr/share/man/man3/vmem_xalloc.3.gz ] || die "man -w vmem_xalloc gives $p"
echo "  man -w vmem_xalloc: $p"
n=0
for f in /usr/share/man/man3/vmem_*.3.gz /usr/share/man/man7/libvmem.7.gz \
	/usr/share/man/man7/libvmem-etcd.7.gz /usr/share/man/man1/vmem-pool.1.gz; do
	name=$(basename "$f" .gz)
	sec=${name##*.}
	name=${name%.*}
	out=$(MANWIDTH=80 man --warnings "$sec" "$name" 2>&1 >"$work/man.out") || die "man $sec $name failed"
	[ -z "$out" ] || die "man --warnings $sec $name: $out"
	[ -s "$work/man.out" ] || die "man $sec $name renders nothing"
	n=$((n + 1))
done
man 3 vmem_xfree 2>/dev/null | grep -q 'vmem_xalloc, vmem_xfree' || die "vmem_xfree(3) does not show the vmem_xalloc page"
[ "$(man -w vmem_etcd_open)" = /usr/share/man/man3/vmem_etcd_open.3.gz ] || die "man -w vmem_etcd_open"
[ "$(man -w 1 vmem-pool)" = /usr/share/man/man1/vmem-pool.1.gz ] || die "man -w 1 vmem-pool"
man 3 vmem_etcd_close 2>/dev/null | grep -q 'vmem_etcd_open, vmem_etcd_attach, vmem_etcd_close' ||
	die "vmem_etcd_close(3) does not show the vmem_etcd_open page"
ok "$n pages render without warnings; .so stubs resolve"

# ---------------------------------------------------------------------------
step "dpkg --compare-versions: the epoch"
cmpv() {
	if dpkg --compare-versions "$1" "$2" "$3"; then
		echo "  $1 $2 $3: yes"
	else
		die "expected $1 $2 $3"
	fi
}
cmpv "$version" gt 1.8-2
cmpv "$(dpkg-query -W -f='${Version}' "libvmem1:$arch")" gt 1.8-2
cmpv "$noepoch" lt 1.8-2 # why the epoch is needed
cmpv 1.8-2 lt 1:1.0.0~   # PMDK's packages are hit by Breaks/Replaces
cmpv "$version" ge 1:1.0.0~
ok "1:$noepoch sorts above PMDK's 1.8-2"

# ---------------------------------------------------------------------------
step "remove and purge the packages"
apt-get remove -y "vmem-pool:$arch" "libvmem-etcd-dev:$arch" "libvmem-etcd1:$arch" "libvmem-dev:$arch" \
	"libvmem1:$arch" >"$work/remove.log" 2>&1 ||
	{ cat "$work/remove.log"; die "apt-get remove failed"; }
# Packages without conffiles leave nothing behind after remove, and apt
# no longer knows them (they came from local files): purge what is left.
for p in vmem-pool libvmem-etcd-dev libvmem-etcd1 libvmem-dev libvmem1; do
	if dpkg-query -W -f='${db:Status-Abbrev}' "$p:$arch" 2>/dev/null | grep -q '^rc'; then
		dpkg --purge "$p:$arch" >>"$work/remove.log" 2>&1 ||
			{ cat "$work/remove.log"; die "dpkg --purge $p failed"; }
	fi
done
for p in libvmem1 libvmem-dev libvmem-etcd1 libvmem-etcd-dev vmem-pool; do
	s=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p:$arch" 2>/dev/null || true)
	case $s in
	'' | 'un '* | 'pn '*) ;;
	*) die "$p is still known to dpkg: '$s'" ;;
	esac
done
for f in /usr/include/vmem.h "/usr/lib/$ma/libvmem.so.1" "/usr/lib/$ma/libvmem.so" \
	"/usr/lib/$ma/pkgconfig/vmem.pc" /usr/share/man/man3/vmem_xalloc.3.gz /usr/share/doc/libvmem1 \
	/usr/include/vmem_etcd.h "/usr/lib/$ma/libvmem-etcd.so.1" "/usr/lib/$ma/pkgconfig/vmem-etcd.pc" \
	/usr/bin/vmem-pool /usr/share/man/man1/vmem-pool.1.gz /usr/share/doc/libvmem-etcd1; do
	[ ! -e "$f" ] || die "$f is still there after purge"
done
man -w vmem_xalloc >/dev/null 2>&1 && die "man -w vmem_xalloc still finds a page"
ok "libvmem1, libvmem-dev, libvmem-etcd1, libvmem-etcd-dev and vmem-pool are gone"

printf '\npackage-test: ALL STEPS PASSED in %d s (%s)\n' "$(($(date +%s) - start))" "$version"
