#!/usr/bin/env bash
# 79-run-vf-restored: what `run` passes down to the VF while joined is taken
# back when the pair lets the VF go, and nothing of it stays on the VF (B11,
# B13, B21): hnxdp's multicast addresses, promiscuous and all-multicast mode,
# the pushed MTU and admin state, and its IPv6 autoconfiguration (B24: off
# while joined).
#   vf0 starts down, MTU 2000. `run` joins it; on hn0 a multicast address is
#   added, promiscuous and all-multicast switched on: vf0 follows.
#   1. The VF stops being the VF (its MAC changes) while run runs: the pair
#      leaves, and vf0 reads exactly as before the join (`ip -d link`,
#      multicast list) apart from its address.
#   2. vf0 is joined again; run is stopped; `detach` restores vf0 the same way.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

MC=01:00:5e:01:02:03
OTHER_MAC=02:00:00:00:79:79

vf_snapshot() { # FILE: vf0 as ip -d link and its multicast list show it (its address masked)
	{
		ip -n "$RIG_GUEST" -d link show dev vf0
		ip -n "$RIG_GUEST" maddr show dev vf0
		rig_g sysctl net.ipv6.conf.vf0.autoconf net.ipv6.conf.vf0.accept_ra
	} | sed -E "s/$RIG_MAC|$OTHER_MAC/MAC/g" >"$1"
}
vf_has() { # FLAG|MC
	case $1 in
	PROMISC | ALLMULTI) ip -n "$RIG_GUEST" link show dev vf0 | grep -q "[<,]$1[,>]" ;;
	*) ip -n "$RIG_GUEST" maddr show dev vf0 | grep -q "link  *$1" ;;
	esac
}
pass_down() { # LABEL: hn0's multicast, promisc and allmulti reach vf0
	ip -n "$RIG_GUEST" maddr add "$MC" dev hn0 2>/dev/null || true
	ip -n "$RIG_GUEST" link set hn0 promisc on allmulticast on
	wait_until 5 "$1: vf0 gets $MC" vf_has "$MC" && pass "$1: vf0 has hn0's multicast address"
	wait_until 5 "$1: vf0 promiscuous" vf_has PROMISC && pass "$1: vf0 promiscuous"
	wait_until 5 "$1: vf0 all-multicast" vf_has ALLMULTI && pass "$1: vf0 all-multicast"
	assert_eq "$1: no IPv6 autoconfiguration on the joined vf0" \
		"$(rig_g sysctl -n net.ipv6.conf.vf0.autoconf net.ipv6.conf.vf0.accept_ra | tr '\n' ' ')" "0 0 "
}

rig_begin
RIG_VF_UP=0
rig_create
ip -n "$RIG_GUEST" link set vf0 mtu 2000
# Once up and down, so what the kernel itself keeps of having been up (its
# default qdisc, IPv6's own multicast memberships) is in the baseline too.
ip -n "$RIG_GUEST" link set vf0 up
ip -n "$RIG_GUEST" link set vf0 down
vf_snapshot "$RIG_TMP/vf0.before"

# ---- 1. the pair lets the VF go while run runs
run_start RUN --synthetic hn0 --settle-ms 0
run_wait_dump 15 "pair hn0 active" "p and p['state'] == 'active'" || true
pass_down "1"
ip -n "$RIG_GUEST" link set vf0 address "$OTHER_MAC"
run_wait_dump 15 "pair hn0 lets vf0 go" "p and p['state'] != 'active'" || true
vf_snapshot "$RIG_TMP/vf0.after"
assert_files_equal "1: vf0 reads as before the join" "$RIG_TMP/vf0.before" "$RIG_TMP/vf0.after"

# ---- 2. joined again, run stopped, detach
ip -n "$RIG_GUEST" link set hn0 promisc off allmulticast off
ip -n "$RIG_GUEST" maddr del "$MC" dev hn0
ip -n "$RIG_GUEST" link set vf0 address "$RIG_MAC"
run_wait_dump 15 "pair hn0 active again" "p and p['state'] == 'active'" || true
pass_down "2"
run_stop "$RUN" || true
run_assert_no_error "no error in the run log"
rig_try hnxdp_g detach --synthetic hn0
assert_eq "2: detach" "$RIG_RC" 0
vf_snapshot "$RIG_TMP/vf0.after"
assert_files_equal "2: vf0 reads as before the join after detach" "$RIG_TMP/vf0.before" "$RIG_TMP/vf0.after"
ip -n "$RIG_GUEST" link set hn0 promisc off allmulticast off
ip -n "$RIG_GUEST" maddr del "$MC" dev hn0

rig_finish
