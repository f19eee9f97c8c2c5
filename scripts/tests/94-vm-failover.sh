#!/usr/bin/env bash
# 94-vm-failover: a guest whose kernel pairs the VF itself (QEMU's virtio-net
# failover: `failover=on` on the virtio NIC, `failover_pair_id` on the e1000e
# VF; the guest's net_failover makes a master over the virtio standby and the
# VF primary, all three with the same MAC). hnxdp must see the kernel's
# pairing and never steer it (B22):
#   1. probe: the standby and the primary are "kernel-paired", each with a note
#      naming the master and net_failover.
#   2. run without --synthetic manages nothing and says why (naming the
#      kernel's pairs); run --synthetic MASTER / STANDBY refuses each with a
#      warning; attach of any combination exits 2 with one line naming the
#      master and net_failover; nothing is pinned, no device changed.
#   3. coexistence: status and dump show the kernel's pair; `hnxdp xsk count`
#      named by the master binds to the standby and the primary, goes on
#      counting through the standby while the primary is unplugged and through
#      the new primary after a replug; a user's XDP program (`hnxdp xdp attach`)
#      runs on the primary's path (generic XDP, e1000e) and the standby's; the
#      master's and standby's settings are the same before and after, and no
#      XDP program or pin is left.
#   4. the kernel's own failover keeps working with hnxdp around: pings to the
#      master's address go through the VF's tap, and after an unplug of the VF
#      through the standby's.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/vm.sh"

VM_SYN_OPTS=failover=on
VM_VF_OPTS=failover_pair_id=syn
# The primary is plugged after boot: QEMU keeps the id of a failover primary from its
# command line after device_del, so only a primary plugged by QMP can be replugged.
VM_VF_AT_BOOT=0
T_START=$SECONDS

g_dev_by_driver() { # the guest devices bound to DRIVER (ethtool's name)
	vm_sh "for d in /sys/class/net/*; do [ \"\$(ethtool -i \${d##*/} 2>/dev/null | sed -n 's/^driver: //p')\" = $1 ] && echo \${d##*/}; done; true"
}
g_snapshot() { vm_sh "ip -d link show; tc qdisc show; ls -A /sys/fs/bpf" >"$1" 2>&1; }
ping_n() { vm_sw ping -n -c "$1" -i 0.2 -W 2 "$VM_G4" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p'; }

rig_begin
vm_deadline 420
vm_prepare
# The user's XDP program (section 3), built on the host before the guest boots
# (the guest sees the host's /tmp as it was then, through its overlay).
XDP_DIR=$(mktemp -d "/tmp/hnxvm-$$.xdp.XXXXXX")
CLANG=${CLANG:-$(command -v clang || true)}
[[ -n "$CLANG" ]] || CLANG="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
"$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -DDROP_PORT=5555 \
	-c "$RIG_TOOLS/xdp_drop_udp_port.bpf.c" -o "$XDP_DIR/drop.bpf.o" || fatal "building the test XDP program failed"
vm_start
vm_plug_vf 2>"$VM_TMP/qmp.err" || fatal "device_add of the primary failed: $(cat "$VM_TMP/qmp.err")"
wait_until 60 "the primary is enslaved to the failover master" vm_sh "ls /sys/class/net/*/master >/dev/null 2>&1 && [ \$(ls -d /sys/class/net/*/master | wc -l) -ge 2 ]"

MASTER=$(g_dev_by_driver net_failover)
STANDBY=$(g_dev_by_driver virtio_net)
PRIMARY=$(g_dev_by_driver e1000e)
[[ -n $MASTER && -n $STANDBY && -n $PRIMARY ]] || fatal "guest devices: master '$MASTER', standby '$STANDBY', primary '$PRIMARY'"
note "guest: net_failover master $MASTER, standby $STANDBY (virtio_net), primary $PRIMARY (e1000e)"
vm_sh "ip addr add $VM_G4/24 dev $MASTER && ip link set $MASTER up"
vm_switch vf
wait_until 30 "the failover master answers pings" vm_sw ping -n -c 1 -W 1 "$VM_G4"
wait_until 30 "the primary has carrier" vm_sh "test \$(cat /sys/class/net/$PRIMARY/carrier) = 1"
g_snapshot "$VM_TMP/before"

# ---- 1. probe
PROBE=$(vm_exec "$HNXDP" probe --json)
for d in "$STANDBY" "$PRIMARY"; do
	assert_eq "probe: $d is kernel-paired" "$(rig_json "devices[name=$d].role" <<<"$PROBE")" kernel-paired
	assert_contains "probe: $d's note names the master and net_failover" "$(rig_json "devices[name=$d].note" <<<"$PROBE")" "kernel failover $MASTER"
done
assert_contains "probe: the standby is called the standby" "$(rig_json "devices[name=$STANDBY].note" <<<"$PROBE")" "is the standby"
assert_contains "probe: the primary is called the primary" "$(rig_json "devices[name=$PRIMARY].note" <<<"$PROBE")" "is the primary"
assert_eq "probe: the master is not a synthetic" "$(rig_json "devices[name=$MASTER].role" <<<"$PROBE")" other

# ---- 2. run and attach refuse
run_for() { # LOG ARGS...: run for 3 s
	local log=$1
	shift
	vm_sh "timeout 3 $HNXDP run --settle-ms 100 $* >$log 2>&1; true"
}
run_for /tmp/run0.log
LOG=$(vm_exec cat /tmp/run0.log)
assert_contains "run: manages no synthetic interface" "$LOG" "managing no synthetic interface"
assert_contains "run: says the kernel pairs them" "$LOG" "the kernel pairs these itself"
assert_contains "run: names the master" "$LOG" "kernel failover $MASTER"
for s in "$MASTER" "$STANDBY"; do
	run_for /tmp/run1.log --synthetic "$s"
	LOG=$(vm_exec cat /tmp/run1.log)
	assert_contains "run --synthetic $s: not managed" "$LOG" "not managing $s named by --synthetic"
	assert_contains "run --synthetic $s: control plane with 0 pairs" "$LOG" "control plane running: 0 pair(s)"
done
for pair in "$STANDBY $PRIMARY" "$MASTER $PRIMARY" "$MASTER $STANDBY"; do
	read -r s v <<<"$pair"
	rig_try vm_exec "$HNXDP" attach --synthetic "$s" --vf "$v"
	assert_eq "attach --synthetic $s --vf $v: exit 2" "$RIG_RC" 2
	assert_eq "attach --synthetic $s --vf $v: one line" "$(grep -c . <<<"$RIG_ERR")" 1
	assert_contains "attach --synthetic $s --vf $v: names net_failover" "$RIG_ERR" "net_failover"
done
g_snapshot "$VM_TMP/after"
assert_files_equal "nothing changed in the guest (links, qdiscs, bpffs)" "$VM_TMP/before" "$VM_TMP/after"

# ---- 3. coexistence: AF_XDP and XDP on the kernel's pair, following its VF
g_settings() { vm_sh "ip -d link show dev $MASTER; ip -d link show dev $STANDBY; ethtool -k $MASTER; ethtool -k $STANDBY" >"$1" 2>&1; }
g_xdp_devices() { vm_sh "ip -d link show | grep -c 'prog/xdp'; true"; }
g_settings "$VM_TMP/coex.before"
DUMP=$(vm_exec "$HNXDP" dump --json)
assert_eq "dump: one kernel pair" "$(rig_json --default 0 'len:kernel_pairs' <<<"$DUMP")" 1
assert_eq "dump: its master" "$(rig_json 'kernel_pairs[0].master.name' <<<"$DUMP")" "$MASTER"
assert_eq "dump: its driver" "$(rig_json 'kernel_pairs[0].driver' <<<"$DUMP")" net_failover
assert_eq "dump: the standby is its synthetic" "$(rig_json 'kernel_pairs[0].synthetic.name' <<<"$DUMP")" "$STANDBY"
assert_eq "dump: the primary is its VF" "$(rig_json 'kernel_pairs[0].vf.name' <<<"$DUMP")" "$PRIMARY"
assert_eq "dump: not steered by hnxdp" "$(rig_json 'kernel_pairs[0].steered' <<<"$DUMP")" false
assert_eq "dump: no hnxdp pairs" "$(rig_json --default 0 'len:pairs' <<<"$DUMP")" 0
assert_contains "status: names the kernel's pair" "$(vm_exec "$HNXDP" status)" "$MASTER($(vm_ifindex "$MASTER")): the kernel's pair (net_failover): standby $STANDBY"

xsk_send() { vm_sw "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$VM_G4" --port 6000 --count 300 --rate 300 --seconds 10 >/dev/null || true; }
vm_sh "rm -f /tmp/xsk.ev /tmp/xsk.json; setsid $HNXDP xsk count --synthetic $MASTER --udp-port 6000 --seconds 200 --json --events </dev/null >/tmp/xsk.json 2>/tmp/xsk.ev & echo \$! >/tmp/xsk.pid"
XSK_PID=$(vm_exec cat /tmp/xsk.pid)
PRIMARY_IDX=$(vm_ifindex "$PRIMARY")
wait_until 60 "xsk count bound to the primary $PRIMARY" vm_sh "grep -q 'bound to VF $PRIMARY (ifindex $PRIMARY_IDX)' /tmp/xsk.ev"
assert_contains "xsk: says it coexists with the kernel's pair" "$(vm_exec cat /tmp/xsk.ev)" "coexistence with the kernel's pair $MASTER"
assert_eq "xsk: hnxdp's XDP on the standby and the primary" "$(g_xdp_devices)" 2
assert_eq "dump: the kernel pair has hnxdp's XDP (AF_XDP)" "$(vm_exec "$HNXDP" dump --json | rig_json 'kernel_pairs[0].xdp_steering')" true
xsk_send
vm_switch syn
vm_unplug_vf 2>/dev/null || fail "xsk: device_del of the primary failed"
wait_until 30 "the primary is gone" vm_sh "! test -e /sys/class/net/$PRIMARY"
wait_until 30 "xsk count saw the primary leave" vm_sh "grep -q 'VF $PRIMARY (ifindex $PRIMARY_IDX) left' /tmp/xsk.ev"
xsk_send
vm_plug_vf 2>"$VM_TMP/qmp.err" || fail "xsk: device_add of the primary failed: $(cat "$VM_TMP/qmp.err")"
wait_until 60 "a new primary is enslaved to $MASTER" vm_sh "p=\$(for d in /sys/class/net/*; do [ \"\$(ethtool -i \${d##*/} 2>/dev/null | sed -n 's/^driver: //p')\" = e1000e ] && echo \${d##*/}; done); [ -n \"\$p\" ] && [ -e /sys/class/net/\$p/master ] && [ \"\$(basename \$(readlink /sys/class/net/\$p/master))\" = $MASTER ]"
PRIMARY=$(g_dev_by_driver e1000e)
PRIMARY_IDX=$(vm_ifindex "$PRIMARY")
vm_switch vf
wait_until 60 "xsk count bound to the new primary $PRIMARY" vm_sh "grep -q 'bound to VF $PRIMARY (ifindex $PRIMARY_IDX)' /tmp/xsk.ev"
wait_until 30 "the new primary has carrier" vm_sh "test \$(cat /sys/class/net/$PRIMARY/carrier) = 1"
xsk_send
vm_exec kill -INT "$XSK_PID"
wait_until 30 "xsk count printed its result" vm_sh "test -s /tmp/xsk.json"
XSK=$(vm_exec cat /tmp/xsk.json)
note "xsk count: $XSK"
note "xsk events: $(vm_exec cat /tmp/xsk.ev | tr '\n' ';' | head -c 700)"
assert_ge "xsk: frames counted in all (3 x 300 sent)" "$(rig_json --default 0 total <<<"$XSK")" 850
assert_ge "xsk: frames counted on the standby while the primary was unplugged" "$(rig_json --default 0 "per_device.$STANDBY" <<<"$XSK")" 280
assert_ge "xsk: frames counted on the primaries, before and after the replug" \
	$(($(rig_json --default 0 total <<<"$XSK") - $(rig_json --default 0 "per_device.$STANDBY" <<<"$XSK"))) 560
assert_ge "xsk: it followed the primary's departure" "$(rig_json --default 0 departures <<<"$XSK")" 1
assert_ge "xsk: it bound to the primary twice" "$(rig_json --default 0 rebinds <<<"$XSK")" 2
wait_until 20 "xsk: no XDP program left on any guest device" vm_sh "! ip -d link show | grep -q prog/xdp"

# A user's XDP program on the kernel's pair: drops UDP port 5555 on the primary's path.
rig_try vm_exec "$HNXDP" xdp attach --synthetic "$MASTER" "$XDP_DIR/drop.bpf.o" --prog drop_udp_port
assert_eq "xdp attach on the kernel's pair: exit 0 ($RIG_ERR)" "$RIG_RC" 0
assert_contains "xdp attach: names the kernel's pair" "$RIG_OUT" "the kernel's pair $MASTER"
assert_eq "XDP on the primary $PRIMARY in generic mode (e1000e)" \
	"$(vm_exec ip -j -d link show dev "$PRIMARY" | rig_json --default none '[0].xdp.mode')" 2
assert_eq "dump: the kernel pair has a user XDP program" "$(vm_exec "$HNXDP" dump --json | rig_json 'kernel_pairs[0].xdp_user_program')" true
assert_eq "the user's XDP program drops port 5555 on the primary's path" "$(vm_udp_count "$MASTER" 5555)" 0
assert_eq "the user's XDP program lets port 5556 through" "$(vm_udp_count "$MASTER" 5556)" 200
rig_try vm_exec "$HNXDP" xdp detach --synthetic "$STANDBY"
assert_eq "xdp detach named by the standby: exit 0 ($RIG_ERR)" "$RIG_RC" 0
assert_eq "xdp detach: no XDP program left on any guest device" "$(g_xdp_devices)" 0
assert_eq "xdp detach: port 5555 gets through again" "$(vm_udp_count "$MASTER" 5555)" 200
assert_eq "coexistence: no hnxdp pins left in the guest" "$(vm_sh 'ls -A /sys/fs/bpf/hnxdp 2>/dev/null | wc -l')" 0
g_settings "$VM_TMP/coex.after"
assert_files_equal "coexistence: the master's and standby's settings as before" "$VM_TMP/coex.before" "$VM_TMP/coex.after"

# ---- 4. the kernel's failover keeps working
vrx=$(vm_tap_stat tvf rx)
assert_eq "kernel failover: pings answered" "$(ping_n 10)" 10
assert_ge "kernel failover: answers through the VF's tap" $(($(vm_tap_stat tvf rx) - vrx)) 9
vm_switch syn
vm_unplug_vf 2>/dev/null || fail "device_del of the primary failed"
wait_until 20 "the primary is gone" vm_sh "! test -e /sys/class/net/$PRIMARY"
srx=$(vm_tap_stat tsyn rx)
assert_ge "kernel failover, primary unplugged: pings answered" "$(ping_n 10)" 9
assert_ge "kernel failover: answers through the standby's tap" $(($(vm_tap_stat tsyn rx) - srx)) 9
rm -rf "$XDP_DIR"
note "whole test $((SECONDS - T_START)) s"
rig_finish
