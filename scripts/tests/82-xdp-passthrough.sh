#!/usr/bin/env bash
# 82-xdp-passthrough: a user's XDP program attached to the pair with
# `hnxdp xdp attach` runs on frames from whichever device carries the pair
# (B18): a program that drops one UDP port drops it on the VF path and, after
# the VF left, on the synthetic path; other traffic is unaffected.
# `hnxdp xdp detach` removes it (the port gets through again, no XDP left on
# the devices); bad input is refused with exit 2; `hnxdp detach` removes
# every XDP pin with the pair.
. "$(dirname "$0")/../lib/rig.sh"

DROP=5555
KEEP=5556
N=200

rig_begin
rig_create

CLANG=${CLANG:-$(command -v clang || true)}
if [[ -z "$CLANG" ]] && command -v swift >/dev/null 2>&1; then
	CLANG="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
fi
[[ -x "$CLANG" ]] || fatal "no clang to build the test's XDP program (set CLANG)"
OBJ="$RIG_TMP/drop.bpf.o"
"$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu -DDROP_PORT="$DROP" \
	-c "$RIG_TOOLS/xdp_drop_udp_port.bpf.c" -o "$OBJ" || fatal "building the test XDP program failed"

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4"

# ---- bad input: refused, one line, exit 2, nothing attached.
rig_try hnxdp_g xdp attach --synthetic hn0 "$RIG_TMP/missing.o"
assert_eq "xdp attach of a missing file exits 2" "$RIG_RC" 2
assert_one_stderr_line "xdp attach of a missing file"
rig_try hnxdp_g xdp attach --synthetic hn0 "$OBJ" --prog no_such_prog
assert_eq "xdp attach of a missing program name exits 2" "$RIG_RC" 2
assert_one_stderr_line "xdp attach of a missing program name"
rig_try hnxdp_g xdp attach --synthetic nosuch0 "$OBJ"
assert_eq "xdp attach on an unknown interface exits 2" "$RIG_RC" 2
rig_try hnxdp_g xdp detach --synthetic hn0
assert_eq "xdp detach with nothing attached exits 2" "$RIG_RC" 2

# ---- attached: dropped on the VF path.
rig_try hnxdp_g xdp attach --synthetic hn0 "$OBJ" --prog drop_udp_port
assert_eq "xdp attach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
note "$RIG_OUT"
assert_contains "hnxdp's XDP program on vf0" "$(ip -n "$RIG_GUEST" -d link show dev vf0)" "hnxdp_xsk_steer"
assert_contains "hnxdp's XDP program on hn0" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "hnxdp_xsk_steer"
rig_count_udp "VF path" "$DROP" 0
rig_count_udp "VF path" "$KEEP" "$N"
rig_try rig_r ping -n -c 3 -i 0.1 -W 2 "$RIG_G4"
assert_eq "VF path: ping unaffected" "$RIG_RC" 0

# ---- the VF leaves: the same program on the synthetic path.
rig_vf_remove_planned
rig_count_udp "synthetic path" "$DROP" 0
rig_count_udp "synthetic path" "$KEEP" "$N"
rig_try rig_r ping -n -c 3 -i 0.1 -W 2 "$RIG_G4"
assert_eq "synthetic path: ping unaffected" "$RIG_RC" 0

# ---- xdp detach: the port gets through, no XDP on the devices.
rig_try hnxdp_g xdp detach --synthetic hn0
assert_eq "xdp detach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_not_contains "no XDP on hn0 after xdp detach" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"
rig_count_udp "after xdp detach" "$DROP" "$N"
assert_eq "no XDP pins left in the pair directory" "$(ls "$RIG_PIN_DIR"/*/ | grep -c xdp || true)" 0

# ---- hnxdp detach removes the XDP objects of the pair with it.
rig_vf_add
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "re-attach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_try hnxdp_g xdp attach --synthetic hn0 "$OBJ"
assert_eq "xdp attach (first XDP program of the object) exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_not_contains "no XDP on hn0 after detach" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"
assert_not_contains "no XDP on vf0 after detach" "$(ip -n "$RIG_GUEST" -d link show dev vf0)" "prog/xdp"
assert_eq "no pins left after detach" "$(if [[ -e "$RIG_PIN_DIR" ]]; then find "$RIG_PIN_DIR" | wc -l; else echo 0; fi)" 0
rig_finish
