#!/usr/bin/env bash
# Build libvmem and run the PID-allocator demo (examples/pidalloc.c).
# Installs the build tools first when run as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null &&
   ! dpkg -s meson ninja-build gcc pkg-config >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends \
		build-essential meson ninja-build pkg-config >/dev/null
fi
[ -d build-demo ] || meson setup build-demo --buildtype=release -Dtests=false -Dbench=false -Dman=false >/dev/null
ninja -C build-demo >/dev/null
exec build-demo/examples/pidalloc "$@"
