#!/usr/bin/env bash
# 71-run-passthrough: while a pair is joined by `hnxdp run`, changes on the
# synthetic reach the VF and direct changes on the VF are undone (B6, B7,
# B11, B12, B13). Every reaction is timed by polling the devices every ~2 ms
# from inside the guest netns.
#   - A native XDP program on the host side of the VF (vf0h) makes the kernel
#     cap vf0's max MTU at about 3500 (veth_xdp_set), and turns vf0's TSO
#     off: a real VF that refuses some MTUs and lacks some offloads.
#   - hn0 MTU 1400 -> vf0 MTU 1400 within 100 ms; dump mtu 1400.
#   - hn0 down/up, promisc on/off, allmulticast on/off -> vf0 follows within
#     100 ms.
#   - a multicast address added to hn0 appears on vf0, and goes again.
#   - `ethtool -K hn0 tx-gre-segmentation off` is kept (the user's choice)
#     and dump's effective features follow; `ethtool -K hn0 tso on` is re-intersected
#     with the VF (which cannot): hn0's TSO goes off again.
#   - hn0 MTU 4000 (above vf0's max): refused by the VF, hn0 put back to
#     1400, vf0 unchanged, a log line says so.
#   - vf0 MTU 1300 or vf0 down set directly: put back (1400, up) within
#     100 ms, with a warning log line.
#   - The VF leaves: hn0's features read as before the join except the
#     offload the user turned off meanwhile; no VF link left.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

P='pairs[synthetic.name=hn0]'
LIMIT=100 # ms

# Time one pass-through: ACTION in the guest, then every COND within LIMIT ms.
react_within() { # DESC ACTION COND... (options of run_react first)
	local opts=()
	while [[ $1 == --* ]]; do opts+=("$1"); shift; done
	local desc=$1 act=$2
	shift 2
	if run_react "${opts[@]}" 3 "$desc" "$act" "$@"; then
		assert_ms_le "$desc" "$RUN_REACT_MS" "$LIMIT"
	else
		fail "$desc: not reached within 3 s ($*)"
	fi
}
log_count() { grep -c -- "$1" "$RUN_LOG" || true; }
log_count_above() { (($(log_count "$1") > $2)); }
dump_effective_lacks() { [[ "$(rig_dump_get "$P.features.effective")" != *"\"$1\""* ]]; }
hn0_feature_is() { [[ "$(run_feature hn0 "$1")" == "$2" ]]; }

rig_begin
rig_create

# The "hypervisor" limits the VF: native XDP on vf0h caps vf0's max_mtu.
rig_try run_xdp_limit_mtu vf0h
assert_eq "XDP program attached to the host's vf0h (stderr: $RIG_ERR)" "$RIG_RC" 0
vf_max=$(run_link_field vf0 max_mtu)
note "vf0 max_mtu is now $vf_max"
assert_le "precondition: vf0 refuses MTUs above about 3500" "$vf_max" 3600
assert_eq "precondition: vf0 cannot do TSO" "$(run_feature vf0 tx-tcp-segmentation)" off
run_dev_snapshot hn0 "$RIG_TMP/hn0.before"

run_start RUN --synthetic hn0 --settle-ms 300
if run_wait_dump 15 "pair hn0 active with vf0" \
	"p and p['state'] == 'active' and (p['vf'] or {}).get('name') == 'vf0'"; then
	pass "pair joined by run (states seen: $RUN_SEEN)"
fi
assert_eq "join: hn0 TSO off (intersection with the VF)" "$(run_feature hn0 tx-tcp-segmentation)" off

# ---- MTU.
react_within "hn0 mtu 1400 -> vf0 mtu 1400" "ip link set hn0 mtu 1400" mtu:vf0=1400
assert_eq "dump: mtu 1400" "$(rig_dump_get "$P.mtu")" 1400
wait_until 5 "log: MTU passed to the VF" run_log_has 'MTU 1500 -> 1400 passed to VF vf0' || true

# ---- admin state, promiscuous, all-multicast.
react_within "hn0 down -> vf0 down" "ip link set hn0 down" up:vf0=0
react_within "hn0 up -> vf0 up" "ip link set hn0 up" up:vf0=1
react_within "hn0 promisc on -> vf0 promisc on" "ip link set hn0 promisc on" promisc:vf0=1
react_within "hn0 promisc off -> vf0 promisc off" "ip link set hn0 promisc off" promisc:vf0=0
react_within "hn0 allmulticast on -> vf0 allmulticast on" "ip link set hn0 allmulticast on" allmulti:vf0=1
react_within "hn0 allmulticast off -> vf0 allmulticast off" "ip link set hn0 allmulticast off" allmulti:vf0=0
assert_eq "hn0 and vf0 both up" "$(run_link_field hn0 operstate)/$(run_link_field vf0 operstate)" UP/UP

# ---- multicast list (the kernel sends no notification for it: hnxdp compares
# the lists periodically while joined).
MC=33:33:00:48:4e:71
vf0_has_mc() { ip -n "$RIG_GUEST" maddr show dev vf0 | grep -q "link  *$MC"; }
vf0_lacks_mc() { ! vf0_has_mc; }
t0=$EPOCHREALTIME
ip -n "$RIG_GUEST" maddr add "$MC" dev hn0
if wait_until 5 "vf0 gets hn0's multicast address $MC" vf0_has_mc; then
	ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')
	pass "hn0's multicast address $MC copied to vf0 (seen after $ms ms)"
	assert_le "multicast address copied within 1000 ms" "$ms" 1000
fi
ip -n "$RIG_GUEST" maddr del "$MC" dev hn0
if wait_until 5 "vf0 loses the multicast address $MC" vf0_lacks_mc; then
	pass "multicast address removed from vf0 after hn0 dropped it"
fi

# ---- offloads. (veth has GRO off by default, so a changeable offload that
# both devices have on is used: tx-gre-segmentation.)
assert_eq "precondition: hn0 tx-gre-segmentation on" "$(run_feature hn0 tx-gre-segmentation)" on
assert_eq "precondition: vf0 tx-gre-segmentation on" "$(run_feature vf0 tx-gre-segmentation)" on
n0=$(log_count "offloads changed on hn0")
rig_g ethtool -K hn0 tx-gre-segmentation off
wait_until 5 "log: offload change on hn0 re-intersected" log_count_above "offloads changed on hn0" "$n0" || true
wait_until 5 "dump: effective features lack tx-gre-segmentation" dump_effective_lacks tx-gre-segmentation || true
assert_eq "hn0 keeps the user's choice: tx-gre-segmentation off" "$(run_feature hn0 tx-gre-segmentation)" off
assert_not_contains "dump: effective features lack tx-gre-segmentation" "$(rig_dump_get "$P.features.effective")" '"tx-gre-segmentation"'
assert_contains "dump: effective features still have tx-scatter-gather" "$(rig_dump_get "$P.features.effective")" '"tx-scatter-gather"'
if [[ "$(rig_dump_get "$P.features.saved")" == *'"tx-gre-segmentation"'* ]]; then
	note "dump's features.saved still lists tx-gre-segmentation although the departure will restore it off"
fi
n0=$(log_count "offloads changed on hn0")
rig_g ethtool -K hn0 tso on 2>/dev/null || true
wait_until 5 "log: tso on hn0 re-intersected" log_count_above "offloads changed on hn0" "$n0" || true
wait_until 5 "hn0 TSO off again (the VF cannot)" hn0_feature_is tx-tcp-segmentation off || true
assert_eq "tso on hn0 re-intersected with the VF: off" "$(run_feature hn0 tx-tcp-segmentation)" off
assert_not_contains "dump: effective features lack tx-tcp-segmentation" "$(rig_dump_get "$P.features.effective")" '"tx-tcp-segmentation"'
assert_eq "tx-gre-segmentation still off after the tso re-intersection" "$(run_feature hn0 tx-gre-segmentation)" off

# ---- an MTU the VF refuses.
n0=$(log_count "refused MTU")
react_within --after-act "hn0 mtu 4000 (VF max $vf_max): hn0 put back to 1400" "ip link set hn0 mtu 4000" \
	mtu:hn0=1400 mtu:vf0=1400
wait_until 5 "log: the VF refused MTU 4000" log_count_above "refused MTU 4000" "$n0" || true
assert_contains "log line about the refusal" "$(grep 'refused MTU 4000' "$RUN_LOG" | tail -n 1)" "putting hn0 back to 1400"
assert_eq "hn0 MTU unchanged" "$(run_link_field hn0 mtu)" 1400
assert_eq "vf0 MTU unchanged" "$(run_link_field vf0 mtu)" 1400
assert_eq "dump: mtu 1400" "$(rig_dump_get "$P.mtu")" 1400

# ---- direct changes on the VF are undone.
n0=$(log_count "was changed directly")
react_within --after-act "vf0 mtu 1300 set directly: back to 1400" "ip link set vf0 mtu 1300" mtu:vf0=1400
wait_until 5 "log: warning about the direct change" log_count_above "was changed directly" "$n0" || true
assert_contains "warning names the MTU" "$(grep 'was changed directly' "$RUN_LOG" | tail -n 1)" "mtu 1400"
assert_contains "warning is a warning" "$(grep 'was changed directly' "$RUN_LOG" | tail -n 1)" "warning"
n0=$(log_count "was changed directly")
react_within --after-act "vf0 set down directly: back up" "ip link set vf0 down" up:vf0=1
wait_until 5 "log: warning about the direct change" log_count_above "was changed directly" "$n0" || true
assert_eq "state still active" "$(rig_dump_get "$P.state")" active

# Traffic still uses the VF after all this.
rig_host_switch vf
rx0=$(rig_stat vf_rx_packets)
rig_try rig_r ping -n -c 10 -i 0.02 -W 2 "$RIG_G4"
assert_eq "remote pings the guest through the VF (10/10)" "$RIG_RC" 0
rx1=$(rig_stat vf_rx_packets)
if rig__is_int "$rx0" && rig__is_int "$rx1"; then
	assert_ge "vf_rx_packets rose" "$((rx1 - rx0))" 10
else
	fail "vf_rx_packets not readable ('$rx0' -> '$rx1')"
fi

# ---- departure: features restored, with the user's GRO choice.
run_assert_departure "vf0 deleted: pair idle with no VF" hn0 vf0 100
rig_host_switch syn
features_restored() {
	rig_g ethtool -k hn0 | grep -v tx-gre-segmentation >"$RIG_TMP/k.after"
	grep -v tx-gre-segmentation "$RIG_TMP/hn0.before" | sed -n '/^## ethtool/,/^## ip/p' | grep -v '^## ' \
		>"$RIG_TMP/k.before"
	cmp -s "$RIG_TMP/k.before" "$RIG_TMP/k.after"
}
wait_until 5 "hn0 features restored" features_restored || true
assert_files_equal "hn0: ethtool -k as before the join (except what the user turned off)" \
	"$RIG_TMP/k.before" "$RIG_TMP/k.after"
assert_eq "hn0: the user's tx-gre-segmentation off survives the departure" "$(run_feature hn0 tx-gre-segmentation)" off
assert_eq "hn0: TSO back on after the departure" "$(run_feature hn0 tx-tcp-segmentation)" on
assert_eq "hn0: gso_max_size as before" "$(run_link_field hn0 gso_max_size)" "$(sed -n 's/^gso_max_size //p' "$RIG_TMP/hn0.before")"
assert_eq "hn0: MTU stays the user's 1400" "$(run_link_field hn0 mtu)" 1400
assert_eq "no link_vf_ingress pin left" "$(find "$RIG_PIN_DIR" -name link_vf_ingress | wc -l)" 0

rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
run_assert_no_error "no error in the run log"

rig_finish
