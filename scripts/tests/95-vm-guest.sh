#!/usr/bin/env bash
# 95-vm-guest: hnxdp in a real guest (QEMU/TCG, Debian 6.12 kernel; see
# scripts/lib/vm.sh) with a virtio-net synthetic and an e1000e "VF" of the
# same MAC, hot-unplugged and plugged back through QMP like a hypervisor does.
#   1. attach: pings from the host side (the switch's br0) to the synthetic's
#      address are answered; the VF's tap counters rise both ways (the
#      switch sends to the VF, the guest answers through the VF) and the
#      synthetic's tap sends nothing. detach: the synthetic's `ethtool -k` and
#      `ip -d link` read exactly as before the attach.
#   2. `hnxdp run --settle-ms 200` in the guest, with no --synthetic, finds the
#      virtio_net synthetic and the e1000e (PCI) VF by itself and joins it;
#      a planned cycle (switch -> synthetic tap, then device_del: the pair goes
#      idle and the synthetic reads as before; device_add: active again with
#      the new VF's ifindex) and a surprise cycle (device_del first) while a
#      ping runs: at most PLANNED_LOSS / SURPRISE_LOSS pings lost per cycle,
#      and after each replug the traffic goes through the new VF.
#   3. kill -9 of run with traffic flowing: the datapath keeps carrying it
#      through the VF; a new run adopts the pair without a second program on
#      any hook.
#   4. run stops on SIGTERM, detach --all: the synthetic reads as before, no pins.
# The guest kernel and VF model come from VM_KPKG / VM_VF_DRIVER (vm.sh; the
# 96-* tests run this script with Debian 12's 6.1 and vmxnet3). The attachment
# must be tcx on a kernel with tcx (6.6+) and classic tc below; on a kernel
# without tcx, `--tc-mode tcx` must exit 3 naming it.
# Bounded: the test stops itself (FAIL) after 400 s; it takes ~70-100 s under TCG.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/vm.sh"

PLANNED_LOSS=5     # pings (every 0.1 s) lost in a planned cycle, at most
SURPRISE_LOSS=40   # ... in a surprise cycle (the switch moves after the unplug)
T_START=$SECONDS

# ---- helpers (all in the guest unless said otherwise)

# Names of the guest's net devices bound to DRIVER.
g_dev_by_driver() {
	vm_sh "for d in /sys/class/net/*; do [ \"\$(basename \"\$(readlink \$d/device/driver)\")\" = $1 ] && echo \${d##*/}; done; true"
}
g_snapshot() { # DEV FILE (host file): what "restored" means for the synthetic
	vm_sh "ethtool -k $1; ip -d link show dev $1" >"$2" 2>&1
}
g_ifindex() { vm_exec cat "/sys/class/net/$1/ifindex"; }
# Poll `hnxdp dump --json` in the guest until EXPR (python, on p = the first
# pair or None) holds; print that pair (JSON). Exit 1 on timeout.
g_wait_pair() { # SECS EXPR
	vm_exec python3 -c '
import json, subprocess, sys, time
hnxdp, secs, expr = sys.argv[1], float(sys.argv[2]), sys.argv[3]
end, p = time.monotonic() + secs, None
while True:
    try:
        d = json.loads(subprocess.run([hnxdp, "dump", "--json"], capture_output=True, text=True).stdout)
        p = (d.get("pairs") or [None])[0]
    except Exception:
        p = None
    if eval(expr):
        print(json.dumps(p)); sys.exit(0)
    if time.monotonic() > end:
        print(json.dumps(p)); sys.exit(1)
    time.sleep(0.1)' "$HNXDP" "$1" "$2"
}
pair_field() { rig_json --default missing "$1"; }

# Host side: a ping in the background of the switch namespace, and its loss.
# Line-buffered, with -O (a line for every echo left unanswered), so the count
# does not depend on ping's final summary: seen missing once under CI load.
ping_start() { # FILE
	vm_bg PING_PID ip netns exec "$VM_NS" stdbuf -oL ping -O -n -i 0.1 -W 1 -w 600 "$VM_G4" >"$1" 2>&1
}
ping_stop() { # FILE -> "transmitted received"
	kill -INT "$PING_PID" 2>/dev/null || true
	wait "$PING_PID" 2>/dev/null || true
	local summary
	summary=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$1")
	if [[ -z $summary ]]; then
		# No summary: count the lines. Sent: the highest sequence number seen.
		echo "  .. ping printed no summary; counting its lines ($(head -c 300 "$1" | tr '\n' '|'))" >&2
		summary="$(grep -o 'icmp_seq=[0-9]*' "$1" | cut -d= -f2 | sort -n | tail -n 1) $(grep -c 'bytes from' "$1")"
	fi
	echo "$summary"
}
ping_n() { # N -> received count (N pings, 0.2 s apart)
	vm_sw ping -n -c "$1" -i 0.2 -W 2 "$VM_G4" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p'
}

# Does the traffic go through the VF? N pings; the VF tap must carry them
# both ways and the synthetic's tap must not carry the answers.
check_via_vf() { # LABEL
	local vrx vtx srx got
	vrx=$(vm_tap_stat tvf rx); vtx=$(vm_tap_stat tvf tx); srx=$(vm_tap_stat tsyn rx)
	got=$(ping_n 10)
	assert_ge "$1: pings answered" "${got:-0}" 9
	assert_ge "$1: the guest answered through the VF (tvf rx +)" $(($(vm_tap_stat tvf rx) - vrx)) 9
	assert_ge "$1: the switch sent to the VF (tvf tx +)" $(($(vm_tap_stat tvf tx) - vtx)) 9
	assert_le "$1: no answers on the synthetic's tap (tsyn rx +)" $(($(vm_tap_stat tsyn rx) - srx)) 1
}

# One unplug/replug cycle under `run`. KIND: planned | surprise
cycle() {
	local kind=$1 n=$2 t0 p old_vf new_vf new_idx res sent recv
	old_vf=$VF
	ping_start "$VM_TMP/ping.$n"
	sleep 1
	t0=$EPOCHREALTIME
	if [[ $kind == planned ]]; then vm_switch syn; fi
	vm_unplug_vf 2>"$VM_TMP/qmp.err" || fail "cycle $n ($kind): device_del: $(cat "$VM_TMP/qmp.err")"
	note "cycle $n ($kind): $(cat "$VM_TMP/qmp.err")"
	if [[ $kind == surprise ]]; then vm_switch syn; fi
	if p=$(g_wait_pair 20 "p and p['state'] == 'idle' and p['vf'] is None and p['datapath'] == 'synthetic'"); then
		pass "cycle $n ($kind): VF unplugged: pair idle, datapath synthetic, no VF"
	else
		fail "cycle $n ($kind): pair not idle after the unplug: $p"
	fi
	note "cycle $n: idle $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s after the unplug began"
	g_snapshot "$SYN" "$VM_TMP/syn.idle.$n"
	assert_files_equal "cycle $n ($kind): synthetic restored while idle" "$VM_TMP/syn.before" "$VM_TMP/syn.idle.$n"
	assert_eq "cycle $n ($kind): $old_vf is gone from the guest" "$(vm_exec test -e "/sys/class/net/$old_vf" && echo present || echo gone)" gone

	t0=$EPOCHREALTIME
	vm_plug_vf 2>"$VM_TMP/qmp.err" || fail "cycle $n ($kind): device_add: $(cat "$VM_TMP/qmp.err")"
	note "cycle $n ($kind): $(cat "$VM_TMP/qmp.err")"
	new_vf=""
	local i
	for ((i = 0; i < 100; i++)); do
		new_vf=$(g_dev_by_driver "$VM_VF_DRIVER")
		[[ -n "$new_vf" ]] && break
		sleep 0.2
	done
	[[ -n "$new_vf" ]] || fatal "cycle $n ($kind): no $VM_VF_DRIVER device in the guest after device_add"
	new_idx=$(g_ifindex "$new_vf")
	note "cycle $n: $new_vf (ifindex $new_idx) in the guest $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s after device_add"
	assert_ne "cycle $n ($kind): the new VF has a new ifindex" "$new_idx" "$VF_IDX"
	if p=$(g_wait_pair 30 "p and p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('ifindex') == $new_idx"); then
		pass "cycle $n ($kind): VF back: pair active, datapath vf, VF $new_vf ifindex $new_idx"
	else
		fail "cycle $n ($kind): pair not active with the new VF: $p"
	fi
	note "cycle $n: active $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s after device_add"
	vm_switch vf
	sleep 1
	res=$(ping_stop "$VM_TMP/ping.$n")
	read -r sent recv <<<"$res"
	note "cycle $n ($kind): ping: $sent sent, $recv received"
	assert_ge "cycle $n ($kind): pings sent during the cycle" "${sent:-0}" 20
	assert_le "cycle $n ($kind): pings lost (<= $( [[ $kind == planned ]] && echo $PLANNED_LOSS || echo $SURPRISE_LOSS))" \
		$((${sent:-0} - ${recv:-0})) "$([[ $kind == planned ]] && echo $PLANNED_LOSS || echo $SURPRISE_LOSS)"
	VF=$new_vf
	VF_IDX=$new_idx
	check_via_vf "cycle $n ($kind): after the replug"
}

rig_begin
vm_deadline 400
vm_prepare
vm_start
BOOT_S=$VM_BOOT_S

# ---- guest network setup
SYN=$(g_dev_by_driver virtio_net)
VF=$(g_dev_by_driver "$VM_VF_DRIVER")
[[ -n "$SYN" && -n "$VF" ]] || fatal "guest devices: synthetic '$SYN', VF '$VF'"
VF_IDX=$(g_ifindex "$VF")
note "guest: synthetic $SYN (virtio_net), VF $VF ($VM_VF_DRIVER, ifindex $VF_IDX), MAC $VM_MAC"
vm_sh "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	ip addr add $VM_G4/24 dev $SYN && ip link set $SYN up && ip link set $VF up"

# Round trip of one command, for the report.
t0=$EPOCHREALTIME
vm_exec true
note "one guest command: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"

# Before hnxdp the switch sends to the synthetic (the VF carries nothing).
vm_switch syn
wait_until 30 "the synthetic answers pings before attach" vm_sw ping -n -c 1 -W 1 "$VM_G4"
g_snapshot "$SYN" "$VM_TMP/syn.before"

# The attachment this kernel must get: tcx from 6.6 on, classic tc before.
GKVER=$(vm_exec uname -r)
if [[ $(printf '%s\n6.6\n' "${GKVER%%-*}" | sort -V | head -n1) == 6.6 ]]; then WANT_MODE=tcx; else WANT_MODE=classic; fi
note "guest kernel $GKVER: expecting the $WANT_MODE attachment"
# probe: what the kernel and the devices offer, as the rest of the test finds them.
PROBE=$(vm_exec "$HNXDP" probe --json)
note "probe: $(vm_exec "$HNXDP" probe | head -n 8 | tr -s ' ' | tr '\n' ';')"
assert_eq "probe: attachment" "$(rig_json attachment <<<"$PROBE")" "$WANT_MODE"
assert_eq "probe: tcx" "$(rig_json kernel.tcx <<<"$PROBE")" "$([[ $WANT_MODE == tcx ]] && echo true || echo false)"
assert_eq "probe: $SYN is the synthetic" "$(rig_json "devices[name=$SYN].role" <<<"$PROBE")" synthetic
assert_eq "probe: $VF is a VF candidate ($VM_VF_DRIVER)" "$(rig_json "devices[name=$VF].role" <<<"$PROBE")" vf-candidate
assert_eq "probe: $VF's driver" "$(rig_json "devices[name=$VF].driver" <<<"$PROBE")" "$VM_VF_DRIVER"
if [[ $WANT_MODE == classic ]]; then
	rig_try vm_exec "$HNXDP" attach --tc-mode tcx --synthetic "$SYN" --vf "$VF"
	assert_eq "no tcx on $GKVER: attach --tc-mode tcx exits 3" "$RIG_RC" 3
	assert_contains "no tcx on $GKVER: the line names tcx" "$RIG_ERR" "has no tcx"
	assert_eq "no tcx on $GKVER: one line on stderr" "$(grep -c . <<<"$RIG_ERR")" 1
	assert_eq "no tcx on $GKVER: nothing pinned" "$(vm_sh 'ls -A /sys/fs/bpf/hnxdp 2>/dev/null | wc -l')" 0
fi
# hnxdp programs on the pair's hooks in the guest: "ingress egress vf-ingress" counts.
g_progs() { # VFDEV
	vm_exec python3 "$RIG_TOOLS/tcx_query.py" "$SYN" "$1" | "$RIG_PY" -c '
import json, sys
d = json.load(sys.stdin)
n = lambda dev, hook: sum(1 for p in (d.get(dev) or {}).get(hook, []) if p["name"].startswith("hnxdp_"))
print(n(sys.argv[1], "ingress"), n(sys.argv[1], "egress"), n(sys.argv[2], "ingress"))' "$SYN" "$1"
}

# ---- 1. attach, traffic through the VF, detach restores the synthetic.
rig_try vm_exec "$HNXDP" attach --synthetic "$SYN" --vf "$VF"
assert_eq "attach --synthetic $SYN --vf $VF: exit 0" "$RIG_RC" 0
[[ $RIG_RC == 0 ]] || note "attach stderr: $RIG_ERR"
vm_switch vf
p=$(g_wait_pair 20 "p and p['state'] == 'active' and p['datapath'] == 'vf'") || true
assert_eq "attach: pair active" "$(pair_field state <<<"$p")" active
assert_eq "attach: attachment $WANT_MODE" "$(pair_field attachment <<<"$p")" "$WANT_MODE"
assert_eq "attach: one hnxdp program on each hook (syn in, syn out, VF in)" "$(g_progs "$VF")" "1 1 1"
check_via_vf "attached"
vfrx=$(vm_exec "$HNXDP" dump --json | pair_field 'pairs[0].stats.vf_rx_packets')
assert_ge "attached: hnxdp counted frames from the VF (vf_rx_packets)" "$vfrx" 9
rig_try vm_exec "$HNXDP" detach --synthetic "$SYN"
assert_eq "detach: exit 0" "$RIG_RC" 0
[[ $RIG_RC == 0 ]] || note "detach stderr: $RIG_ERR"
vm_switch syn
g_snapshot "$SYN" "$VM_TMP/syn.detached"
assert_files_equal "detach: the synthetic's ethtool -k and ip -d link as before attach" \
	"$VM_TMP/syn.before" "$VM_TMP/syn.detached"
assert_eq "detach: the synthetic answers pings again" "$(ping_n 3)" 3

# ---- 2. run follows hot-unplug/-plug cycles.
vm_sh "setsid $HNXDP run --settle-ms 200 </dev/null >/tmp/run.log 2>&1 & echo \$! >/tmp/run.pid"
RUN_PID=$(vm_exec cat /tmp/run.pid)
if p=$(g_wait_pair 30 "p and p['state'] == 'active' and (p['vf'] or {}).get('ifindex') == $VF_IDX"); then
	pass "run: joined $VF (ifindex $VF_IDX)"
else
	fail "run: $VF not joined: $p"
fi
assert_contains "run: managing $SYN by itself (virtio_net)" "$(vm_sh "grep 'managing synthetic' /tmp/run.log; true")" "managing synthetic $SYN"
vm_switch vf
check_via_vf "run, first join"
cycle planned 1
cycle surprise 2
cycle planned 3

note "run's reaction times (guest clock, from its log):"
vm_sh "grep -o 'VF ifindex [0-9]* left.*' /tmp/run.log; true" | sed 's/^/    /'

# ---- 3. kill -9 of run with traffic flowing; a new run adopts the pair.
ping_start "$VM_TMP/ping.kill"
sleep 1
vm_exec kill -KILL "$RUN_PID"
rc=$(vm_sh "for i in \$(seq 100); do grep -q '^State:.*Z' /proc/$RUN_PID/status 2>/dev/null || [ ! -e /proc/$RUN_PID ] && exit 0; sleep 0.1; done; exit 1" && echo gone || echo running)
assert_eq "kill -9: run is gone" "$rc" gone
check_via_vf "kill -9: no control plane, the pinned datapath carries on"
vm_sh "setsid $HNXDP run --settle-ms 200 </dev/null >/tmp/run2.log 2>&1 & echo \$! >/tmp/run.pid"
RUN_PID=$(vm_exec cat /tmp/run.pid)
wait_until 30 "the new run is up (control plane running)" vm_sh "grep -q 'control plane running' /tmp/run2.log"
sleep 1
res=$(ping_stop "$VM_TMP/ping.kill")
read -r sent recv <<<"$res"
note "kill -9 and adoption: ping: $sent sent, $recv received"
assert_le "kill -9 and adoption: pings lost" $((${sent:-0} - ${recv:-0})) 1
p=$(g_wait_pair 10 "p and p['state'] == 'active' and (p['vf'] or {}).get('ifindex') == $VF_IDX") || true
assert_eq "adopted: pair active with $VF" "$(pair_field state <<<"$p")" active
assert_eq "adopted: attachment still $WANT_MODE" "$(pair_field attachment <<<"$p")" "$WANT_MODE"
assert_eq "adopted: still one hnxdp program on each hook" "$(g_progs "$VF")" "1 1 1"
check_via_vf "adopted"

# ---- 4. stop run, detach, everything restored.
vm_exec kill -TERM "$RUN_PID"
rc=$(vm_sh "for i in \$(seq 100); do grep -q '^State:.*Z' /proc/$RUN_PID/status 2>/dev/null || [ ! -e /proc/$RUN_PID ] && exit 0; sleep 0.1; done; exit 1" && echo stopped || echo running)
assert_eq "run stopped on SIGTERM" "$rc" stopped
rig_try vm_exec "$HNXDP" detach --all
assert_eq "detach --all: exit 0" "$RIG_RC" 0
vm_switch syn
g_snapshot "$SYN" "$VM_TMP/syn.end"
assert_files_equal "end: the synthetic's ethtool -k and ip -d link as before attach" \
	"$VM_TMP/syn.before" "$VM_TMP/syn.end"
assert_eq "end: no hnxdp pins left in the guest" "$(vm_sh 'ls -A /sys/fs/bpf/hnxdp 2>/dev/null | wc -l')" 0
assert_eq "end: the synthetic answers pings" "$(ping_n 3)" 3
if ((RIG_FAILED > 0)); then
	note "run.log of the guest:"
	vm_exec cat /tmp/run.log | tail -n 30 | sed 's/^/    /' || true
	vm_exec cat /tmp/run2.log | tail -n 20 | sed 's/^/    /' || true
fi
note "kernel $GKVER, VF $VM_VF_DRIVER, attachment $WANT_MODE: boot ${BOOT_S} s; whole test $((SECONDS - T_START)) s"
rig_finish
