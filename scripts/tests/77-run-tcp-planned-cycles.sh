#!/usr/bin/env bash
# 77-run-tcp-planned-cycles: one TCP connection stays open, never reset and
# never stopped, through TCP_CYCLES (default 100) planned departures and
# returns of the VF handled by `hnxdp run` (B13, B14, B15, B2; issue
# "crash-consistent pairing", soak). The longest stall is reported.
#   The remote keeps ONE connection to an echo server bound to hn0
#   (SO_BINDTODEVICE) echoing numbered 64-byte requests every 10 ms
#   (tools/tcp_stream.py: counts resets, checks every reply's number,
#   measures the largest time between two consecutive replies). A cycle, as
#   a hypervisor does a planned removal: the host switches to the synthetic,
#   then deletes vf0; the pinned pair goes idle with the record gone; the
#   connection goes on over the synthetic path (>= 10 more replies, and the
#   host's hn0h carried >= 5 packets each way meanwhile). vf0 returns; run
#   joins it (the pinned pair is active with vf0's new ifindex, record
#   "joined"); the host switches to the VF; the connection goes on through
#   the VF (>= 10 more replies, and the new vf0h carried >= 5 packets each
#   way). At the end: 0 resets, every reply matched, the echo server saw
#   exactly one connection, dump counts 2 switches per cycle, the run log
#   has no error line. The longest stall and where it fell are printed;
#   only a sanity bound (< 10 s, the stall timeout) is asserted, since
#   timing on a shared machine is not the point here.
# Knobs: TCP_CYCLES (default 100), TCP_MAX_SECONDS (bound of the loop,
#   default 120 + 3 s per cycle).
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

CYCLES=${TCP_CYCLES:-100}
[[ "$CYCLES" =~ ^[0-9]+$ ]] && ((CYCLES >= 1)) || { echo "TCP_CYCLES must be an integer >= 1" >&2; exit 2; }
LOOP_MAX=${TCP_MAX_SECONDS:-$((120 + 3 * CYCLES))}
RUN_MAX_SECONDS=$((LOOP_MAX + 180))
STATE_ROOT=${HNXDP_STATE_DIR:-/run/hnxdp}
PORT=5770
K=5 # packets each way each path must carry per cycle (of 2K replies waited for: the
    # first request after a switch may have left before it)
STALL_BOUND_MS=10000
P='pairs[synthetic.name=hn0]'

STATUS="" # $RIG_TMP/stream.status, once the rig exists
rounds() { # replies so far (from the client's status file)
	local w r=0
	read -r w r _ <"$STATUS" 2>/dev/null || true
	echo "${r:-0}"
}
rounds_ge() { (($(rounds) >= $1)); }
client_alive() { kill -0 "$CLIENT_PID" 2>/dev/null; }
host_pkts() { # DEV -> "rx tx" packets of a host-side port (0 0 when absent)
	nsenter --net="/run/netns/$RIG_HOST" -- cat /proc/net/dev |
		awk -v d="$1" '{ sub(/:/, " ") } $1 == d { print $3, $11; f = 1 } END { if (!f) print 0, 0 }'
}
first_fails=0
cycle_fail() { # only the first few per kind are printed in full; all are counted
	first_fails=$((first_fails + 1))
	if ((first_fails <= 5)); then fail "$*"; else RIG_FAILED=$((RIG_FAILED + 1)); fi
}

rig_begin
rig_create
STATUS="$RIG_TMP/stream.status"

# settle 200 ms: a real settle on every return; no damping (threshold 1000)
# since the cycles are well under a second apart.
run_start RUN --synthetic hn0 --settle-ms 200 --hold-down-ms 1000 --flap-threshold 1000
pw_start
pw active vf0 15 || fatal "vf0 not joined at start ($PW_ANSWER)"
rig_host_switch vf
switches0=$(rig_dump_get "$P.switches")

rig_bg ECHO_PID rig_g "$RIG_PY" "$RIG_TOOLS/tcp_echo.py" --dev hn0 --port "$PORT" --seconds $((LOOP_MAX + 90)) \
	--max-conns 1 --ready-file "$RIG_TMP/echo-ready" >"$RIG_TMP/echo.out"
rig_wait_file "$RIG_TMP/echo-ready" 10 || fatal "TCP echo server on hn0 did not start"
rig_bg CLIENT_PID rig_r "$RIG_PY" "$RIG_TOOLS/tcp_stream.py" --dst "$RIG_G4" --port "$PORT" \
	--stop-file "$RIG_TMP/stop" --after 50 --size 64 --interval 0.01 --seconds $((LOOP_MAX + 60)) \
	--status-file "$STATUS" --stall-timeout 10 --reconnects 3 --gap-log-ms 100 >"$RIG_TMP/client.out" 2>"$RIG_TMP/client.err"
wait_until 10 "the connection echoes" rounds_ge 20 || fatal "TCP connection remote -> guest hn0 not echoing: $(rig__short "$(cat "$RIG_TMP/client.err")")"
read -r vrx vtx <<<"$(host_pkts vf0h)"
((vrx >= 20 && vtx >= 20)) && pass "the connection goes through the VF at the start (vf0h rx $vrx tx $vtx)" \
	|| fail "the connection does not go through the VF at the start (vf0h rx $vrx tx $vtx)"

declare -a B_DEP B_RET B_SW # rounds when each cycle's departure / return / host switch began
syn_ok=0 vf_ok=0 done_cycles=0
t0=$EPOCHREALTIME
for ((c = 1; c <= CYCLES; c++)); do
	# -- planned departure: host to the synthetic first, then vf0 goes.
	B_DEP[c]=$(rounds)
	rig_vf_remove_planned
	if ! pw idle 10; then cycle_fail "cycle $c: pair not idle with its record gone ($PW_ANSWER)"; break; fi
	read -r s_rx s_tx <<<"$(host_pkts hn0h)"
	r=$(rounds)
	if ! wait_until 10 "cycle $c: $((2 * K)) replies over the synthetic path" rounds_ge $((r + 2 * K)); then
		note "client: $(rig__short "$(tail -n 3 "$RIG_TMP/client.err")")"
		break
	fi
	read -r s_rx2 s_tx2 <<<"$(host_pkts hn0h)"
	if ((s_rx2 - s_rx >= K && s_tx2 - s_tx >= K)); then syn_ok=$((syn_ok + 1))
	else cycle_fail "cycle $c: hn0h did not carry the replies (rx +$((s_rx2 - s_rx)) tx +$((s_tx2 - s_tx)))"; fi
	client_alive || { cycle_fail "cycle $c: TCP client ended after the departure"; break; }

	# -- return: vf0 back, run joins it, then the host switches to it.
	B_RET[c]=$(rounds)
	rig_vf_add
	if ! pw active vf0 10; then cycle_fail "cycle $c: returned vf0 not joined ($PW_ANSWER)"; break; fi
	B_SW[c]=$(rounds)
	rig_host_switch vf
	r=$(rounds)
	if ! wait_until 10 "cycle $c: $((2 * K)) replies through the returned VF" rounds_ge $((r + 2 * K)); then
		note "client: $(rig__short "$(tail -n 3 "$RIG_TMP/client.err")")"
		break
	fi
	read -r v_rx v_tx <<<"$(host_pkts vf0h)" # a new vf0h: its counters began at 0
	if ((v_rx >= K && v_tx >= K)); then vf_ok=$((vf_ok + 1))
	else cycle_fail "cycle $c: the new vf0h did not carry the replies (rx $v_rx tx $v_tx)"; fi
	client_alive || { cycle_fail "cycle $c: TCP client ended after the return"; break; }
	done_cycles=$c
	if ((c % 25 == 0)); then note "cycle $c: $(rounds) replies, $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"; fi
	if (($(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", b - a }') > LOOP_MAX)); then
		fail "time bound: only $c of $CYCLES cycles within ${LOOP_MAX}s"
		break
	fi
done
elapsed=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
assert_eq "all $CYCLES planned departure/return cycles done" "$done_cycles" "$CYCLES"
assert_eq "every cycle: the connection went on over the synthetic path (hn0h both ways)" "$syn_ok" "$CYCLES"
assert_eq "every cycle: the connection went on through the returned VF (vf0h both ways)" "$vf_ok" "$CYCLES"

touch "$RIG_TMP/stop"
rc=0
rig_wait_pid "$CLIENT_PID" 60 || rc=$?
out=$(grep '^rounds' "$RIG_TMP/client.out" || echo "no summary")
read -r _ rounds _ after _ resets _ mism _ gap _ gap_round _ conns <<<"$out" || true
assert_eq "the client ended well (stop file seen, 0 resets, every reply matched): $out" "$rc" 0
assert_eq "resets of the connection" "${resets:-?}" 0
assert_eq "replies that did not match their request" "${mism:-?}" 0
assert_eq "connections the client opened" "${conns:-?}" 1
assert_ge "still echoing after the last cycle: replies after it" "${after:-0}" 50
# Where the longest stall fell: the last boundary before its round.
where="before the first cycle"
for ((c = 1; c <= done_cycles; c++)); do
	((gap_round >= B_DEP[c])) && where="cycle $c, after the departure (host to synthetic, vf0 deleted)"
	((gap_round >= B_RET[c])) && where="cycle $c, after vf0 returned (joined, host still on synthetic)"
	((gap_round >= B_SW[c])) && where="cycle $c, after the host switched to the VF"
done
note "$done_cycles cycles in ${elapsed} s ($(awk -v e="$elapsed" -v n="$((done_cycles > 0 ? done_cycles : 1))" 'BEGIN { printf "%.0f", e * 1000 / n }') ms per cycle); ${rounds:-?} replies in all"
note "longest stall: ${gap:-?} ms between two consecutive replies (reply $gap_round: $where)"
nlong=$(grep -c 'since the previous reply' "$RIG_TMP/client.err" || true)
note "stalls over 100 ms (a segment lost, resent after the RTO): $nlong in $done_cycles cycles$( ((nlong == 0)) || echo ", longest: $(grep 'since the previous reply' "$RIG_TMP/client.err" | sort -t: -k3 -n | tail -n 3 | cut -d: -f2- | tr '\n' '|')")"
assert_le "longest stall below the sanity bound ($STALL_BOUND_MS ms)" "${gap:-99999}" "$STALL_BOUND_MS"
grep -v 'since the previous reply' "$RIG_TMP/client.err" | head -n 5 | sed 's/^/  client: /' || true

rig_wait_pid "$ECHO_PID" $((LOOP_MAX + 100)) || true
assert_eq "the echo server (bound to hn0) served exactly one connection" "$(cut -d' ' -f1 "$RIG_TMP/echo.out")" 1
assert_eq "dump: switches = 2 per cycle" "$(($(rig_dump_get "$P.switches") - switches0))" $((2 * CYCLES))
assert_eq "log: one join per return (+ the first)" "$(grep -c "joined: datapath vf" "$RUN_LOG" || true)" $((CYCLES + 1))
assert_eq "log: never held down" "$(grep -c "held-down" "$RUN_LOG" || true)" 0

exec {PW_IN}>&-
rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
run_assert_no_error "no error in the run log"

rig_finish
