#!/usr/bin/env bash
# 40-detach-clean: detach leaves nothing behind (B13).
# After attach + detach: no tcx program on hn0/vf0 (asked of the kernel with
# BPF_PROG_QUERY), no BPF link of an hnxdp program, no tc qdisc/filter, no
# XDP program, no pin directory for the guest namespace, and no hnxdp_*
# program loaded that was not loaded before. Done twice: once for a plain
# detach, once for `detach --all` after the VF was removed (stale pair).
. "$(dirname "$0")/../lib/rig.sh"

rig_begin
rig_create

progs_before="$RIG_TMP/progs.before"
links_before="$RIG_TMP/links.before"
rig_hnxdp_progs >"$progs_before"
rig_hnxdp_links >"$links_before"
rig_snapshot "$RIG_TMP/snap.before"

no_xdp() { # -> the devices of the guest that carry an XDP program (empty: none)
	ip -n "$RIG_GUEST" -d -j link show | "$RIG_PY" -c '
import json, sys
print(" ".join(l["ifname"] for l in json.load(sys.stdin) if "xdp" in l))'
}
new_progs() { # -> hnxdp_* programs loaded now that were not loaded before
	rig_hnxdp_progs | grep -vxF -f "$progs_before" || true
}
no_new_progs() { [[ -z "$(new_progs)" ]]; }
new_links() { # -> BPF links of hnxdp_* programs that were not there before
	rig_hnxdp_links | grep -vxF -f "$links_before" || true
}

check_attached() { # $1: label
	local n
	[[ -d "$RIG_PIN_DIR" ]] && pass "$1: pin directory $RIG_PIN_DIR exists" \
		|| fail "$1: pin directory $RIG_PIN_DIR missing after attach"
	n=$(rig_tcx_count vf0 ingress)
	assert_eq "$1: one hnxdp tcx program on vf0 ingress" "$n" 1
	n=$(rig_tcx_count hn0 egress)
	assert_eq "$1: one hnxdp tcx program on hn0 egress" "$n" 1
	n=$(new_links | wc -l)
	assert_ge "$1: bpftool link show lists the new hnxdp links" "$n" 2
	# Pinned links in the pair's directory are the ones on the devices.
	local d="$RIG_PIN_DIR/$(rig_ifindex "$RIG_GUEST" hn0)"
	if [[ -d "$d" ]]; then
		pass "$1: per-pair pin directory $d exists"
		local pinned attached
		pinned=$(for f in "$d"/link_*; do [[ -e "$f" ]] && bpftool -j link show pinned "$f" | rig_json id; done | sort -n | tr '\n' ' ')
		attached=$(rig_tcx hn0 vf0 | "$RIG_PY" -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(str(i) for i in sorted(p["link_id"] for dev in d.values() if dev for dir in ("ingress", "egress") for p in dev[dir] if p["name"].startswith("hnxdp_"))) + " ")')
		assert_eq "$1: pinned link ids are the attached tcx links" "$pinned" "$attached"
	else
		fail "$1: per-pair pin directory $d missing"
	fi
}

check_clean() { # $1: label, $2...: devices that still exist
	local label=$1 dev dir n out
	shift
	for dev in "$@"; do
		for dir in ingress egress; do
			n=$(rig_tcx_count "$dev" "$dir" "")
			assert_eq "$label: no tcx program at all on $dev $dir" "$n" 0
		done
		out=$(tc -n "$RIG_GUEST" qdisc show dev "$dev")
		assert_not_contains "$label: no clsact/ingress qdisc on $dev" "$out" "clsact"
		assert_not_contains "$label: no ingress qdisc on $dev" "$out" "ingress"
		for dir in ingress egress; do
			out=$(tc -n "$RIG_GUEST" filter show dev "$dev" "$dir" 2>/dev/null || true)
			assert_eq "$label: no tc filter on $dev $dir" "$out" ""
		done
	done
	assert_eq "$label: no XDP program on any guest device" "$(no_xdp)" ""
	[[ ! -e "$RIG_PIN_DIR" ]] && pass "$label: no pin directory $RIG_PIN_DIR" \
		|| fail "$label: pin directory left behind: $(cd "$RIG_PIN_DIR" && find . | tr '\n' ' ')"
	assert_global_eq "$label: no new BPF link of an hnxdp program (bpftool link show)" "$(new_links | tr '\n' ';')" ""
	# Programs are freed asynchronously once their last reference goes.
	local i
	for ((i = 0; i < 100; i++)); do no_new_progs && break; sleep 0.05; done
	assert_global_eq "$label: no hnxdp_* program loaded that was not before (bpftool prog show)" "$(new_progs | tr '\n' ';')" ""
}

# ---- attach, traffic, detach.
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
check_attached "attached"
rig_host_switch vf
rig_try rig_r ping -n -c 3 -i 0.1 -W 2 "$RIG_G4"
assert_eq "remote pings the guest through the pair" "$RIG_RC" 0
rig_host_switch syn

rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
check_clean "after detach" hn0 vf0
rig_snapshot "$RIG_TMP/snap.after"
assert_files_equal "guest links, features, tc, tcx, hnxdp links and pins as before attach" \
	"$RIG_TMP/snap.before" "$RIG_TMP/snap.after"

# ---- attach, VF removed by surprise (no control plane), detach --all.
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "second attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
check_attached "attached again"
rig_vf_remove_surprise
rig_try hnxdp_g detach --all
assert_eq "detach --all with the VF gone exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
check_clean "after detach --all (VF gone)" hn0
rig_try rig_g ping -n -c 3 -i 0.1 -W 2 "$RIG_R4"
assert_eq "guest reaches the remote on the synthetic path after detach" "$RIG_RC" 0

rig_finish
