#!/usr/bin/env bash
# 88-metrics: Prometheus metrics of `hnxdp run` (docs/metrics.md).
#   1. Bad values are refused before anything changes: a non-loopback
#      --metrics-listen (and the same in --config), a textfile path that is not
#      an absolute .prom file (exit 2); a port another program listens on, a
#      directory that takes no file (exit 1). One stderr line each; devices,
#      pins and links as before; no textfile.
#   2. `run` with two pairs (hn0/vf0, hn1/vf1), --metrics-listen and
#      --metrics-textfile: both expositions pass `promtool check metrics`;
#      build info carries `hnxdp --version`; both pairs are active (one-hot
#      state) with a join-duration histogram each; / is 404, POST is 405.
#   3. N UDP datagrams from the remote through vf0: hn0's VF receive counter
#      rose by at least N (and agrees with `dump --json`), hn0's synthetic
#      receive counter did not take them, hn1's receive counters did not move;
#      the textfile catches up within its 5 s period.
#   4. vf1 deleted: hn1 idle, switches +1, one departure-reaction observation.
#   5. SIGTERM removes the textfile; a new run (on [::1] this time) serves
#      hn0's counters where they were (they live in the pinned maps).
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

N=200
PORT=9469 # inside the rig's guest namespace: no other program's port space
command -v promtool >/dev/null || fatal "promtool missing (Debian package prometheus; scripts/install-deps.sh installs it)"

rig_begin
rig_create
run_pair_add 1
mkdir "$RIG_TMP/prom"
TEXTFILE="$RIG_TMP/prom/hnxdp.prom"

# GET (or METHOD) http://$HOST:$PORT$PATH in the guest: "STATUS" on line 1, then the body.
HOST=127.0.0.1
http() { # PATH [METHOD]
	rig_g "$RIG_PY" - "$HOST" "$PORT" "$1" "${2:-GET}" <<'EOF'
import sys, urllib.request, urllib.error
host, port, path, method = sys.argv[1:5]
req = urllib.request.Request(f"http://{host}:{port}{path}", method=method, data=b"" if method == "POST" else None)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
EOF
}
scrape() { http /metrics | tail -n +2; }
# The value of one series (exact name and labels) in an exposition on stdin; "missing" when absent.
sample() { # SERIES
	awk -v s="$1" 'index($0, s " ") == 1 { v = substr($0, length(s) + 2) } END { print (v == "" ? "missing" : v) }'
}
promtool_ok() { # DESC FILE
	local out rc=0
	out=$(promtool check metrics <"$2" 2>&1) || rc=$?
	if [[ $rc == 0 ]]; then pass "$1: promtool check metrics passes"; else fail "$1: promtool check metrics exit $rc: $(rig__short "$out")"; fi
}

# ---- 1. bad values: refused, nothing changed.
rig_snapshot "$RIG_TMP/before" hn0 vf0 hn1 vf1
refused() { # DESC CODE CMD...
	local d=$1 code=$2
	shift 2
	rig_try "$@"
	assert_eq "$d: exit $code" "$RIG_RC" "$code"
	assert_one_stderr_line "$d"
	rig_snapshot "$RIG_TMP/after" hn0 vf0 hn1 vf1
	assert_files_equal "$d: devices, pins and links unchanged" "$RIG_TMP/before" "$RIG_TMP/after"
	assert_eq "$d: no textfile" "$(ls -A "$RIG_TMP/prom")" ""
}
refused "--metrics-listen 0.0.0.0:$PORT" 2 hnxdp_g run --synthetic hn0 --settle-ms 0 --metrics-listen "0.0.0.0:$PORT"
assert_contains "non-loopback refusal says why" "$RIG_ERR" "not a loopback address"
refused "--metrics-listen [fd00::1]:$PORT" 2 hnxdp_g run --synthetic hn0 --settle-ms 0 --metrics-listen "[fd00::1]:$PORT"
refused "--metrics-listen 127.0.0.1:0" 2 hnxdp_g run --synthetic hn0 --settle-ms 0 --metrics-listen 127.0.0.1:0
refused "--metrics-textfile relative.prom" 2 hnxdp_g run --synthetic hn0 --settle-ms 0 --metrics-textfile relative.prom
refused "--metrics-textfile not .prom" 2 hnxdp_g run --synthetic hn0 --settle-ms 0 --metrics-textfile "$RIG_TMP/prom/hnxdp.txt"
refused "--metrics-textfile in a missing directory" 2 hnxdp_g run --synthetic hn0 --settle-ms 0 --metrics-textfile "$RIG_TMP/nodir/hnxdp.prom"
printf 'synthetic = hn0\nmetrics-listen = 198.18.0.1:%s\n' "$PORT" >"$RIG_TMP/bad.conf"
refused "metrics-listen = 198.18.0.1 in --config" 2 hnxdp_g run --config "$RIG_TMP/bad.conf"
assert_contains "config refusal names the line" "$RIG_ERR" "line 2"

# A port another program listens on (a python listener in the guest, stopped below).
rig_bg holder rig_g "$RIG_PY" -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $PORT)); s.listen(1)
open('$RIG_TMP/holder-ready', 'w').close()
time.sleep(60)"
rig_wait_file "$RIG_TMP/holder-ready" 10 || fail "port holder did not start"
refused "--metrics-listen on a port in use" 1 hnxdp_g run --synthetic hn0 --settle-ms 0 --metrics-listen "127.0.0.1:$PORT"
assert_contains "port in use says so" "$RIG_ERR" "in use"
rig__kill_tree "$holder"
rig_wait_pid "$holder" 10 || true

# A directory that takes no file (immutable; root is refused too). Made mutable at once again.
mkdir "$RIG_TMP/ro"
chattr +i "$RIG_TMP/ro"
rig_try hnxdp_g run --synthetic hn0 --settle-ms 0 --metrics-textfile "$RIG_TMP/ro/hnxdp.prom"
chattr -i "$RIG_TMP/ro"
assert_eq "unwritable textfile directory: exit 1" "$RIG_RC" 1
assert_one_stderr_line "unwritable textfile directory"
rig_snapshot "$RIG_TMP/after" hn0 vf0 hn1 vf1
assert_files_equal "unwritable textfile directory: devices, pins and links unchanged" "$RIG_TMP/before" "$RIG_TMP/after"
assert_eq "unwritable textfile directory: nothing left in it" "$(ls -A "$RIG_TMP/ro")" ""

# ---- 2. two pairs, metrics on.
run_start RUN --synthetic hn0 --synthetic hn1 --settle-ms 0 --metrics-listen "127.0.0.1:$PORT" --metrics-textfile "$TEXTFILE"
cond="len(d['pairs']) == 2 and all(p['state'] == 'active' and p['vf'] for p in d['pairs'])"
run_wait_dump 20 "both pairs active" "$cond" || true
scrape >"$RIG_TMP/m0"
promtool_ok "HTTP /metrics with two pairs" "$RIG_TMP/m0"
version=$("$HNXDP" --version)
version=${version#hnxdp }
assert_eq "build info carries the version" "$(sample "hnxdp_build_info{version=\"$version\"}" <"$RIG_TMP/m0")" 1.0
assert_eq "two pairs" "$(sample hnxdp_pairs <"$RIG_TMP/m0")" 2.0
for k in 0 1; do
	assert_eq "hn$k active (one-hot)" "$(grep -c "^hnxdp_pair_state{synthetic=\"hn$k\",.*} 1.0$" "$RIG_TMP/m0"):$(sample "hnxdp_pair_state{synthetic=\"hn$k\",state=\"active\"}" <"$RIG_TMP/m0")" 1:1.0
	assert_eq "hn$k's VF is vf$k" "$(grep -c "^hnxdp_pair_info{synthetic=\"hn$k\",ifindex=\"[0-9]*\",vf=\"vf$k\"} 1.0$" "$RIG_TMP/m0")" 1
	assert_ge "hn$k: one join observed" "$(sample "hnxdp_join_duration_seconds_count{synthetic=\"hn$k\"}" <"$RIG_TMP/m0")" 1
done
wait_until 10 "textfile written" test -s "$TEXTFILE" || true
promtool_ok "textfile with two pairs" "$TEXTFILE"
assert_eq "/ is 404" "$(http / | head -n 1)" 404
assert_eq "POST /metrics is 405" "$(http /metrics POST | head -n 1)" 405
assert_eq "listening on loopback only" "$(rig_g ss -Hltn "sport = :$PORT" | awk '{print $4}')" "127.0.0.1:$PORT"

# ---- 3. traffic through vf0 only.
s() { sample "$1{synthetic=\"$2\"}" <"$3"; }
# n NAME SYN FILE: the integer value of a counter; a FAIL line and -1000000 when it is not one.
n() {
	local v
	v=$(s "$@")
	if [[ ! "$v" =~ ^[0-9]+$ ]]; then
		fail "$1{synthetic=\"$2\"} in $(basename "$3") is not an integer: $v"
		v=-1000000
	fi
	N_VALUE=$v
}
delta() { # NAME SYN -> N_VALUE = m2 - m1
	local a
	n "$1" "$2" "$RIG_TMP/m1"
	a=$N_VALUE
	n "$1" "$2" "$RIG_TMP/m2"
	N_VALUE=$((N_VALUE - a))
}
rig_host_switch vf
scrape >"$RIG_TMP/m1"
rig_count_udp "metrics" 9100 "$N"
scrape >"$RIG_TMP/m2"
delta hnxdp_vf_rx_packets_total hn0
vf0=$N_VALUE
delta hnxdp_synthetic_rx_packets_total hn0
syn0=$N_VALUE
note "hn0: vf rx +$vf0, synthetic rx +$syn0 for $N datagrams sent"
assert_ge "hn0 hnxdp_vf_rx_packets_total rose by at least $N" "$vf0" "$N"
delta hnxdp_vf_rx_bytes_total hn0
assert_ge "hn0 hnxdp_vf_rx_bytes_total rose by at least $N x 28" "$N_VALUE" $((N * 28))
assert_le "hn0 hnxdp_synthetic_rx_packets_total did not take them" "$syn0" $((N / 10))
for c in hnxdp_vf_rx_packets_total hnxdp_vf_rx_bytes_total hnxdp_synthetic_rx_packets_total hnxdp_synthetic_rx_bytes_total; do
	delta "$c" hn1
	assert_eq "hn1 $c unchanged" "$N_VALUE" 0
done
# The scrape reads the same map as dump: bracketed by two dump reads (a frame of
# the neighbours' own traffic may arrive between any two reads), it lies between them.
before_dump=$(rig_stat vf_rx_packets hn0)
scrape >"$RIG_TMP/m2b"
after_dump=$(rig_stat vf_rx_packets hn0)
m2b=$(s hnxdp_vf_rx_packets_total hn0 "$RIG_TMP/m2b")
assert_ge "hn0's VF receive counter agrees with dump --json (not below the dump before it)" "${m2b%.*}" "$before_dump"
assert_le "hn0's VF receive counter agrees with dump --json (not above the dump after it)" "${m2b%.*}" "$after_dump"
promtool_ok "HTTP /metrics after traffic" "$RIG_TMP/m2"
n hnxdp_vf_rx_packets_total hn0 "$RIG_TMP/m1"
target=$((N_VALUE + N))
textfile_caught_up() {
	local v
	v=$(s hnxdp_vf_rx_packets_total hn0 "$TEXTFILE")
	[[ "$v" =~ ^[0-9]+$ ]] && ((v >= target))
}
wait_until 12 "textfile shows the datagrams" textfile_caught_up && pass "textfile caught up within its period"

# ---- 4. vf1 leaves.
n hnxdp_switches_total hn1 "$RIG_TMP/m2"
sw=$N_VALUE
run_vfk_del 1
run_wait_dump 10 "hn1 idle" "p and p['state'] == 'idle'" hn1 || true
scrape >"$RIG_TMP/m3"
assert_eq "hn1 idle (one-hot)" "$(sample 'hnxdp_pair_state{synthetic="hn1",state="idle"}' <"$RIG_TMP/m3"):$(sample 'hnxdp_pair_state{synthetic="hn1",state="active"}' <"$RIG_TMP/m3")" 1.0:0.0
assert_eq "hn1 switches +1" "$(s hnxdp_switches_total hn1 "$RIG_TMP/m3")" $((sw + 1))
assert_eq "hn1: one departure reaction observed" "$(s hnxdp_departure_reaction_seconds_count hn1 "$RIG_TMP/m3")" 1
assert_eq "hn0: no departure observed" "$(s hnxdp_departure_reaction_seconds_count hn0 "$RIG_TMP/m3")" missing
assert_eq "hn1's pair info has no VF" "$(grep -c '^hnxdp_pair_info{synthetic="hn1",ifindex="[0-9]*",vf=""} 1.0$' "$RIG_TMP/m3")" 1
promtool_ok "HTTP /metrics after a departure" "$RIG_TMP/m3"
run_assert_no_error "no error in run's log"

# ---- 5. restart: the counters carry on.
rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
assert_eq "textfile removed on exit" "$(test -e "$TEXTFILE" && echo present || echo absent)" absent
HOST="[::1]"
run_start RUN --synthetic hn0 --synthetic hn1 --settle-ms 0 --metrics-listen "$HOST:$PORT"
scrape >"$RIG_TMP/m4"
assert_eq "the second run listens on [::1] only" "$(rig_g ss -Hltn "sport = :$PORT" | awk '{print $4}')" "[::1]:$PORT"
n hnxdp_vf_rx_packets_total hn0 "$RIG_TMP/m2"
before=$N_VALUE
n hnxdp_vf_rx_packets_total hn0 "$RIG_TMP/m4"
assert_ge "hn0 vf rx after a restart (pinned counters, $before before)" "$N_VALUE" "$before"
assert_eq "hn1 switches after a restart" "$(s hnxdp_switches_total hn1 "$RIG_TMP/m4")" $((sw + 1))
promtool_ok "HTTP /metrics after a restart" "$RIG_TMP/m4"
rc=0
run_stop "$RUN" || rc=$?
assert_eq "second run exits 0 on SIGTERM" "$rc" 0
rig_try hnxdp_g detach --all
assert_eq "detach --all" "$RIG_RC" 0

rig_finish
