#!/usr/bin/env bash
# 90-gen: `hnxdp gen` (BPF_PROG_TEST_RUN live frames) sends exactly the frames
# it says into the VF's host-side peer and they reach the guest; it reports what
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

before=$(udp_noports)
rx_before=$(rig_dump_get 'pairs[0].stats.vf_rx_packets')
out=$(gen_h --dev vf0h --dst-mac "$RIG_MAC" --dst-ip "$RIG_G4" --src-ip "$RIG_R4" --dst-port 9 --count 200000 --seconds 20 --json)
frames=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["frames"])' "$out")
assert_eq "gen reports all frames sent" "$frames" 200000
left=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["left"])' "$out")
assert_ge "gen reports what vf0h counted as transmitted (left)" "$left" 200000

# A device that takes the frames but sends none (the peer of hn0h has no NAPI
# for XDP frames: GRO off, no XDP program): refused, not reported as sent.
rig_g ethtool -K hn0 gro off >/dev/null
rc=0
err=$(gen_h --dev hn0h --dst-mac "$RIG_MAC" --dst-ip "$RIG_G4" --count 1000 --seconds 10 2>&1 >/dev/null) || rc=$?
assert_eq "gen out of a device that sends none of them: exit 1" "$rc" 1
assert_contains "gen out of a device that sends none: says so" "$err" "none of the 1000 frames left hn0h"
assert_eq "gen out of a device that sends none: one stderr line" "$(printf '%s\n' "$err" | wc -l)" 1
after=$(udp_noports)
assert_eq "every frame reached the guest's UDP stack through the VF (UdpNoPorts delta)" "$((after - before))" 200000
rx_after=$(rig_dump_get 'pairs[0].stats.vf_rx_packets')
assert_ge "vf_rx_packets counted them" "$((rx_after - rx_before))" 200000

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
