#!/usr/bin/env bash
# 95-vm-guest: hnxdp in a real guest (QEMU/TCG, Debian 6.12 kernel; see
# scripts/lib/vm.sh) with a virtio-net synthetic and an e1000e "VF" of the
# same MAC, hot-unplugged and plugged back through QMP like a hypervisor does.
#   1. attach: pings from the host side (the switch's br0) to the synthetic's
#      address are answered; the VF's tap counters rise both ways (the
#      switch sends to the VF, the guest answers through the VF) and the
#      synthetic's tap sends nothing. detach: the synthetic's `ethtool -k` and
#      `ip -d link` read exactly as before the attach.
#   1b. IPv6 pings, 200 UDP datagrams and a TCP echo reach sockets bound to the
#      synthetic, through the VF's tap both ways.
#   2. `hnxdp run --settle-ms 200` in the guest, with no --synthetic, finds the
#      virtio_net synthetic and the (PCI) VF by itself and joins it; MTU 9000 on
#      the synthetic passes to the VF, 9500 (above the VF driver's limit) puts
#      the synthetic back;
#      a planned cycle (switch -> synthetic tap, then device_del: the pair goes
#      idle and the synthetic reads as before; device_add: active again with
#      the new VF's ifindex) and a surprise cycle (device_del first) while a
#      ping runs: at most PLANNED_LOSS / SURPRISE_LOSS pings lost per cycle,
#      and after each replug the traffic goes through the new VF. VM_CYCLES
#      (default 5) cycles, planned and surprise in turn, with one TCP
#      connection open throughout that is never reset.
#   2b. `hnxdp xsk count` (UDP port 6000) keeps counting across an unplug and a
#      replug: through the VF, through the synthetic, through the new VF, and
#      reports its bind mode.
#   2c. a user's XDP program (`hnxdp xdp attach`) drops one UDP port on the VF
#      path, in native XDP on vmxnet3 (6.6+) and generic XDP on e1000e (and on
#      vmxnet3 in 6.1, which has no XDP); xdp detach.
#   3. kill -9 of run with traffic flowing: the datapath keeps carrying it
#      through the VF; a new run adopts the pair without a second program on
#      any hook.
#   4. run stops on SIGTERM, detach --all: the synthetic reads as before, no pins.
# The guest kernel and VF model come from VM_KPKG / VM_VF_DRIVER (vm.sh; the
# 96-* tests run this script with Debian 12's 6.1 and vmxnet3). The attachment
# must be tcx on a kernel with tcx (6.6+) and classic tc below; on a kernel
# without tcx, `--tc-mode tcx` must exit 3 naming it.
# Bounded: the test stops itself (FAIL) after 600 s; it takes ~2-3 min under TCG.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/vm.sh"

VM_G6=fd00:90::1   # the synthetic's IPv6 address; VM_H6 is the switch's (br0)
VM_H6=fd00:90::2
VM_CYCLES=${VM_CYCLES:-5} # unplug/replug cycles under run, planned and surprise in turn
# VM_LITE=1 (the second VF model of each kernel): attach with IPv4/IPv6/UDP/TCP,
# VM_CYCLES cycles, the user's XDP program, kill -9 and adoption; not the MTU
# limits, the long TCP connection and AF_XDP, which the first model covers.
VM_LITE=${VM_LITE:-0}
PLANNED_LOSS=5     # pings (every 0.1 s) lost in a planned cycle, at most
SURPRISE_LOSS=40   # ... in a surprise cycle (the switch moves after the unplug)
T_START=$SECONDS

# ---- helpers (all in the guest unless said otherwise)
# (vm_dev_by_driver, vm_ifindex and vm_wait_pair are vm.sh's)
g_snapshot() { # DEV FILE (host file): what "restored" means for the synthetic
	vm_sh "ethtool -k $1; ip -d link show dev $1" >"$2" 2>&1
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
	if p=$(vm_wait_pair 20 "p and p['state'] == 'idle' and p['vf'] is None and p['datapath'] == 'synthetic'"); then
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
		new_vf=$(vm_dev_by_driver "$VM_VF_DRIVER")
		[[ -n "$new_vf" ]] && break
		sleep 0.2
	done
	[[ -n "$new_vf" ]] || fatal "cycle $n ($kind): no $VM_VF_DRIVER device in the guest after device_add"
	new_idx=$(vm_ifindex "$new_vf")
	note "cycle $n: $new_vf (ifindex $new_idx) in the guest $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s after device_add"
	assert_ne "cycle $n ($kind): the new VF has a new ifindex" "$new_idx" "$VF_IDX"
	if p=$(vm_wait_pair 30 "p and p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('ifindex') == $new_idx"); then
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
vm_deadline 600
vm_prepare
# The user's XDP program (section 2c), built on the host before the guest boots
# (the guest sees the host's /tmp as it was then, through its overlay).
XDP_DIR=$(mktemp -d "/tmp/hnxvm-$$.xdp.XXXXXX")
CLANG=${CLANG:-$(command -v clang || true)}
[[ -n "$CLANG" ]] || CLANG="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
"$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -DDROP_PORT=5555 \
	-c "$RIG_TOOLS/xdp_drop_udp_port.bpf.c" -o "$XDP_DIR/drop.bpf.o" || fatal "building the test XDP program failed"
vm_start
BOOT_S=$VM_BOOT_S

# ---- guest network setup
SYN=$(vm_dev_by_driver virtio_net)
VF=$(vm_dev_by_driver "$VM_VF_DRIVER")
[[ -n "$SYN" && -n "$VF" ]] || fatal "guest devices: synthetic '$SYN', VF '$VF'"
VF_IDX=$(vm_ifindex "$VF")
note "guest: synthetic $SYN (virtio_net), VF $VF ($VM_VF_DRIVER, ifindex $VF_IDX), MAC $VM_MAC"
vm_sh "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	ip addr add $VM_G4/24 dev $SYN && ip -6 addr add $VM_G6/64 dev $SYN nodad && ip link set $SYN up && ip link set $VF up"
# The switch namespace has IPv6 off (vm.sh): on for br0, the host side, only.
vm_sw sysctl -qw net.ipv6.conf.br0.disable_ipv6=0 net.ipv6.conf.br0.accept_dad=0
vm_sw ip -6 addr add "$VM_H6/64" dev br0 nodad

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
if [[ $WANT_MODE == tcx ]]; then # 6.6+: the netdev family (6.3+) reports XDP features
	assert_eq "probe: $SYN (virtio_net) has native XDP" "$(rig_json "devices[name=$SYN].xdp" <<<"$PROBE")" native
	assert_eq "probe: $VF ($VM_VF_DRIVER) XDP" "$(rig_json "devices[name=$VF].xdp" <<<"$PROBE")" \
		"$([[ $VM_VF_DRIVER == vmxnet3 ]] && echo native || echo generic)"
	[[ $VM_VF_DRIVER == e1000e ]] && assert_eq "probe: e1000e cannot transmit XDP frames (what gen needs)" \
		"$(rig_json "devices[name=$VF].xdp_transmit" <<<"$PROBE")" false
else
	assert_eq "probe: XDP features not reported before 6.3" "$(rig_json "devices[name=$VF].xdp" <<<"$PROBE")" unknown
fi
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
p=$(vm_wait_pair 20 "p and p['state'] == 'active' and p['datapath'] == 'vf'") || true
assert_eq "attach: pair active" "$(pair_field state <<<"$p")" active
assert_eq "attach: attachment $WANT_MODE" "$(pair_field attachment <<<"$p")" "$WANT_MODE"
assert_eq "attach: one hnxdp program on each hook (syn in, syn out, VF in)" "$(g_progs "$VF")" "1 1 1"
check_via_vf "attached"
vfrx=$(vm_exec "$HNXDP" dump --json | pair_field 'pairs[0].stats.vf_rx_packets')
assert_ge "attached: hnxdp counted frames from the VF (vf_rx_packets)" "$vfrx" 9
# IPv6, UDP and TCP from the host side reach sockets bound to the synthetic,
# through the VF both ways.
vrx=$(vm_tap_stat tvf rx); vtx=$(vm_tap_stat tvf tx); srx=$(vm_tap_stat tsyn rx)
got6=$(vm_sw ping -6 -n -c 10 -i 0.2 -W 2 "$VM_G6" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p')
assert_ge "attached: IPv6 pings answered" "${got6:-0}" 9
vm_sh "setsid python3 $RIG_TOOLS/udp_sink.py --dev $SYN --port 5301 --seconds 30 --expect 200 --linger 1 --ready-file /tmp/udp.ready </dev/null >/tmp/udp.count 2>&1 &"
wait_until 20 "the guest's UDP socket on $SYN is bound" vm_exec test -e /tmp/udp.ready
vm_sw "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$VM_G4" --port 5301 --count 200 --rate 400 >/dev/null
wait_until 30 "the guest's UDP socket is done" vm_sh "test -s /tmp/udp.count"
assert_eq "attached: UDP: a socket bound to $SYN received all 200 datagrams" "$(vm_exec cat /tmp/udp.count)" 200
vm_sh "setsid python3 $RIG_TOOLS/tcp_echo.py --dev $SYN --port 5302 --seconds 60 --ready-file /tmp/tcp.ready </dev/null >/tmp/tcp.out 2>&1 &"
wait_until 20 "the guest's TCP echo server on $SYN listens" vm_exec test -e /tmp/tcp.ready
rig_try vm_sw "$RIG_PY" "$RIG_TOOLS/tcp_client.py" --dst "$VM_G4" --port 5302 --rounds 50 --size 1000 --seconds 30
assert_eq "attached: TCP: 50 rounds echoed by a server bound to $SYN (exit 0: $RIG_OUT $RIG_ERR)" "$RIG_RC" 0
# Answers: 10 IPv6 echo replies and at least one TCP segment per round (UDP has none).
assert_ge "attached: IPv6/TCP answers left through the VF (tvf rx +)" $(($(vm_tap_stat tvf rx) - vrx)) 60
assert_ge "attached: IPv6/UDP/TCP requests came through the VF (tvf tx +)" $(($(vm_tap_stat tvf tx) - vtx)) 259
assert_le "attached: nothing answered on the synthetic's tap (tsyn rx +)" $(($(vm_tap_stat tsyn rx) - srx)) 3
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
if p=$(vm_wait_pair 30 "p and p['state'] == 'active' and (p['vf'] or {}).get('ifindex') == $VF_IDX"); then
	pass "run: joined $VF (ifindex $VF_IDX)"
else
	fail "run: $VF not joined: $p"
fi
assert_contains "run: managing $SYN by itself (virtio_net)" "$(vm_sh "grep 'managing synthetic' /tmp/run.log; true")" "managing synthetic $SYN"
vm_switch vf
check_via_vf "run, first join"
if [[ $VM_LITE != 1 ]]; then
# The drivers' MTU limits differ (virtio_net 65535, e1000e 9212, vmxnet3 9000):
# 9000 passes down to the VF; 9500, which the VF refuses, puts the synthetic back.
g_mtu() { vm_exec cat "/sys/class/net/$1/mtu"; }
vm_exec ip link set "$SYN" mtu 9000
wait_until 10 "$VF follows $SYN's MTU 9000" vm_sh "test \$(cat /sys/class/net/$VF/mtu) = 9000"
rig_try vm_exec ip link set "$SYN" mtu 9500
wait_until 10 "$SYN put back to 9000 ($VF refuses 9500)" vm_sh "test \$(cat /sys/class/net/$SYN/mtu) = 9000"
assert_eq "MTU 9500 refused by $VM_VF_DRIVER: $VF stays at 9000" "$(g_mtu "$VF")" 9000
vm_exec ip link set "$SYN" mtu 1500
wait_until 10 "$VF follows $SYN back to MTU 1500" vm_sh "test \$(cat /sys/class/net/$VF/mtu) = 1500"
assert_contains "run warned about the refused MTU" "$(vm_exec cat /tmp/run.log)" "9500"
fi
if [[ $VM_LITE != 1 ]]; then
# One TCP connection from the host side to a server bound to the synthetic stays
# open through every cycle: it must never be reset.
vm_sh "setsid python3 $RIG_TOOLS/tcp_echo.py --dev $SYN --port 5303 --seconds 900 --max-conns 5 --ready-file /tmp/tcps.ready </dev/null >/tmp/tcps.out 2>&1 &"
wait_until 20 "the guest's TCP echo server for the long connection listens" vm_exec test -e /tmp/tcps.ready
vm_bg TCP_PID ip netns exec "$VM_NS" "$RIG_PY" "$RIG_TOOLS/tcp_stream.py" --dst "$VM_G4" --port 5303 \
	--stop-file "$VM_TMP/tcp.stop" --interval 0.05 --seconds 600 --stall-timeout 30 --gap-log-ms 1000 \
	--status-file "$VM_TMP/tcp.status" >"$VM_TMP/tcp.result" 2>"$VM_TMP/tcp.err"
wait_until 20 "the long TCP connection is echoing" grep -q "^rounds [1-9]" "$VM_TMP/tcp.status"
fi
for ((c = 1; c <= VM_CYCLES; c++)); do
	if ((c % 2)); then cycle planned "$c"; else cycle surprise "$c"; fi
done
if [[ $VM_LITE != 1 ]]; then
touch "$VM_TMP/tcp.stop"
rc=0
rig_wait_pid "$TCP_PID" 60 || rc=$?
note "the long TCP connection: $(cat "$VM_TMP/tcp.result") $(tr '\n' ' ' <"$VM_TMP/tcp.err" | head -c 300)"
assert_eq "the TCP connection open through $VM_CYCLES cycles: never reset (tcp_stream exit 0)" "$rc" 0
assert_contains "the TCP connection: 0 resets" "$(cat "$VM_TMP/tcp.result")" "resets 0 "
fi

note "run's reaction times (guest clock, from its log):"
vm_sh "grep -o 'VF ifindex [0-9]* left.*' /tmp/run.log; true" | sed 's/^/    /'

if [[ $VM_LITE != 1 ]]; then
# ---- 2b. AF_XDP sockets on the pair (xsk count, UDP port 6000 only) keep
# counting across an unplug and a replug: 300 datagrams through the VF, 300
# through the synthetic while the VF is gone, 300 through the new VF.
xsk_send() { vm_sw "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$VM_G4" --port 6000 --count 300 --rate 300 --seconds 10 >/dev/null || true; }
vm_sh "rm -f /tmp/xsk.ev; setsid $HNXDP xsk count --synthetic $SYN --udp-port 6000 --seconds 150 --json --events </dev/null >/tmp/xsk.json 2>/tmp/xsk.ev & echo \$! >/tmp/xsk.pid"
XSK_PID=$(vm_exec cat /tmp/xsk.pid)
wait_until 30 "xsk count bound to $VF" vm_sh "grep -q 'bound to VF $VF (ifindex $VF_IDX)' /tmp/xsk.ev"
xsk_send
vm_switch syn
vm_unplug_vf 2>/dev/null || fail "xsk: device_del failed"
vm_wait_pair 20 "p and p['state'] == 'idle'" >/dev/null || fail "xsk: pair not idle after the unplug"
xsk_send
vm_plug_vf 2>/dev/null || fail "xsk: device_add failed"
wait_until 30 "a $VM_VF_DRIVER device is back" test -n "$(vm_dev_by_driver "$VM_VF_DRIVER")"
VF=$(vm_dev_by_driver "$VM_VF_DRIVER")
VF_IDX=$(vm_ifindex "$VF")
vm_wait_pair 30 "p and p['state'] == 'active' and (p['vf'] or {}).get('ifindex') == $VF_IDX" >/dev/null || fail "xsk: pair not active with the new VF"
vm_switch vf
wait_until 30 "xsk count bound to the new $VF" vm_sh "grep -q 'bound to VF $VF (ifindex $VF_IDX)' /tmp/xsk.ev"
xsk_send
sleep 1
vm_exec kill -TERM "$XSK_PID"
wait_until 20 "xsk count printed its result" vm_sh "test -s /tmp/xsk.json"
XSK=$(vm_exec cat /tmp/xsk.json)
note "xsk count: $XSK"
note "xsk events: $(vm_exec cat /tmp/xsk.ev | tr '\n' ';' | head -c 600)"
assert_in "xsk count reports its bind mode" "$(rig_json mode <<<"$XSK")" "copy|zerocopy|zero-copy"
assert_ge "xsk count: frames counted in all (3 x 300 sent)" "$(rig_json --default 0 total <<<"$XSK")" 850
assert_ge "xsk count: frames counted on the synthetic while the VF was gone" "$(rig_json --default 0 "per_device.$SYN" <<<"$XSK")" 280
assert_ge "xsk count: frames counted on the VFs, before and after the replug" \
	$(($(rig_json --default 0 total <<<"$XSK") - $(rig_json --default 0 "per_device.$SYN" <<<"$XSK"))) 560
assert_ge "xsk count: it followed the VF's departure" "$(rig_json --default 0 departures <<<"$XSK")" 1
check_via_vf "after the AF_XDP application"
fi

# ---- 2c. A user's XDP program on the pair (`hnxdp xdp attach`) drops one UDP
# port on the VF path: native XDP where the VF driver has it (vmxnet3 from Linux
# 6.6 on), generic where not (e1000e; vmxnet3 on 6.1).
WANT_XDP=2 # IFLA_XDP mode: 1 driver (native), 2 generic
[[ $VM_VF_DRIVER == vmxnet3 && $WANT_MODE == tcx ]] && WANT_XDP=1 # tcx: 6.6+, as native XDP in vmxnet3
rig_try vm_exec "$HNXDP" xdp attach --synthetic "$SYN" "$XDP_DIR/drop.bpf.o" --prog drop_udp_port
assert_eq "xdp attach of the user's program: exit 0 ($RIG_ERR)" "$RIG_RC" 0
assert_eq "XDP on $VF in mode $WANT_XDP (1 native, 2 generic) for $VM_VF_DRIVER" \
	"$(vm_exec ip -j -d link show dev "$VF" | rig_json --default none '[0].xdp.mode')" "$WANT_XDP"
assert_eq "the user's XDP program drops port 5555 on the VF path" "$(vm_udp_count "$SYN" 5555)" 0
assert_eq "the user's XDP program lets port 5556 through on the VF path" "$(vm_udp_count "$SYN" 5556)" 200
rig_try vm_exec "$HNXDP" xdp detach --synthetic "$SYN"
assert_eq "xdp detach: exit 0 ($RIG_ERR)" "$RIG_RC" 0
assert_eq "xdp detach: no XDP left on $VF" "$(vm_exec ip -j -d link show dev "$VF" | rig_json --default none '[0].xdp.mode')" none
assert_eq "xdp detach: port 5555 gets through again" "$(vm_udp_count "$SYN" 5555)" 200

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
p=$(vm_wait_pair 10 "p and p['state'] == 'active' and (p['vf'] or {}).get('ifindex') == $VF_IDX") || true
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
rm -rf "$XDP_DIR"
note "kernel $GKVER, VF $VM_VF_DRIVER, attachment $WANT_MODE: boot ${BOOT_S} s; whole test $((SECONDS - T_START)) s"
rig_finish
