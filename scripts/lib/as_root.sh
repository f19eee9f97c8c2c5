# shellcheck shell=bash
# as_root.sh - make the sourcing script run as root, the same way for every
# script that needs it (demo.sh, test.sh, bench.sh, install-deps.sh):
#
#   . "$REPO/scripts/lib/as_root.sh"
#   as_root "$@"            # before anything else happens
#
# Root: returns. Not root and sudo installed: runs the script again through
# sudo with the same arguments, keeping PATH (sudo's secure_path would drop
# the Swift toolchain) and hnxdp's variables below. Neither: one line on
# stderr, exit 3 (missing privilege, as hnxdp's own exit codes).
AS_ROOT_KEEP=(PATH HNXDP HNXDP_BPFFS CI TEST_TIMEOUT CLANG)

as_root() {
	[[ $(id -u) == 0 ]] && return 0
	local name script v keep=()
	name=$(basename "$0")
	if ! command -v sudo >/dev/null 2>&1; then
		echo "$name: must run as root, and sudo is not installed: run it from a root shell" >&2
		exit 3
	fi
	script=$(readlink -f "$0")
	for v in "${AS_ROOT_KEEP[@]}"; do
		[[ -n ${!v+x} ]] && keep+=("$v=${!v}")
	done
	exec sudo -- env "${keep[@]}" "$BASH" "$script" "$@"
}
