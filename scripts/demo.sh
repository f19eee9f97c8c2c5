#!/usr/bin/env bash
# demo.sh - hnxdp's main job, shown in network namespaces: `scripts/demo.sh`
# (needs root; as another user it runs itself again through sudo)
#
# A guest with a synthetic NIC (hn0) and a VF (vf0) sharing one MAC, a host
# playing the hypervisor's switch, a remote peer. hnxdp pairs hn0 and vf0;
# traffic enters and leaves through the VF while every socket and address
# stays on hn0; the VF is yanked (no hnxdp process running: the pinned
# datapath falls back by itself); then `hnxdp run` adopts the pair and
# follows the VF through a return and a planned migration, while a ping
# stream and a TCP connection keep flowing.
# Installs what it needs (scripts/install-deps.sh, swift build) first.
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
. "$REPO/scripts/lib/as_root.sh"
as_root "$@"

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
export PATH

say() { printf '\n\033[1m### %s\033[0m\n' "$*"; }

say "Installing what the demo needs (only what is missing)"
"$REPO/scripts/install-deps.sh"
if [[ -z "${HNXDP:-}" ]]; then
	if ! command -v swift >/dev/null 2>&1; then
		echo "demo.sh: no swift on PATH: put the Swift toolchain's bin directory on PATH (or set HNXDP)" >&2
		exit 1
	fi
	say "Building hnxdp (swift build)"
	(cd "$REPO" && swift build 2>&1 | tail -n 3)
	HNXDP="$(cd "$REPO" && swift build --show-bin-path)/hnxdp"
	export HNXDP
fi

# The demo itself is Python, on the test harness's rig (integration/demo.py).
export PYTHONPATH="$REPO/integration${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
exec python3 -m demo
