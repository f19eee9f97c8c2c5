#!/usr/bin/env bash
# 83-xsk-kill: kill -9 of an AF_XDP application leaves the normal path
# working (B17, B19). While `hnxdp xsk count` steers every frame of the queue,
# the stack sees nothing; after SIGKILL its sockets leave the XSKMAP (the
# kernel closes them), hnxdp's XDP program stays attached but passes every
# frame, so ping and UDP through the VF and through the synthetic work. A
# new application can start at once (the pair lock died with the process);
# `hnxdp detach` removes everything.
. "$(dirname "$0")/../lib/rig.sh"

N=200


rig_begin
rig_create

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4"

# nsenter execs hnxdp: the pid is hnxdp's own.
EV="$RIG_TMP/count.events"
rig_bg apid nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" xsk count --synthetic hn0 --seconds 60 --events \
	>"$RIG_TMP/count.out" 2>"$EV"
wait_until 10 "xsk count bound to vf0" grep -q "bound to VF vf0" "$EV" || true
rig_try rig_r ping -n -c 3 -i 0.1 -W 1 "$RIG_G4"
assert_ne "while every frame goes to the socket, the stack gets no ping" "$RIG_RC" 0

kill -9 "$apid"
rig_wait_pid "$apid" 5 || true
note "xsk count killed with SIGKILL"
assert_contains "hnxdp's XDP program stays on vf0 after the kill" "$(ip -n "$RIG_GUEST" -d link show dev vf0)" "hnxdp_xsk_steer"

rig_try rig_r ping -n -c 5 -i 0.1 -W 2 "$RIG_G4"
assert_eq "VF path: ping works after the kill" "$RIG_RC" 0
rig_count_udp "VF path after the kill" 6301 "$N"
rig_try rig_g ping -n -c 5 -i 0.1 -W 2 "$RIG_R4"
assert_eq "VF path: guest reaches the remote" "$RIG_RC" 0

rig_vf_remove_planned
rig_try rig_r ping -n -c 5 -i 0.1 -W 2 "$RIG_G4"
assert_eq "synthetic path: ping works after the kill" "$RIG_RC" 0
rig_count_udp "synthetic path after the kill" 6302 "$N"

# A new application starts at once and takes the frames again.
rig_bg bpid hnxdp_g xsk count --synthetic hn0 --seconds 4 --json --udp-port 6303 --events \
	>"$RIG_TMP/second.json" 2>"$RIG_TMP/second.events"
wait_until 10 "second application bound" grep -q "bound to synthetic hn0" "$RIG_TMP/second.events" || true
rig_try rig_r "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$RIG_G4" --port 6303 --count 100 --rate 500
brc=0
rig_wait_pid "$bpid" 15 || brc=$?
assert_eq "a second application starts after the kill and exits 0" "$brc" 0
note "second application: $(cat "$RIG_TMP/second.json")"
assert_eq "the second application received the 100 datagrams" \
	"$(rig_json --default missing total <"$RIG_TMP/second.json")" 100
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_not_contains "no XDP on hn0 after detach" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"
assert_eq "no pins left after detach" "$(if [[ -e "$RIG_PIN_DIR" ]]; then find "$RIG_PIN_DIR" | wc -l; else echo 0; fi)" 0
rig_finish
