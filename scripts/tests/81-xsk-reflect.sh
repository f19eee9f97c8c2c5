#!/usr/bin/env bash
# 81-xsk-reflect: `hnxdp xsk reflect` sends every received frame back with
# MAC, IP addresses and UDP ports swapped, through the device that carries
# the pair (B17): a UDP client in the remote gets its datagrams back before
# (through the VF), during (a surprise VF departure: through the synthetic)
# and after the VF's return (through the new VF again).
. "$(dirname "$0")/../lib/rig.sh"

PORT=6100

echo_round() { # TAG DST COUNT RATE MIN_BACK
	rig_try rig_r "$RIG_PY" "$RIG_TOOLS/udp_echo_client.py" --dst "$2" --port "$PORT" --count "$3" --rate "$4" --seconds 20
	local sent back
	read -r sent back <<<"$RIG_OUT"
	note "$1: sent ${sent:-?}, got back ${back:-?} (stderr: $RIG_ERR)"
	assert_eq "$1: client sent all" "${sent:-}" "$3"
	assert_ge "$1: datagrams reflected back" "${back:-0}" "$5"
}

rig_begin
rig_create

# veth leaves the UDP checksum of a locally sent datagram to "the NIC"
# (CHECKSUM_PARTIAL): on the wire of a real NIC it is complete, here the
# reflected frame would carry the partial sum and the remote would drop it.
# Make the remote's veth compute it, as a real sender's NIC would.
rig_r ethtool -K eth0 tx off >/dev/null

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4"
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G6"

EV="$RIG_TMP/reflect.events"
rig_bg rpid hnxdp_g xsk reflect --synthetic hn0 --udp-port "$PORT" --seconds 25 --json --events \
	>"$RIG_TMP/reflect.json" 2>"$EV"
wait_until 10 "xsk reflect bound to vf0" grep -q "bound to VF vf0" "$EV" || true

# ---- before: through the VF (replies leave through vf0: the host's vf0h sees them).
vf0h0=$(rig_link_stat "$RIG_HOST" vf0h rx)
hn0h0=$(rig_link_stat "$RIG_HOST" hn0h rx)
echo_round "before (VF, IPv4)" "$RIG_G4" 300 500 300
echo_round "before (VF, IPv6)" "$RIG_G6" 300 500 300
assert_ge "replies left through vf0" "$(($(rig_link_stat "$RIG_HOST" vf0h rx) - vf0h0))" 600
assert_le "no reply left through the synthetic" "$(($(rig_link_stat "$RIG_HOST" hn0h rx) - hn0h0))" 5

# ---- during: a surprise departure in the middle of a stream.
rig_bg cpid rig_r "$RIG_PY" "$RIG_TOOLS/udp_echo_client.py" --dst "$RIG_G4" --port "$PORT" --count 2000 --rate 500 \
	--seconds 20 >"$RIG_TMP/during"
sleep 1.5
note "deleting vf0 by surprise, then switching the host to synthetic"
rig_vf_remove_surprise
rig_wait_pid "$cpid" 25 || true
read -r sent back <"$RIG_TMP/during" || true
note "during: sent ${sent:-?}, got back ${back:-?} (lost $((${sent:-0} - ${back:-0})) around the departure)"
assert_eq "during: client sent all" "${sent:-}" 2000
assert_ge "during: reflected back across the departure (>= 95 %)" "${back:-0}" 1900
hn0h0=$(rig_link_stat "$RIG_HOST" hn0h rx)
echo_round "after departure (synthetic)" "$RIG_G4" 300 500 300
assert_ge "replies left through the synthetic" "$(($(rig_link_stat "$RIG_HOST" hn0h rx) - hn0h0))" 300

# ---- after: the VF returns.
rig_vf_add
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "re-attach of the returned vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
new_vf=$(rig_ifindex "$RIG_GUEST" vf0)
wait_until 5 "reflect rebound to the new vf0" grep -q "bound to VF vf0 (ifindex $new_vf)" "$EV" || true
rig_host_switch vf
vf0h0=$(rig_link_stat "$RIG_HOST" vf0h rx)
echo_round "after return (VF, IPv4)" "$RIG_G4" 300 500 300
echo_round "after return (VF, IPv6)" "$RIG_G6" 300 500 300
assert_ge "replies left through the returned vf0" "$(($(rig_link_stat "$RIG_HOST" vf0h rx) - vf0h0))" 600

rrc=0
rig_wait_pid "$rpid" 40 || rrc=$?
assert_eq "xsk reflect exits 0" "$rrc" 0
note "xsk reflect: $(cat "$RIG_TMP/reflect.json")"
assert_eq "bind mode on veth" "$(rig_json --default missing mode <"$RIG_TMP/reflect.json")" copy

rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_finish
