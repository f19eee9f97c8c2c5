#!/usr/bin/env bash
# 25-vf-netns-move: a joined VF that moves to another network namespace is
# never redirected from there (B8, B13, B19). A tcx link moves with its device,
# so the VF keeps hnxdp_vf_ingress in the new namespace; a redirect from there
# would go to whatever device has the synthetic's ifindex in that namespace.
# The namespace it moves to ($RIG_ID-away) has exactly such a device: trap0,
# a veth made with hn0's ifindex (IPv6 off there, so nothing else reaches it).
#   1. `hnxdp attach` (no control plane running afterwards). vf0 is prepared
#      first (tso off, gso_max_size 32768, gso_max_segs 100) so the join
#      really changes hn0. 20 UDP frames from the remote enter through vf0.
#   2. vf0 moves to the other namespace (same ifindex, its tcx link along).
#      20 frames from the remote (host still switched to vf0h) arrive on vf0
#      there: none reaches trap0 (tcpdump), vf_rx_packets does not move (the
#      program redirected nothing). The host switches to syn: the remote pings
#      the guest 20/20 through hn0, replies fall back (tx_fallback_packets).
#      `detach --synthetic hn0` exits 0: no pin directory, no tcx program on
#      hn0 or on the moved vf0, no BPF link of hnxdp_vf_ingress; hn0's
#      features and GSO limits read exactly as before the attach.
#   3. vf0 comes back; `hnxdp run` joins it; vf0 moves away again while run
#      runs: the pair goes idle with no VF (dump, status), the log says the VF
#      left, the moved vf0 has no hnxdp program, its frames reach neither
#      trap0 nor the guest's stack, the synthetic path carries traffic and
#      hn0 is restored; run exits 0 on SIGTERM and detach leaves nothing.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

P='pairs[synthetic.name=hn0]'
AWAY=""
N=20
PORT=5325

# The extra namespace goes after the rig, on every exit (rig_cleanup detaches first).
rig__exit_away() {
	local rc=$?
	rig_cleanup
	if [[ -n "$AWAY" && -e "/run/netns/$AWAY" ]]; then ip netns del "$AWAY" || true; fi
	(exit "$rc")
	rig__on_exit
}
trap rig__exit_away EXIT

away() { ip netns exec "$AWAY" "$@"; }
# tcx programs of a device in the other namespace (rig_tcx_count reads $RIG_GUEST).
away_tcx_count() { local RIG_GUEST=$AWAY; rig_tcx_count "$@"; }
vf0_carrier_away() { ip -n "$AWAY" link show dev vf0 | grep -q LOWER_UP; }
hn0_as_before() {
	run_dev_snapshot hn0 "$RIG_TMP/hn0.after"
	cmp -s "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
}
send_frames() { # N UDP datagrams remote -> guest (to the VF while the host is switched to vf)
	rig_try rig_r "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$RIG_G4" --port "$PORT" --count "$N" \
		--rate 1000 --dev eth0 --seconds 10
	assert_eq "$1: remote sent $N frames to the guest (stderr: $RIG_ERR)" "$RIG_OUT" "$N"
}
vf_prog_links() { # number of BPF links (any netns) of program id $1
	bpftool -j link show | "$RIG_PY" -c \
		'import json,sys; print(sum(1 for l in json.load(sys.stdin) if str(l.get("prog_id")) == sys.argv[1]))' "$1"
}

# moved_vf_not_redirected LABEL: N frames for the guest arrive on the moved vf0;
# none may reach trap0 (hn0's ifindex over there) and the datapath counts none.
moved_vf_not_redirected() {
	local label=$1 tpid rx0 rx1 l0 l1 n
	rm -f "$RIG_TMP/trap0.pcap"
	# ip netns exec execs timeout: $tpid is the process to stop; --immediate-mode,
	# or libpcap holds frames back for up to a second (TPACKET_V3 blocks).
	rig_bg tpid ip netns exec "$AWAY" timeout 15 tcpdump --immediate-mode -i trap0 -n -U \
		-w "$RIG_TMP/trap0.pcap" "ether dst $RIG_MAC" 2>"$RIG_TMP/trap0.err"
	wait_until 10 "tcpdump listening on trap0" grep -q "listening on" "$RIG_TMP/trap0.err" || true
	rx0=$(rig_stat vf_rx_packets)
	l0=$(rig_link_stat "$AWAY" vf0 rx)
	send_frames "$label"
	sleep 0.3
	kill -TERM "$tpid" 2>/dev/null || true
	rig_wait_pid "$tpid" 5 || true
	rx1=$(rig_stat vf_rx_packets)
	l1=$(rig_link_stat "$AWAY" vf0 rx)
	n=$(tcpdump -r "$RIG_TMP/trap0.pcap" -n 2>/dev/null | wc -l) || n="unreadable"
	# The capture ended cleanly (its summary), so the file holds all it saw.
	assert_eq "$label: trap0 capture ended with a summary (captured = in the file)" \
		"$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured$/\1/p' "$RIG_TMP/trap0.err")" "$n"
	assert_eq "$label: no frame reached trap0 (the device with hn0's ifindex $HN0 in $AWAY)" "$n" 0
	assert_ge "$label: the frames arrived on vf0 in $AWAY (its rx counter)" "$((l1 - l0))" "$N"
	if rig__is_int "$rx0" && rig__is_int "$rx1"; then
		assert_eq "$label: vf_rx_packets unchanged: hnxdp_vf_ingress redirected nothing" "$((rx1 - rx0))" 0
	else
		fail "$label: vf_rx_packets not readable ('$rx0' -> '$rx1')"
	fi
}

# synthetic_carries LABEL: with the host switched to syn, the remote reaches the guest through hn0.
synthetic_carries() {
	local label=$1 s0 s1 h0 h1
	rig_host_switch syn
	s0=$(rig_stat syn_rx_packets)
	h0=$(rig_link_stat "$RIG_HOST" hn0h rx)
	rig_try rig_r ping -n -c 20 -i 0.02 -W 2 "$RIG_G4"
	assert_eq "$label: remote pings the guest on the synthetic path (20/20)" "$RIG_RC" 0
	s1=$(rig_stat syn_rx_packets)
	h1=$(rig_link_stat "$RIG_HOST" hn0h rx)
	if rig__is_int "$s0" && rig__is_int "$s1"; then
		assert_ge "$label: syn_rx_packets rose" "$((s1 - s0))" 20
	else
		fail "$label: syn_rx_packets not readable ('$s0' -> '$s1')"
	fi
	assert_ge "$label: the guest's replies left through hn0 (host hn0h rx)" "$((h1 - h0))" 20
}

# detached_clean LABEL VF_PROG_ID: nothing of hnxdp left, on hn0 nor on the moved vf0.
detached_clean() {
	local label=$1 prog=$2
	[[ ! -e "$RIG_PIN_DIR" ]] && pass "$label: no pin directory $RIG_PIN_DIR" \
		|| fail "$label: pins left behind: $(cd "$RIG_PIN_DIR" && find . | tr '\n' ' ')"
	assert_eq "$label: no tcx program on hn0" "$(($(rig_tcx_count hn0 ingress '') + $(rig_tcx_count hn0 egress '')))" 0
	assert_eq "$label: no tcx program on the moved vf0 (in $AWAY)" \
		"$(($(away_tcx_count vf0 ingress '') + $(away_tcx_count vf0 egress '')))" 0
	assert_eq "$label: no BPF link of hnxdp_vf_ingress (prog $prog) left" "$(vf_prog_links "$prog")" 0
	wait_until 5 "hn0 features and limits restored" hn0_as_before || true
	assert_files_equal "$label: hn0 ethtool -k and GSO/TSO limits exactly as before the attach" \
		"$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
}

rig_begin
rig_create
HN0=$(rig_ifindex "$RIG_GUEST" hn0)
VF0=$(rig_ifindex "$RIG_GUEST" vf0)

# The other namespace: trap0 has hn0's ifindex; its peer an index vf0 cannot collide with.
AWAY="$RIG_ID-away"
ip netns add "$AWAY"
away sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$AWAY" link set lo up
ip -n "$AWAY" link add trap0 index "$HN0" type veth peer name trap0p index $((HN0 + VF0 + 100))
ip -n "$AWAY" link set trap0 up
ip -n "$AWAY" link set trap0p up
assert_eq "precondition: trap0 in $AWAY has hn0's ifindex" "$(rig_ifindex "$AWAY" trap0)" "$HN0"

# ---- 1. attach; frames enter through the VF.
rig_g ethtool -K vf0 tso off
ip -n "$RIG_GUEST" link set vf0 gso_max_size 32768 gso_max_segs 100
run_dev_snapshot hn0 "$RIG_TMP/hn0.before"
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "attach changed hn0: gso_max_size 32768 (the VF's)" "$(run_link_field hn0 gso_max_size)" 32768
assert_eq "attach changed hn0: tx-tcp-segmentation off (the VF's)" "$(run_feature hn0 tx-tcp-segmentation)" off
vf_prog=$(bpftool -j prog show pinned "$RIG_PIN_DIR/hnxdp_vf_ingress" | rig_json --default none id)
rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4" # neighbour caches
ip -n "$RIG_REMOTE" neigh replace "$RIG_G4" lladdr "$RIG_MAC" dev eth0 nud permanent
rx0=$(rig_stat vf_rx_packets)
send_frames "attached"
sleep 0.2
rx1=$(rig_stat vf_rx_packets)
if rig__is_int "$rx0" && rig__is_int "$rx1"; then
	assert_ge "attached: the frames entered through the VF (vf_rx_packets)" "$((rx1 - rx0))" "$N"
else
	fail "attached: vf_rx_packets not readable ('$rx0' -> '$rx1')"
fi

# ---- 2. vf0 moves away with no hnxdp process running.
note "moving vf0 (ifindex $VF0) to $AWAY; trap0 there has hn0's ifindex $HN0"
ip -n "$RIG_GUEST" link set vf0 netns "$AWAY"
ip -n "$AWAY" link set vf0 up
assert_eq "precondition: vf0 kept its ifindex in $AWAY" "$(rig_ifindex "$AWAY" vf0)" "$VF0"
if [[ ${HNXDP_TC_MODE:-auto} == classic ]]; then
	# A device leaving its namespace loses its qdiscs, clsact and filters with them.
	assert_eq "precondition: the classic filter stayed behind (no hnxdp program on vf0 in $AWAY)" \
		"$(away_tcx_count vf0 ingress)" 0
else
	assert_eq "precondition: the tcx link moved with vf0 (hnxdp_vf_ingress on its ingress in $AWAY)" \
		"$(away_tcx_count vf0 ingress)" 1
fi
wait_until 5 "vf0 has carrier in $AWAY" vf0_carrier_away || true
moved_vf_not_redirected "moved, attach only"
rig_try hnxdp_g status
note "status: $RIG_OUT"
assert_contains "status: hn0 has no VF" "$RIG_OUT" "hn0($HN0) <- no VF"
fb0=$(rig_stat tx_fallback_packets)
synthetic_carries "moved, attach only"
fb1=$(rig_stat tx_fallback_packets)
if rig__is_int "$fb0" && rig__is_int "$fb1"; then
	assert_ge "moved, attach only: the replies fell back (tx_fallback_packets)" "$((fb1 - fb0))" 20
else
	fail "tx_fallback_packets not readable ('$fb0' -> '$fb1')"
fi
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach --synthetic hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
detached_clean "detached after the move" "$vf_prog"

# ---- 3. the same departure while `hnxdp run` runs.
ip -n "$AWAY" link set vf0 netns "$RIG_GUEST"
ip -n "$RIG_GUEST" link set vf0 up
assert_eq "vf0 is back in the guest with ifindex $VF0" "$(rig_ifindex "$RIG_GUEST" vf0)" "$VF0"
run_start RUN --synthetic hn0 --settle-ms 200
run_wait_dump 10 "pair hn0 active with vf0" \
	"p and p['state'] == 'active' and (p['vf'] or {}).get('name') == 'vf0'" || true
assert_eq "run: joined vf0 (state)" "$(rig_dump_get "$P.state")" active
vf_prog=$(bpftool -j prog show pinned "$RIG_PIN_DIR/hnxdp_vf_ingress" | rig_json --default none id)
rig_host_switch vf
rx0=$(rig_stat vf_rx_packets)
send_frames "run, joined"
sleep 0.2
rx1=$(rig_stat vf_rx_packets)
if rig__is_int "$rx0" && rig__is_int "$rx1"; then
	assert_ge "run, joined: the frames entered through the VF (vf_rx_packets)" "$((rx1 - rx0))" "$N"
else
	fail "run, joined: vf_rx_packets not readable ('$rx0' -> '$rx1')"
fi
note "moving vf0 to $AWAY while hnxdp run runs"
ip -n "$RIG_GUEST" link set vf0 netns "$AWAY"
ip -n "$AWAY" link set vf0 up
run_wait_dump 5 "pair hn0 idle with no VF" "p and p['state'] == 'idle' and p['vf'] is None" || true
assert_eq "run: dump state idle" "$(rig_dump_get "$P.state")" idle
assert_eq "run: dump datapath synthetic" "$(rig_dump_get "$P.datapath")" synthetic
rig_try hnxdp_g status
assert_contains "run: status says idle with no VF ($RIG_OUT)" "$RIG_OUT" "hn0($HN0) <- no VF: idle, datapath synthetic"
wait_until 5 "log: VF left" run_log_has "VF ifindex $VF0 left" || true
assert_contains "run: log says the VF left" "$(cat "$RUN_LOG")" "VF ifindex $VF0 left"
assert_eq "run: no hnxdp program on the moved vf0 (in $AWAY)" "$(away_tcx_count vf0 ingress)" 0
assert_eq "run: no BPF link of hnxdp_vf_ingress (prog $vf_prog) left" "$(vf_prog_links "$vf_prog")" 0
wait_until 5 "vf0 has carrier in $AWAY" vf0_carrier_away || true
moved_vf_not_redirected "moved, run"
synthetic_carries "moved, run"
wait_until 5 "hn0 features and limits restored" hn0_as_before || true
assert_files_equal "run: hn0 exactly as before the join after the VF left" "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
run_assert_no_error "run: no error in the run log"
rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
rig_try hnxdp_g detach --synthetic hn0
assert_eq "run: detach --synthetic hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
detached_clean "run: detached" "$vf_prog"

rig_finish
