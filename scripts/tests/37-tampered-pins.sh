#!/usr/bin/env bash
# 37-tampered-pins: hnxdp trusts nothing pinned, and the write-ahead record
# (B21) gives the devices back whatever happened to the pins.
#   vf0 has tso off and gso 30000/40, hn0 MTU 1400. For each tampering of an
#   attached pair:
#     a. the pairs map replaced by an ARRAY of the same key and value sizes
#     b. the VF-ingress program pin replaced by another hnxdp program
#     c. the namespace's pin directory removed (every link goes with it)
#     d. every tcx link pin removed
#   `status`, `attach` and `detach --synthetic` either work correctly or refuse
#   with one line naming the pin and the way out; no command uses the foreign
#   object; `detach --all` (a, b) or `detach --synthetic hn0` (c, d) exits 0 and
#   the devices read exactly as before the attach, with nothing left behind.
. "$(dirname "$0")/../lib/rig.sh"

rig_begin
rig_create
rig_vf_less_capable
ip -n "$RIG_GUEST" link set hn0 mtu 1400
rig_snapshot "$RIG_TMP/before"

attach() {
	rig_try hnxdp_g attach --synthetic hn0 --vf vf0
	assert_eq "$1: attach" "$RIG_RC" 0
}
as_before() {
	rig_snapshot "$RIG_TMP/now"
	assert_files_equal "$1: devices and pins read exactly as before the attach" "$RIG_TMP/before" "$RIG_TMP/now"
	assert_eq "$1: no write-ahead record left" "$(find /run/hnxdp -path "*$RIG_GUEST_INO*" 2>/dev/null | wc -l)" 0
}
refused() { # LABEL PIN: the last command failed with one line naming PIN and the way out
	assert_eq "$1: refused (exit 1)" "$RIG_RC" 1
	assert_one_stderr_line "$1" "$RIG_ERR"
	assert_contains "$1: names the pin" "$RIG_ERR" "$2"
	assert_contains "$1: says the way out" "$RIG_ERR" "hnxdp detach --all"
}

# ---- a. pairs map replaced by an ARRAY of the same sizes
attach a
pin="$RIG_PIN_DIR/hnxdp_pairs"
rm "$pin"
bpftool map create "$pin" type array key 4 value 136 entries 1024 name hnxdp_pairs
rig_try hnxdp_g status
refused "a: status" "$pin"
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
refused "a: attach" "$pin"
rig_try hnxdp_g detach --synthetic hn0
refused "a: detach --synthetic" "$pin"
rig_try hnxdp_g detach --all
assert_eq "a: detach --all (stderr: $RIG_ERR)" "$RIG_RC" 0
as_before a

# ---- b. a program pin replaced by another hnxdp program
attach b
pin="$RIG_PIN_DIR/hnxdp_vf_ingress"
other=$(bpftool -j prog show pinned "$RIG_PIN_DIR/hnxdp_syn_egress" | rig_json id)
rm "$pin"
bpftool prog pin id "$other" "$pin"
rig_try hnxdp_g status
refused "b: status" "$pin"
rig_try hnxdp_g detach --synthetic hn0
refused "b: detach --synthetic" "$pin"
rig_try hnxdp_g detach --all
assert_eq "b: detach --all (stderr: $RIG_ERR)" "$RIG_RC" 0
as_before b

# ---- c. the namespace's pin directory removed
attach c
rm -rf "$RIG_PIN_DIR"
rig_try hnxdp_g detach --synthetic hn0
assert_eq "c: detach from the record alone (stderr: $RIG_ERR)" "$RIG_RC" 0
as_before c
# The same, healed by attach: it puts the originals back first, then joins afresh.
attach c2
rm -rf "$RIG_PIN_DIR"
attach c2-again
assert_eq "c2: hn0 gso_max_size is the VF's again" \
	"$(ip -n "$RIG_GUEST" -d -j link show dev hn0 | rig_json '[0].gso_max_size')" 30000
rig_try hnxdp_g detach --synthetic hn0
assert_eq "c2: detach" "$RIG_RC" 0
as_before c2

# ---- d. the link pins removed (the links go with them)
attach d
find "$RIG_PIN_DIR" -name 'link_*' -delete
rig_try hnxdp_g detach --synthetic hn0
assert_eq "d: detach (stderr: $RIG_ERR)" "$RIG_RC" 0
as_before d

rig_finish
