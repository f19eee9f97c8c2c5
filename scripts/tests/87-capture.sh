#!/usr/bin/env bash
# 87-capture: `hnxdp capture` records both directions of a pair with the path
# each frame took (issue 16).
#   1. Bad input (nothing attached, no such interface, not a synthetic, -c 0,
#      --snaplen 0, -w into a missing directory): one line, exit 2, flag off.
#   2. VF joined, pings both ways: `capture -c 10 -w - | tcpdump -r -` shows
#      echo requests and replies; the pcapng (parsed by tools/pcapng_paths.py)
#      has the guest's frames on hn0:vf-tx and the remote's on hn0:vf-rx.
#      After it exits the datapath's flag is off (bpftool on the pinned map).
#   3. Text lines without -w; a second capture is refused naming the first's
#      pid; SIGINT ends the first with exit 0 and the flag off.
#   4. A capture across a planned VF departure: vf-rx/vf-tx first, then
#      syn-rx/syn-tx; in each direction no vf-* frame after the first syn-*.
#   5. kill -9 of a capture: the flag stays on until the next frame of the
#      pair, which switches it off in the datapath itself; a new capture runs.
#   6. A datapath pinned without the capture maps (an older hnxdp's):
#      capture exits 1 naming `hnxdp detach --all`; status still works.
. "$(dirname "$0")/../lib/rig.sh"

PATHS_PY="$RIG_TOOLS/pcapng_paths.py"

# The capture flag's token in the pinned datapath (0: off).
capture_token() {
	bpftool -j map dump pinned "$RIG_PIN_DIR/hnxdp_capture_ctl" | "$RIG_PY" -c '
import json, sys
print(json.load(sys.stdin)[0]["formatted"]["value"][".data.capture"][0]["hnxdp_capture_ctl"]["token"])'
}
flag_is() { [[ $(capture_token) == "$1" ]]; }
flag_on() { [[ $(capture_token) != 0 ]]; }

# capture_bg VAR ERRFILE ARGS...: hnxdp capture in the guest in the background;
# returns once it says it is capturing.
capture_bg() {
	local __v=$1 err=$2
	shift 2
	rig_bg "$__v" nsenter --net="/run/netns/$RIG_GUEST" -- timeout -k 5 60 "$HNXDP" capture "$@" 2>"$err"
	wait_until 10 "capture armed ($err)" grep -q "capturing" "$err" || true
}

paths_of() { "$RIG_PY" "$PATHS_PY" "$@" | cut -f1; }

rig_begin
rig_create

# ---- 1. bad input
bad() { # DESC ARGS...
	local desc=$1
	shift
	rig_try hnxdp_g capture "$@"
	assert_eq "$desc: exit 2" "$RIG_RC" 2
	assert_one_stderr_line "$desc"
	assert_eq "$desc: nothing on stdout" "$RIG_OUT" ""
}
bad "capture before anything is attached" --synthetic hn0 -c 1
assert_contains "  says hn0 is not attached" "$RIG_ERR" "not attached"

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4"
assert_eq "remote reaches the guest through the VF" "$RIG_RC" 0
assert_eq "the flag is off after attach" "$(capture_token)" 0

bad "no such interface" --synthetic nosuch0 -c 1
bad "vf0 is not a synthetic of a pair" --synthetic vf0 -c 1
bad "-c 0" --synthetic hn0 -c 0
bad "--snaplen 0" --synthetic hn0 --snaplen 0
bad "--snaplen above the most" --synthetic hn0 --snaplen 70000
bad "-w into a missing directory" --synthetic hn0 -c 1 -w "$RIG_TMP/no/such/dir.pcapng"
assert_eq "the flag is still off after the refusals" "$(capture_token)" 0

# ---- 2. pings both ways, piped to tcpdump
note "capture -c 10 -w - | tcpdump -r - while the guest and the remote ping each other"
rig_bg cpid bash -c "set -o pipefail; nsenter --net=/run/netns/$RIG_GUEST -- timeout -k 5 30 '$HNXDP' capture --synthetic hn0 -c 10 -w - \
	2>'$RIG_TMP/c2.err' | tee '$RIG_TMP/c2.pcapng' | timeout 30 tcpdump -r - -n >'$RIG_TMP/c2.txt' 2>'$RIG_TMP/c2.tcpdump'"
wait_until 10 "capture armed" grep -q capturing "$RIG_TMP/c2.err" || true
assert_eq "the flag is on while capturing" "$(flag_on && echo on || echo off)" on
rig_bg g1 rig_g ping -n -q -c 4 -i 0.1 -W 2 "$RIG_R4" >"$RIG_TMP/g1.out" 2>&1
rig_try rig_r ping -n -c 4 -i 0.1 -W 2 "$RIG_G4"
assert_eq "remote pings the guest (4/4)" "$RIG_RC" 0
rc=0; rig_wait_pid "$g1" 10 || rc=$?
assert_eq "guest pings the remote (4/4)" "$rc" 0
rc=0; rig_wait_pid "$cpid" 20 || rc=$?
assert_eq "capture | tcpdump -r - exit 0 ($(rig__short "$(cat "$RIG_TMP/c2.err" "$RIG_TMP/c2.tcpdump")"))" "$rc" 0
assert_eq "tcpdump printed 10 frames" "$(grep -c . "$RIG_TMP/c2.txt")" 10
assert_contains "tcpdump shows echo requests" "$(cat "$RIG_TMP/c2.txt")" "ICMP echo request"
assert_contains "tcpdump shows echo replies" "$(cat "$RIG_TMP/c2.txt")" "ICMP echo reply"
assert_contains "summary on stderr" "$(cat "$RIG_TMP/c2.err")" "hnxdp capture: 10 frames"
"$RIG_PY" "$PATHS_PY" "$RIG_TMP/c2.pcapng" >"$RIG_TMP/c2.paths" 2>"$RIG_TMP/c2.paths.err" || true
assert_eq "the pcapng is well formed ($(cat "$RIG_TMP/c2.paths.err"))" "$(cat "$RIG_TMP/c2.paths.err")" ""
note "$(tr '\t' ' ' <"$RIG_TMP/c2.paths" | tr '\n' '|')"
assert_eq "10 frames in the pcapng" "$(grep -c . "$RIG_TMP/c2.paths")" 10
count() { grep -c -- "$1" "$RIG_TMP/c2.paths" || true; }
assert_ge "guest's echo requests on hn0:vf-tx" "$(count "^hn0:vf-tx	out	vf-tx vf0	icmp echo-request $RIG_G4>$RIG_R4")" 1
assert_ge "remote's echo replies on hn0:vf-rx" "$(count "^hn0:vf-rx	in	vf-rx vf0	icmp echo-reply $RIG_R4>$RIG_G4")" 1
assert_ge "remote's echo requests on hn0:vf-rx" "$(count "^hn0:vf-rx	in	vf-rx vf0	icmp echo-request $RIG_R4>$RIG_G4")" 1
assert_ge "guest's echo replies on hn0:vf-tx" "$(count "^hn0:vf-tx	out	vf-tx vf0	icmp echo-reply $RIG_G4>$RIG_R4")" 1
assert_eq "no ICMP from the guest on another path" "$(grep "icmp .* $RIG_G4>" "$RIG_TMP/c2.paths" | grep -vc '^hn0:vf-tx' || true)" 0
assert_eq "no ICMP from the remote on another path" "$(grep "icmp .* $RIG_R4>" "$RIG_TMP/c2.paths" | grep -vc '^hn0:vf-rx' || true)" 0
assert_eq "the flag is off after the capture exited" "$(capture_token)" 0

# ---- 3. text lines; a second capture; SIGINT
rm -f "$RIG_TMP/c3b.out"
rig_bg c3b bash -c "nsenter --net=/run/netns/$RIG_GUEST -- timeout -k 5 30 '$HNXDP' capture --synthetic hn0 --seconds 20 >'$RIG_TMP/c3b.out' 2>'$RIG_TMP/c3b.err'"
wait_until 10 "text capture armed" grep -q capturing "$RIG_TMP/c3b.err" || true
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4"
wait_until 10 "text lines for the pings" grep -q "vf-tx vf0 98: $RIG_G4 > $RIG_R4 ICMP echo reply" "$RIG_TMP/c3b.out" || true
assert_contains "text: remote's request on vf-rx" "$(cat "$RIG_TMP/c3b.out")" "vf-rx vf0 98: $RIG_R4 > $RIG_G4 ICMP echo request"
first=$(pgrep -f "capture --synthetic hn0 --seconds 20" | while read -r p; do
	[[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$(readlink -f "$HNXDP")" ]] && echo "$p"; done | head -n 1)
rig_try hnxdp_g capture --synthetic hn0 -c 1
assert_eq "a second capture in the namespace: exit 2" "$RIG_RC" 2
assert_one_stderr_line "second capture"
assert_contains "  it names the first's pid" "$RIG_ERR" "(pid ${first:-?})"
kill -INT "${first:-0}" 2>/dev/null || true
rc=0; rig_wait_pid "$c3b" 10 || rc=$?
assert_eq "SIGINT ends the capture with exit 0" "$rc" 0
assert_contains "  and its summary" "$(cat "$RIG_TMP/c3b.err")" "hnxdp capture: "
assert_eq "the flag is off after SIGINT" "$(capture_token)" 0

# ---- 4. across a planned VF departure
note "capture while the remote pings the guest (IPv4 and IPv6) and vf0 leaves"
capture_bg c4 "$RIG_TMP/c4.err" --synthetic hn0 --seconds 40 -w "$RIG_TMP/c4.pcapng"
rig_bg p4 rig_r ping -n -q -c 60 -i 0.05 -W 1 "$RIG_G4" >"$RIG_TMP/p4.out" 2>&1
rig_bg p6 rig_r ping -n -q -c 60 -i 0.05 -W 1 "$RIG_G6" >"$RIG_TMP/p6.out" 2>&1
vf_seen() { "$RIG_PY" "$PATHS_PY" --partial "$RIG_TMP/c4.pcapng" | grep -c "^hn0:vf-tx.*echo-reply" | awk '{exit !($1 >= 6)}'; }
wait_until 10 "echo replies through the VF" vf_seen || true
rig_vf_remove_planned
rig_wait_pid "$p4" 20 || true
rig_wait_pid "$p6" 20 || true
first=$(pgrep -f "capture --synthetic hn0 --seconds 40" | while read -r p; do
	[[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$(readlink -f "$HNXDP")" ]] && echo "$p"; done | head -n 1)
kill -TERM "${first:-0}" 2>/dev/null || true
rc=0; rig_wait_pid "$c4" 10 || rc=$?
assert_eq "SIGTERM ends the capture with exit 0" "$rc" 0
paths_of "$RIG_TMP/c4.pcapng" >"$RIG_TMP/c4.paths" 2>"$RIG_TMP/c4.err2" || true
note "paths in order (runs): $(sed 's/-[rt]x$//' "$RIG_TMP/c4.paths" | uniq -c | tr -s ' ' | tr '\n' '|')"
for p in vf-rx vf-tx syn-rx syn-tx; do
	assert_ge "frames on hn0:$p" "$(grep -c "^hn0:$p\$" "$RIG_TMP/c4.paths" || true)" 5
done
# Each direction switches once: receive when the host switches (first), transmit
# when vf0 is deleted; a syn-rx frame may come before the last vf-tx one.
for d in rx tx; do
	last_vf=$(grep -n "^hn0:vf-$d\$" "$RIG_TMP/c4.paths" | tail -n 1 | cut -d: -f1)
	first_syn=$(grep -n "^hn0:syn-$d\$" "$RIG_TMP/c4.paths" | head -n 1 | cut -d: -f1)
	assert_le "the switch: every vf-$d frame before the first syn-$d frame" "${last_vf:-999999}" "${first_syn:-0}"
done
"$RIG_PY" "$PATHS_PY" "$RIG_TMP/c4.pcapng" >"$RIG_TMP/c4.full" || true
grep -q "^hn0:syn-tx	out	syn-tx hn0	icmp6 echo-reply $RIG_G6>$RIG_R6" "$RIG_TMP/c4.full" \
	&& pass "IPv6 echo replies on hn0:syn-tx after the departure" \
	|| fail "no IPv6 echo reply on hn0:syn-tx after the departure"
assert_eq "the flag is off after SIGTERM" "$(capture_token)" 0

# ---- 5. kill -9: the datapath switches the flag off at the next frame
capture_bg c5 "$RIG_TMP/c5.err" --synthetic hn0 --seconds 30 -w "$RIG_TMP/c5.pcapng"
first=$(pgrep -f "capture --synthetic hn0 --seconds 30" | while read -r p; do
	[[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$(readlink -f "$HNXDP")" ]] && echo "$p"; done | head -n 1)
kill -KILL "${first:-0}" 2>/dev/null || true
rig_wait_pid "$c5" 10 || true
note "capture pid ${first:-?} killed; flag token now $(capture_token)"
rig_try rig_r ping -n -c 3 -i 0.1 -W 2 "$RIG_G4"
assert_eq "the pair still works after the killed capture" "$RIG_RC" 0
wait_until 10 "the datapath switched the flag off by itself" flag_is 0 \
	&& pass "the flag is off after the killed capture and one frame"
rig_try hnxdp_g capture --synthetic hn0 -c 1 --seconds 2 -w "$RIG_TMP/c6.pcapng"
assert_eq "a new capture runs after the killed one (stderr: $(rig__short "$RIG_ERR"))" "$RIG_RC" 0

# ---- 6. a datapath pinned by an hnxdp without capture (no capture pins):
# capture refuses with the way out; everything else still works.
rm -f "$RIG_PIN_DIR/hnxdp_capture" "$RIG_PIN_DIR/hnxdp_capture_ctl"
rig_try hnxdp_g capture --synthetic hn0 -c 1
assert_eq "capture on a datapath without capture pins: exit 1" "$RIG_RC" 1
assert_one_stderr_line "capture on a datapath without capture pins"
assert_contains "  it names the way out" "$RIG_ERR" "hnxdp detach --all"
rig_try hnxdp_g status
assert_eq "status still works on that datapath (stderr: $RIG_ERR)" "$RIG_RC" 0

rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_finish
