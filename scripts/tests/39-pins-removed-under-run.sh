#!/usr/bin/env bash
# 39-pins-removed-under-run: `hnxdp run` notices its pins being removed under
# it and repairs, or undoes every pair when it cannot (B19, B21).
#   vf0 has tso off and gso 30000/40; `run --synthetic hn0` joins it and the
#   remote pings the guest through the VF.
#   1. `rm -r` of the namespace's pin directory (every tcx link goes with its
#      pin): run pins its maps and programs again and attaches the three links
#      again, says so, and traffic enters through the VF again.
#   2. With its pins on a private bpffs (--bpffs), that bpffs is unmounted:
#      run cannot pin again, so it undoes the pair from the write-ahead record
#      (hn0 reads exactly as before the join), says so in one line and exits 1.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

pins_back() {
	[[ -e "$RIG_PIN_DIR/hnxdp_pairs" ]] && (($(rig_tcx_count hn0 ingress) + $(rig_tcx_count hn0 egress) + $(rig_tcx_count vf0 ingress) == 3))
}
vf_rx_above() { local v; v=$(rig_stat vf_rx_packets); rig__is_int "$v" && ((v > $1)); }

rig_begin
rig_create
rig_vf_less_capable
run_dev_snapshot hn0 "$RIG_TMP/hn0.before"

# ---- 1. pins removed: repaired
run_start RUN --synthetic hn0 --settle-ms 0
run_wait_dump 15 "pair hn0 active" "p and p['state'] == 'active'" || true
rig_host_switch vf
rig_try rig_r ping -n -c 3 -i 0.1 -W 2 "$RIG_G4"
assert_eq "ping through the VF before" "$RIG_RC" 0
rm -rf "$RIG_PIN_DIR"
wait_until 10 "run pins and attaches again" pins_back && pass "pins and the three tcx links are back"
assert_eq "run said it repaired" "$(run_log_has 'pinned and attached again' && echo yes)" yes
base=$(rig_stat vf_rx_packets)
rig_try rig_r ping -n -c 3 -i 0.1 -W 2 "$RIG_G4"
assert_eq "ping after the repair" "$RIG_RC" 0
assert_eq "and it entered through the VF" "$(vf_rx_above "$base" && echo yes)" yes
assert_eq "state still active" "$(run_state)" active
run_stop "$RUN" || true
rig_host_switch syn
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach" "$RIG_RC" 0
run_dev_snapshot hn0 "$RIG_TMP/hn0.after"
assert_files_equal "hn0 reads as before after part 1" "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"

# ---- 2. private bpffs unmounted: pairs undone, run exits 1
PRIV="$RIG_TMP/bpffs"
mkdir -p "$PRIV"
mount -t bpf bpf "$PRIV"
run_start RUN --synthetic hn0 --settle-ms 0 --bpffs "$PRIV/hnxdp"
wait_until 15 "pair joined on the private bpffs" test -e "$PRIV/hnxdp/$RIG_GUEST_INO/$(rig_ifindex "$RIG_GUEST" hn0)/link_vf_ingress"
assert_eq "hn0 took vf0's gso_max_size" "$(run_link_field hn0 gso_max_size)" 30000
umount "$PRIV"
rc=0
rig_wait_pid "${RUN_WRAPPER[$RUN]}" 15 || rc=$?
assert_eq "run exits 1" "$rc" 1
assert_eq "it says why in its last line" "$(tail -n 1 "$RUN_LOG" | grep -c 'cannot be made again: every pair was undone')" 1
run_dev_snapshot hn0 "$RIG_TMP/hn0.after"
assert_files_equal "hn0 reads as before the join" "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
assert_eq "no write-ahead record or lock file left" "$(find /run/hnxdp -path "*$RIG_GUEST_INO*" 2>/dev/null | wc -l)" 0
assert_eq "no tcx link left" "$(($(rig_tcx_count hn0 ingress) + $(rig_tcx_count hn0 egress) + $(rig_tcx_count vf0 ingress)))" 0

rig_finish
