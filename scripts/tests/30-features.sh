#!/usr/bin/env bash
# 30-features: capabilities, segmentation limits and MTU on join, exact
# restore on detach (B4, B5, B6, B13).
#   vf0 gets tso off, tx-udp-segmentation off, gso_max_size 32768,
#   gso_max_segs 100 and a larger MTU; hn0 an MTU of 1400. After attach hn0
#   shows tso/udp-segmentation off and the smaller GSO limits, vf0 carries
#   hn0's MTU, and dump --json reports the saved/effective values. After
#   detach `ethtool -k` and `ip -d link show` of hn0 and vf0 read exactly as
#   before attach.
. "$(dirname "$0")/../lib/rig.sh"

rig_begin
rig_create

# The VF is less capable than the synthetic.
rig_g ethtool -K vf0 tso off tx-udp-segmentation off
ip -n "$RIG_GUEST" link set vf0 gso_max_size 32768 gso_max_segs 100 mtu 2000
ip -n "$RIG_GUEST" link set hn0 mtu 1400

feature() { # DEV NAME -> on|off
	rig_g ethtool -k "$1" | sed -n "s/^[[:space:]]*$2: \([a-z]*\).*/\1/p"
}
link_field() { # DEV FIELD -> value from ip -d -j link show
	ip -n "$RIG_GUEST" -d -j link show dev "$1" | rig_json --default missing "[0].$2"
}
snap_dev() { # DEV FILE: what must read the same before attach and after detach
	{
		rig_g ethtool -k "$1"
		ip -n "$RIG_GUEST" -d link show dev "$1"
	} >"$2"
}

assert_eq "precondition: vf0 tx-tcp-segmentation off" "$(feature vf0 tx-tcp-segmentation)" off
assert_eq "precondition: hn0 tx-tcp-segmentation on" "$(feature hn0 tx-tcp-segmentation)" on
hn0_gso_size=$(link_field hn0 gso_max_size)
hn0_gso_segs=$(link_field hn0 gso_max_segs)

snap_dev hn0 "$RIG_TMP/hn0.before"
snap_dev vf0 "$RIG_TMP/vf0.before"

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0

# B4: features are the intersection.
assert_eq "hn0 tcp-segmentation-offload off after attach" "$(feature hn0 tcp-segmentation-offload)" off
assert_eq "hn0 tx-tcp-segmentation off after attach" "$(feature hn0 tx-tcp-segmentation)" off
assert_eq "hn0 tx-tcp6-segmentation off after attach" "$(feature hn0 tx-tcp6-segmentation)" off
assert_eq "hn0 tx-udp-segmentation off after attach" "$(feature hn0 tx-udp-segmentation)" off
assert_eq "hn0 keeps what both have: tx-scatter-gather" "$(feature hn0 tx-scatter-gather)" on
assert_eq "hn0 keeps what both have: tx-checksum-ip-generic" "$(feature hn0 tx-checksum-ip-generic)" on
# B5: segmentation limits are the minimum.
assert_eq "hn0 gso_max_size is the VF's" "$(link_field hn0 gso_max_size)" 32768
assert_eq "hn0 gso_max_segs is the VF's" "$(link_field hn0 gso_max_segs)" 100
# B6: the synthetic's MTU is pushed to the VF.
assert_eq "vf0 MTU follows hn0" "$(link_field vf0 mtu)" 1400
assert_eq "hn0 MTU unchanged" "$(link_field hn0 mtu)" 1400

# dump --json shows the masks and limits.
P='pairs[synthetic.name=hn0]'
assert_eq "dump: mtu" "$(rig_dump_get "$P.mtu")" 1400
assert_eq "dump: gso.max_size" "$(rig_dump_get "$P.gso.max_size")" 32768
assert_eq "dump: gso.max_segs" "$(rig_dump_get "$P.gso.max_segs")" 100
assert_eq "dump: gso.saved_max_size" "$(rig_dump_get "$P.gso.saved_max_size")" "$hn0_gso_size"
assert_eq "dump: gso.saved_max_segs" "$(rig_dump_get "$P.gso.saved_max_segs")" "$hn0_gso_segs"
for which in saved vf effective; do
	declare "feat_$which=$(rig_dump_get "$P.features.$which")"
done
if [[ "$feat_saved" == \[* && "$feat_vf" == \[* && "$feat_effective" == \[* ]]; then
	assert_contains "dump: features.saved has tx-tcp-segmentation" "$feat_saved" '"tx-tcp-segmentation"'
	assert_not_contains "dump: features.vf lacks tx-tcp-segmentation" "$feat_vf" '"tx-tcp-segmentation"'
	assert_not_contains "dump: features.effective lacks tx-tcp-segmentation" "$feat_effective" '"tx-tcp-segmentation"'
	assert_contains "dump: features.effective has tx-scatter-gather" "$feat_effective" '"tx-scatter-gather"'
else
	fail "dump: features.saved/vf/effective are not lists of names: '$feat_saved' '$feat_vf' '$feat_effective'"
fi

# Traffic still flows with the reduced limits (TCP segments built for hn0 fit the VF).
rig_host_switch vf
rm -f "$RIG_TMP/ready"
rig_bg epid rig_g "$RIG_PY" "$RIG_TOOLS/tcp_echo.py" --dev hn0 --port 5501 --seconds 20 \
	--ready-file "$RIG_TMP/ready" >/dev/null
rig_wait_file "$RIG_TMP/ready" 10 || fail "TCP echo server did not start"
rig_try rig_r "$RIG_PY" "$RIG_TOOLS/tcp_client.py" --dst "$RIG_G4" --port 5501 --rounds 20 --size 60000 --seconds 15
assert_eq "TCP with 60000-byte writes through the pair (stderr: $RIG_ERR)" "$RIG_RC/$RIG_OUT" "0/20 1200000"
rig_wait_pid "$epid" 20 || true
rig_host_switch syn

rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0

# B13: everything reads exactly as before.
snap_dev hn0 "$RIG_TMP/hn0.after"
snap_dev vf0 "$RIG_TMP/vf0.after"
assert_files_equal "hn0: ethtool -k and ip -d link show read as before attach" "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
assert_files_equal "vf0: ethtool -k and ip -d link show read as before attach" "$RIG_TMP/vf0.before" "$RIG_TMP/vf0.after"

rig_finish
