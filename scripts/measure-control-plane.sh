#!/usr/bin/env bash
# measure-control-plane.sh - issue "Transparent mode control plane" measurements:
#   * reaction time from the kernel's link notification to the datapath map
#     update, p50/p99 over N VF departures (read from run's own log lines,
#     which time notification receipt -> leave done; and from outside: the
#     time from `ip link del` returning to `dump` showing datapath synthetic
#     is not used: dump's own start-up dominates it);
#   * control-plane CPU while idle for S seconds with a pair joined (utime+stime from /proc);
#   * resident memory (VmRSS, VmHWM).
# Usage: sudo scripts/measure-control-plane.sh [--departures N] [--idle-seconds S]
set -Eeuo pipefail
N=100
IDLE=60
while [ $# -gt 0 ]; do
    case "$1" in
        --departures) N="$2"; shift 2 ;;
        --idle-seconds) IDLE="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "measure-control-plane.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
REPO="$(cd "$(dirname "$0")/.." && pwd)"
HNXDP="${HNXDP:-$REPO/.build/debug/hnxdp}"
[ -x "$HNXDP" ] || { echo "measure-control-plane.sh: $HNXDP not built (swift build)" >&2; exit 1; }
ID="hnxmcp-$$"
G="$ID-g"; H="$ID-h"
LOG="$(mktemp)"
RUN_PID=""
cleanup() {
    [ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null || true
    nsenter --net=/run/netns/$G "$HNXDP" detach --all >/dev/null 2>&1 || true
    ip netns del "$G" 2>/dev/null || true
    ip netns del "$H" 2>/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT
MAC=02:00:5e:aa:00:01
ip netns add "$G"; ip netns add "$H"
ip -n "$G" link add hn0 address $MAC type veth peer name hn0h netns "$H"
ip -n "$H" link set hn0h up; ip -n "$G" link set hn0 up
nsenter --net=/run/netns/$G "$HNXDP" run --synthetic hn0 --settle-ms 0 --hold-down-ms 1 --flap-threshold 1000 >"$LOG" 2>&1 &
RUN_PID=$!
wait_state() { # state timeout-seconds
    local end=$((SECONDS + $2))
    while [ $SECONDS -le $end ]; do
        if nsenter --net=/run/netns/$G "$HNXDP" dump --json | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if d['pairs'] and d['pairs'][0]['state']=='$1' else 1)"; then return 0; fi
        sleep 0.02
    done
    echo "timeout waiting for state $1" >&2; tail -5 "$LOG" >&2; return 1
}
wait_state idle 10
for i in $(seq 1 "$N"); do
    ip -n "$G" link add vf0 address $MAC type veth peer name vf0h netns "$H"
    ip -n "$H" link set vf0h up
    wait_state active 10
    ip -n "$G" link del vf0
    wait_state idle 10
done
python3 - "$LOG" "$N" <<'PY'
import re, sys
vals = [int(m.group(1)) for m in re.finditer(r"reaction (\d+) us", open(sys.argv[1]).read())]
if len(vals) < int(sys.argv[2]):
    sys.exit(f"only {len(vals)} reaction lines for {sys.argv[2]} departures")
vals.sort()
p = lambda q: vals[min(len(vals) - 1, int(round(q * (len(vals) - 1))))]
print(f"departures: {len(vals)}; reaction notification -> datapath map updated: p50 {p(0.5)/1000:.2f} ms, p99 {p(0.99)/1000:.2f} ms, max {vals[-1]/1000:.2f} ms")
PY
# Idle with a joined pair: the worst case (the multicast list is compared
# every 80 ms while a pair is joined; nothing else wakes the control plane).
ip -n "$G" link add vf0 address $MAC type veth peer name vf0h netns "$H"
ip -n "$H" link set vf0h up
wait_state active 10
sleep 1
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$RUN_PID/stat"; }
C0=$(cpu); T0=$(date +%s.%N)
sleep "$IDLE"
C1=$(cpu); T1=$(date +%s.%N)
python3 -c "print(f'idle CPU (one pair joined) over {float($T1)-float($T0):.1f} s: {($C1-$C0)/$TICK:.3f} s of CPU = {100*($C1-$C0)/$TICK/(float($T1)-float($T0)):.3f} %')"
grep -E "VmRSS|VmHWM" "/proc/$RUN_PID/status" | tr -s ' \t' ' '
