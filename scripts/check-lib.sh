# check-lib.sh - what check-abi.sh and check-symbols.sh share; they source
# it (it is not run on its own).
#
# Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause

# require_tools NAME HINT TOOL...: every TOOL is on $PATH, or the script
# exits 2 after "NAME: TOOL not found" and HINT on stderr.
require_tools() {
	_rt_name=$1
	_rt_hint=$2
	shift 2
	for _rt_tool; do
		command -v "$_rt_tool" >/dev/null || {
			echo "$_rt_name: $_rt_tool not found$_rt_hint" >&2
			exit 2
		}
	done
}

# scratch_dir: $tmp is a new directory, removed however the script ends.
scratch_dir() {
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT INT TERM
}
