#!/usr/bin/env bash
# 72-run-flap: flap damping (B16) and no leak after a storm of VF
# arrivals and departures (B13, B19).
#   `hnxdp run --settle-ms 200 --hold-down-ms 1500` joins vf0. Baseline of one
#   joined pair: BPF objects the run process holds, pins, tcx links, BPF links
#   of this namespace's programs (and the machine-wide hnxdp counts).
#   Then 50 departures/arrivals of vf0 (each time the same kind of VF: no
#   TSO, gso_max_size 40000), 20-50 ms apart. dump (polled during
#   the storm) shows `held-down`; nothing is joined during the storm. The
#   last arrival is timed on the pinned map: the pair stays held-down and is
#   joined only once the VF has stayed for the hold-down (>= 1500 ms), not
#   after the settle delay. Afterwards everything counts exactly as in the
#   baseline; the synthetic's tcx links are the very same; hn0's features
#   read as with the first join. Finally three departures within the
#   hold-down, the last of a joined VF: dump says held-down, and hn0 reads
#   as before any join.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

SETTLE=200
HOLD=1500
CYCLES=50
P='pairs[synthetic.name=hn0]'

count_objects() { # -> "fds=... pins=... links=... tcx=..."
	echo "fds=$(run_bpf_fds "$RUN" | tr ' ' '/') links=$(run_our_links | wc -l)" \
		"tcx=hn0:$(($(rig_tcx_count hn0 ingress) + $(rig_tcx_count hn0 egress)))/vf0:$(($(rig_tcx_count vf0 ingress) + $(rig_tcx_count vf0 egress)))"
}
hn0_joined_as_first() {
	run_dev_snapshot hn0 "$RIG_TMP/hn0.joined.after"
	cmp -s "$RIG_TMP/hn0.joined" "$RIG_TMP/hn0.joined.after"
}
hn0_as_before() {
	run_dev_snapshot hn0 "$RIG_TMP/hn0.after"
	cmp -s "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
}

rig_begin
rig_create

# The VF lacks TSO and has smaller GSO limits, so every join/leave changes
# hn0; every arrival is the same kind of VF, set up before it takes hn0's MAC.
VF_SETUP=("ethtool -K vf0 tso off" "ip link set vf0 gso_max_size 40000 gso_max_segs 200")
rig__vf_delete
run_vf_add_prepared "${VF_SETUP[@]}"
run_dev_snapshot hn0 "$RIG_TMP/hn0.before"

run_start RUN --synthetic hn0 --settle-ms "$SETTLE" --hold-down-ms "$HOLD"
run_wait_dump 15 "pair hn0 active with vf0" "p and p['state'] == 'active' and (p['vf'] or {}).get('name') == 'vf0'" || true
run_dev_snapshot hn0 "$RIG_TMP/hn0.joined"
assert_eq "first join: hn0 gso_max_size 40000" "$(run_link_field hn0 gso_max_size)" 40000

# ---- baseline: one joined pair.
base=$(count_objects)
base_pins=$(run_pins)
base_syn_links=$(rig_tcx_summary hn0)
base_global=$(run_global_counts)
base_others=$(run_other_rigs)
note "baseline: $base; pins: $base_pins; hn0 links: $base_syn_links; machine-wide hnxdp progs/maps/links/tcx-links: $base_global"
assert_eq "baseline: three BPF links of this namespace's programs" "$(run_our_links | wc -l)" 3
switches0=$(rig_dump_get "$P.switches")
joins0=$(grep -c "joined: datapath vf" "$RUN_LOG" || true)

# ---- the storm.
storm_done="$RIG_TMP/storm-done"
run_dump_watch_start 120 "dump during the storm" "False" --until-file "$storm_done" --interval 0.05
t0=$SECONDS
for ((i = 1; i <= CYCLES; i++)); do
	rig__vf_delete
	sleep "0.0$((2 + RANDOM % 4))"
	if ((i < CYCLES)); then
		run_vf_add_prepared "${VF_SETUP[@]}"
		sleep "0.0$((2 + RANDOM % 4))"
	fi
done
note "$CYCLES departures and $((CYCLES - 1)) arrivals in $((SECONDS - t0)) s; state now $(run_state)"
# The last arrival, timed on the pinned map (vf0 prepared first, then it takes hn0's MAC).
run_vf_prepare "${VF_SETUP[@]}"
if run_react --trace hn0 10 "last arrival: pair active again" "$(run_vf_take_mac_cmd)" state:hn0=active; then
	note "map states after the last arrival: $RUN_TRACE"
	assert_ge "the last arrival was held down for the hold-down ($HOLD ms), not the settle delay" \
		"${RUN_REACT_MS%.*}" "$HOLD"
	assert_le "and joined soon after it (<= $HOLD + 500 ms)" "${RUN_REACT_MS%.*}" $((HOLD + 500))
	if [[ "$RUN_TRACE" == held-down@0,* ]]; then pass "held-down when the VF came back ($RUN_TRACE)"
	else fail "expected held-down when the VF came back: $RUN_TRACE"; fi
else
	fail "vf0 not joined within 10 s of the storm's end (map states: $RUN_TRACE)"
fi
touch "$storm_done"
if run_dump_watch_end; then
	assert_contains "dump showed held-down during the storm (states: $RUN_SEEN)" ",$RUN_SEEN," ",held-down,"
fi
run_wait_dump 10 "pair hn0 active with vf0, datapath vf" \
	"p and p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('name') == 'vf0'" || true
assert_eq "dump: active after the storm" "$(run_state)" active
assert_eq "log: joined exactly once more (none during the storm)" \
	"$(($(grep -c "joined: datapath vf" "$RUN_LOG" || true) - joins0))" 1
assert_eq "dump: switches = one departure + one join" "$(rig_dump_get "$P.switches")" "$((switches0 + 2))"
assert_contains "log: held-down" "$(cat "$RUN_LOG")" "-> held-down"

# ---- nothing leaked.
after=$(count_objects)
after_global=$(run_global_counts)
after_others=$(run_other_rigs)
note "after: $after; machine-wide: $after_global"
assert_eq "BPF objects held, links and tcx attachments as with one joined pair" "$after" "$base"
assert_eq "pins as with one joined pair" "$(run_pins)" "$base_pins"
assert_eq "hn0's own tcx links are the same links" "$(rig_tcx_summary hn0)" "$base_syn_links"
assert_eq "exactly one hnxdp program on vf0 ingress" "$(rig_tcx_count vf0 ingress)" 1
if [[ "$base_others" != 0 || "$after_others" != 0 ]]; then
	note "other hnxdp namespaces exist ($base_others before, $after_others after): machine-wide counts include theirs"
fi
assert_global_eq "machine-wide hnxdp programs/maps/links/tcx links unchanged" "$after_global" "$base_global"
wait_until 5 "hn0 reads as after the first join" hn0_joined_as_first || true
assert_files_equal "hn0 features and limits as after the first join" "$RIG_TMP/hn0.joined" "$RIG_TMP/hn0.joined.after"

# ---- a departure from active while flapping: held-down (B16), hn0 restored.
# Three departures within the hold-down, the third one from a joined VF:
# gone (idle), back and gone again during the settle delay, back and joined,
# gone. dump must say held-down, and hn0 must read as before any join.
t_first=$EPOCHREALTIME
rig_vf_remove_surprise
run_vf_add_prepared "${VF_SETUP[@]}"
rig__vf_delete
run_vf_add_prepared "${VF_SETUP[@]}"
run_wait_dump 5 "vf0 joined again" "p and p['state'] == 'active' and (p['vf'] or {}).get('name') == 'vf0'" || true
elapsed_ms=$(awk -v a="$t_first" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')
run_assert_departure "third departure within the hold-down, of a joined VF: held-down with no VF in the pinned map" \
	hn0 vf0 100 state:hn0=held-down vf:hn0=0
note "the three departures took $elapsed_ms ms (hold-down $HOLD ms)"
assert_le "precondition: the three departures fell within the hold-down" "$elapsed_ms" "$HOLD"
assert_eq "dump: held-down after the third departure" "$(run_state)" held-down
assert_contains "log: active -> held-down" "$(cat "$RUN_LOG")" "state active -> held-down"
rig_host_switch syn
wait_until 5 "hn0 restored" hn0_as_before || true
assert_files_equal "hn0 features and limits as before any join" "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
assert_eq "no link_vf_ingress pin left" "$(find "$RIG_PIN_DIR" -name link_vf_ingress | wc -l)" 0
assert_eq "two BPF links left (hn0's)" "$(run_our_links | wc -l)" 2
run_wait_dump 5 "held-down with no VF ends in idle after the hold-down" "p and p['state'] == 'idle'" || true

rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
run_assert_no_error "no error in the run log"

rig_finish
