#!/usr/bin/env bash
# 50-bad-input: refusals (B1, exit codes of docs/behaviour.md).
# Each refused command exits 2 (bad input) or 3 (privilege), prints exactly
# one line on stderr, and changes nothing: the guest's links, the features
# of every device involved, tc, tcx, hnxdp links and pins read the same
# before and after. Cases: unknown interfaces, MAC mismatch (refused without
# --force, accepted with it), the same device twice, loopback, a bridge with
# the same MAC, already-paired devices, a synthetic of another pair used as
# VF, missing privilege.
. "$(dirname "$0")/../lib/rig.sh"

rig_begin
rig_create

# Extra devices in the guest (peers stay in the guest: they carry no traffic).
OTHER_MAC=02:48:4f:00:00:99
ip -n "$RIG_GUEST" link add vfx type veth peer name vfxp      # different MAC
ip -n "$RIG_GUEST" link set vfx address "$OTHER_MAC"
ip -n "$RIG_GUEST" link add hn1 type veth peer name hn1p      # same MAC as hn0/vf0
ip -n "$RIG_GUEST" link set hn1 address "$RIG_MAC"
ip -n "$RIG_GUEST" link add br0 type bridge                   # bridge, same MAC
ip -n "$RIG_GUEST" link set br0 address "$RIG_MAC"
for d in vfx vfxp hn1 hn1p br0; do ip -n "$RIG_GUEST" link set "$d" up; done
DEVS=(hn0 vf0 vfx hn1 br0 lo)

# refuse LABEL EXPECTED_CODES HNXDP-ARGS...: refused, one stderr line, no change.
refuse() {
	local label=$1 codes=$2
	shift 2
	rig_snapshot "$RIG_TMP/before" "${DEVS[@]}"
	rig_try hnxdp_g "$@"
	assert_in "$label: exit code" "$RIG_RC" "$codes"
	assert_one_stderr_line "$label"
	rig_snapshot "$RIG_TMP/after" "${DEVS[@]}"
	assert_files_equal "$label: nothing changed" "$RIG_TMP/before" "$RIG_TMP/after"
}

# ---- nothing attached yet.
refuse "unknown synthetic" 2 attach --synthetic nosuch0 --vf vf0
refuse "unknown VF" 2 attach --synthetic hn0 --vf nosuch0
refuse "MAC mismatch without --force" 2 attach --synthetic hn0 --vf vfx
refuse "same device twice" 2 attach --synthetic hn0 --vf hn0
refuse "loopback as VF" 2 attach --synthetic hn0 --vf lo
refuse "loopback as synthetic" 2 attach --synthetic lo --vf vf0
refuse "bridge (same MAC) as VF" 2 attach --synthetic hn0 --vf br0
refuse "bridge (same MAC) as synthetic" 2 attach --synthetic br0 --vf vf0
refuse "attach without --vf" 2 attach --synthetic hn0
refuse "unknown subcommand" 2 frobnicate

# ---- missing privilege. The binary must be reachable by the unprivileged
# user: if its directory is not, use a copy in a world-readable place.
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --)
BIN=$HNXDP
if ! nsenter --net="/run/netns/$RIG_GUEST" -- "${NOBODY[@]}" test -x "$BIN"; then
	mkdir -p "$RIG_TMP/bin"
	cp "$HNXDP" "$RIG_TMP/bin/hnxdp"
	chmod 755 "$RIG_TMP/bin" "$RIG_TMP/bin/hnxdp"
	BIN="$RIG_TMP/bin/hnxdp"
	note "unprivileged user cannot reach $HNXDP; using a copy at $BIN"
fi
hnxdp_nobody() {
	timeout -k 5 "$RIG_HNXDP_TIMEOUT" nsenter --net="/run/netns/$RIG_GUEST" -- "${NOBODY[@]}" "$BIN" "$@"
}
refuse_nobody() {
	local label=$1
	shift
	rig_snapshot "$RIG_TMP/before" "${DEVS[@]}"
	rig_try hnxdp_nobody "$@"
	assert_eq "$label: exit code" "$RIG_RC" 3
	assert_one_stderr_line "$label"
	rig_snapshot "$RIG_TMP/after" "${DEVS[@]}"
	assert_files_equal "$label: nothing changed" "$RIG_TMP/before" "$RIG_TMP/after"
}
refuse_nobody "attach without privilege" attach --synthetic hn0 --vf vf0

# ---- MAC mismatch with --force is accepted, and detach undoes it.
rig_snapshot "$RIG_TMP/before-force" "${DEVS[@]}"
rig_try hnxdp_g attach --synthetic hn0 --vf vfx --force
assert_eq "MAC mismatch with --force: attach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "MAC mismatch with --force: dump shows the pair" \
	"$(rig_dump_get 'pairs[synthetic.name=hn0].vf.name')" vfx
rig_try hnxdp_g detach --synthetic hn0
assert_eq "MAC mismatch with --force: detach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_snapshot "$RIG_TMP/after-force" "${DEVS[@]}"
assert_files_equal "MAC mismatch with --force: detach restored everything" \
	"$RIG_TMP/before-force" "$RIG_TMP/after-force"

# ---- with hn0/vf0 attached.
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0

# The same pair again: either a clear no-op (0) or a clear refusal (2);
# either way nothing changes.
rig_snapshot "$RIG_TMP/before" "${DEVS[@]}"
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_in "same pair again: exit code" "$RIG_RC" "0|2"
if [[ $RIG_RC != 0 ]]; then assert_one_stderr_line "same pair again"; fi
rig_snapshot "$RIG_TMP/after" "${DEVS[@]}"
assert_files_equal "same pair again: nothing changed" "$RIG_TMP/before" "$RIG_TMP/after"

refuse "second pair with an already-paired VF" 2 attach --synthetic hn1 --vf vf0
refuse "synthetic of a pair used as VF" 2 attach --synthetic hn1 --vf hn0
refuse "VF of a pair used as synthetic" 2 attach --synthetic vf0 --vf hn1
refuse_nobody "detach without privilege" detach --synthetic hn0
refuse_nobody "detach --all without privilege" detach --all

rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0

rig_finish
