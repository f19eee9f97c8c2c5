#!/usr/bin/env bash
# 36-one-control-plane: one `hnxdp run` per network namespace, and lock waits
# that are bounded and say whom they wait for (B21).
#   1. A second run started while one runs exits 2 with one line naming the
#      first one's pid, and changes nothing.
#   2. Two runs started at the same instant (10 times): exactly one keeps
#      running, the other exits 2 with that line (never EEXIST or a crash).
#   3. With one run left, vf0 (tso off, smaller GSO limits) arrives and leaves:
#      it is joined exactly once, and hn0 ends exactly as before.
#   4. A command that holds the namespace's lock and is stopped (SIGSTOP)
#      makes `detach` wait at most HNXDP_LOCK_TIMEOUT, saying which pid it
#      waits for, then fail with exit 1; hnxdp in another namespace is not
#      blocked at all.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

rig_begin
rig_create

rig__vf_delete
# A less capable vf0 arrives: made in the host namespace, configured there, moved in.
vf_arrives() {
	ip -n "$RIG_HOST" link add vf0 type veth peer name vf0h
	ip -n "$RIG_HOST" link set vf0 address "$RIG_MAC"
	rig_vf_less_capable "$RIG_HOST"
	ip -n "$RIG_HOST" link set vf0h up
	rig__host_forward vf0h
	ip -n "$RIG_HOST" link set vf0 netns "$RIG_GUEST"
}
rig_snapshot "$RIG_TMP/before" hn0

# ---- 1. one after the other
run_start FIRST --synthetic hn0 --settle-ms 0
rig_try hnxdp_g run --synthetic hn0 --settle-ms 0
assert_eq "a second run exits 2" "$RIG_RC" 2
assert_one_stderr_line "the second run says why in one line" "$RIG_ERR"
assert_contains "the second run names the first one's pid" "$RIG_ERR" "pid $FIRST"
assert_eq "the first run is still running" "$(run_alive "$FIRST" && echo yes)" yes
run_stop "$FIRST" || true

# ---- 2. at the same instant
for i in $(seq 1 10); do
	: >"$RIG_TMP/go"
	for w in a b; do
		(
			while [[ -e "$RIG_TMP/go" ]]; do sleep 0.001; done
			exec timeout -k 5 20 nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" run --synthetic hn0 --settle-ms 0
		) >"$RIG_TMP/race-$w.out" 2>&1 &
		declare "pid_$w=$!"
		RIG_BG_PIDS+=("$!")
	done
	rm -f "$RIG_TMP/go"
	# The loser exits at once; the winner keeps running.
	loser=""
	for ((t = 0; t < 200; t++)); do
		kill -0 "$pid_a" 2>/dev/null || { loser=a; break; }
		kill -0 "$pid_b" 2>/dev/null || { loser=b; break; }
		sleep 0.025
	done
	if [[ -z $loser ]]; then
		fail "race $i: both runs still running after 5 s"
		kill "$pid_a" "$pid_b" 2>/dev/null
		wait "$pid_a" "$pid_b" 2>/dev/null
		continue
	fi
	winner=$([[ $loser == a ]] && echo b || echo a)
	lpid=pid_$loser wpid=pid_$winner
	rc=0
	wait "${!lpid}" || rc=$?
	err=$(cat "$RIG_TMP/race-$loser.out")
	if [[ $rc == 2 && $err == *"already manages this network namespace"* && $(wc -l <<<"$err") == 1 ]] \
		&& kill -0 "${!wpid}" 2>/dev/null; then
		pass "race $i: one run kept running, the other exited 2: $err"
	else
		fail "race $i: loser exit $rc: $(rig__short "$err"); winner alive: $(kill -0 "${!wpid}" 2>/dev/null && echo yes || echo no)"
	fi
	# Wait until the winner is up before stopping it, so its start is complete.
	for ((t = 0; t < 200; t++)); do
		grep -q "control plane running" "$RIG_TMP/race-$winner.out" && break
		sleep 0.025
	done
	kill -TERM "${!wpid}" 2>/dev/null
	wait "${!wpid}" 2>/dev/null || true
done

# ---- 3. one run, one join
run_start RUN --synthetic hn0 --settle-ms 0
rig_try hnxdp_g run --synthetic hn0 --settle-ms 0
assert_eq "a second run next to it exits 2" "$RIG_RC" 2
vf_arrives
run_wait_dump 15 "pair hn0 active with vf0" "p and p['state'] == 'active'" || true
assert_eq "hn0 takes vf0's gso_max_size" "$(run_link_field hn0 gso_max_size)" 30000
rig__vf_delete
run_wait_dump 15 "pair hn0 idle after vf0 left" "p and p['state'] == 'idle'" || true
run_stop "$RUN" || true
assert_eq "vf0 was joined exactly once" "$(grep -c 'joined: datapath vf' "$RUN_LOG" || true)" 1
hnxdp_g detach --synthetic hn0 >/dev/null
rig_snapshot "$RIG_TMP/after" hn0
assert_files_equal "hn0 reads exactly as before" "$RIG_TMP/before" "$RIG_TMP/after"

# ---- 4. a stopped holder
rig_vf_add
# attach holds the namespace's lock through its settle wait; stopped there, it holds it forever.
timeout -k 5 60 nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" attach --synthetic hn0 --vf vf0 --settle-ms 3000 \
	>"$RIG_TMP/holder.out" 2>&1 &
HOLDER_WRAPPER=$!
RIG_BG_PIDS+=("$HOLDER_WRAPPER")
holder=""
for ((t = 0; t < 200; t++)); do
	holder=$(pgrep -P "$HOLDER_WRAPPER" | head -n 1 || true)
	[[ -n $holder ]] && grep -q "^$holder " /run/hnxdp/"$RIG_GUEST_INO".lock 2>/dev/null && break
	sleep 0.025
done
kill -STOP "$holder"
t0=$(date +%s%N)
rig_try env HNXDP_LOCK_TIMEOUT=2 timeout -k 5 60 nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" detach --synthetic hn0
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq "detach behind a stopped holder gives up with exit 1" "$RIG_RC" 1
assert_contains "it said whom it waited for" "$RIG_ERR" "waiting for hnxdp pid $holder"
assert_contains "its last line says it gave up" "$(tail -n 1 <<<"$RIG_ERR")" "gave up after 2 s waiting for hnxdp pid $holder"
assert_le "it gave up within the bound (ms)" "$ms" 6000
# Another namespace is not blocked.
OTHER="$RIG_ID-other"
ip netns add "$OTHER"
rig_try timeout -k 5 10 nsenter --net="/run/netns/$OTHER" -- "$HNXDP" detach --all
ip netns del "$OTHER"
assert_eq "hnxdp in another namespace is not blocked" "$RIG_RC" 0
kill -CONT "$holder"
rig_wait_pid "$HOLDER_WRAPPER" 30 || true
assert_contains "the held attach completed once resumed" "$(cat "$RIG_TMP/holder.out")" "attached hn0"
hnxdp_g detach --synthetic hn0 >/dev/null

rig_finish
