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
#   3. the kernel's own failover keeps working with hnxdp around: pings to the
#      master's address go through the VF's tap, and after an unplug of the VF
#      through the standby's.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/vm.sh"

VM_SYN_OPTS=failover=on
VM_VF_OPTS=failover_pair_id=syn
T_START=$SECONDS

g_dev_by_driver() { # the guest devices bound to DRIVER (ethtool's name)
	vm_sh "for d in /sys/class/net/*; do [ \"\$(ethtool -i \${d##*/} 2>/dev/null | sed -n 's/^driver: //p')\" = $1 ] && echo \${d##*/}; done; true"
}
g_snapshot() { vm_sh "ip -d link show; tc qdisc show; ls -A /sys/fs/bpf" >"$1" 2>&1; }
ping_n() { vm_sw ping -n -c "$1" -i 0.2 -W 2 "$VM_G4" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p'; }

rig_begin
vm_deadline 300
vm_prepare
vm_start

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

# ---- 3. the kernel's failover keeps working
vrx=$(vm_tap_stat tvf rx)
assert_eq "kernel failover: pings answered" "$(ping_n 10)" 10
assert_ge "kernel failover: answers through the VF's tap" $(($(vm_tap_stat tvf rx) - vrx)) 9
vm_switch syn
vm_unplug_vf 2>/dev/null || fail "device_del of the primary failed"
wait_until 20 "the primary is gone" vm_sh "! test -e /sys/class/net/$PRIMARY"
srx=$(vm_tap_stat tsyn rx)
assert_ge "kernel failover, primary unplugged: pings answered" "$(ping_n 10)" 9
assert_ge "kernel failover: answers through the standby's tap" $(($(vm_tap_stat tsyn rx) - srx)) 9
note "whole test $((SECONDS - T_START)) s"
rig_finish
