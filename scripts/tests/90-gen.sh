#!/usr/bin/env bash
# 90-gen: `hnxdp gen` (BPF_PROG_TEST_RUN live frames) sends exactly the frames
# it says into the VF's host-side peer; every frame that left reaches the guest; it reports what
# the device counted as transmitted, and refuses (exit 1) when none left; bad input is
# refused with exit 2 and one stderr line. The host-side peer of vf0 is vf0h.
. "$(dirname "$0")/../lib/rig.sh"

rig_begin
rig_create
rig_host_switch vf
hnxdp_g attach --synthetic hn0 --vf vf0 >/dev/null
# veth takes XDP frames only with NAPI on the receiving side (GRO on).
rig_g ethtool -K vf0 gro on >/dev/null

udp_noports() { rig_g awk '/^Udp:/{n++; if (n==2) {print $3; exit}}' /proc/net/snmp; }
gen_h() { nsenter --net="/run/netns/$RIG_HOST" "$HNXDP" gen "$@"; }

host_tx() { ip -n "$RIG_HOST" -j -s link show dev vf0h | rig_json '[0].stats64.tx.packets'; }

# As fast as it goes: veth drops what its peer's ring cannot take, so how many
# frames leave depends on the receiver's speed; gen must say how many did
# (`left`), and every one of them must reach the guest through the VF.
before=$(udp_noports)
rx_before=$(rig_dump_get 'pairs[0].stats.vf_rx_packets')
tx_before=$(host_tx)
out=$(gen_h --dev vf0h --dst-mac "$RIG_MAC" --dst-ip "$RIG_G4" --src-ip "$RIG_R4" --dst-port 9 --count 200000 --seconds 20 --json)
tx_after=$(host_tx)
frames=$(rig_json frames <<<"$out")
left=$(rig_json left <<<"$out")
assert_eq "gen reports all frames sent" "$frames" 200000
assert_ge "frames left vf0h (left)" "$left" 1000
assert_ge "left is no more than vf0h counted as transmitted" "$((tx_after - tx_before))" "$left"
assert_le "left is what vf0h counted as transmitted (a neighbour's frame or two aside)" "$((tx_after - tx_before - left))" 4

# A device that takes the frames but sends none (the peer of hn0h has no NAPI
# for XDP frames: GRO off, no XDP program): refused, not reported as sent.
rig_g ethtool -K hn0 gro off >/dev/null
rc=0
err=$(gen_h --dev hn0h --dst-mac "$RIG_MAC" --dst-ip "$RIG_G4" --count 1000 --seconds 10 2>&1 >/dev/null) || rc=$?
assert_eq "gen out of a device that sends none of them: exit 1" "$rc" 1
assert_contains "gen out of a device that sends none: says so" "$err" "none of the 1000 frames left hn0h"
assert_eq "gen out of a device that sends none: one stderr line" "$(printf '%s\n' "$err" | wc -l)" 1
after=$(udp_noports)
# left is the device's counter, so a neighbour's frame sent meanwhile is in it too.
delivered=$((after - before))
assert_le "no more datagrams reached the guest than left vf0h" "$delivered" "$left"
assert_le "every frame that left reached the guest's UDP stack through the VF (UdpNoPorts delta; a neighbour's frame or two aside)" \
	"$((left - delivered))" 4
rx_after=$(rig_dump_get 'pairs[0].stats.vf_rx_packets')
assert_ge "vf_rx_packets counted them" "$((rx_after - rx_before))" "$delivered"

# Paced: 20000 frames at 20000/s take about a second.
start=$(date +%s.%N)
gen_h --dev vf0h --dst-mac "$RIG_MAC" --dst-ip "$RIG_G4" --count 20000 --rate 20000 --seconds 10 >/dev/null
took=$(python3 -c "print(int((float('$(date +%s.%N)') - float('$start')) * 1000))")
assert_ge "paced run took at least 0.8 s" "$took" 800
assert_le "paced run took at most 5 s" "$took" 5000

# IPv6.
before=$(rig_g awk '/^Udp6NoPorts/{print $2}' /proc/net/snmp6)
gen_h --dev vf0h --dst-mac "$RIG_MAC" --dst-ip "$RIG_G6" --src-ip "$RIG_R6" --count 1000 >/dev/null
after=$(rig_g awk '/^Udp6NoPorts/{print $2}' /proc/net/snmp6)
assert_eq "IPv6 frames reached the guest" "$((after - before))" 1000

# Bad input: exit 2, one line on stderr.
for args in "--dev nope0 --dst-mac $RIG_MAC --dst-ip $RIG_G4 --count 1" \
	"--dev vf0h --dst-mac zz --dst-ip $RIG_G4 --count 1" \
	"--dev vf0h --dst-mac $RIG_MAC --dst-ip 198.18.0.999 --count 1" \
	"--dev vf0h --dst-mac $RIG_MAC --dst-ip $RIG_G4 --src-ip fd00::2 --count 1" \
	"--dev vf0h --dst-mac $RIG_MAC --dst-ip $RIG_G4 --count 0"; do
	rc=0
	err=$(gen_h $args 2>&1 >/dev/null) || rc=$?
	assert_eq "gen $args: exit 2" "$rc" 2
	assert_eq "gen $args: one stderr line" "$(printf '%s\n' "$err" | wc -l)" 1
done

rig_finish
