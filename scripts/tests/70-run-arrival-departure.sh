#!/usr/bin/env bash
# 70-run-arrival-departure: `hnxdp run` joins a VF that arrives after it
# started, and undoes everything within 100 ms when the VF leaves
# (B1, B2, B4, B5, B8, B9, B13, B15, B20); `--transparent off` only reports
# (B3).
#   1. The rig's vf0 is deleted before `run` starts: the pair is idle.
#   2. A VF appears with hn0's MAC, prepared first (tso off, gso_max_size
#      32768, gso_max_segs 100) so the join really changes hn0. dump shows
#      `settling`, then `active` with datapath `vf` after the settle delay;
#      hn0 carries the intersection; pings from the remote (host switched to
#      vf) enter and leave through the VF (vf_rx/vf_tx rise).
#   3. The VF is deleted (surprise): within 100 ms of vf0 vanishing from
#      the namespace the pinned pair is idle with no VF (the pinned map and
#      the device are polled every ~2 ms; the time from the start of
#      `ip link del` is printed too; the run's "reaction N us" log line is
#      checked as well); dump says idle/synthetic/no VF; hn0's
#      features and GSO limits read exactly as before the join; no
#      link_vf_ingress pin or link is left; traffic flows on the synthetic.
#   3b. The same kind of VF returns: joined again with hn0 changed as the
#      first time (B15), and its departure restores hn0 exactly again.
#   4. SIGTERM: exit 0, the datapath stays pinned.
#   5. After `detach --all`, `run --transparent off`: a VF that appears is
#      reported (state disabled) and nothing changes on hn0 or vf0 (features,
#      MTU, admin state, no tcx program).
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

SETTLE=800
P='pairs[synthetic.name=hn0]'

vf0h_gone() { ! ip -n "$RIG_HOST" link show dev vf0h >/dev/null 2>&1; }
hn0_as_before() {
	run_dev_snapshot hn0 "$RIG_TMP/hn0.after"
	cmp -s "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
}

rig_begin
rig_create

# ---- 1. run starts with no VF.
run_vf_del planned
run_start RUN --synthetic hn0 --settle-ms "$SETTLE"
run_wait_dump 10 "pair hn0 installed and idle" "p and p['state'] == 'idle'" || true
assert_eq "no VF yet: state idle" "$(rig_dump_get "$P.state")" idle
assert_eq "no VF yet: datapath synthetic" "$(rig_dump_get "$P.datapath")" synthetic
assert_eq "no VF yet: vf is null" "$(rig_dump_get "$P.vf")" null
run_dev_snapshot hn0 "$RIG_TMP/hn0.before"
gso_size0=$(run_link_field hn0 gso_max_size)
assert_eq "precondition: hn0 tx-tcp-segmentation on" "$(run_feature hn0 tx-tcp-segmentation)" on
assert_ne "precondition: hn0 gso_max_size is not 32768" "$gso_size0" 32768

# ---- 2. a VF arrives; it is joined after the settle delay.
# vf0 is made and prepared with a MAC of its own; it becomes hn0's VF when it
# takes hn0's MAC: from then on, dump is polled (background) and the pinned
# pair map every ~2 ms (to time the join).
run_vf_prepare "ethtool -K vf0 tso off" "ip link set vf0 gso_max_size 32768 gso_max_segs 100"
vf_ifindex=$(rig_ifindex "$RIG_GUEST" vf0)
run_dump_watch_start 15 "pair hn0 active with vf0, datapath vf" \
	"p and p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('name') == 'vf0'"
if run_react --trace hn0 15 "vf0 takes hn0's MAC: pair active with vf0 in the map" "$(run_vf_take_mac_cmd)" \
	state:hn0=active "vf:hn0=$vf_ifindex"; then
	note "map states: $RUN_TRACE"
	assert_ge "the join waited for the settle delay ($SETTLE ms)" "${RUN_REACT_MS%.*}" "$SETTLE"
	assert_le "the join came soon after the settle delay (<= $SETTLE + 300 ms)" "${RUN_REACT_MS%.*}" $((SETTLE + 300))
	if [[ "$RUN_TRACE" =~ ^idle@0,settling@[0-9]+,active@[0-9]+$ ]]; then
		pass "map: idle, settling, then active ($RUN_TRACE)"
	else
		fail "map: expected idle, settling, then active: $RUN_TRACE"
	fi
else
	fail "vf0 not joined within 15 s of taking hn0's MAC (map states: $RUN_TRACE)"
fi
if run_dump_watch_end; then
	pass "VF joined: dump says active, datapath vf, vf0 (states seen by dump: $RUN_SEEN)"
	if [[ "$RUN_SEEN" =~ ^(idle,)?settling,active$ ]]; then
		pass "dump showed settling before active ($RUN_SEEN)"
	else
		fail "dump should show settling, then active: saw $RUN_SEEN"
	fi
fi
assert_eq "dump: vf ifindex" "$(rig_dump_get "$P.vf.ifindex")" "$vf_ifindex"
assert_contains "log: idle -> settling" "$(cat "$RUN_LOG")" "state idle -> settling"
assert_contains "log: settling -> active" "$(cat "$RUN_LOG")" "state settling -> active"
assert_eq "join changed hn0: tx-tcp-segmentation off (the VF's)" "$(run_feature hn0 tx-tcp-segmentation)" off
assert_eq "join changed hn0: gso_max_size 32768 (the VF's)" "$(run_link_field hn0 gso_max_size)" 32768
assert_eq "join changed hn0: gso_max_segs 100 (the VF's)" "$(run_link_field hn0 gso_max_segs)" 100
assert_eq "tcx: one hnxdp program on vf0 ingress" "$(rig_tcx_count vf0 ingress)" 1

rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4" # neighbour caches
rx0=$(rig_stat vf_rx_packets)
tx0=$(rig_stat vf_tx_packets)
hn0h_rx0=$(rig_link_stat "$RIG_HOST" hn0h rx)
rig_try rig_r ping -n -c 20 -i 0.02 -W 2 "$RIG_G4"
assert_eq "remote pings the guest through the VF (20/20)" "$RIG_RC" 0
rx1=$(rig_stat vf_rx_packets)
tx1=$(rig_stat vf_tx_packets)
if rig__is_int "$rx0" && rig__is_int "$rx1" && rig__is_int "$tx0" && rig__is_int "$tx1"; then
	assert_ge "traffic entered through the VF (vf_rx_packets)" "$((rx1 - rx0))" 20
	assert_ge "traffic left through the VF (vf_tx_packets)" "$((tx1 - tx0))" 20
else
	fail "vf counters not readable from dump --json (rx '$rx0' -> '$rx1', tx '$tx0' -> '$tx1')"
fi
assert_eq "nothing left through the synthetic path (host hn0h rx)" \
	"$(($(rig_link_stat "$RIG_HOST" hn0h rx) - hn0h_rx0))" 0

# ---- 3. the VF leaves (surprise removal); measured reaction.
switches0=$(rig_dump_get "$P.switches")
vf_prog=$(bpftool -j prog show pinned "$RIG_PIN_DIR/hnxdp_vf_ingress" | rig_json --default none id)
run_assert_departure "vf0 deleted: pair idle with no VF in the pinned map" hn0 vf0 100
wait_until 5 "vf0h gone from the host" vf0h_gone || true
rig_host_switch syn
wait_until 5 "log: reaction line" run_log_has 'reaction [0-9]+ us' || true
reaction=$(run_log_reaction)
note "run's own measure: reaction $reaction us after the notification"
assert_le "log: reaction after the notification <= 100000 us" "$reaction" 100000
assert_eq "dump: state idle" "$(rig_dump_get "$P.state")" idle
assert_eq "dump: datapath synthetic" "$(rig_dump_get "$P.datapath")" synthetic
assert_eq "dump: vf null" "$(rig_dump_get "$P.vf")" null
assert_eq "dump: switches counted the departure" "$(rig_dump_get "$P.switches")" "$((switches0 + 1))"
wait_until 5 "hn0 features and limits restored" hn0_as_before || true
assert_files_equal "hn0: ethtool -k and GSO/TSO limits exactly as before the join" \
	"$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
assert_eq "no link_vf_ingress pin left" "$(find "$RIG_PIN_DIR" -name link_vf_ingress | wc -l)" 0
assert_eq "no BPF link of hnxdp_vf_ingress left" \
	"$(bpftool -j link show | "$RIG_PY" -c 'import json,sys; print(sum(1 for l in json.load(sys.stdin) if str(l.get("prog_id")) == sys.argv[1]))' "$vf_prog")" 0
assert_eq "hn0 keeps its two tcx programs" "$(($(rig_tcx_count hn0 ingress) + $(rig_tcx_count hn0 egress)))" 2

srx0=$(rig_stat syn_rx_packets)
rig_try rig_r ping -n -c 20 -i 0.02 -W 2 "$RIG_G4"
assert_eq "remote pings the guest on the synthetic path (20/20)" "$RIG_RC" 0
srx1=$(rig_stat syn_rx_packets)
if rig__is_int "$srx0" && rig__is_int "$srx1"; then
	assert_ge "traffic enters through the synthetic (syn_rx_packets)" "$((srx1 - srx0))" 20
else
	fail "syn_rx_packets not readable ('$srx0' -> '$srx1')"
fi

# ---- 3b. the same kind of VF returns (B15): joined again exactly like the
# first time, and its departure restores hn0 exactly again.
run_vf_add_prepared "ethtool -K vf0 tso off" "ip link set vf0 gso_max_size 32768 gso_max_segs 100"
vf2_ifindex=$(rig_ifindex "$RIG_GUEST" vf0)
run_wait_dump 15 "returned vf0 joined" \
	"p and p['state'] == 'active' and (p['vf'] or {}).get('ifindex') == $vf2_ifindex" || true
assert_eq "return: dump vf is the new vf0 (ifindex $vf2_ifindex)" "$(rig_dump_get "$P.vf.ifindex")" "$vf2_ifindex"
assert_eq "return: hn0 tx-tcp-segmentation off again" "$(run_feature hn0 tx-tcp-segmentation)" off
assert_eq "return: hn0 gso_max_size 32768 again (B5)" "$(run_link_field hn0 gso_max_size)" 32768
assert_eq "return: hn0 gso_max_segs 100 again (B5)" "$(run_link_field hn0 gso_max_segs)" 100
assert_eq "return: dump gso.saved_max_size is hn0's own" "$(rig_dump_get "$P.gso.saved_max_size")" "$gso_size0"
run_assert_departure "returned vf0 deleted: pair idle with no VF" hn0 vf0 100
wait_until 5 "vf0h gone from the host" vf0h_gone || true
wait_until 5 "hn0 restored after the second departure" hn0_as_before || true
assert_files_equal "second departure: hn0 features and limits exactly as before any join" \
	"$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"

# ---- 4. SIGTERM: exit 0, datapath left pinned.
run_assert_no_error "no error in the run log"
rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
assert_contains "log: exit line" "$(cat "$RUN_LOG")" "exiting, datapath left in place"
if [[ -e "$RIG_PIN_DIR/hnxdp_pairs" ]]; then pass "datapath still pinned after run exited"
else fail "datapath pins gone after run exited"; fi
assert_eq "hn0 tcx programs still attached after run exited" \
	"$(($(rig_tcx_count hn0 ingress) + $(rig_tcx_count hn0 egress)))" 2

# ---- 5. --transparent off: report only.
rig_try hnxdp_g detach --all
assert_eq "detach --all exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
ip -n "$RIG_GUEST" link set hn0 mtu 1400 # a join would push this to vf0
run_start RUN2 --synthetic hn0 --settle-ms 300 --transparent off
run_wait_dump 10 "pair hn0 disabled" "p and p['state'] == 'disabled'" || true
run_dev_snapshot hn0 "$RIG_TMP/off-hn0.before"
RIG_VF_UP=0 run_vf_add_prepared "ethtool -K vf0 tso off"
run_dev_snapshot vf0 "$RIG_TMP/off-vf0.before"
vf_reported() {
	[[ "$(rig_dump_get "$P.vf.name")" == vf0 ]] || grep -q 'vf0' "$RUN_LOG"
}
if wait_until 5 "the VF vf0 reported (dump vf or a log line naming it)" vf_reported; then
	pass "the VF is reported: dump vf '$(rig_dump_get "$P.vf.name")', log: $(grep -m1 vf0 "$RUN_LOG" || echo none)"
fi
# Nothing may happen; give a join three times the settle delay to show up.
sleep 0.9
assert_eq "transparent off: state disabled" "$(rig_dump_get "$P.state")" disabled
assert_eq "transparent off: datapath synthetic" "$(rig_dump_get "$P.datapath")" synthetic
run_dev_snapshot hn0 "$RIG_TMP/off-hn0.after"
run_dev_snapshot vf0 "$RIG_TMP/off-vf0.after"
assert_files_equal "transparent off: hn0 unchanged (features, MTU, limits)" "$RIG_TMP/off-hn0.before" "$RIG_TMP/off-hn0.after"
assert_files_equal "transparent off: vf0 unchanged (features, MTU 1500, down)" "$RIG_TMP/off-vf0.before" "$RIG_TMP/off-vf0.after"
assert_eq "transparent off: vf0 MTU not pushed" "$(run_link_field vf0 mtu)" 1500
assert_eq "transparent off: no tcx program on vf0" "$(($(rig_tcx_count vf0 ingress '') + $(rig_tcx_count vf0 egress '')))" 0
assert_eq "transparent off: no tcx program on hn0" "$(($(rig_tcx_count hn0 ingress '') + $(rig_tcx_count hn0 egress '')))" 0
rc=0
run_stop "$RUN2" || rc=$?
assert_eq "run --transparent off exits 0 on SIGTERM" "$rc" 0

rig_finish
