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
show() { printf '$ %s\n' "$*"; "$@"; }

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

RIG_TEST=demo
. "$REPO/scripts/lib/rig.sh"
. "$REPO/scripts/lib/run_helpers.sh"
rig_begin

hnxdp_show() { printf '$ hnxdp %s   (in the guest)\n' "$*"; hnxdp_g "$@"; }

say "1. The rig: guest (hn0 + vf0, same MAC), host (the hypervisor's switch), remote"
rig_create
show ip -n "$RIG_GUEST" -br link show
echo "host switch: remote -> hn0h (synthetic path); everything from the guest -> remote"
show rig_g ping -n -c 2 -i 0.2 -W 1 "$RIG_R4"

say "2. Pair them: hnxdp attach (the datapath stays pinned after the command exits)"
hnxdp_show attach --synthetic hn0 --vf vf0
echo "The hypervisor now switches its datapath to the VF."
rig_host_switch vf
hnxdp_show status

say "3. Traffic through the VF: ping and UDP from the remote to sockets on hn0"
show rig_r ping -n -c 3 -i 0.2 -W 1 "$RIG_G4"
show rig_r ping -n -c 3 -i 0.2 -W 1 "$RIG_G6"
rm -f "$RIG_TMP/ready"
rig_bg sink rig_g "$RIG_PY" "$RIG_TOOLS/udp_sink.py" --dev hn0 --port 6000 --seconds 10 --expect 1000 \
	--ready-file "$RIG_TMP/ready" >"$RIG_TMP/count"
rig_wait_file "$RIG_TMP/ready" 10
echo "remote sends 1000 UDP datagrams to $RIG_G4:6000 ..."
rig_r "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$RIG_G4" --port 6000 --count 1000 --rate 5000 >/dev/null
rig_wait_pid "$sink" 15 || true
got=$(cat "$RIG_TMP/count")
echo "a UDP socket bound to hn0 (SO_BINDTODEVICE) received $got of 1000"
assert_eq "UDP through the VF reached the socket on hn0" "$got" 1000
echo "host counters: frames handed to the VF port vf0h: $(rig_link_stat "$RIG_HOST" vf0h tx), to the synthetic port hn0h: $(rig_link_stat "$RIG_HOST" hn0h tx)"
hnxdp_show dump

say "4. Continuous traffic: remote pings the guest 100/s and a TCP connection echoes every 50 ms"
rm -f "$RIG_TMP/ready-tcp"
rig_bg echo_pid rig_g "$RIG_PY" "$RIG_TOOLS/tcp_echo.py" --dev hn0 --port 6001 --seconds 30 \
	--ready-file "$RIG_TMP/ready-tcp" >/dev/null
rig_wait_file "$RIG_TMP/ready-tcp" 10
rig_bg ping_pid rig_r ping -n -i 0.01 -c 1000 -W 1 "$RIG_G4" >"$RIG_TMP/ping" 2>&1
rig_bg tcp_pid rig_r "$RIG_PY" "$RIG_TOOLS/tcp_client.py" --dst "$RIG_G4" --port 6001 --rounds 200 \
	--interval 0.05 --seconds 28 >"$RIG_TMP/tcp" 2>&1
sleep 2

say "5. Surprise: the VF disappears (hot-unplug), then the host falls back to the synthetic path"
echo "No hnxdp process is running: the pinned datapath falls back on its own."
rig_vf_remove_surprise
show ip -n "$RIG_GUEST" -br link show
sleep 1
hnxdp_show dump

say "6. The control plane: hnxdp run adopts the pinned pair; the VF returns and run joins it"
run_start RUN --synthetic hn0 --settle-ms 500
echo "hnxdp run (pid $RUN) is following hn0; the VF comes back (new ifindex, same MAC):"
rig_vf_add
show ip -n "$RIG_GUEST" -br link show
run_wait_dump 10 "the returned VF joined after the settle delay" "p and p['state'] == 'active' and p['datapath'] == 'vf'"
rig_host_switch vf
hnxdp_show status

say "7. Planned migration: the host moves to the synthetic path first, then the VF leaves and returns"
rig_vf_remove_planned
run_wait_dump 10 "hn0 idle on the synthetic path, features and limits restored" "p and p['state'] == 'idle' and p['datapath'] == 'synthetic'"
hnxdp_show status
rig_vf_add
run_wait_dump 10 "the VF joined again" "p and p['state'] == 'active' and p['datapath'] == 'vf'"
rig_host_switch vf
hnxdp_show status
echo "What hnxdp run logged:"
sed 's/^/    /' "$RUN_LOG"

say "8. Results of the continuous traffic"
rig_wait_pid "$ping_pid" 30 || true
tail -n 2 "$RIG_TMP/ping"
received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$RIG_TMP/ping")
assert_ge "pings answered across VF removal and return (of 1000)" "${received:-0}" 950
tcp_rc=0
rig_wait_pid "$tcp_pid" 30 || tcp_rc=$?
echo "TCP connection: $(cat "$RIG_TMP/tcp") (rounds, bytes verified)"
assert_eq "the TCP connection survived the VF leaving and returning" "$tcp_rc" 0
hnxdp_show dump

say "9. Tear-down: run exits on SIGTERM leaving the datapath; hnxdp detach restores hn0 exactly; the rig is deleted"
run_stop "$RUN"
hnxdp_show detach --synthetic hn0
rig_finish
