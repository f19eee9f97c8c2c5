#!/usr/bin/env bash
# 60-second-attach: attaching a pair that is already attached never
# duplicates anything (B19), also when two `attach` run at the same time.
#   - attach twice in a row: the second is a clear no-op (0) or a clear
#     refusal (2, one stderr line); one tcx program per hook, one pair.
#   - 3 rounds of two concurrent `attach` of the same pair: at least one
#     succeeds, the other succeeds as a no-op or fails cleanly; exactly one
#     attachment results; traffic flows; detach leaves nothing.
. "$(dirname "$0")/../lib/rig.sh"

rig_begin
rig_create
rig_host_switch vf

# exactly_one LABEL: one attachment of hn0/vf0 and nothing duplicated.
exactly_one() {
	local label=$1 dir dev n
	for dev in vf0:ingress hn0:egress; do
		n=$(rig_tcx_count "${dev%%:*}" "${dev##*:}")
		assert_eq "$label: exactly one hnxdp tcx program on ${dev%%:*} ${dev##*:}" "$n" 1
	done
	for dev in vf0:egress hn0:ingress; do
		n=$(rig_tcx_count "${dev%%:*}" "${dev##*:}")
		assert_le "$label: at most one hnxdp tcx program on ${dev%%:*} ${dev##*:}" "$n" 1
	done
	assert_eq "$label: dump shows one pair" "$(rig_dump_get 'len:pairs')" 1
	assert_eq "$label: the pair is hn0/vf0" \
		"$(rig_dump_get 'pairs[0].synthetic.name')/$(rig_dump_get 'pairs[0].vf.name')" "hn0/vf0"
	n=$(find "$RIG_PIN_DIR" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)
	assert_eq "$label: one per-pair pin directory" "$n" 1
	rig_try rig_r ping -n -c 3 -i 0.05 -W 2 "$RIG_G4"
	assert_eq "$label: remote reaches the guest through the pair" "$RIG_RC" 0
}

# ---- one after the other.
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "first attach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
links_first=$(rig_tcx_summary hn0 vf0)
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_in "second attach of the same pair: exit code" "$RIG_RC" "0|2"
if [[ $RIG_RC != 0 ]]; then assert_one_stderr_line "second attach of the same pair"; fi
exactly_one "after a second attach"
assert_eq "second attach left the tcx links of the first in place" "$(rig_tcx_summary hn0 vf0)" "$links_first"
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0

# ---- two at once.
racer() { # $1: go-file, $2: output prefix. Spins until the go-file appears (bounded), then attaches.
	local i=0
	while [[ ! -e "$1" ]]; do
		i=$((i + 1))
		((i < 2000000)) || break
	done
	local rc=0
	hnxdp_g attach --synthetic hn0 --vf vf0 >"$2.out" 2>"$2.err" || rc=$?
	echo "$rc" >"$2.rc"
}
for round in 1 2 3; do
	go="$RIG_TMP/go-$round"
	rig_bg p1 racer "$go" "$RIG_TMP/r$round-a"
	rig_bg p2 racer "$go" "$RIG_TMP/r$round-b"
	sleep 0.2
	touch "$go"
	rig_wait_pid "$p1" "$((RIG_HNXDP_TIMEOUT + 10))" || true
	rig_wait_pid "$p2" "$((RIG_HNXDP_TIMEOUT + 10))" || true
	rc_a=$(cat "$RIG_TMP/r$round-a.rc" 2>/dev/null || echo none)
	rc_b=$(cat "$RIG_TMP/r$round-b.rc" 2>/dev/null || echo none)
	note "round $round: exit codes $rc_a and $rc_b"
	if [[ $rc_a == 0 || $rc_b == 0 ]]; then
		pass "round $round: at least one concurrent attach succeeded ($rc_a, $rc_b)"
	else
		fail "round $round: no concurrent attach succeeded ($rc_a: $(cat "$RIG_TMP/r$round-a.err"); $rc_b: $(cat "$RIG_TMP/r$round-b.err"))"
	fi
	for r in a b; do
		rc=$(cat "$RIG_TMP/r$round-$r.rc" 2>/dev/null || echo none)
		if [[ $rc != 0 ]]; then
			assert_in "round $round: the other attach exits 0, 1 or 2" "$rc" "1|2"
			RIG_ERR=$(cat "$RIG_TMP/r$round-$r.err")
			assert_one_stderr_line "round $round: the other attach"
		fi
	done
	exactly_one "round $round"
	rig_try hnxdp_g detach --synthetic hn0
	assert_eq "round $round: detach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
	assert_eq "round $round: no hnxdp tcx program left on vf0 ingress" "$(rig_tcx_count vf0 ingress)" 0
	assert_eq "round $round: no hnxdp tcx program left on hn0 egress" "$(rig_tcx_count hn0 egress)" 0
	[[ ! -e "$RIG_PIN_DIR" ]] && pass "round $round: no pin directory left" \
		|| fail "round $round: pin directory left: $(cd "$RIG_PIN_DIR" && find . | tr '\n' ' ')"
done

rig_finish
