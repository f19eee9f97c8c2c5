#!/usr/bin/env bash
# 74-run-many-pairs: one `hnxdp run` manages 8 pairs at once; a VF event
# touches only its own pair (B1, B2, B13, B15, B20).
#   hn0..hn7 with vf0..vf7 in the guest (pair 0 is the rig's; pairs 1-7 are
#   extra veths whose peers sit in the host), each pair with its own MAC,
#   under `run --synthetic hn0 ... --synthetic hn7`. All 8 are joined (each
#   VF to the synthetic with its MAC, each pair its own stats slot); pair 0
#   carries pings through its VF.
#   Deleting vf3 makes pair 3 idle within 100 ms and nothing else changes
#   (the other pairs stay active with the same VF, switch count and tcx
#   link ids). Re-adding vf3 joins pair 3 again after the settle delay, and
#   again nothing else changes.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

N=8
SETTLE=300
K=3 # the pair whose VF comes and goes

# Per pair "name:state:vfname:vfifindex:switches:slot", one line each.
pair_table() {
	rig_dump_json | "$RIG_PY" -c '
import json, sys
d = json.load(sys.stdin)
for p in sorted(d["pairs"], key=lambda p: p["synthetic"]["name"] or ""):
    vf = p["vf"] or {}
    print(":".join(str(x) for x in (p["synthetic"]["name"], p["state"], vf.get("name"), vf.get("ifindex"), p["switches"], p["slot"])))'
}
others_of() { grep -v "^hn$K:" <<<"$1" | tr '\n' ' '; }
all_links() {
	local devs=() k
	for ((k = 0; k < N; k++)); do devs+=("hn$k" "vf$k"); done
	rig_tcx_summary "${devs[@]}"
}
links_except_k() { tr ' ' '\n' <<<"$1" | grep -v "^vf$K/" | tr '\n' ' '; }
vfkh_gone() { ! ip -n "$RIG_HOST" link show dev "vf${K}h" >/dev/null 2>&1; }

rig_begin
rig_create
for ((k = 1; k < N; k++)); do run_pair_add "$k"; done
args=()
for ((k = 0; k < N; k++)); do args+=(--synthetic "hn$k"); done

run_start RUN "${args[@]}" --settle-ms "$SETTLE"
cond="len(d['pairs']) == $N and all(p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('name') == 'vf' + p['synthetic']['name'][2:] for p in d['pairs'])"
if run_wait_dump 30 "all $N pairs active, each with its own VF" "$cond"; then
	pass "all $N pairs joined by one run (after ${RUN_WAIT_MS} ms)"
fi
table0=$(pair_table)
note "pairs: $(tr '\n' ' ' <<<"$table0")"
assert_eq "dump: $N pairs" "$(rig_dump_get 'len:pairs')" "$N"
assert_eq "each pair has its own stats slot" "$(cut -d: -f6 <<<"$table0" | sort -u | wc -l)" "$N"
links0=$(all_links)
assert_eq "one tcx link per synthetic direction and per VF ingress ($((3 * N)))" "$(wc -w <<<"$links0")" $((3 * N))

rig_host_switch vf
rig_try rig_r ping -n -c 10 -i 0.02 -W 2 "$RIG_G4"
assert_eq "pair 0 carries pings through its VF" "$RIG_RC" 0
assert_ge "pair 0 vf_rx_packets" "$(rig_stat vf_rx_packets)" 10

# ---- vf3 leaves: only pair 3 changes.
run_assert_departure "vf$K deleted: pair $K idle with no VF" "hn$K" "vf$K" 100
wait_until 5 "vf${K}h gone from the host" vfkh_gone || true
table1=$(pair_table)
assert_eq "pair $K idle, no VF" "$(grep "^hn$K:" <<<"$table1" | cut -d: -f2-4)" "idle:None:None"
assert_eq "the other $((N - 1)) pairs unchanged (state, VF, switches, slot)" "$(others_of "$table1")" "$(others_of "$table0")"
assert_eq "the other pairs' tcx links are the same links" "$(links_except_k "$(all_links)")" "$(links_except_k "$links0")"
rig_try rig_r ping -n -c 5 -i 0.02 -W 2 "$RIG_G4"
assert_eq "pair 0 still carries pings through its VF" "$RIG_RC" 0

# ---- vf3 returns: only pair 3 changes.
vf_ifindex_old=$(grep "^hn$K:" <<<"$table0" | cut -d: -f4)
mac=$(run_pair_mac "$K")
add="ip link add vf$K type veth peer name vf${K}h netns $RIG_HOST && ip link set vf$K address $mac"
add+=" && ip -n $RIG_HOST link set vf${K}h up && ip link set vf$K up"
if run_react --trace "hn$K" 10 "vf$K returns: pair $K active again" "$add" "state:hn$K=active"; then
	note "pair $K map states: $RUN_TRACE"
	assert_ge "pair $K joined after the settle delay" "${RUN_REACT_MS%.*}" "$SETTLE"
else
	fail "pair $K not active within 10 s of vf$K's return (map states: $RUN_TRACE)"
fi
run_wait_dump 10 "all $N pairs active again" "$cond" || true
table2=$(pair_table)
line=$(grep "^hn$K:" <<<"$table2")
assert_eq "pair $K active with vf$K" "$(cut -d: -f2-3 <<<"$line")" "active:vf$K"
assert_ne "pair $K's VF has a new ifindex" "$(cut -d: -f4 <<<"$line")" "$vf_ifindex_old"
assert_eq "pair $K counted two more switches" "$(cut -d: -f5 <<<"$line")" \
	"$(($(grep "^hn$K:" <<<"$table0" | cut -d: -f5) + 2))"
assert_eq "the other $((N - 1)) pairs still unchanged" "$(others_of "$table2")" "$(others_of "$table0")"
links2=$(all_links)
assert_eq "the other pairs' tcx links still the same links" "$(links_except_k "$links2")" "$(links_except_k "$links0")"
assert_eq "again $((3 * N)) tcx links" "$(wc -w <<<"$links2")" $((3 * N))
assert_eq "one hnxdp program on vf$K ingress" "$(rig_tcx_count "vf$K" ingress)" 1

rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
run_assert_no_error "no error in the run log"

rig_finish
