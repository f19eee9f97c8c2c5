#!/usr/bin/env bash
# 99-vm-systemd: hnxdp.service in a real guest booted with systemd as init
# (issue 12). The guest of scripts/lib/vm.sh with VM_INIT=systemd: Debian's
# 6.12 kernel, Debian's systemd (the host's, in the guest's throw-away overlay
# root) as pid 1, a virtio-net synthetic and an e1000e VF of the same MAC.
#   0. The package: scripts/package.sh builds the .deb (HNXDP_DEB: use that one
#      instead). Before systemd starts, the guest's early pid 1 runs `dpkg -i`
#      of it and `systemctl enable hnxdp` in the guest's root (vm.sh's
#      VM_PREBOOT); nothing else starts the service.
#   1. Boot: hnxdp.service is enabled, active/running (Type=notify: READY=1
#      was sent) with a STATUS text, and was active before multi-user.target
#      was reached, i.e. systemd started it at boot. It joined the VF by itself
#      (`hnxdp dump --json`); pings from the switch go through the VF.
#      bpffs is mounted in the system's mount namespace, not only the service's.
#   2. A planned unplug (switch to the synthetic, device_del) and a replug are
#      followed: idle with the synthetic's datapath, then active with the new VF.
#   3. `systemctl reload hnxdp` after settle-ms is changed in
#      /etc/hnxdp/hnxdp.conf: the journal says "settle-ms 2000 -> 500", the same
#      main pid, the pair untouched (same switches, same VF). A file that does
#      not parse is logged as an error and changes nothing; a `transparent`
#      change is refused with a warning.
#   4. `systemctl restart hnxdp` while pings run: a new main pid adopts the pair
#      ("adopted: state active"), no new switch, one hnxdp program on each hook,
#      at most 1 ping lost.
#   5. `systemctl stop hnxdp`: inactive, result success; the datapath stays
#      pinned and traffic still goes through the VF.
#   6. `journalctl -u hnxdp -p warning` shows warnings and errors only (every
#      entry's PRIORITY <= 4, and it has both), while the unit's journal also
#      has info entries (PRIORITY 6) from hnxdp.
#   7. `systemd-analyze security hnxdp`: the exposure score, printed.
#   8. `dpkg -r hnxdp` while the service runs: prerm stops it; the binary goes,
#      the conffile, the write-ahead record and the pinned datapath stay (traffic
#      through the VF). `dpkg --purge`: /etc/hnxdp and the enablement go, the
#      record stays.
# Boot time (QEMU start to `systemctl is-system-running` = running) and
# systemd's own `systemd-analyze time` are printed. Bounded: the test stops
# itself (FAIL) after 900 s; it takes ~4-5 min under TCG (most of it the boot).
VM_INIT=systemd
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/vm.sh"

G_HNXDP=/usr/sbin/hnxdp # the packaged binary, installed in the guest
VM_HNXDP=$G_HNXDP       # what vm_wait_pair polls
CONF=/etc/hnxdp/hnxdp.conf
T_START=$SECONDS

# ---- helpers (in the guest unless said otherwise; vm_dev_by_driver, vm_ifindex
# and vm_wait_pair are vm.sh's)
pair_field() { rig_json --default missing "$1"; }
g_pair() { vm_exec "$G_HNXDP" dump --json | pair_field "pairs[0].$1"; }
# One property of the unit (systemctl show --value).
g_show() { vm_exec systemctl show hnxdp.service -p "$1" --value; }
# The unit's journal (message text only), this invocation or all.
g_journal() { vm_exec journalctl -u hnxdp.service --no-pager -o cat "$@"; }
g_journal_has() { g_journal "${@:2}" | grep -qF -- "$1"; }

ping_start() { # FILE
	vm_bg PING_PID ip netns exec "$VM_NS" stdbuf -oL ping -O -n -i 0.1 -W 1 -w 600 "$VM_G4" >"$1" 2>&1
}
ping_stop() { # FILE -> "transmitted received"
	kill -INT "$PING_PID" 2>/dev/null || true
	wait "$PING_PID" 2>/dev/null || true
	local summary
	summary=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$1")
	if [[ -z $summary ]]; then
		summary="$(grep -o 'icmp_seq=[0-9]*' "$1" | cut -d= -f2 | sort -n | tail -n 1) $(grep -c 'bytes from' "$1")"
	fi
	echo "$summary"
}
ping_n() { # N -> received count (N pings, 0.2 s apart)
	vm_sw ping -n -c "$1" -i 0.2 -W 2 "$VM_G4" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p'
}
# N pings; the VF's tap carries them both ways, the synthetic's tap no answers.
check_via_vf() { # LABEL
	local vrx vtx srx got
	vrx=$(vm_tap_stat tvf rx); vtx=$(vm_tap_stat tvf tx); srx=$(vm_tap_stat tsyn rx)
	got=$(ping_n 10)
	assert_ge "$1: pings answered" "${got:-0}" 9
	assert_ge "$1: the guest answered through the VF (tvf rx +)" $(($(vm_tap_stat tvf rx) - vrx)) 9
	assert_ge "$1: the switch sent to the VF (tvf tx +)" $(($(vm_tap_stat tvf tx) - vtx)) 9
	assert_le "$1: no answers on the synthetic's tap (tsyn rx +)" $(($(vm_tap_stat tsyn rx) - srx)) 1
}
# hnxdp programs on the pair's hooks: "ingress egress vf-ingress" counts.
g_progs() { # VFDEV
	vm_exec python3 "$RIG_TOOLS/tcx_query.py" "$SYN" "$1" | "$RIG_PY" -c '
import json, sys
d = json.load(sys.stdin)
n = lambda dev, hook: sum(1 for p in (d.get(dev) or {}).get(hook, []) if p["name"].startswith("hnxdp_"))
print(n(sys.argv[1], "ingress"), n(sys.argv[1], "egress"), n(sys.argv[2], "ingress"))' "$SYN" "$1"
}

# ---- 0. the package, and the script that installs it before systemd starts.
PKG_DIR=$(mktemp -d /tmp/hnxdp-99-systemd.XXXXXX)
chmod 0755 "$PKG_DIR"
trap 'rc=$?; rm -rf "$PKG_DIR"; (exit $rc); vm__on_exit' EXIT
if [[ -n "${HNXDP_DEB:-}" ]]; then
	[[ -r "$HNXDP_DEB" ]] || { echo "FAIL: $RIG_TEST: HNXDP_DEB=$HNXDP_DEB is not readable"; exit 1; }
	cp "$HNXDP_DEB" "$PKG_DIR/"
	DEB="$PKG_DIR/$(basename "$HNXDP_DEB")"
else
	t0=$SECONDS
	if ! DEB=$("$RIG_REPO/scripts/package.sh" --scratch-path "${HNXDP_PACKAGE_SCRATCH:-.build}" --out "$PKG_DIR" 2>"$PKG_DIR/package.log" | tail -n 1); then
		tail -n 30 "$PKG_DIR/package.log"
		echo "FAIL: $RIG_TEST: scripts/package.sh failed"
		exit 1
	fi
	echo "  .. package.sh: $((SECONDS - t0)) s: $DEB"
fi
# rig_begin wants an hnxdp binary on the host: the package's.
dpkg -x "$DEB" "$PKG_DIR/root"
HNXDP="$PKG_DIR/root/usr/sbin/hnxdp"
VERSION=$("$HNXDP" --version | awk '{ print $2 }')
# The guest's root is a throw-away overlay of the host's: a container host's
# policy-rc.d (exit 101: no service actions) would keep the maintainer scripts'
# deb-systemd-invoke from stopping the service, which a real machine allows.
cat >"$PKG_DIR/preboot.sh" <<EOF
set -e
rm -f /usr/sbin/policy-rc.d
dpkg -i "$DEB"
systemctl enable hnxdp.service
EOF
VM_PREBOOT="$PKG_DIR/preboot.sh"

rig_begin
vm_deadline 900
vm_prepare
vm_start
note "boot: ${VM_BOOT_S} s from QEMU's start to 'systemctl is-system-running' = $VM_SYSTEMD_STATE; $(vm_exec systemd-analyze time | head -n 1)"
assert_in "the guest booted (is-system-running)" "$VM_SYSTEMD_STATE" "running|degraded"
assert_eq "pid 1 is systemd" "$(vm_exec cat /proc/1/comm)" systemd
PRE=$(vm_exec cat /var/log/hnxvm-preboot.log)
assert_eq "before systemd: dpkg -i and systemctl enable exited 0" "$(tail -n 1 <<<"$PRE")" "exit 0"
[[ "$(tail -n 1 <<<"$PRE")" == "exit 0" ]] || note "pre-boot log: $(tr '\n' '|' <<<"$PRE")"

# ---- 1. started at boot, READY, joined the VF by itself.
assert_eq "dpkg: hnxdp $VERSION installed in the guest" "$(vm_exec dpkg-query -W -f '${Status} ${Version}' hnxdp)" "install ok installed $VERSION"
assert_eq "hnxdp.service is enabled" "$(vm_exec systemctl is-enabled hnxdp.service)" enabled
assert_eq "hnxdp.service: ActiveState" "$(g_show ActiveState)" active
assert_eq "hnxdp.service: SubState" "$(g_show SubState)" running
assert_eq "hnxdp.service: Type" "$(g_show Type)" notify
assert_contains "hnxdp.service: StatusText (READY=1 came with STATUS=)" "$(g_show StatusText)" "managing 1 synthetic(s)"
svc_up=$(g_show ActiveEnterTimestampMonotonic)
mu_up=$(vm_exec systemctl show multi-user.target -p ActiveEnterTimestampMonotonic --value)
if [[ "$svc_up" =~ ^[1-9][0-9]*$ && "$mu_up" =~ ^[1-9][0-9]*$ ]] && ((svc_up <= mu_up)); then
	pass "systemd started hnxdp.service at boot: active at $((svc_up / 1000)) ms, multi-user.target at $((mu_up / 1000)) ms"
else
	fail "hnxdp.service was not active before multi-user.target ($svc_up, $mu_up)"
fi
assert_eq "the service was never restarted (NRestarts)" "$(g_show NRestarts)" 0
assert_eq "bpffs is mounted in the system's mount namespace" "$(vm_exec findmnt -n -o FSTYPE /sys/fs/bpf)" bpf

SYN=$(vm_dev_by_driver virtio_net)
VF=$(vm_dev_by_driver "$VM_VF_DRIVER")
[[ -n "$SYN" && -n "$VF" ]] || fatal "guest devices: synthetic '$SYN', VF '$VF'"
VF_IDX=$(vm_ifindex "$VF")
note "guest: synthetic $SYN (virtio_net), VF $VF ($VM_VF_DRIVER, ifindex $VF_IDX), MAC $VM_MAC"
if p=$(vm_wait_pair 45 "p and p['state'] == 'active' and (p['vf'] or {}).get('ifindex') == $VF_IDX"); then
	pass "the service joined $VF (ifindex $VF_IDX) to $SYN by itself"
else
	fail "the service did not join $VF: $p"
fi
assert_contains "journal: managing the synthetic" "$(g_journal)" "managing synthetic $SYN"
# Nothing configured the network: the synthetic up (hnxdp passes it down to the VF).
vm_sh "ip addr add $VM_G4/24 dev $SYN && ip link set $SYN up"
if p=$(vm_wait_pair 45 "p and p['state'] == 'active' and p['datapath'] == 'vf'"); then
	pass "$SYN up: the VF is up too, datapath vf"
else
	fail "$SYN up: datapath not vf: $p"
fi
vm_switch vf
wait_until 30 "the guest answers pings" vm_sw ping -n -c 1 -W 1 "$VM_G4"
check_via_vf "started at boot"

# ---- 2. a planned unplug and a replug are followed.
vm_switch syn
vm_unplug_vf 2>"$VM_TMP/qmp.err" || fail "device_del: $(cat "$VM_TMP/qmp.err")"
if p=$(vm_wait_pair 30 "p and p['state'] == 'idle' and p['vf'] is None and p['datapath'] == 'synthetic'"); then
	pass "unplug: pair idle, datapath synthetic, no VF"
else
	fail "unplug: pair not idle: $p"
fi
assert_eq "unplug: the synthetic answers pings" "$(ping_n 3)" 3
vm_plug_vf 2>"$VM_TMP/qmp.err" || fail "device_add: $(cat "$VM_TMP/qmp.err")"
wait_until 30 "a $VM_VF_DRIVER device is back" test -n "$(vm_dev_by_driver "$VM_VF_DRIVER")"
VF=$(vm_dev_by_driver "$VM_VF_DRIVER")
NEW_IDX=$(vm_ifindex "$VF")
assert_ne "replug: the new VF has a new ifindex" "$NEW_IDX" "$VF_IDX"
OLD_IDX=$VF_IDX
VF_IDX=$NEW_IDX
if p=$(vm_wait_pair 45 "p and p['state'] == 'active' and p['datapath'] == 'vf' and (p['vf'] or {}).get('ifindex') == $VF_IDX"); then
	pass "replug: pair active with $VF (ifindex $VF_IDX)"
else
	fail "replug: pair not active with the new VF: $p"
fi
vm_switch vf
check_via_vf "after the replug"
assert_contains "journal: the departure of ifindex $OLD_IDX" "$(g_journal)" "VF ifindex $OLD_IDX left"

# ---- 3. systemctl reload: settings change, pairs untouched.
PID0=$(g_show MainPID)
SW0=$(g_pair switches)
note "before reload: main pid $PID0, switches $SW0"
reload() { # LABEL: systemctl reload, then wait for READY (StatusText) again
	rig_try vm_exec systemctl reload hnxdp.service
	assert_eq "$1: systemctl reload exits 0 ($RIG_ERR)" "$RIG_RC" 0
}
vm_sh "echo 'settle-ms = 500' >>$CONF"
reload "settle-ms 500"
wait_until 30 "the journal says settle-ms changed" g_journal_has "settle-ms 2000 -> 500"
assert_eq "reload: same main pid" "$(g_show MainPID)" "$PID0"
assert_eq "reload: still active" "$(g_show ActiveState)" active
assert_contains "reload: READY again, with the joined pair" "$(g_show StatusText)" "1 pair(s) joined"
assert_eq "reload: pair untouched (switches)" "$(g_pair switches)" "$SW0"
assert_eq "reload: pair untouched (VF)" "$(g_pair vf.ifindex)" "$VF_IDX"
vm_sh "cp $CONF /tmp/hnxdp.conf.good && echo 'hold-down-ms = banana' >>$CONF"
reload "a file that does not parse"
wait_until 30 "the journal has the failed reload" g_journal_has "keeping the settings in use"
vm_sh "cp /tmp/hnxdp.conf.good $CONF && echo 'transparent = off' >>$CONF"
reload "transparent off"
wait_until 30 "the journal has the refused transparent change" g_journal_has "transparent on -> off is not applied"
vm_sh "cp /tmp/hnxdp.conf.good $CONF"
reload "back to the good file"
assert_eq "after the reloads: same main pid" "$(g_show MainPID)" "$PID0"
assert_eq "after the reloads: pair untouched (switches)" "$(g_pair switches)" "$SW0"
assert_eq "after the reloads: pair active" "$(g_pair state)" active
check_via_vf "after the reloads"

# ---- 4. systemctl restart adopts the pair.
ping_start "$VM_TMP/ping.restart"
sleep 1
rig_try vm_exec systemctl restart hnxdp.service
assert_eq "systemctl restart exits 0 ($RIG_ERR)" "$RIG_RC" 0
PID1=$(g_show MainPID)
assert_ne "restart: a new main pid" "$PID1" "$PID0"
INV=$(g_show InvocationID)
wait_until 30 "the new invocation adopted the pair" g_journal_has "adopted: state active" "_SYSTEMD_INVOCATION_ID=$INV"
sleep 1
read -r sent recv <<<"$(ping_stop "$VM_TMP/ping.restart")"
note "restart: ping: $sent sent, $recv received"
assert_ge "restart: pings sent meanwhile" "${sent:-0}" 10
assert_le "restart: pings lost" $((${sent:-0} - ${recv:-0})) 1
assert_eq "restart: active" "$(g_show ActiveState)" active
assert_eq "restart: no new switch" "$(g_pair switches)" "$SW0"
assert_eq "restart: same VF" "$(g_pair vf.ifindex)" "$VF_IDX"
assert_eq "restart: one hnxdp program on each hook" "$(g_progs "$VF")" "1 1 1"
assert_not_contains "restart: the new invocation joined nothing anew" "$(g_journal "_SYSTEMD_INVOCATION_ID=$INV")" "joined, state active"
check_via_vf "after the restart"

# ---- 5. systemctl stop leaves the datapath.
rig_try vm_exec systemctl stop hnxdp.service
assert_eq "systemctl stop exits 0 ($RIG_ERR)" "$RIG_RC" 0
assert_eq "stop: inactive" "$(g_show ActiveState)" inactive
assert_eq "stop: result success (run exited 0 on SIGTERM)" "$(g_show Result)" success
assert_ge "stop: the datapath stays pinned" "$(vm_sh 'ls -A /sys/fs/bpf/hnxdp 2>/dev/null | wc -l')" 1
assert_eq "stop: pair still active" "$(g_pair state)" active
assert_eq "stop: one hnxdp program on each hook" "$(g_progs "$VF")" "1 1 1"
check_via_vf "after systemctl stop"

# ---- 6. journalctl -p warning: warnings and errors only.
WARN=$(vm_exec journalctl -u hnxdp.service -p warning --no-pager -o cat)
note "journalctl -u hnxdp -p warning:"
sed 's/^/    /' <<<"$WARN"
vm_exec journalctl -u hnxdp.service -p warning --no-pager -o json >"$VM_TMP/warn.json"
vm_exec journalctl -u hnxdp.service --no-pager -o json >"$VM_TMP/all.json"
prios() { # FILE -> "PRIORITY count" of hnxdp's own entries (not systemd's about the unit)
	"$RIG_PY" -c '
import collections, json, sys
c = collections.Counter()
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("SYSLOG_IDENTIFIER") == "hnxdp":
        c[int(e["PRIORITY"])] += 1
print(" ".join("%d:%d" % kv for kv in sorted(c.items())))' "$1"
}
WP=$(prios "$VM_TMP/warn.json")
AP=$(prios "$VM_TMP/all.json")
note "hnxdp's journal entries by priority: all $AP; with -p warning $WP"
assert_eq "-p warning: every entry's PRIORITY <= 4" \
	"$("$RIG_PY" -c 'import json, sys; print(sum(1 for l in open(sys.argv[1]) if int(json.loads(l)["PRIORITY"]) > 4))' "$VM_TMP/warn.json")" 0
assert_contains "-p warning: the error (3) of the file that did not parse" " $WP" " 3:"
assert_contains "-p warning: the warning (4) of the refused change" "$WP" "4:"
assert_contains "the unit's journal has hnxdp's info entries (6)" "$AP" "6:"
assert_contains "-p warning shows the failed reload" "$WARN" "keeping the settings in use"
assert_not_contains "-p warning hides info lines" "$WARN" "info hnxdp"
assert_eq "no entry of hnxdp starts with a priority prefix (<N>)" \
	"$(g_journal | grep -c '^<[0-9]>' || true)" 0

# ---- 7. systemd-analyze security.
SEC=$(vm_exec systemd-analyze security hnxdp.service --no-pager 2>&1 || true)
SCORE=$(grep -o 'Overall exposure level for hnxdp.service: .*' <<<"$SEC" | sed 's/.*: //; s/\x1b\[[0-9;]*m//g')
if [[ -n "$SCORE" ]]; then pass "systemd-analyze security hnxdp: exposure $SCORE"; else fail "no exposure score: $(tail -n 3 <<<"$SEC")"; fi

# ---- 8. dpkg -r, then dpkg --purge: the maintainer scripts stop the service and
# leave the datapath, the write-ahead records and, until the purge, /etc/hnxdp.
rig_try vm_exec systemctl start hnxdp.service
assert_eq "start again before the removal ($RIG_ERR)" "$RIG_RC" 0
records() { vm_sh 'ls /run/hnxdp/*/pair-*.json 2>/dev/null | wc -l'; }
assert_eq "a write-ahead record of the joined pair" "$(records)" 1
rig_try vm_exec dpkg -r hnxdp
assert_eq "dpkg -r hnxdp exits 0 ($(tr '\n' '|' <<<"$RIG_ERR"))" "$RIG_RC" 0
assert_eq "dpkg -r: prerm stopped the service" "$(vm_exec systemctl is-active hnxdp.service || true)" inactive
assert_eq "dpkg -r: the binary is gone" "$(vm_sh 'test -e /usr/sbin/hnxdp && echo present || echo gone')" gone
assert_eq "dpkg -r: the conffile stays" "$(vm_sh 'test -e /etc/hnxdp/hnxdp.conf && echo present || echo gone')" present
assert_eq "dpkg -r: the write-ahead record stays" "$(records)" 1
assert_ge "dpkg -r: the datapath stays pinned" "$(vm_sh 'ls -A /sys/fs/bpf/hnxdp 2>/dev/null | wc -l')" 1
check_via_vf "after dpkg -r"
rig_try vm_exec dpkg --purge hnxdp
assert_eq "dpkg --purge hnxdp exits 0 ($(tr '\n' '|' <<<"$RIG_ERR"))" "$RIG_RC" 0
assert_eq "dpkg --purge: /etc/hnxdp is gone" "$(vm_sh 'test -e /etc/hnxdp && echo present || echo gone')" gone
assert_eq "dpkg --purge: the unit is not enabled any more" "$(vm_sh 'ls /etc/systemd/system/*.wants/hnxdp.service 2>/dev/null | wc -l')" 0
assert_eq "dpkg --purge: the write-ahead record stays" "$(records)" 1

if ((RIG_FAILED > 0)); then
	note "the unit's journal:"
	g_journal | tail -n 40 | sed 's/^/    /' || true
fi
note "kernel $(vm_exec uname -r), VF $VM_VF_DRIVER: boot ${VM_BOOT_S} s; whole test $((SECONDS - T_START)) s"
rig_finish
