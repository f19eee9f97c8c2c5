#!/usr/bin/env bash
# 26-classic-tc: the classic tc attachment, which kernels without tcx (before
# 6.6) get, forced here on this kernel with --tc-mode classic / HNXDP_TC_MODE.
#   1. attach: hnxdp's three programs are cls_bpf direct-action filters at
#      priority 1 handle 0x4858 on clsact (hn0 ingress+egress, vf0 ingress);
#      dump says "classic"; a clsact qdisc and a filter the user had on vf0
#      stay in place; frames enter through the VF. A pair keeps its
#      attachment: `run --tc-mode tcx` adopts it as classic.
#   2. detach: hn0's clsact (made by hnxdp) is gone, vf0's (the user's) and
#      the user's filter stay: guest links, tc and pins read as before.
#   3. a foreign filter at hnxdp's place (priority 1 handle 0x4858): attach
#      refuses with one line, exit 1, nothing changed. Bad --tc-mode /
#      HNXDP_TC_MODE: exit 2, one line, nothing changed.
#   4. the namespace tests of VF namespace moves, run's arrivals/departures,
#      egress qdisc copies and capture again, in classic mode (receive,
#      fallback, kill points, kill -9 and adoption run in classic mode in the
#      pytest suite: integration/test_10_rx.py, test_20_tx_fallback.py,
#      test_35_crash_kill_points.py, test_73_run_crash_adopt.py).
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

rig_begin
rig_create
N=200
P='pairs[synthetic.name=hn0]'

CLANG=$(command -v clang || true)
[[ -n $CLANG ]] || CLANG="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
"$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$RIG_REPO/bpf/bench/empty.bpf.c" -o "$RIG_TMP/empty.o" \
	|| fatal "cannot compile the user's tc program with $CLANG"
hook_filters() { # DEV DIR -> "pref/handle/name ..." of the bpf filters
	rig_g tc -j filter show dev "$1" "$2" | "$RIG_PY" -c '
import json, sys
out = []
for f in json.load(sys.stdin):
    o = f.get("options")
    if f.get("kind") == "bpf" and o:
        out.append("%s/%s/%s" % (f["pref"], o.get("handle"), o["prog"]["name"]))
print(" ".join(out))'
}
qdiscs() { rig_g tc qdisc show dev "$1" | awk '{print $2, $3}' | tr '\n' ' '; }

# The user's own classic tc on vf0: a clsact qdisc and a filter at priority 7.
rig_g tc qdisc add dev vf0 clsact
rig_g tc filter add dev vf0 ingress prio 7 handle 7 bpf da obj "$RIG_TMP/empty.o" sec tc
user_filter=$(hook_filters vf0 ingress)
assert_contains "the user's filter on vf0 ingress" "$user_filter" "7/0x7/empty"
rig_snapshot "$RIG_TMP/snap.before"

# ---- 3a. bad mode: nothing changes.
rig_try hnxdp_g attach --tc-mode bogus --synthetic hn0 --vf vf0
assert_eq "--tc-mode bogus: exit 2" "$RIG_RC" 2
assert_eq "--tc-mode bogus: one line" "$(grep -c . <<<"$RIG_ERR")" 1
assert_contains "--tc-mode bogus: names the choices" "$RIG_ERR" "auto, tcx or classic"
rig_try env HNXDP_TC_MODE=fast nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" attach --synthetic hn0 --vf vf0
assert_eq "HNXDP_TC_MODE=fast: exit 2" "$RIG_RC" 2
assert_contains "HNXDP_TC_MODE=fast: names the variable" "$RIG_ERR" "HNXDP_TC_MODE"
rig_snapshot "$RIG_TMP/snap.bad"
assert_files_equal "bad mode: nothing changed" "$RIG_TMP/snap.before" "$RIG_TMP/snap.bad"

# ---- 1. attach in classic mode.
rig_try hnxdp_g attach --tc-mode classic --synthetic hn0 --vf vf0
assert_eq "attach --tc-mode classic: exit 0" "$RIG_RC" 0
[[ $RIG_RC == 0 ]] || note "stderr: $RIG_ERR"
assert_eq "dump: attachment classic" "$(rig_dump_get "$P.attachment")" classic
assert_eq "hn0 ingress: hnxdp's filter" "$(hook_filters hn0 ingress)" "1/0x4858/hnxdp_syn_ingre"
assert_eq "hn0 egress: hnxdp's filter" "$(hook_filters hn0 egress)" "1/0x4858/hnxdp_syn_egres"
assert_eq "vf0 ingress: hnxdp's filter first, the user's kept" "$(hook_filters vf0 ingress)" "1/0x4858/hnxdp_vf_ingres $user_filter"
assert_eq "no tcx program anywhere" "$(rig_tcx hn0 vf0 | "$RIG_PY" -c '
import json, sys
d = json.load(sys.stdin)
print(sum(1 for dev in d.values() for h in ("ingress", "egress") for p in dev[h] if not p.get("classic")))')" 0
rig_host_switch vf
rx0=$(rig_stat vf_rx_packets)
rig_count_udp "classic, joined" 5260 "$N"
assert_ge "frames entered through the VF (vf_rx_packets)" $(($(rig_stat vf_rx_packets) - rx0)) "$N"

# A second pair on the loaded datapath: libbpf's messages about errors hnxdp
# expects (no clsact yet, a clsact that exists) stay off stderr.
for d in hn9 vf9; do rig_g ip link add "$d" address 02:48:58:00:00:99 type veth peer name "${d}p"; rig_g ip link set "$d" up; done
rig_try hnxdp_g attach --tc-mode classic --synthetic hn9 --vf vf9
assert_eq "second pair: attach exits 0" "$RIG_RC" 0
assert_eq "second pair: nothing on stderr" "$RIG_ERR" ""
rig_try hnxdp_g detach --synthetic hn9
assert_eq "second pair: detach exits 0, nothing on stderr" "$RIG_RC:$RIG_ERR" "0:"
for d in hn9 vf9; do rig_g ip link del "$d"; done

# A pair keeps its attachment: run asked for tcx adopts it as it is.
run_start RUN --synthetic hn0 --tc-mode tcx
run_wait_dump 10 "run adopted hn0" "p and p['state'] == 'active'" || true
assert_eq "run --tc-mode tcx: the pair stays classic" "$(rig_dump_get "$P.attachment")" classic
assert_eq "run --tc-mode tcx: still one filter on vf0 ingress besides the user's" "$(hook_filters vf0 ingress)" "1/0x4858/hnxdp_vf_ingres $user_filter"
assert_eq "run --tc-mode tcx: no tcx link made" "$(rig_tcx_count hn0 ingress)" 1
run_stop "$RUN"

# ---- 2. detach: hnxdp's clsact goes, the user's stays.
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach: exit 0" "$RIG_RC" 0
assert_eq "detach: hn0 has no clsact (hnxdp made it)" "$(qdiscs hn0 | grep -c clsact)" 0
assert_eq "detach: vf0 keeps the user's clsact and filter" "$(hook_filters vf0 ingress)" "$user_filter"
rig_snapshot "$RIG_TMP/snap.detached"
assert_files_equal "detach: links, tc and pins as before" "$RIG_TMP/snap.before" "$RIG_TMP/snap.detached"

# ---- 3b. a foreign filter at hnxdp's place.
rig_g tc filter add dev vf0 ingress prio 1 handle 0x4858 bpf da obj "$RIG_TMP/empty.o" sec tc
rig_snapshot "$RIG_TMP/snap.foreign"
rig_try hnxdp_g attach --tc-mode classic --synthetic hn0 --vf vf0
assert_eq "foreign filter at priority 1 handle 0x4858: attach exits 1" "$RIG_RC" 1
assert_eq "foreign filter: one line" "$(grep -c . <<<"$RIG_ERR")" 1
assert_contains "foreign filter: the line names it" "$RIG_ERR" "not hnxdp's"
rig_snapshot "$RIG_TMP/snap.foreign.after"
assert_files_equal "foreign filter: nothing changed" "$RIG_TMP/snap.foreign" "$RIG_TMP/snap.foreign.after"
rig_g tc filter del dev vf0 ingress prio 1 handle 0x4858 bpf

# ---- 4. the namespace tests again, in classic mode.
for t in 25-vf-netns-move 70-run-arrival-departure 86-qdisc-passthrough 87-capture; do
	t0=$SECONDS
	rc=0
	HNXDP_TC_MODE=classic bash "$RIG_REPO/scripts/tests/$t.sh" >"$RIG_TMP/$t.log" 2>&1 || rc=$?
	if [[ $rc == 0 ]]; then
		pass "classic: $t ($(tail -n 1 "$RIG_TMP/$t.log"), $((SECONDS - t0)) s)"
	else
		fail "classic: $t exit $rc; its failures:"
		grep -E '^FAIL' "$RIG_TMP/$t.log" | head -n 10 | sed 's/^/    /'
	fi
done
rig_finish
