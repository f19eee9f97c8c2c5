#!/usr/bin/env bash
# 41-pin-versions: the pins say which hnxdp made them (pinned map hnxdp_meta:
# pin layout number and version), a binary refuses pins of another layout, and
# `hnxdp migrate` moves the pairs onto pins it can use without losing the
# devices' originals.
#   vf0 has tso off and gso 30000/40, hn0 MTU 1400. hn0 <- vf0 attached, then:
#     a. the layout number in the pinned hnxdp_meta raised by one (bpftool):
#        attach, detach, run, xsk refuse with exit 1 and one line naming both
#        versions and `hnxdp migrate`; status --json still prints what it can
#        (pinned_by: the other layout, usable false) and exits 1;
#        migrate: the pair is attached again by this hnxdp, UDP from the remote
#        reaches a socket on hn0 through the VF.
#     b. hnxdp_meta removed (pins made before versioning): the same refusal,
#        naming it; migrate attaches the pair again; traffic flows.
#     c. migrate SIGKILLed at spread points of its bpf, ioctl and rename calls;
#        then a second migrate (even points) or `detach --all` (odd points)
#        finishes; after a final detach the devices read exactly as before the
#        first attach, with no pin, link or record left.
#   Pins of this layout made by another version (bpftool rewrites the version
#   in hnxdp_meta): status and attach use them, an info line says so.
#   Nothing pinned, or pins of this layout: migrate changes nothing. While
#   `hnxdp run` runs in the namespace, migrate refuses, naming run's pid.
. "$(dirname "$0")/../lib/rig.sh"

rig_begin
rig_require_tools strace
rig_create
rig_vf_less_capable
ip -n "$RIG_GUEST" link set hn0 mtu 1400
rig_snapshot "$RIG_TMP/before"
rig_host_switch vf # the remote's frames reach the guest through vf0 only
N=20
META="$RIG_PIN_DIR/hnxdp_meta"
STATE_DIR=${HNXDP_STATE_DIR:-/run/hnxdp}

as_before() {
	rig_snapshot "$RIG_TMP/now"
	assert_files_equal "$1: devices and pins read exactly as before the first attach" "$RIG_TMP/before" "$RIG_TMP/now"
	assert_eq "$1: no write-ahead record or plan left" "$(find "$STATE_DIR" -path "*$RIG_GUEST_INO/*" 2>/dev/null | wc -l)" 0
}
refused() { # LABEL WORDS...: the last command failed with one line naming WORDS
	local label=$1 w
	shift
	assert_eq "$label: refused (exit 1; stderr: $RIG_ERR)" "$RIG_RC" 1
	assert_one_stderr_line "$label" "$RIG_ERR"
	for w in "$@"; do assert_contains "$label: names '$w'" "$RIG_ERR" "$w"; done
}
# meta_layout_plus_one: rewrites the pinned meta's layout number (first 4 bytes) to one more.
meta_layout_plus_one() {
	local bytes
	bytes=$(bpftool -j map lookup pinned "$META" key 0 0 0 0 | "$RIG_PY" -c '
import json, sys
v = [int(b, 16) for b in json.load(sys.stdin)["value"]]
n = int.from_bytes(bytes(v[:4]), sys.byteorder) + 1
v[:4] = list(n.to_bytes(4, sys.byteorder))
print(" ".join(str(b) for b in v))')
	# shellcheck disable=SC2086
	bpftool map update pinned "$META" key 0 0 0 0 value $bytes
}
# meta_version V: rewrites the version the pinned meta names (bytes 8-31, NUL-padded).
meta_version() {
	local bytes
	bytes=$(bpftool -j map lookup pinned "$META" key 0 0 0 0 | V=$1 "$RIG_PY" -c '
import json, os, sys
v = [int(b, 16) for b in json.load(sys.stdin)["value"]]
name = os.environ["V"].encode()[:23]
v[8:32] = list(name) + [0] * (24 - len(name))
print(" ".join(str(b) for b in v))')
	# shellcheck disable=SC2086
	bpftool map update pinned "$META" key 0 0 0 0 value $bytes
}
attached_again() { # LABEL: hn0 <- vf0 active on pins of this hnxdp, and frames flow through the VF
	local json
	rig_try hnxdp_g status --json
	assert_eq "$1: status after migrate (stderr: $RIG_ERR)" "$RIG_RC" 0
	json=$RIG_OUT
	assert_eq "$1: state" "$(rig_json 'pairs[0].state' <<<"$json")" active
	assert_eq "$1: vf" "$(rig_json 'pairs[0].vf.name' <<<"$json")" vf0
	assert_eq "$1: pins made by this hnxdp" "$(rig_json 'pinned_by.version' <<<"$json")" "$VERSION"
	assert_eq "$1: pins of this layout" "$(rig_json 'pinned_by.pin_layout' <<<"$json")" "$LAYOUT"
	assert_eq "$1: a write-ahead record again" "$(ls "$STATE_DIR/$RIG_GUEST_INO"/pair-*.json 2>/dev/null | wc -l)" 1
	local before after
	before=$(rig_stat vf_rx_packets)
	rig_count_udp "$1" 7000 "$N"
	after=$(rig_stat vf_rx_packets)
	assert_ge "$1: the datagrams came in through the VF" "$((after - before))" "$N"
}

# ---- nothing pinned: migrate changes nothing
rig_try hnxdp_g migrate
assert_eq "nothing pinned: migrate exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_contains "nothing pinned: says so" "$RIG_OUT" "nothing to migrate"

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach" "$RIG_RC" 0
json=$(hnxdp_g status --json)
VERSION=$(rig_json version <<<"$json")
LAYOUT=$(rig_json pin_layout <<<"$json")
assert_eq "the pins' version is this hnxdp's" "$(rig_json pinned_by.version <<<"$json")" "$VERSION"
assert_eq "the pins' layout is this hnxdp's" "$(rig_json pinned_by.pin_layout <<<"$json")" "$LAYOUT"
assert_eq "usable" "$(rig_json pinned_by.usable <<<"$json")" true
assert_eq "hnxdp_meta is pinned with the others" "$([[ -e $META ]] && echo yes)" yes
rig_try hnxdp_g migrate
assert_eq "pins of this layout: migrate exits 0" "$RIG_RC" 0
assert_contains "pins of this layout: nothing to migrate" "$RIG_OUT" "nothing to migrate"

# ---- a running `hnxdp run` is refused by migrate, naming its pid
run_bg() { hnxdp_g run --synthetic hn0 >"$RIG_TMP/run.log" 2>&1; }
rig_bg RUNPID run_bg
wait_until 20 "run holds its instance lock" test -s "$STATE_DIR/$RIG_GUEST_INO.run"
rig_try hnxdp_g migrate
refused "migrate while run runs" "hnxdp run (pid" "stop it first"
runpid=$(sed -n 's/.*hnxdp run (pid \([0-9]*\)).*/\1/p' <<<"$RIG_ERR")
assert_eq "the pid named is run's" "$(cat "/proc/${runpid:-0}/comm" 2>/dev/null)" hnxdp
kill -TERM "$runpid" 2>/dev/null || true
rig_wait_pid "$RUNPID" 20 || fail "run did not end on SIGTERM"

# ---- the same pin layout made by another version: used as they are, logged at info
meta_version 0.0.1
rig_try hnxdp_g status --json -v
assert_eq "other version: status exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "other version: pinned_by names it" "$(rig_json pinned_by.version <<<"$RIG_OUT")" 0.0.1
assert_eq "other version: usable" "$(rig_json pinned_by.usable <<<"$RIG_OUT")" true
assert_eq "other version: the pair is reported" "$(rig_json 'pairs[0].state' <<<"$RIG_OUT")" active
assert_contains "other version: logged at info" "$RIG_ERR" "made by hnxdp 0.0.1 with the same pin layout ($LAYOUT): using them"
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "other version: attach finds the pair attached (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_contains "other version: ... and changes nothing" "$RIG_OUT" "already attached"

# ---- a. another pin layout
meta_layout_plus_one
other="pin layout $((LAYOUT + 1))"
this="hnxdp $VERSION (pin layout $LAYOUT)"
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
refused "a: attach" "$other" "$this" "hnxdp migrate"
rig_try hnxdp_g detach --synthetic hn0
refused "a: detach" "$other" "$this" "hnxdp migrate"
rig_try hnxdp_g run --synthetic hn0
refused "a: run" "$other" "$this" "hnxdp migrate"
rig_try hnxdp_g xsk count --synthetic hn0 --seconds 1
refused "a: xsk count" "$other" "$this" "hnxdp migrate"
rig_try hnxdp_g status --json
refused "a: status --json" "$other" "hnxdp migrate"
assert_eq "a: status --json still reports the pins' layout" "$(rig_json pinned_by.pin_layout <<<"$RIG_OUT")" "$((LAYOUT + 1))"
assert_eq "a: ... as unusable" "$(rig_json pinned_by.usable <<<"$RIG_OUT")" false
assert_eq "a: the record of the originals is still there" "$(ls "$STATE_DIR/$RIG_GUEST_INO"/pair-*.json | wc -l)" 1
rig_try hnxdp_g migrate
assert_eq "a: migrate (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_contains "a: migrate names the pins it replaced" "$RIG_OUT" "$other"
assert_contains "a: migrate names the pair" "$RIG_OUT" "hn0 <- vf0"
attached_again a

# ---- b. pins made before versioning
rm "$META"
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
refused "b: attach" "before pin versioning" "$this" "hnxdp migrate"
rig_try hnxdp_g detach --synthetic hn0
refused "b: detach" "before pin versioning" "hnxdp migrate"
rig_try hnxdp_g migrate
assert_eq "b: migrate (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_contains "b: migrate names the pair" "$RIG_OUT" "hn0 <- vf0"
attached_again b
rig_try hnxdp_g detach --synthetic hn0
assert_eq "b: detach" "$RIG_RC" 0
as_before b

# ---- c. migrate killed half-way
# killed SYSCALL K: migrate in the guest, SIGKILLed at its K-th SYSCALL; KILLED=1 when it was.
killed() {
	local rc=0
	timeout -k 5 60 nsenter --net="/run/netns/$RIG_GUEST" -- \
		strace -f -qq -o /dev/null -e inject="$1":signal=KILL:when="$2" "$HNXDP" migrate >/dev/null 2>&1 || rc=$?
	KILLED=0
	((rc == 137)) && KILLED=1
	return 0
}
count() { grep -c " $1(" "$2" || true; }
# How many calls a whole migrate makes (one traced run).
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
meta_layout_plus_one
nsenter --net="/run/netns/$RIG_GUEST" -- strace -f -qq -o "$RIG_TMP/migrate.trace" -e trace=bpf,ioctl,rename \
	"$HNXDP" migrate >/dev/null 2>&1 || fail "c: traced migrate failed"
points=0
for sc in bpf ioctl rename; do
	n=$(count "$sc" "$RIG_TMP/migrate.trace")
	for k in $(n=$n "$RIG_PY" -c 'import os; n=int(os.environ["n"]); m=min(n, 4); print(" ".join(str(1 + i*(n-1)//max(m-1,1)) for i in range(m)) if n else "")'); do
		meta_layout_plus_one
		killed "$sc" "$k"
		points=$((points + 1))
		if ((points % 2 == 0)); then
			rig_try hnxdp_g migrate
			assert_eq "c: $sc #$k (killed $KILLED): migrate again (stderr: $RIG_ERR)" "$RIG_RC" 0
			rig_try hnxdp_g status --json
			assert_eq "c: $sc #$k: hn0 active again" "$(rig_json 'pairs[0].state' <<<"$RIG_OUT")" active
			rig_try hnxdp_g detach --synthetic hn0
			assert_eq "c: $sc #$k: detach" "$RIG_RC" 0
		else
			rig_try hnxdp_g detach --all
			assert_eq "c: $sc #$k (killed $KILLED): detach --all (stderr: $RIG_ERR)" "$RIG_RC" 0
		fi
		as_before "c: $sc #$k"
		rig_try hnxdp_g attach --synthetic hn0 --vf vf0
		assert_eq "c: attach for the next point" "$RIG_RC" 0
	done
done
assert_ge "c: kill points tried" "$points" 6
rig_try hnxdp_g detach --synthetic hn0
assert_eq "c: final detach" "$RIG_RC" 0
as_before "c: final"

rig_finish
