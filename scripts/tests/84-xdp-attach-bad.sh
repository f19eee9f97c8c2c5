#!/usr/bin/env bash
# 84-xdp-attach-bad: `hnxdp xdp attach` is all or nothing. A file that is not
# a loadable XDP program (missing, empty, a directory, random bytes, text, a
# BPF object with only a tc program, a --prog name the object lacks) is
# refused with exit 2 and one clear stderr line (no raw libbpf error number),
# and changes nothing: (a) on a pair with no XDP at all, nothing is attached
# or pinned; (b) on a pair with a user XDP program, that program stays
# attached, pinned and working. Ends with detach and the rig's leak checks.
. "$(dirname "$0")/../lib/rig.sh"

DROP=5555
KEEP=5556
N=200

# rig_snapshot plus what it does not show: bpftool's view of the devices'
# XDP and the program behind each pin of the pair directory.
snapshot() {
	local f
	rig_snapshot "$1"
	{
		echo "## bpftool net (guest)"
		nsenter --net="/run/netns/$RIG_GUEST" -- bpftool net show 2>&1
		echo "## pinned programs"
		if [[ -d "$RIG_PIN_DIR" ]]; then
			while IFS= read -r f; do
				printf '%s: ' "${f#"$RIG_PIN_DIR"/}"
				bpftool prog show pinned "$f" 2>&1 | sed -n 1p
			done < <(find "$RIG_PIN_DIR" -name 'xdp_*prog' -o -name 'xdp_steer' | sort)
		fi
	} >>"$1" 2>&1
}

rig_begin
rig_create
rig_hnxdp_progs >"$RIG_TMP/progs.before"

CLANG=${CLANG:-$(command -v clang || true)}
if [[ -z "$CLANG" ]] && command -v swift >/dev/null 2>&1; then
	CLANG="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
fi
[[ -x "$CLANG" ]] || fatal "no clang to build the test's BPF programs (set CLANG)"
BPF_INC=(-I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu)
OBJ="$RIG_TMP/drop.bpf.o"
"$CLANG" -O2 -g -target bpf "${BPF_INC[@]}" -DDROP_PORT="$DROP" \
	-c "$RIG_TOOLS/xdp_drop_udp_port.bpf.c" -o "$OBJ" || fatal "building the test XDP program failed"

# The bad inputs: NAME=PATH [--prog NAME].
: >"$RIG_TMP/empty.o"
mkdir "$RIG_TMP/dir.o"
head -c 4096 /dev/urandom >"$RIG_TMP/random.o"
printf 'SEC("xdp") int prog(void) { return 2; }\nnot an object file\n' >"$RIG_TMP/text.o"
cat >"$RIG_TMP/tc.bpf.c" <<'EOF'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "Dual BSD/GPL";
SEC("tc")
int tc_only(struct __sk_buff *skb) { return 0; }
EOF
"$CLANG" -O2 -g -target bpf "${BPF_INC[@]}" -c "$RIG_TMP/tc.bpf.c" -o "$RIG_TMP/tc.o" \
	|| fatal "building the test tc program failed"
# A foreign XDP program (not hnxdp's) to make a later step of `xdp attach` fail.
cat >"$RIG_TMP/pass.bpf.c" <<'EOF'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "Dual BSD/GPL";
SEC("xdp")
int foreign_pass(struct xdp_md *ctx) { return XDP_PASS; }
EOF
"$CLANG" -O2 -g -target bpf "${BPF_INC[@]}" -c "$RIG_TMP/pass.bpf.c" -o "$RIG_TMP/pass.o" \
	|| fatal "building the foreign XDP program failed"
CASES=(
	"nonexistent path|$RIG_TMP/missing.o"
	"empty file|$RIG_TMP/empty.o"
	"directory|$RIG_TMP/dir.o"
	"random bytes|$RIG_TMP/random.o"
	"text file|$RIG_TMP/text.o"
	"object with only a tc program|$RIG_TMP/tc.o"
	"tc program named with --prog|$RIG_TMP/tc.o|tc_only"
	"--prog name the object lacks|$OBJ|no_such_prog"
)

# refuse_all TAG: every bad input is refused and changes nothing.
refuse_all() {
	local tag=$1 c label path prog args
	for c in "${CASES[@]}"; do
		IFS='|' read -r label path prog <<<"$c"
		args=(xdp attach --synthetic hn0 "$path")
		[[ -z "$prog" ]] || args+=(--prog "$prog")
		snapshot "$RIG_TMP/before"
		rig_try hnxdp_g "${args[@]}"
		snapshot "$RIG_TMP/after"
		assert_eq "$tag: $label: exit 2" "$RIG_RC" 2
		assert_one_stderr_line "$tag: $label"
		assert_not_contains "$tag: $label: no raw libbpf error number" "$RIG_ERR" "errno 40"
		assert_not_contains "$tag: $label: no unknown error" "$RIG_ERR" "Unknown error"
		assert_eq "$tag: $label: nothing on stdout" "$RIG_OUT" ""
		assert_files_equal "$tag: $label: links, XDP, tcx and pins unchanged" "$RIG_TMP/before" "$RIG_TMP/after"
	done
}

# refuse_late TAG: a good object, but vf0 has a foreign XDP program, so
# attaching hnxdp's steering there fails after the object was loaded (and,
# with no XDP before, after the steering objects were pinned and attached to
# hn0): exit 1, one line, and every step taken is undone.
refuse_late() {
	ip -n "$RIG_GUEST" link set dev vf0 xdp obj "$RIG_TMP/pass.o" sec xdp
	snapshot "$RIG_TMP/before"
	rig_try hnxdp_g xdp attach --synthetic hn0 "$OBJ"
	snapshot "$RIG_TMP/after"
	ip -n "$RIG_GUEST" link set dev vf0 xdp off
	assert_eq "$1: exit 1" "$RIG_RC" 1
	assert_one_stderr_line "$1"
	assert_contains "$1: says what is wrong" "$RIG_ERR" "does not manage"
	assert_files_equal "$1: rolled back: links, XDP, tcx and pins unchanged" "$RIG_TMP/before" "$RIG_TMP/after"
}

rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf
rig_try rig_r ping -n -c 2 -i 0.1 -W 2 "$RIG_G4"

# ---- (a) no XDP on the pair: refused, nothing attached or pinned.
refuse_all "no XDP"
assert_not_contains "no XDP: nothing on hn0" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"
assert_not_contains "no XDP: nothing on vf0" "$(ip -n "$RIG_GUEST" -d link show dev vf0)" "prog/xdp"
assert_eq "no XDP: no XDP pins in the pair directory" "$(find "$RIG_PIN_DIR" -name 'xdp_*' -o -name 'link_xdp_*' | wc -l)" 0
refuse_late "no XDP, late failure"
assert_not_contains "no XDP, late failure: nothing on hn0" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"

# ---- (b) a user program attached: refused, the program stays and works.
rig_try hnxdp_g xdp attach --synthetic hn0 "$OBJ" --prog drop_udp_port
assert_eq "xdp attach of a good program exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
refuse_all "user program attached"
assert_contains "user program attached: steering still on vf0" "$(ip -n "$RIG_GUEST" -d link show dev vf0)" "hnxdp_xsk_steer"
assert_contains "user program attached: steering still on hn0" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "hnxdp_xsk_steer"
rig_count_udp "user program attached, VF path" "$DROP" 0
rig_count_udp "user program attached, VF path" "$KEEP" "$N"
rig_vf_remove_planned
refuse_all "user program attached, VF gone"
rig_count_udp "user program attached, synthetic path" "$DROP" 0
rig_count_udp "user program attached, synthetic path" "$KEEP" "$N"
# The VF returns with a foreign XDP program: the pair joins without XDP on
# it; attaching another program then fails on vf0 and keeps the first one.
rig_vf_add
ip -n "$RIG_GUEST" link set dev vf0 xdp obj "$RIG_TMP/pass.o" sec xdp
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
note "re-attach with a foreign XDP program on vf0: exit $RIG_RC: $RIG_ERR"
ip -n "$RIG_GUEST" link set dev vf0 xdp off
refuse_late "user program attached, late failure"
rig_count_udp "user program attached, after the late failure" "$DROP" 0
rig_count_udp "user program attached, after the late failure" "$KEEP" "$N"

# ---- detach: nothing left.
rig_try hnxdp_g xdp detach --synthetic hn0
assert_eq "xdp detach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_not_contains "no XDP on hn0 after xdp detach" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"
rig_count_udp "after xdp detach" "$DROP" "$N"
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_not_contains "no XDP on hn0 after detach" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"
assert_eq "no pins left after detach" "$(if [[ -e "$RIG_PIN_DIR" ]]; then find "$RIG_PIN_DIR" | wc -l; else echo 0; fi)" 0
assert_eq "no tcx programs of hnxdp left on hn0" "$(rig_tcx_count hn0 ingress)$(rig_tcx_count hn0 egress)" "00"
assert_global_eq "no hnxdp_* program loaded that was not before (bpftool prog show)" \
	"$(rig_hnxdp_progs | { grep -vxF -f "$RIG_TMP/progs.before" || true; } | tr '\n' ';')" ""
assert_global_eq "no drop_udp_port program left loaded" "$(bpftool prog show name drop_udp_port 2>/dev/null | wc -l)" 0
rig_finish
