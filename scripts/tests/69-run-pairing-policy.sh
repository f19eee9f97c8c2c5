#!/usr/bin/env bash
# 69-run-pairing-policy: `run` says when it manages nothing, and never
# guesses between equally good VFs (B1, B22).
#   1. `run` with no --synthetic in a guest of veth devices only: it manages no
#      synthetic and says so at warning level (virtio_net is what it takes by
#      itself); nothing is pinned. --synthetic-driver names other drivers (the
#      warning names them); hv_netvsc, net_failover or a bad name: exit 2.
#   2. Two veth VFs share hn0's MAC (vf0, vf1): `run --synthetic hn0` joins
#      neither and names both in one warning; once vf1 is gone, vf0 is joined.
#   3. A VF with an IPv4 address of its own: attach warns, and `status` (text
#      and --json `vf.addresses`) shows it until it is removed (B24).
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

rig_begin
rig_create

# ---- 1. nothing to manage
run_start RUN --settle-ms 0
assert_eq "run says it manages nothing" "$(run_log_has 'warning .*managing no synthetic interface' && echo yes)" yes
assert_contains "and which drivers it would take" "$(grep 'managing no synthetic' "$RUN_LOG")" "virtio_net"
run_stop "$RUN" || true
assert_eq "nothing pinned" "$(test -e "$RIG_PIN_DIR" && echo present || echo absent)" absent
# --synthetic-driver names the drivers it takes; kernel-pairing drivers are refused.
run_start RUN --settle-ms 0 --synthetic-driver xen-netfront
assert_contains "run --synthetic-driver xen-netfront: names that driver" "$(grep 'managing no synthetic' "$RUN_LOG")" "xen-netfront"
run_stop "$RUN" || true
for d in hv_netvsc net_failover "virtio net"; do
	rig_try hnxdp_g run --synthetic-driver "$d"
	assert_eq "run --synthetic-driver '$d': exit 2" "$RIG_RC" 2
	assert_eq "run --synthetic-driver '$d': one line" "$(grep -c . <<<"$RIG_ERR")" 1
done
assert_eq "still nothing pinned" "$(test -e "$RIG_PIN_DIR" && echo present || echo absent)" absent

# ---- 2. a tie between two VFs
ip -n "$RIG_GUEST" link add vf1 type veth peer name vf1p
ip -n "$RIG_GUEST" link set vf1 address "$RIG_MAC"
ip -n "$RIG_GUEST" link set vf1 up
run_start RUN --synthetic hn0 --settle-ms 0
wait_until 10 "the tie is logged" run_log_has "not joining any VF: .*vf0.*vf1|not joining any VF: .*vf1.*vf0" \
	&& pass "one warning names vf0 and vf1"
assert_eq "neither joined" "$(run_state)" idle
ip -n "$RIG_GUEST" link del vf1
run_wait_dump 15 "vf0 joined once vf1 is gone" "p and p['state'] == 'active' and (p['vf'] or {}).get('name') == 'vf0'" || true
run_stop "$RUN" || true
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach" "$RIG_RC" 0

# ---- 3. a VF with an address of its own is warned about
ip -n "$RIG_GUEST" addr add 198.18.9.9/24 dev vf0
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach a VF with an address" "$RIG_RC" 0
assert_contains "attach warns about the VF's address" "$RIG_ERR" "vf0 has addresses of its own (198.18.9.9/24)"
assert_eq "status --json lists it" "$(hnxdp_g status --json | rig_json 'pairs[synthetic.name=hn0].vf.addresses')" '["198.18.9.9/24"]'
assert_contains "status warns" "$(hnxdp_g status)" "warning: the VF has addresses of its own (198.18.9.9/24)"
assert_eq "the kernel's route for that address is not the VF's own" "$(hnxdp_g status --json | rig_json 'pairs[synthetic.name=hn0].vf.routes')" '[]'
ip -n "$RIG_GUEST" addr del 198.18.9.9/24 dev vf0
assert_eq "without it the list is empty" "$(hnxdp_g status --json | rig_json 'pairs[synthetic.name=hn0].vf.addresses')" '[]'
# A route through the VF (no address of its own) is warned about too.
ip -n "$RIG_GUEST" route add 198.18.60.0/24 dev vf0
ip -n "$RIG_GUEST" -6 route add fd00:60::/64 dev vf0
assert_eq "status --json lists the VF's routes" "$(hnxdp_g status --json | rig_json 'pairs[synthetic.name=hn0].vf.routes')" '["198.18.60.0/24","fd00:60::/64"]'
assert_contains "status warns about them" "$(hnxdp_g status)" "warning: routes go through the VF (198.18.60.0/24, fd00:60::/64)"
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach" "$RIG_RC" 0
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_contains "attach warns about the VF's routes" "$RIG_ERR" "routes go through vf0 (198.18.60.0/24, fd00:60::/64)"
ip -n "$RIG_GUEST" route del 198.18.60.0/24 dev vf0
ip -n "$RIG_GUEST" -6 route del fd00:60::/64 dev vf0
assert_eq "without them the list is empty" "$(hnxdp_g status --json | rig_json 'pairs[synthetic.name=hn0].vf.routes')" '[]'
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach" "$RIG_RC" 0

rig_finish
