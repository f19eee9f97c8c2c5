#!/usr/bin/env bash
# 10-rx: receive through the VF (B8).
# With the host switched to the VF, UDP, TCP and ICMP over IPv4 and IPv6
# (neighbour discovery included: no static neighbours) from the remote reach
# sockets bound to hn0 (SO_BINDTODEVICE) and `tcpdump -i hn0`, while a UDP
# socket bound to vf0 on the same port sees nothing; the host delivered every
# frame to vf0h and none to hn0h; vf_rx_packets rises by at least what was sent.
. "$(dirname "$0")/../lib/rig.sh"

N=200 # UDP datagrams per address family

rig_begin
rig_create

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf

assert_eq "dump: one pair" "$(rig_dump_get 'len:pairs')" 1
assert_eq "dump: pair state" "$(rig_dump_get 'pairs[synthetic.name=hn0].state')" active
assert_eq "dump: datapath" "$(rig_dump_get 'pairs[synthetic.name=hn0].datapath')" vf
assert_eq "dump: vf name" "$(rig_dump_get 'pairs[synthetic.name=hn0].vf.name')" vf0
assert_eq "dump: vf ifindex" "$(rig_dump_get 'pairs[synthetic.name=hn0].vf.ifindex')" "$(rig_ifindex "$RIG_GUEST" vf0)"
assert_eq "dump: synthetic ifindex" "$(rig_dump_get 'pairs[synthetic.name=hn0].synthetic.ifindex')" "$(rig_ifindex "$RIG_GUEST" hn0)"
assert_eq "dump: synthetic mac" "$(rig_dump_get 'pairs[synthetic.name=hn0].synthetic.mac')" "$RIG_MAC"

rx0=$(rig_stat vf_rx_packets)
hn0h_tx0=$(rig_link_stat "$RIG_HOST" hn0h tx)
vf0h_tx0=$(rig_link_stat "$RIG_HOST" vf0h tx)

# ---- ICMP first, with empty neighbour tables: ARP and ND go through the VF too.
ip -n "$RIG_REMOTE" neigh flush dev eth0
ip -n "$RIG_GUEST" neigh flush dev hn0
for fam in 4 6; do
	if [[ $fam == 4 ]]; then dst=$RIG_G4; else dst=$RIG_G6; fi
	cap="$RIG_TMP/hn0-icmp$fam.pcap"
	filter="icmp[icmptype] == icmp-echo and src host $RIG_R4"
	[[ $fam == 6 ]] && filter="icmp6 and ip6[40] == 128 and src host $RIG_R6"
	rig_bg tpid rig_g timeout 15 tcpdump -i hn0 -n -l -U -c 5 -w "$cap" "$filter" 2>"$RIG_TMP/tcpdump$fam.err"
	wait_until 10 "tcpdump listening on hn0" grep -q "listening on" "$RIG_TMP/tcpdump$fam.err" || true
	rig_try rig_r ping -n -c 5 -i 0.1 -W 2 "$dst"
	assert_eq "ICMPv$fam: remote pings $dst through the VF (5/5)" "$RIG_RC" 0
	trc=0
	rig_wait_pid "$tpid" 15 || trc=$?
	assert_eq "ICMPv$fam: tcpdump -i hn0 saw the 5 echo requests" "$trc" 0
done

# ---- UDP: hn0 sees all, vf0 sees none.
for fam in 4 6; do
	if [[ $fam == 4 ]]; then dst=$RIG_G4; else dst=$RIG_G6; fi
	port=$((5100 + fam))
	rm -f "$RIG_TMP/ready-hn0" "$RIG_TMP/ready-vf0"
	rig_bg hpid rig_g "$RIG_PY" "$RIG_TOOLS/udp_sink.py" --dev hn0 --port "$port" --family "$fam" \
		--seconds 15 --expect "$N" --linger 1 --ready-file "$RIG_TMP/ready-hn0" >"$RIG_TMP/hn0-count$fam"
	rig_bg vpid rig_g "$RIG_PY" "$RIG_TOOLS/udp_sink.py" --dev vf0 --port "$port" --family "$fam" \
		--seconds 6 --ready-file "$RIG_TMP/ready-vf0" >"$RIG_TMP/vf0-count$fam"
	rig_wait_file "$RIG_TMP/ready-hn0" 10 || fail "UDPv$fam: sink on hn0 did not start"
	rig_wait_file "$RIG_TMP/ready-vf0" 10 || fail "UDPv$fam: sink on vf0 did not start"
	rig_try rig_r "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$dst" --port "$port" --count "$N" --rate 1000
	assert_eq "UDPv$fam: remote sent $N datagrams to $dst:$port (stderr: $RIG_ERR)" "$RIG_OUT" "$N"
	rig_wait_pid "$hpid" 20 || true
	rig_wait_pid "$vpid" 20 || true
	assert_eq "UDPv$fam: socket bound to hn0 received all" "$(cat "$RIG_TMP/hn0-count$fam")" "$N"
	assert_eq "UDPv$fam: socket bound to vf0 on the same port received none" "$(cat "$RIG_TMP/vf0-count$fam")" 0
done

# ---- TCP: one connection per family to an echo server bound to hn0.
for fam in 4 6; do
	if [[ $fam == 4 ]]; then dst=$RIG_G4; else dst=$RIG_G6; fi
	port=$((5200 + fam))
	rm -f "$RIG_TMP/ready-tcp"
	rig_bg epid rig_g "$RIG_PY" "$RIG_TOOLS/tcp_echo.py" --dev hn0 --port "$port" --family "$fam" \
		--seconds 20 --max-conns 1 --ready-file "$RIG_TMP/ready-tcp" >"$RIG_TMP/tcp-echo$fam"
	rig_wait_file "$RIG_TMP/ready-tcp" 10 || fail "TCPv$fam: echo server on hn0 did not start"
	rig_try rig_r "$RIG_PY" "$RIG_TOOLS/tcp_client.py" --dst "$dst" --port "$port" --rounds 50 --size 1400 --seconds 15
	assert_eq "TCPv$fam: 50 rounds echoed by the server bound to hn0 (stderr: $RIG_ERR)" "$RIG_RC/$RIG_OUT" "0/50 70000"
	erc=0
	rig_wait_pid "$epid" 20 || erc=$?
	assert_eq "TCPv$fam: echo server on hn0 served the connection" "$erc" 0
done

# ---- The host delivered everything through the VF, and hnxdp counted it.
hn0h_tx1=$(rig_link_stat "$RIG_HOST" hn0h tx)
vf0h_tx1=$(rig_link_stat "$RIG_HOST" vf0h tx)
assert_eq "host sent nothing to the synthetic port hn0h" "$((hn0h_tx1 - hn0h_tx0))" 0
assert_ge "host sent at least the UDP datagrams to vf0h" "$((vf0h_tx1 - vf0h_tx0))" "$((2 * N + 10))"
rx1=$(rig_stat vf_rx_packets)
if rig__is_int "$rx0" && rig__is_int "$rx1"; then
	# 2N UDP + 10 echo requests + the TCP segments (>= 2 x 50 rounds).
	assert_ge "vf_rx_packets rose by at least what was sent" "$((rx1 - rx0))" "$((2 * N + 10 + 100))"
else
	fail "vf_rx_packets not readable from dump --json (before '$rx0', after '$rx1')"
fi

rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0

rig_finish
