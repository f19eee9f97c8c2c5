#!/usr/bin/env bash
# 86-qdisc-passthrough: egress shaping on the synthetic applies while a VF is
# joined (its qdiscs are copied onto the VF), and the VF gets its own back.
#   1. `attach`, the VF with the kernel's default qdisc: a tbf of 20 Mbit/s on
#      hn0 limits guest-to-remote TCP (iperf3, 3 s) to 20 Mbit/s +-10 % with no
#      VF, with the VF joined (the traffic really leaves through vf0: vf_tx
#      rises; dump says qdisc "mirrored") and after `detach`; vf0's qdiscs,
#      classes and filters read exactly as before the join.
#   2. `run`, the VF with a qdisc of its own (pfifo 7:): joined, the VF carries
#      hn0's tbf; hn0's tbf changed 20 -> 40 Mbit/s is on vf0 within 1 s (polled
#      with `tc -j qdisc show dev vf0`), and limits at 40 Mbit/s +-10 %; an htb
#      tree with a filter replaces the tbf and is copied as well; the VF leaves
#      (its MAC changes) and reads exactly as before the join; 20 Mbit/s on the
#      synthetic path again; after `detach --all` still as before.
#   3. A synthetic with an mq root and its own qdisc on each of its 2 queues,
#      a VF with 4 queues: the VF gets mq with queue k carrying the synthetic's
#      queue ((k-1) mod 2)+1's qdisc; after `detach` the VF is as before. With
#      a tbf per queue the copy is made but reported not faithful (the total
#      rate differs on 4 queues): a warning, and `dump`/`status` say why.
#   4. `attach` killed (SIGKILL, strace) at spread points of its netlink
#      requests, then `detach`: hn0's and vf0's qdiscs read as before.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

rig_require_tools iperf3 strace
P='pairs[synthetic.name=hn0]'
PORT=5386

# Mbit/s of a 3 s guest -> remote TCP transfer (receiver side), or "failed".
iperf_mbit() {
	rig_g timeout 15 iperf3 -c "$RIG_R4" -p "$PORT" -t 3 -O 1 -J 2>/dev/null | "$RIG_PY" -c '
import json, sys
try:
    print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception:
    print("failed")'
}
# DESC LOW HIGH: one transfer, its rate within [LOW, HIGH] Mbit/s.
assert_rate() {
	local r
	r=$(iperf_mbit)
	if rig__is_int "$r" && ((r >= $2 && r <= $3)); then pass "$1: $r Mbit/s (within $2..$3)"
	else fail "$1: $r Mbit/s, expected $2..$3"; fi
}
vf_tc() { # everything of vf0's egress configuration tc shows
	rig_g tc qdisc show dev vf0
	rig_g tc class show dev vf0
	rig_g tc filter show dev vf0
}
vf_rate() { # the rate (bytes/s) of vf0's root tbf, or "none"
	rig_g tc -j qdisc show dev vf0 | rig_json --default none '[kind=tbf].options.rate'
}
qdisc_state() { rig_dump_get "$P.qdisc"; }
qdisc_mirrored() { [[ "$(qdisc_state)" == mirrored ]]; }

rig_begin
rig_create
rig_bg srv rig_r timeout 120 iperf3 -s -B "$RIG_R4" -p "$PORT"
wait_until 10 "iperf3 server listening" rig_r sh -c "ss -ltn | grep -q ':$PORT '" || true

# ---- 1. attach / detach, vf0 with the kernel's default qdisc.
rig_g tc qdisc add dev hn0 root handle 1: tbf rate 20mbit burst 64kb latency 50ms
vf_tc >"$RIG_TMP/vf0.before"
note "vf0 before: $(tr '\n' '|' <"$RIG_TMP/vf0.before")"
rig_host_switch syn
assert_rate "no VF: tbf 20mbit on hn0 limits TCP" 18 22

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf
assert_eq "vf0 carries hn0's tbf (20 Mbit/s = 2500000 B/s)" "$(vf_rate)" 2500000
assert_eq "dump: qdisc mirrored" "$(qdisc_state)" mirrored
assert_contains "status names the copy" "$(hnxdp_g status)" "qdisc mirrored"
tx0=$(rig_stat vf_tx_bytes)
assert_rate "VF joined: the same tbf limits TCP" 18 22
tx1=$(rig_stat vf_tx_bytes)
if rig__is_int "$tx0" && rig__is_int "$tx1"; then
	# 3 s at 18 Mbit/s or more, after a second of warm-up: at least 6.75 MB.
	assert_ge "the transfer left through the VF (vf_tx_bytes rose)" "$((tx1 - tx0))" 6750000
else
	fail "vf_tx_bytes not readable ('$tx0', '$tx1')"
fi

rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
vf_tc >"$RIG_TMP/vf0.after-detach"
assert_files_equal "vf0's qdiscs, classes and filters read as before the join after detach" \
	"$RIG_TMP/vf0.before" "$RIG_TMP/vf0.after-detach"
rig_host_switch syn
assert_rate "after detach: tbf on hn0 limits TCP on the synthetic path" 18 22

# ---- 2. run, vf0 with a qdisc of its own.
rig_g tc qdisc add dev vf0 root handle 7: pfifo limit 500
vf_tc >"$RIG_TMP/vf0.before2"
run_start RUN --synthetic hn0 --settle-ms 300
run_wait_dump 10 "pair active with vf0" "p and p['state'] == 'active' and p['datapath'] == 'vf'" || true
rig_host_switch vf
wait_until 5 "dump says qdisc mirrored" qdisc_mirrored || true
assert_eq "run joined vf0: qdisc mirrored" "$(qdisc_state)" mirrored
assert_eq "vf0 carries hn0's tbf instead of its pfifo" "$(vf_rate)" 2500000
assert_rate "run, VF joined: tbf 20mbit limits TCP" 18 22

# 20 -> 40 Mbit/s on hn0: on vf0 within a second.
t0=$(date +%s%N)
rig_g tc qdisc change dev hn0 root handle 1: tbf rate 40mbit burst 64kbit latency 50ms
ok=0
for ((i = 0; i < 300; i++)); do
	# tc's JSON without a parser: this loop must stay cheap.
	if rig_g tc -j qdisc show dev vf0 | grep -q '"kind":"tbf".*"rate":5000000,'; then ok=1; break; fi
	sleep 0.01
done
ms=$((($(date +%s%N) - t0) / 1000000))
note "tbf 20 -> 40 Mbit/s on hn0 at $(date -u -d "@$((t0 / 1000000000))" +%T).$(printf %03d $(((t0 / 1000000) % 1000))), on vf0 $ms ms later"
if ((ok)); then assert_le "hn0's tbf 20 -> 40 Mbit/s followed on vf0 (ms)" "$ms" 1000
else fail "vf0's tbf rate not 40 Mbit/s $ms ms after hn0's changed (now $(vf_rate))"; fi
assert_rate "VF joined: tbf 40mbit limits TCP" 36 44
assert_eq "dump: qdisc mirrored after the change" "$(qdisc_state)" mirrored

# A classful tree with a filter replaces the tbf: copied as a whole.
rig_g tc qdisc del dev hn0 root
rig_g tc qdisc add dev hn0 root handle 1: htb default 20
rig_g tc class add dev hn0 parent 1: classid 1:1 htb rate 100mbit
rig_g tc class add dev hn0 parent 1:1 classid 1:10 htb rate 20mbit ceil 20mbit
rig_g tc class add dev hn0 parent 1:1 classid 1:20 htb rate 80mbit
rig_g tc filter add dev hn0 parent 1: protocol ip prio 1 u32 match ip dport "$PORT" 0xffff flowid 1:10
wait_until 3 "vf0 has hn0's htb classes and filter" sh -c \
	"ip netns exec $RIG_GUEST tc class show dev vf0 | grep -q '1:10 parent 1:1' && ip netns exec $RIG_GUEST tc filter show dev vf0 | grep -q 'flowid 1:10'" || true
wait_until 3 "dump says qdisc mirrored (htb)" qdisc_mirrored || true
assert_eq "dump: the htb tree is mirrored" "$(qdisc_state)" mirrored
assert_rate "VF joined: htb class 1:10 (20mbit, chosen by the u32 filter) limits TCP" 18 22
rig_g tc qdisc del dev hn0 root
rig_g tc qdisc add dev hn0 root handle 1: tbf rate 20mbit burst 64kb latency 50ms
wait_until 3 "vf0 back on hn0's tbf 20mbit" sh -c "[ \"\$(ip netns exec $RIG_GUEST tc -j qdisc show dev vf0 | grep -o '\"rate\":[0-9]*')\" = '\"rate\":2500000' ]" || true

# The VF leaves while it still exists (its MAC changes): its own pfifo is back.
rig_host_switch syn
rig_g ip link set vf0 address 02:00:00:00:86:86
run_wait_dump 5 "pair idle" "p and p['state'] == 'idle'" || true
vf_tc >"$RIG_TMP/vf0.after-leave"
assert_files_equal "vf0 reads as before the join after the leave" "$RIG_TMP/vf0.before2" "$RIG_TMP/vf0.after-leave"
assert_eq "dump: qdisc none once no VF is joined" "$(qdisc_state)" none
assert_rate "after the leave: tbf on hn0 limits TCP on the synthetic path" 18 22
run_assert_no_error "run logged no error"
assert_contains "run logged the copy" "$(cat "$RUN_LOG")" "egress qdiscs copied to vf0"
rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
rig_try hnxdp_g detach --all
assert_eq "detach --all exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
vf_tc >"$RIG_TMP/vf0.after-detach2"
assert_files_equal "vf0 reads as before the join after detach --all" "$RIG_TMP/vf0.before2" "$RIG_TMP/vf0.after-detach2"

# ---- 3. mq: per-queue qdiscs spread over the VF's own number of queues.
mac9=$(run_pair_mac 9)
ip -n "$RIG_GUEST" link add hn9 numtxqueues 2 numrxqueues 2 type veth peer name hn9h netns "$RIG_HOST"
ip -n "$RIG_GUEST" link add vf9 numtxqueues 4 numrxqueues 4 type veth peer name vf9h netns "$RIG_HOST"
for d in hn9 vf9; do ip -n "$RIG_GUEST" link set "$d" address "$mac9" up; done
for d in hn9h vf9h; do ip -n "$RIG_HOST" link set "$d" up; done
rig_g tc qdisc add dev hn9 root handle 1: mq
rig_g tc qdisc replace dev hn9 parent 1:1 handle 10: bfifo limit 30000
rig_g tc qdisc replace dev hn9 parent 1:2 handle 20: pfifo limit 300
rig_g tc qdisc show dev vf9 >"$RIG_TMP/vf9.before"
per_queue() { # "parent kind limit" of DEV's egress qdiscs (not clsact: the classic attachment's), sorted
	rig_g tc -j qdisc show dev "$1" | "$RIG_PY" -c '
import json, sys
print(" ".join(sorted("%s=%s/%s" % (q.get("parent", "root"), q["kind"], q.get("options", {}).get("limit", "-"))
                      for q in json.load(sys.stdin) if q["kind"] not in ("clsact", "ingress"))))'
}
rig_try hnxdp_g attach --synthetic hn9 --vf vf9
assert_eq "attach hn9 (2 queues) / vf9 (4 queues) exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "attach warned of nothing" "$RIG_ERR" ""
assert_eq "vf9: mq with queue 1 and 3 as hn9's queue 1, 2 and 4 as its queue 2" "$(per_queue vf9)" \
	"1:1=bfifo/30000 1:2=pfifo/300 1:3=bfifo/30000 1:4=pfifo/300 root=mq/-"
assert_eq "dump: hn9's qdisc mirrored" "$(rig_dump_get 'pairs[synthetic.name=hn9].qdisc')" mirrored
rig_try hnxdp_g detach --synthetic hn9
assert_eq "detach hn9 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_g tc qdisc show dev vf9 >"$RIG_TMP/vf9.after"
assert_files_equal "vf9 reads as before the join after detach" "$RIG_TMP/vf9.before" "$RIG_TMP/vf9.after"
# A per-queue shaper cannot mean the same on 4 queues as on 2: joined, and said.
rig_g tc qdisc replace dev hn9 parent 1:1 handle 30: tbf rate 10mbit burst 32kb latency 50ms
rig_try hnxdp_g attach --synthetic hn9 --vf vf9
assert_eq "attach with per-queue tbf exits 0" "$RIG_RC" 0
assert_contains "attach warns that the shaping is not faithful" "$RIG_ERR" "egress shaping is not faithfully on vf9"
assert_contains "dump says not-faithful, and why" "$(rig_dump_get 'pairs[synthetic.name=hn9].qdisc')" \
	"not-faithful: hn9 shapes each of its 2 transmit queues; vf9 has 4, so the total differs"
assert_contains "status says it too" "$(hnxdp_g status)" "qdisc not-faithful"
rig_try hnxdp_g detach --synthetic hn9
rig_g tc qdisc show dev vf9 >"$RIG_TMP/vf9.after2"
assert_files_equal "vf9 reads as before that join after detach" "$RIG_TMP/vf9.before" "$RIG_TMP/vf9.after2"

# ---- 4. kill -9 anywhere in a join's netlink traffic: the VF's own qdisc survives.
# hn0 has its tbf, vf0 its own pfifo 7: again; strace kills `attach` at spread
# points of its sendto calls (every netlink request, the tc copy's included);
# `detach` then finishes from the write-ahead record.
rig_g ip link set vf0 address "$RIG_MAC"
tc_both() { rig_g tc qdisc show dev hn0; vf_tc; }
tc_both >"$RIG_TMP/tc.before4"
trace="$RIG_TMP/attach.strace"
nsenter --net="/run/netns/$RIG_GUEST" -- strace -f -qq -o "$trace" -e trace=sendto "$HNXDP" attach --synthetic hn0 --vf vf0 >/dev/null 2>&1 \
	|| fail "attach under strace failed"
rig_try hnxdp_g detach --synthetic hn0
calls=$(grep -c "sendto(" "$trace" || true)
assert_ge "attach makes netlink requests to count (sendto calls)" "$calls" 10
points=0 bad=0 killed=0
for k in $(for ((i = 0; i < 12; i++)); do echo $((1 + i * (calls - 1) / 11)); done | uniq); do
	rc=0
	# In a shell of its own, whose job message ("Killed") goes to /dev/null.
	bash -c 'timeout -k 5 60 nsenter --net="/run/netns/$1" -- strace -f -qq -o /dev/null \
		-e inject=sendto:signal=KILL:when="$2" "$3" attach --synthetic hn0 --vf vf0 >/dev/null 2>&1; exit $?' \
		_ "$RIG_GUEST" "$k" "$HNXDP" 2>/dev/null || rc=$?
	((rc == 137)) && killed=$((killed + 1))
	points=$((points + 1))
	rig_try hnxdp_g detach --synthetic hn0
	tc_both >"$RIG_TMP/tc.now4"
	if ! cmp -s "$RIG_TMP/tc.before4" "$RIG_TMP/tc.now4"; then
		bad=$((bad + 1))
		note "killed at sendto $k (exit $rc), detach exit $RIG_RC: $(diff "$RIG_TMP/tc.before4" "$RIG_TMP/tc.now4" | grep '^[<>]' | tr '\n' '|')"
	fi
done
assert_ge "attach was killed at most points ($killed of $points)" "$killed" $((points - 1))
assert_eq "after a kill at any of $points points of attach and a detach, hn0's and vf0's qdiscs read as before" "$bad" 0

rig_finish
