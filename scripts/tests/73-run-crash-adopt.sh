#!/usr/bin/env bash
# 73-run-crash-adopt: the datapath outlives a killed control plane, and a new
# one adopts it without duplicating anything (B19), then handles the next
# departure correctly (B13).
#   1. `hnxdp run` joins vf0 (no TSO, smaller GSO limits); the remote pings
#      the guest 100/s through the VF.
#   2. `kill -9` of the run process: traffic keeps entering through the VF
#      (vf_rx_packets keeps rising), the pair stays active.
#   3. A new `hnxdp run` adopts the pair: the same tcx link ids, the same
#      pins and pinned link ids, the same number of BPF links, the log says
#      "adopted"; traffic still goes through the VF.
#   4. vf0 leaves (surprise): within 100 ms the pair is idle, hn0's features
#      and limits read exactly as before the first join, no VF link is left,
#      and the pings went on (at most 5 % lost).
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

P='pairs[synthetic.name=hn0]'
PINGS=2000 # 100/s: bounded to 20 s

vf_rx_above() { # BASE DELTA
	local v
	v=$(rig_stat vf_rx_packets)
	rig__is_int "$v" && (($1 + $2 <= v))
}
pinned_link_ids() {
	local f
	while IFS= read -r f; do
		printf '%s=%s ' "${f#"$RIG_PIN_DIR"/}" "$(bpftool -j link show pinned "$f" | rig_json --default none id)"
	done < <(find "$RIG_PIN_DIR" -name 'link_*' | sort)
}
hn0_as_before() {
	run_dev_snapshot hn0 "$RIG_TMP/hn0.after"
	cmp -s "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
}
vf0h_gone() { ! ip -n "$RIG_HOST" link show dev vf0h >/dev/null 2>&1; }

rig_begin
rig_create

rig_g ethtool -K vf0 tso off
ip -n "$RIG_GUEST" link set vf0 gso_max_size 40000 gso_max_segs 200
run_dev_snapshot hn0 "$RIG_TMP/hn0.before"

# ---- 1. joined by run, traffic through the VF.
run_start RUN --synthetic hn0 --settle-ms 300
run_wait_dump 15 "pair hn0 active with vf0" \
	"p and p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('name') == 'vf0'" || true
assert_eq "join: hn0 gso_max_size 40000" "$(run_link_field hn0 gso_max_size)" 40000
rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4"

links0=$(rig_tcx_summary hn0 vf0)
pinned0=$(pinned_link_ids)
pins0=$(run_pins)
ours0=$(run_our_links | wc -l)
note "links before the crash: $links0; pinned: $pinned0"
assert_eq "three hnxdp tcx links (hn0 ingress+egress, vf0 ingress)" "$(wc -w <<<"$links0")" 3

rig_bg PING_PID rig_r ping -n -i 0.01 -c "$PINGS" -W 1 "$RIG_G4" >"$RIG_TMP/ping.out" 2>&1
rx0=$(rig_stat vf_rx_packets)
wait_until 10 "pings entering through the VF" vf_rx_above "$rx0" 50 || true

# ---- 2. kill -9: the datapath carries on alone.
if run_kill9 "$RUN"; then pass "run (pid $RUN) killed with SIGKILL"; else fail "run (pid $RUN) still alive after SIGKILL"; fi
rx1=$(rig_stat vf_rx_packets)
if wait_until 10 "vf_rx_packets rising with no control plane" vf_rx_above "$rx1" 100; then
	pass "traffic keeps entering through the VF with the control plane dead ($rx1 -> $(rig_stat vf_rx_packets))"
fi
assert_eq "pair still active with no control plane" "$(rig_dump_get "$P.state")" active
assert_eq "datapath still vf with no control plane" "$(rig_dump_get "$P.datapath")" vf
assert_eq "links unchanged by the crash" "$(rig_tcx_summary hn0 vf0)" "$links0"

# ---- 3. a new run adopts.
run_start RUN2 --synthetic hn0 --settle-ms 300
assert_contains "log: the pair is adopted as active" "$(cat "$RUN_LOG")" "adopted: state active, VF vf0"
run_wait_dump 5 "pair hn0 still active" "p and p['state'] == 'active' and p['datapath'] == 'vf'" || true
assert_eq "same tcx link ids after adoption" "$(rig_tcx_summary hn0 vf0)" "$links0"
assert_eq "same pinned link ids after adoption" "$(pinned_link_ids)" "$pinned0"
assert_eq "same pins after adoption" "$(run_pins)" "$pins0"
assert_eq "same number of BPF links of this namespace's programs" "$(run_our_links | wc -l)" "$ours0"
assert_eq "one hnxdp program on vf0 ingress (nothing duplicated)" "$(rig_tcx_count vf0 ingress)" 1
assert_eq "one hnxdp program on hn0 ingress (nothing duplicated)" "$(rig_tcx_count hn0 ingress)" 1
assert_eq "one hnxdp program on hn0 egress (nothing duplicated)" "$(rig_tcx_count hn0 egress)" 1
assert_eq "adoption did not switch the datapath (switches)" "$(rig_dump_get "$P.switches")" 1
assert_eq "hn0 still has the joined limits" "$(run_link_field hn0 gso_max_size)" 40000
rx2=$(rig_stat vf_rx_packets)
wait_until 10 "vf_rx_packets rising after adoption" vf_rx_above "$rx2" 50 || true

# ---- 4. the next departure is handled by the new run.
run_assert_departure "vf0 deleted: pair idle with no VF" hn0 vf0 100
wait_until 5 "vf0h gone from the host" vf0h_gone || true
rig_host_switch syn
assert_eq "dump: idle" "$(rig_dump_get "$P.state")" idle
assert_eq "dump: datapath synthetic" "$(rig_dump_get "$P.datapath")" synthetic
wait_until 5 "hn0 restored" hn0_as_before || true
assert_files_equal "hn0 features and limits exactly as before the first join" "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
assert_eq "no link_vf_ingress pin left" "$(find "$RIG_PIN_DIR" -name link_vf_ingress | wc -l)" 0
if [[ ${HNXDP_TC_MODE:-auto} == classic ]]; then
	assert_eq "no BPF link (classic tc attachment)" "$(run_our_links | wc -l)" 0
else
	assert_eq "two BPF links left (hn0's)" "$(run_our_links | wc -l)" 2
fi
assert_eq "hn0 keeps its two programs" "$(($(rig_tcx_count hn0 ingress) + $(rig_tcx_count hn0 egress)))" 2
assert_eq "no hnxdp program left on vf0" "$(rig_tcx_count vf0 ingress '')" 0

rig_wait_pid "$PING_PID" 40 || true
read -r recv sent <<<"$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2 \1/p' "$RIG_TMP/ping.out")" || true
if [[ -n "${sent:-}" ]]; then
	assert_eq "pings: all sent" "$sent" "$PINGS"
	assert_le "pings: at most 5 % lost through crash, adoption and a surprise removal" "$((sent - recv))" $((PINGS / 20))
else
	fail "ping summary missing: $(rig__short "$(tail -n 3 "$RIG_TMP/ping.out")")"
fi

rc=0
run_stop "$RUN2" || rc=$?
assert_eq "second run exits 0 on SIGTERM" "$rc" 0
run_assert_no_error "no error in the second run's log"

rig_finish
