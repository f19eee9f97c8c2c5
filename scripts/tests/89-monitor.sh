#!/usr/bin/env bash
# 89-monitor: `hnxdp monitor` on a real terminal (tmux), its JSON lines,
# `attach`/`detach --json` and errors as JSON, and the switch history.
#   1. attach --json / detach --json print one JSON object; their errors
#      (bad device, usage) are one JSON object on stderr with the exit code.
#   2. monitor --json --count 3: three lines that parse, with rates.
#   3. monitor in a detached tmux session (fixed size) while the remote sends a
#      paced UDP load through the VF: the vf rx pkt/s and B/s it shows agree
#      with the counters' growth over the real time (within 10 %); after a
#      resize the view still renders within the new width; `q` exits, leaves
#      the alternate screen, and the terminal mode (stty -g) is as before;
#      Ctrl-C does the same.
#   4. Under `hnxdp run`: a VF departure and return show in dump's switch
#      history (to-vf joined, to-synthetic departed, to-vf joined), the
#      history survives a restart of run, monitor --json names the last
#      switch's reason; flapping adds held-down and hold-down-ended; detach
#      --json removes the pair and every state file.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

RATE=400    # datagrams per second, remote -> guest through the VF
LOAD_S=14   # seconds of load
PORT=5389
STATE_DIR=${HNXDP_STATE_DIR:-/run/hnxdp}

# One value of JSON on stdin ("missing" when absent, "unparsable" when not JSON).
jget() { rig_json --default missing "$1" 2>/dev/null || echo unparsable; }

rig_begin
rig_require_tools tmux stty
rig_create

# ---- 1. attach/detach --json and JSON errors.
rig_try hnxdp_g attach --synthetic hn0 --vf vf0 --json
assert_eq "attach --json exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "attach --json: result" "$(jget result <<<"$RIG_OUT")" attached
assert_eq "attach --json: synthetic" "$(jget synthetic.name <<<"$RIG_OUT")" hn0
assert_eq "attach --json: vf" "$(jget vf.name <<<"$RIG_OUT")" vf0
assert_eq "attach --json: datapath" "$(jget datapath <<<"$RIG_OUT")" vf
assert_eq "attach --json: mtu is the synthetic's" "$(jget mtu <<<"$RIG_OUT")" "$(run_link_field hn0 mtu)"
assert_eq "attach --json: one line" "$(wc -l <<<"$RIG_OUT")" 1
rig_try hnxdp_g attach --synthetic hn0 --vf vf0 --json
assert_eq "attach --json again: already-attached" "$(jget result <<<"$RIG_OUT")" already-attached
rig_host_switch vf

json_error() { # DESC EXPECTED_RC NEEDLE: the last rig_try failed with one JSON line on stderr
	assert_eq "$1: exit $2" "$RIG_RC" "$2"
	assert_eq "$1: nothing on stdout" "$RIG_OUT" ""
	assert_one_stderr_line "$1"
	assert_eq "$1: stderr is JSON with exit_code $2 ($RIG_ERR)" "$(jget exit_code <<<"$RIG_ERR")" "$2"
	assert_contains "$1: error names the problem" "$(jget error <<<"$RIG_ERR")" "$3"
}
rig_try hnxdp_g attach --synthetic hn0 --vf nosuch0 --json
json_error "attach --json with an unknown VF" 2 nosuch0
rig_try hnxdp_g attach --synthetic hn0 --json
json_error "attach --json without --vf (usage)" 2 "--vf"
rig_try hnxdp_g detach --synthetic vf0 --json
json_error "detach --json of a device that is not attached" 2 vf0
rig_try hnxdp_g monitor --json --interval 0
json_error "monitor --json --interval 0" 2 "--interval"
rig_try hnxdp_g monitor --count 1
assert_eq "monitor without a terminal and without --json exits 2" "$RIG_RC" 2
assert_one_stderr_line "monitor without a terminal"
assert_contains "monitor without a terminal suggests --json" "$RIG_ERR" "--json"

# ---- 2. monitor --json --count 3.
rig_try hnxdp_g monitor --json --count 3 --interval 0.3
assert_eq "monitor --json --count 3 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "monitor --json --count 3: three lines" "$(wc -l <<<"$RIG_OUT")" 3
n=0
while IFS= read -r line; do
	n=$((n + 1))
	assert_eq "monitor line $n: schema_version" "$(jget schema_version <<<"$line")" 1
	assert_eq "monitor line $n: the pair hn0" "$(jget 'pairs[0].synthetic.name' <<<"$line")" hn0
	assert_eq "monitor line $n: datapath vf" "$(jget 'pairs[0].datapath' <<<"$line")" vf
	r=$(jget 'pairs[0].rates.vf_rx_pps' <<<"$line")
	[[ $r =~ ^[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$ ]] && pass "monitor line $n: rates.vf_rx_pps is a number ($r)" \
		|| fail "monitor line $n: rates.vf_rx_pps is a number: '$r'"
	e=$(jget 'pairs[0].elapsed_s' <<<"$line")
	awk -v e="$e" 'BEGIN { exit !(e >= 0.25 && e <= 2) }' && pass "monitor line $n: elapsed_s $e is about the interval" \
		|| fail "monitor line $n: elapsed_s $e is about the interval (0.3)"
done <<<"$RIG_OUT"

# ---- 3. the live view in tmux under a known load.
TMUX_SOCK="$RIG_TMP/tmux.sock"
tm() { tmux -S "$TMUX_SOCK" "$@"; }
pane() { tm capture-pane -p -t mon; }
tm new-session -d -s mon -x 100 -y 30 "env -i PATH=$PATH TERM=screen HOME=$RIG_TMP bash --norc --noprofile"
tmux_pid=$(tm display-message -p '#{pid}')
RIG_BG_PIDS+=("$tmux_pid")
MON="timeout --foreground -k 5 120 nsenter --net=/run/netns/$RIG_GUEST -- $HNXDP monitor"
tm send-keys -t mon "stty -g >$RIG_TMP/stty-before; $MON; echo \$? >$RIG_TMP/rc-q; stty -g >$RIG_TMP/stty-after; stty -a >$RIG_TMP/stty-a" Enter
wait_until 15 "monitor draws its view in the pane" sh -c "tmux -S '$TMUX_SOCK' capture-pane -p -t mon | grep -q 'rx pkt/s'"

rm -f "$RIG_TMP/ready-$PORT"
N=$((RATE * LOAD_S))
rig_bg sink_pid rig_g "$RIG_PY" "$RIG_TOOLS/udp_sink.py" --dev hn0 --port "$PORT" --seconds $((LOAD_S + 10)) \
	--expect "$N" --ready-file "$RIG_TMP/ready-$PORT" >"$RIG_TMP/sink"
rig_wait_file "$RIG_TMP/ready-$PORT" 10 || fail "UDP sink in the guest did not start"
rig_bg send_pid rig_r "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$RIG_G4" --port "$PORT" --count "$N" --rate "$RATE" \
	--seconds $((LOAD_S + 10)) >"$RIG_TMP/sent"

# The vf row's rx pkt/s and rx B/s as shown: "  vf   <rx pkt/s> <rx B/s> <tx pkt/s> <tx B/s>".
shown() { pane | awk '$1 == "vf" && NF == 5 { print $2, $3; exit }'; }
to_number() { awk -v s="$1" 'BEGIN { m = 1; u = substr(s, length(s)); if (u == "k") m = 1e3; else if (u == "M") m = 1e6; else if (u == "G") m = 1e9; if (m > 1) s = substr(s, 1, length(s) - 1); printf "%.3f\n", s * m }'; }
rate_above() { local s; s=$(shown); [[ -n $s ]] && awk -v v="$(to_number "${s%% *}")" -v r="$RATE" 'BEGIN { exit !(v >= r / 2) }'; }
wait_until 10 "the view shows the load on the vf path" rate_above || true

# Reference: the counters' growth over the real time of the window in which
# the view was captured four times (one refresh apart), read independently of
# hnxdp: bpftool reads the pair's slot of the pinned per-CPU counters map
# (vf_rx_packets and vf_rx_bytes are the first two u64 of struct hnxdp_stats,
# bpf/hnxdp_shared.h), summed over CPUs here, time-stamped at the middle of
# the read (a few ms).
SLOT=$(rig_dump_get 'pairs[synthetic.name=hn0].slot')
counters() { # -> "packets bytes time"
	local a b out
	a=$EPOCHREALTIME
	out=$(bpftool -j map lookup pinned "$RIG_PIN_DIR/hnxdp_stats" key "$SLOT" 0 0 0)
	b=$EPOCHREALTIME
	"$RIG_PY" -c '
import json, sys
v = json.load(sys.stdin)["values"]
u64 = lambda cpu, off: int.from_bytes(bytes(int(h, 16) for h in cpu["value"][off:off + 8]), "little")
print(sum(u64(c, 0) for c in v), sum(u64(c, 8) for c in v), "%.6f" % ((float(sys.argv[1]) + float(sys.argv[2])) / 2))
' "$a" "$b" <<<"$out" || echo "unreadable unreadable $b"
}
read -r p0 b0 t0 <<<"$(counters)"
samples=()
for i in 1 2 3 4; do
	prev=$(pane | grep 'UTC' | head -n 1)
	wait_until 5 "the view refreshed ($i)" sh -c "[ \"\$(tmux -S '$TMUX_SOCK' capture-pane -p -t mon | grep UTC | head -n 1)\" != '$prev' ]" || true
	samples+=("$(shown)")
done
read -r p1 b1 t1 <<<"$(counters)"
kill -0 "$send_pid" 2>/dev/null && pass "the load was still running at the end of the window" \
	|| fail "the load ended inside the measuring window"
ref_pps=$(awk -v a="$p0" -v b="$p1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.1f", (b - a) / (e - s) }')
ref_bps=$(awk -v a="$b0" -v b="$b1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.1f", (b - a) / (e - s) }')
note "counters: $ref_pps pkt/s, $ref_bps B/s over $(awk -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", e - s }') s; shown: ${samples[*]}"
within10() { awk -v v="$1" -v r="$2" 'BEGIN { d = v - r; if (d < 0) d = -d; exit !(r > 0 && d <= r * 0.10) }'; }
for s in "${samples[@]}"; do
	pps=$(to_number "${s%% *}")
	bps=$(to_number "${s##* }")
	within10 "$pps" "$ref_pps" && pass "shown vf rx $pps pkt/s is within 10 % of the counters' $ref_pps" \
		|| fail "shown vf rx $pps pkt/s is within 10 % of the counters' $ref_pps ($(rig__short "$(pane)"))"
	within10 "$bps" "$ref_bps" && pass "shown vf rx $bps B/s is within 10 % of the counters' $ref_bps" \
		|| fail "shown vf rx $bps B/s is within 10 % of the counters' $ref_bps"
done
assert_contains "the view names the pair and its state" "$(pane)" "hn0("
assert_contains "the view shows the datapath" "$(pane)" "datapath vf"

# Resize: the next frame fits the new width and still shows the pair.
tm resize-window -t mon -x 50 -y 12
wide() { pane | awk 'length($0) > 50 { bad = 1 } END { exit bad }'; }
wait_until 5 "after a resize to 50x12 the view fits 50 columns and shows the vf row" \
	sh -c "tmux -S '$TMUX_SOCK' capture-pane -p -t mon | grep -q '^  vf '" || true
assert_contains "the resized view still shows the pair" "$(pane)" "hn0("
wide && pass "no line of the resized view is wider than 50 columns" || fail "resized view wider than 50 columns: $(rig__short "$(pane)")"
assert_le "the resized view fits 12 rows" "$(pane | sed '/^$/d' | wc -l)" 12
tm resize-window -t mon -x 100 -y 30

# q: exits, leaves the alternate screen, terminal mode as before.
tm send-keys -t mon q
wait_until 10 "monitor exited on q (the shell wrote stty -g and stty -a)" test -s "$RIG_TMP/stty-a" || note "pane: $(rig__short "$(pane)")"
assert_eq "monitor exits 0 on q" "$(cat "$RIG_TMP/rc-q" 2>/dev/null)" 0
assert_files_equal "terminal mode after q is as before (stty -g)" "$RIG_TMP/stty-before" "$RIG_TMP/stty-after"
assert_contains "stty -a after q: canonical mode" "$(cat "$RIG_TMP/stty-a" 2>/dev/null)" " icanon"
assert_contains "stty -a after q: echo" "$(cat "$RIG_TMP/stty-a" 2>/dev/null)" " echo "
assert_not_contains "the pane left the alternate screen (no monitor frame left)" "$(pane)" "rx pkt/s"

# Ctrl-C: the same.
rm -f "$RIG_TMP/stty-after"
tm send-keys -t mon "$MON; echo \$? >$RIG_TMP/rc-c; stty -g >$RIG_TMP/stty-after" Enter
wait_until 15 "monitor draws again" sh -c "tmux -S '$TMUX_SOCK' capture-pane -p -t mon | grep -q 'rx pkt/s'" || true
tm send-keys -t mon C-c
wait_until 10 "monitor exited on Ctrl-C" test -s "$RIG_TMP/stty-after" || note "pane: $(rig__short "$(pane)")"
assert_eq "monitor exits 0 on Ctrl-C" "$(cat "$RIG_TMP/rc-c" 2>/dev/null)" 0
assert_files_equal "terminal mode after Ctrl-C is as before (stty -g)" "$RIG_TMP/stty-before" "$RIG_TMP/stty-after"
tm kill-server || true
rig_wait_pid "$send_pid" $((LOAD_S + 15)) || true
rig_wait_pid "$sink_pid" 20 || true

# ---- 4. switch history under run: departure and return.
rig_try hnxdp_g detach --synthetic hn0 --json
assert_eq "detach --json exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "detach --json: result" "$(jget result <<<"$RIG_OUT")" detached
assert_eq "detach --json: the pair" "$(jget 'pairs[0].synthetic.name' <<<"$RIG_OUT")" hn0
assert_eq "detach --json: its VF" "$(jget 'pairs[0].vf.name' <<<"$RIG_OUT")" vf0
assert_eq "detach --json: pins removed" "$(jget pins_removed <<<"$RIG_OUT")" true

run_start RUN --synthetic hn0 --settle-ms 200
run_wait_dump 15 "hn0 active under run" "p and p['state'] == 'active'"
rig_vf_remove_surprise
run_wait_dump 15 "hn0 idle after the departure" "p and p['state'] == 'idle' and p['vf'] is None"
rig_vf_add
rig_host_switch vf
run_wait_dump 15 "hn0 active again after the return" "p and p['state'] == 'active'"
hist() { rig_dump_get "pairs[synthetic.name=hn0].switch_history[$1].$2"; }
assert_eq "dump: 3 switches" "$(rig_dump_get 'pairs[synthetic.name=hn0].switches')" 3
assert_eq "dump: 3 history entries" "$(rig_dump_get 'len:pairs[synthetic.name=hn0].switch_history')" 3
assert_eq "history 1: to-vf joined" "$(hist 0 direction) $(hist 0 reason) $(hist 0 switch)" "to-vf joined 1"
assert_eq "history 2: to-synthetic departed" "$(hist 1 direction) $(hist 1 reason) $(hist 1 switch)" "to-synthetic departed 2"
assert_eq "history 3: to-vf joined" "$(hist 2 direction) $(hist 2 reason) $(hist 2 switch)" "to-vf joined 3"
assert_eq "history 3 names the returned VF" "$(hist 2 vf_ifindex)" "$(rig_ifindex "$RIG_GUEST" vf0)"
assert_eq "history 3's time is last_switch" "$(hist 2 time)" "$(rig_dump_get 'pairs[synthetic.name=hn0].last_switch')"
rig_try hnxdp_g dump
assert_contains "text dump shows the history" "$RIG_OUT" "to-synthetic departed"

rc=0; run_stop "$RUN" || rc=$?
assert_eq "run stops with SIGTERM" "$rc" 0
run_start RUN --synthetic hn0 --settle-ms 200
run_wait_dump 15 "hn0 adopted active" "p and p['state'] == 'active'"
assert_eq "history survives a restart of run" "$(rig_dump_get 'len:pairs[synthetic.name=hn0].switch_history')" 3
rig_try hnxdp_g monitor --json --count 1 --interval 0.2
assert_eq "monitor --json beside run: last switch reason" "$(jget 'pairs[0].last_switch_reason' <<<"$RIG_OUT")" joined
assert_eq "monitor --json beside run: last switch direction" "$(jget 'pairs[0].last_switch_direction' <<<"$RIG_OUT")" to-vf

# Flapping: with --flap-threshold 2, the second departure within the hold-down
# holds the pair down; the VF that then stays is joined after the hold-down.
rc=0; run_stop "$RUN" || rc=$?
assert_eq "run stops with SIGTERM" "$rc" 0
run_start RUN --synthetic hn0 --settle-ms 200 --hold-down-ms 5000 --flap-threshold 2
run_wait_dump 15 "hn0 adopted active" "p and p['state'] == 'active'"
rig_vf_remove_surprise
run_wait_dump 15 "hn0 idle after the first departure" "p and p['state'] == 'idle' and p['vf'] is None"
rig_vf_add
run_wait_dump 15 "hn0 active after the VF came back" "p and p['state'] == 'active'"
rig_vf_remove_surprise
run_wait_dump 15 "hn0 held down after the second departure" "p and p['state'] == 'held-down'"
rig_vf_add
run_wait_dump 20 "hn0 active once the VF stayed through the hold-down" "p and p['state'] == 'active'"
assert_eq "dump: 7 switches" "$(rig_dump_get 'pairs[synthetic.name=hn0].switches')" 7
assert_eq "history 4-7: departed, joined, held-down, hold-down-ended" \
	"$(hist 3 reason) $(hist 4 reason) $(hist 5 reason) $(hist 6 reason)" "departed joined held-down hold-down-ended"
assert_eq "history 7: to-vf, switch 7" "$(hist 6 direction) $(hist 6 switch)" "to-vf 7"
rc=0; run_stop "$RUN" || rc=$?
assert_eq "run stops with SIGTERM" "$rc" 0

rig_try hnxdp_g detach --all --json
assert_eq "detach --all --json exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "detach --all --json: one pair" "$(jget 'len:pairs' <<<"$RIG_OUT")" 1
assert_eq "no state file left for the namespace" "$(find "$STATE_DIR" -path "*$RIG_GUEST_INO*" 2>/dev/null | wc -l)" 0

rig_finish
