#!/usr/bin/env bash
# 98-run-notify: `hnxdp run` speaks systemd's notify protocol (issue 12;
# hnxdp.service is Type=notify with WatchdogSec). A python listener
# (tools/notify_listen.py) plays the service manager's NOTIFY_SOCKET:
#   1. run --config FILE with NOTIFY_SOCKET (a path) and WATCHDOG_USEC=2000000:
#      READY=1 (with a STATUS= line) by the time "control plane running" is
#      logged, and nothing else before it but WATCHDOG=1.
#   2. WATCHDOG=1 every WATCHDOG_USEC/2: at least 2 within 3 s, no gap above 1.5 s.
#   3. SIGHUP: RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, within 2 s of
#      its receipt), then READY=1 whose STATUS says the joined pair.
#   4. SIGTERM: STOPPING=1, run exits 0, no error line.
#   5. An abstract NOTIFY_SOCKET (@name; abstract sockets belong to a network
#      namespace, so the listener runs in the guest's): READY=1 and STOPPING=1;
#      without WATCHDOG_USEC, no WATCHDOG=1.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

P='pairs[synthetic.name=hn0]'
NLOG=""
count() { grep -c -- "$1" "$NLOG" 2>/dev/null || true; } # FIELD-REGEX -> number of datagrams
count_ge() { (($(count "$1") >= $2)); }
# Start a listener on ADDRESS writing to $NLOG; PREFIX... runs it (e.g. nsenter).
listen() { # VAR ADDRESS LOG [PREFIX...]
	local __var=$1 address=$2 ready="$RIG_TMP/notify-ready.$RANDOM"
	NLOG=$3
	shift 3
	: >"$NLOG"
	rig_bg "$__var" "$@" "$RIG_PY" "$RIG_TOOLS/notify_listen.py" --address "$address" --log "$NLOG" --ready-file "$ready"
	rig_wait_file "$ready" 10 || fatal "notify_listen.py did not bind $address"
}

rig_begin
rig_create
CONF="$RIG_TMP/run.conf"
printf '%s\n' "synthetic = hn0" "settle-ms = 0" >"$CONF"

# ---- 1. READY=1 after the start-up resync.
SOCK="$RIG_TMP/notify.sock"
listen LISTENER "$SOCK" "$RIG_TMP/notify.log"
export NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=2000000
run_start RUN --config "$CONF"
unset NOTIFY_SOCKET WATCHDOG_USEC
wait_until 5 "READY=1 from run" count_ge '^[0-9]* READY=1' 1 && pass "READY=1 once the control plane runs"
first=$(grep -m 1 -v ' WATCHDOG=1$' "$NLOG" || true)
assert_contains "the first message but watchdog pings is READY=1" "$first" " READY=1|STATUS=managing 1 synthetic(s)"
run_wait_dump 15 "pair hn0 active with vf0" "p and p['state'] == 'active'" || true

# ---- 2. watchdog pings at half of WATCHDOG_USEC.
before=$(count ' WATCHDOG=1$')
sleep 3
after=$(count ' WATCHDOG=1$')
assert_ge "WATCHDOG=1 pings within 3 s (WATCHDOG_USEC=2000000)" "$((after - before))" 2
gap=$(grep ' WATCHDOG=1$' "$NLOG" | awk 'NR > 1 { d = $1 - p; if (d > m) m = d } { p = $1 } END { print int(m / 1000) }')
assert_le "largest gap between WATCHDOG=1 pings (ms)" "$gap" 1500
note "watchdog pings so far: $after, largest gap ${gap} ms"

# ---- 3. SIGHUP: RELOADING=1 + MONOTONIC_USEC, then READY=1.
readies=$(count ' READY=1')
kill -HUP "$RUN"
wait_until 10 "READY=1 after the reload" count_ge ' READY=1' "$((readies + 1))" || true
order=$(grep -v ' WATCHDOG=1$' "$NLOG" | awk '{ sub(/^[0-9]+ /, ""); split($0, f, "|"); print f[1] }' | tr '\n' ' ')
assert_eq "message order (but watchdog pings)" "$order" "READY=1 RELOADING=1 READY=1 "
reloading=$(grep -m 1 ' RELOADING=1' "$NLOG" || true)
if [[ "$reloading" =~ ^([0-9]+)\ RELOADING=1\|MONOTONIC_USEC=([0-9]+) ]]; then
	skew=$((BASH_REMATCH[1] - BASH_REMATCH[2]))
	((skew < 0)) && skew=$((-skew))
	assert_le "MONOTONIC_USEC is CLOCK_MONOTONIC when the reload began (skew us)" "$skew" 2000000
else
	fail "RELOADING=1 should carry MONOTONIC_USEC, got '$reloading'"
fi
last_ready=$(grep ' READY=1' "$NLOG" | tail -n 1)
assert_contains "READY=1 after the reload says the joined pair" "$last_ready" "STATUS=managing 1 synthetic(s), 1 pair(s) joined"
if run_log_has "SIGHUP: reloaded"; then pass "run logged the reload"; else fail "run did not log the reload"; fi

# ---- 4. SIGTERM: STOPPING=1.
rc=0
run_stop "$RUN" || rc=$?
assert_eq "SIGTERM: run exits 0" "$rc" 0
wait_until 5 "STOPPING=1" count_ge ' STOPPING=1' 1 && pass "STOPPING=1 on SIGTERM"
tail_msg=$(grep -v ' WATCHDOG=1$' "$NLOG" | tail -n 1)
assert_contains "STOPPING=1 is the last message" "$tail_msg" " STOPPING=1|STATUS=stopping on signal 15"
run_assert_no_error "path NOTIFY_SOCKET run"
kill "$LISTENER" 2>/dev/null || true

# ---- 5. abstract address, listener in the guest's network namespace; no watchdog.
ABSTRACT="@hnxdp-notify-$RIG_ID"
listen LISTENER2 "$ABSTRACT" "$RIG_TMP/notify-abstract.log" nsenter --net="/run/netns/$RIG_GUEST" --
export NOTIFY_SOCKET=$ABSTRACT
run_start RUN --config "$CONF"
unset NOTIFY_SOCKET
wait_until 5 "READY=1 over the abstract socket" count_ge ' READY=1' 1 && pass "READY=1 over an abstract NOTIFY_SOCKET"
rc=0
run_stop "$RUN" || rc=$?
assert_eq "SIGTERM: run exits 0 (abstract)" "$rc" 0
wait_until 5 "STOPPING=1 over the abstract socket" count_ge ' STOPPING=1' 1 && pass "STOPPING=1 over an abstract NOTIFY_SOCKET"
assert_eq "no WATCHDOG=1 without WATCHDOG_USEC" "$(count ' WATCHDOG=1$')" 0
run_assert_no_error "abstract NOTIFY_SOCKET run"
kill "$LISTENER2" 2>/dev/null || true

rig_finish
