#!/usr/bin/env bash
# 75-run-tcp-continuity: a TCP connection on the synthetic survives three VF
# departure/return cycles handled by `hnxdp run` (B14, B15, B2, B13).
#   The remote opens ONE connection to an echo server bound to hn0
#   (SO_BINDTODEVICE) while vf0 is joined and the host switched to it, and
#   keeps echoing 1000-byte rounds every 20 ms. Three cycles follow, with the
#   host's switch following as a hypervisor would: planned (host to
#   synthetic, then the VF removed), surprise (VF removed, then the host
#   switched), planned. In each, the pair goes idle and the connection's
#   segments arrive on the synthetic path (syn_rx_packets rises); the VF
#   returns, is joined after the settle delay, the host switches back and
#   the segments arrive through the VF again (vf_rx_packets rises). After the
#   third cycle the same connection still echoes 50 more rounds intact.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

PORT=5751
P='pairs[synthetic.name=hn0]'

stat_above() { # NAME BASE DELTA
	local v
	v=$(rig_stat "$1")
	rig__is_int "$v" && (($2 + $3 <= v))
}
client_alive() { kill -0 "$CLIENT_PID" 2>/dev/null; }

rig_begin
rig_create

# Cycles are ~1.5 s apart: with the default hold-down (5 s, 3 departures)
# the third return would be damped (B16, tested in 72); here the point is TCP.
run_start RUN --synthetic hn0 --settle-ms 300 --hold-down-ms 1000
run_wait_dump 15 "pair hn0 active with vf0" \
	"p and p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('name') == 'vf0'" || true
rig_host_switch vf

rig_bg ECHO_PID rig_g "$RIG_PY" "$RIG_TOOLS/tcp_echo.py" --dev hn0 --port "$PORT" --seconds 100 \
	--ready-file "$RIG_TMP/echo-ready" >"$RIG_TMP/echo.out"
rig_wait_file "$RIG_TMP/echo-ready" 10 || fail "TCP echo server on hn0 did not start"
rig_bg CLIENT_PID run_tcp_client --dst "$RIG_G4" --port "$PORT" --stop-file "$RIG_TMP/stop" --after 50 \
	--interval 0.02 --size 1000 --seconds 90 --ready-file "$RIG_TMP/client-ready" >"$RIG_TMP/client.out" 2>&1
rig_wait_file "$RIG_TMP/client-ready" 10 || fail "TCP connection remote -> guest hn0 not established"
vrx=$(rig_stat vf_rx_packets)
wait_until 10 "the connection's segments enter through the VF" stat_above vf_rx_packets "$vrx" 20 || true

modes=(planned surprise planned)
for c in 1 2 3; do
	mode=${modes[$((c - 1))]}
	srx=$(rig_stat syn_rx_packets)
	note "cycle $c: $mode removal of vf0"
	run_vf_del "$mode"
	if run_wait_dump 5 "cycle $c: pair idle after the $mode removal" "p and p['state'] == 'idle' and p['vf'] is None"; then
		pass "cycle $c: pair idle after the $mode removal"
	fi
	if wait_until 10 "cycle $c: segments arrive on the synthetic path" stat_above syn_rx_packets "$srx" 20; then
		pass "cycle $c: the connection goes on over the synthetic path"
	fi
	client_alive || fail "cycle $c: TCP client ended during the departure: $(rig__short "$(cat "$RIG_TMP/client.out")")"

	vrx=$(rig_stat vf_rx_packets)
	rig_vf_add
	if run_wait_dump 10 "cycle $c: returned vf0 joined" \
		"p and p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('name') == 'vf0'"; then
		pass "cycle $c: returned vf0 joined (states seen: $RUN_SEEN)"
	fi
	rig_host_switch vf
	if wait_until 10 "cycle $c: segments enter through the returned VF" stat_above vf_rx_packets "$vrx" 20; then
		pass "cycle $c: the connection goes on through the returned VF"
	fi
	client_alive || fail "cycle $c: TCP client ended during the return: $(rig__short "$(cat "$RIG_TMP/client.out")")"
done

touch "$RIG_TMP/stop"
rc=0
rig_wait_pid "$CLIENT_PID" 60 || rc=$?
out=$(grep '^rounds' "$RIG_TMP/client.out" || echo "no summary: $(rig__short "$(cat "$RIG_TMP/client.out")")")
assert_eq "the connection opened before the first departure echoed intact throughout ($out)" "$rc" 0
read -r _ rounds _ after _ gap <<<"$out" || true
assert_ge "still open and echoing after three cycles: rounds after the last return" "${after:-0}" 50
note "longest pause between two echoed rounds: ${gap:-?} ms (surprise removal: retransmission)"
rig_wait_pid "$ECHO_PID" 110 || true
assert_eq "the echo server (bound to hn0) served exactly one connection" "$(cut -d' ' -f1 "$RIG_TMP/echo.out")" 1
assert_eq "dump: switches = initial join + 3 departures + 3 returns" "$(rig_dump_get "$P.switches")" 7

rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
run_assert_no_error "no error in the run log"

rig_finish
