#!/usr/bin/env bash
# 80-xsk-count: AF_XDP sockets on the pair follow the VF (B17).
#   `hnxdp xsk count` receives UDP sent from the remote through the VF; the
#   VF is deleted mid-stream (surprise) and the count goes on through the
#   synthetic; a new VF returns (re-attached with `hnxdp attach`) and the
#   count goes on through it, without the application re-opening anything.
#   Received = sent minus only what was in flight at the switches (reported).
#   Bind mode on veth: copy. Other traffic (ping) keeps the stack path.
. "$(dirname "$0")/../lib/rig.sh"

N=8000     # datagrams
RATE=1000  # per second
PORT=6000
MAX_LOST=200 # the surprise window (vf0 gone, host not yet switched) at 1000/s


rig_begin
rig_create

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4"

EV="$RIG_TMP/count.events"
rig_bg cpid hnxdp_g xsk count --synthetic hn0 --udp-port "$PORT" --seconds 16 --json --events \
	>"$RIG_TMP/count.json" 2>"$EV"
wait_until 10 "xsk count bound to vf0" grep -q "bound to VF vf0" "$EV" || true
old_vf=$(rig_ifindex "$RIG_GUEST" vf0)
assert_contains "XDP steering program on hn0" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "hnxdp_xsk_steer"
assert_contains "XDP steering program on vf0" "$(ip -n "$RIG_GUEST" -d link show dev vf0)" "hnxdp_xsk_steer"

rig_bg spid rig_r "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$RIG_G4" --port "$PORT" --count "$N" --rate "$RATE" \
	--seconds 20 >"$RIG_TMP/sent"
sleep 2
rig_try rig_r ping -n -c 3 -i 0.1 -W 2 "$RIG_G4"
assert_eq "ping still takes the stack path while the sockets run" "$RIG_RC" 0
note "deleting vf0 by surprise (host still switched to it), then switching the host to synthetic"
rig_vf_remove_surprise
wait_until 5 "sockets noticed the departure" grep -q "left" "$EV" || true
sleep 2
rig_vf_add
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "re-attach of the returned vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
new_vf=$(rig_ifindex "$RIG_GUEST" vf0)
wait_until 5 "sockets rebound to the new vf0" grep -q "bound to VF vf0 (ifindex $new_vf)" "$EV" || true
rig_host_switch vf
note "vf0 back with ifindex $new_vf (was $old_vf), host switched to it"

src=0
rig_wait_pid "$spid" 25 || src=$?
assert_eq "remote sent all $N datagrams" "$(cat "$RIG_TMP/sent")" "$N"
crc=0
rig_wait_pid "$cpid" 30 || crc=$?
assert_eq "xsk count exits 0 ($(rig__short "$(cat "$EV")"))" "$crc" 0
json=$(cat "$RIG_TMP/count.json")
note "xsk count: $json"
total=$(rig_json --default missing total <<<"$json")
mode=$(rig_json --default missing mode <<<"$json")
on_old=$(rig_json --default 0 "per_binding.vf0@$old_vf" <<<"$json")
on_syn=$(rig_json --default 0 "per_binding.hn0@$(rig_ifindex "$RIG_GUEST" hn0)" <<<"$json")
on_new=$(rig_json --default 0 "per_binding.vf0@$new_vf" <<<"$json")
assert_eq "bind mode on veth" "$mode" copy
assert_ge "received through the first vf0" "$on_old" 1000
assert_ge "received through the synthetic after the departure" "$on_syn" 1000
assert_ge "received through the returned vf0" "$on_new" 1000
assert_eq "per-device counts add up to the total" "$((on_old + on_syn + on_new))" "$total"
lost=$((N - total))
note "sent $N, received $total, lost $lost (in flight at the surprise removal: vf0 deleted before the host switched)"
assert_ge "received no more than was sent" "$N" "$total"
assert_le "lost only frames in flight at the switches" "$lost" "$MAX_LOST"
assert_contains "events report the departure" "$(cat "$EV")" "left"

# The application is gone: no XDP left on the devices (no user program was attached), pins gone too.
assert_not_contains "no XDP on hn0 after the application exited" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"
assert_not_contains "no XDP on vf0 after the application exited" "$(ip -n "$RIG_GUEST" -d link show dev vf0)" "prog/xdp"
assert_eq "no XDP pins left in the pair directory" "$(ls "$RIG_PIN_DIR"/*/ | grep -c xdp || true)" 0

rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_finish
