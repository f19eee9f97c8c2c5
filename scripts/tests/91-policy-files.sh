#!/usr/bin/env bash
# 91-policy-files: the packaged files that keep network managers off a VF hnxdp
# will join (issue 11 part 3; docs/guests.md), on the rig's real devices.
#   1. `hnxdp udev IF` in the guest: with a config naming hn0 (veth is not
#      virtio_net, so the rig names its synthetic as a user would), hn0 is
#      HNXDP_ROLE=synthetic and vf0 HNXDP_ROLE=vf-candidate with
#      HNXDP_SYNTHETIC=hn0; --name (the name udev is about to give) counts for
#      the device itself. Nothing is printed, exit 0, for: the same devices
#      without that config (nothing hnxdp manages), vf0 with another MAC, vf0
#      as a bridge port, `transparent = off`; a config that does not parse or a
#      device that does not exist print nothing and one stderr line, exit 0;
#      a bad interface name is usage (exit 2). It changes nothing (snapshot).
#   2. The udev rule, run by a real udevadm (`udevadm test`, systemd 252) in a
#      sandbox: the guest's network namespace with its own sysfs, a private
#      mount namespace where tmpfs hides the host's udev rules and database and
#      holds only packaging/udev/81-hnxdp.rules (its program path pointed at
#      the binary under test). vf0 gets HNXDP_ROLE=vf-candidate, NM_UNMANAGED=1
#      and ID_NET_MANAGED_BY=hnxdp; hn0 HNXDP_ROLE=synthetic and the re-trigger
#      of the devices with its MAC on add, not on change; a veth of another MAC
#      gets none of them.
#   3. systemd-networkd 252, real, in the same kind of sandbox (the udev
#      database written by step 2's udevadm, tmpfs over /run/systemd and the
#      .network directories): with a catch-all .network matching the shared
#      MAC (what cloud-init's fallback writes), packaging/network's
#      05-hnxdp-vf.network leaves vf0 unmanaged and without the address while
#      hn0 is configured; without 05-hnxdp-vf.network (the control) vf0 is
#      configured too.
. "$(dirname "$0")/../lib/rig.sh"

# udevadm: on PATH, else the one scripts/install-deps.sh unpacks (not installed:
# that would start the udev daemon). systemd-networkd: Debian's systemd package.
UDEVADM=${HNXDP_UDEVADM:-$(command -v udevadm || echo /usr/local/lib/hnxdp-tests/udev/bin/udevadm)}
NETWORKD=/lib/systemd/systemd-networkd

rig_begin
[[ -x "$UDEVADM" ]] || fatal "no udevadm at $UDEVADM (run scripts/install-deps.sh)"
[[ -x "$NETWORKD" ]] || fatal "no $NETWORKD (run scripts/install-deps.sh: package systemd)"
rig_create

CONF="$RIG_TMP/hnxdp.conf"
printf 'synthetic = hn0\n' >"$CONF"
udev_g() { rig_try hnxdp_g udev "$@"; }
oneline() { tr '\n' ' ' <<<"$1" | sed 's/ $//'; }

# ---- 1. the helper
rig_snapshot "$RIG_TMP/before" hn0 vf0
t0=$(date +%s%N)
udev_g vf0 --config "$CONF"
t1=$(date +%s%N)
note "hnxdp udev vf0: $(((t1 - t0) / 1000000)) ms (one rtnetlink dump, ethtool -i per Ethernet device)"
assert_eq "vf0: exit 0" "$RIG_RC" 0
assert_eq "vf0 is the VF candidate of hn0" "$(oneline "$RIG_OUT")" "HNXDP_ROLE=vf-candidate HNXDP_SYNTHETIC=hn0"
assert_eq "vf0: nothing on stderr" "$RIG_ERR" ""
udev_g hn0 --config "$CONF"
assert_eq "hn0 is a synthetic" "$(oneline "$RIG_OUT")" "HNXDP_ROLE=synthetic"
printf 'synthetic = hn9\n' >"$RIG_TMP/renamed.conf"
udev_g hn0 --name hn9 --config "$RIG_TMP/renamed.conf"
assert_eq "hn0 about to be renamed hn9 (--name), hn9 listed: synthetic" "$(oneline "$RIG_OUT")" "HNXDP_ROLE=synthetic"
udev_g vf0 --config "$RIG_TMP/renamed.conf"
assert_eq "...while its VF is nothing yet (no synthetic hn9 exists now)" "$RIG_OUT$RIG_RC" "0"

udev_g vf0 --config /dev/null
assert_eq "no config: vf0 (veth, no virtio_net synthetic) prints nothing, exit 0" "$RIG_OUT|$RIG_ERR|$RIG_RC" "||0"
udev_g hn0 --config /dev/null
assert_eq "no config: hn0 prints nothing" "$RIG_OUT|$RIG_RC" "|0"

ip -n "$RIG_GUEST" link set vf0 address 02:48:4e:aa:bb:cc
udev_g vf0 --config "$CONF"
assert_eq "vf0 with another MAC: nothing" "$RIG_OUT|$RIG_RC" "|0"
ip -n "$RIG_GUEST" link set vf0 address "$RIG_MAC"

ip -n "$RIG_GUEST" link add br9 type bridge
ip -n "$RIG_GUEST" link set vf0 master br9
udev_g vf0 --config "$CONF"
assert_eq "vf0 as a bridge port: nothing" "$RIG_OUT|$RIG_RC" "|0"
ip -n "$RIG_GUEST" link set vf0 nomaster
ip -n "$RIG_GUEST" link del br9
ip -n "$RIG_GUEST" link set vf0 address "$RIG_MAC" # a bridge port's MAC may have been changed

printf 'synthetic = hn0\ntransparent = off\n' >"$RIG_TMP/off.conf"
udev_g vf0 --config "$RIG_TMP/off.conf"
assert_eq "transparent = off: vf0 is left to the system" "$RIG_OUT|$RIG_RC" "|0"

printf 'synthetic = hn0\nsettle-ms = soon\n' >"$RIG_TMP/bad.conf"
udev_g vf0 --config "$RIG_TMP/bad.conf"
assert_eq "a config that does not parse: nothing on stdout, exit 0" "$RIG_OUT|$RIG_RC" "|0"
assert_one_stderr_line "a config that does not parse"
assert_contains "...naming the line" "$RIG_ERR" "line 2"
udev_g nosuchdev0 --config "$CONF"
assert_eq "a device that does not exist: nothing, exit 0" "$RIG_OUT|$RIG_RC" "|0"
assert_one_stderr_line "a device that does not exist"
udev_g "bad/name" --config "$CONF"
assert_eq "an invalid interface name is usage: exit 2" "$RIG_RC" 2
assert_one_stderr_line "an invalid interface name"
rig_snapshot "$RIG_TMP/after" hn0 vf0
assert_files_equal "hnxdp udev changed nothing" "$RIG_TMP/before" "$RIG_TMP/after"

# ---- 2. and 3. the sandbox: the guest's network namespace, a private mount
# namespace (nothing mounted here is seen outside it, and it ends with the
# script): its own sysfs (the guest's devices), tmpfs over /run (udev database,
# networkd state), the host's udev rules and .network directories.
ip -n "$RIG_GUEST" link add other0 type veth peer name other0p # a device of another MAC
ip -n "$RIG_GUEST" link set other0 address 02:48:4e:aa:bb:cd
ip -n "$RIG_GUEST" link set other0 up
cat >"$RIG_TMP/sandbox.sh" <<'SBX'
set -eu
# $1: with-network-file | without-network-file
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /usr/lib/udev/rules.d
for d in /etc/udev/rules.d /usr/local/lib/udev/rules.d /etc/systemd/network /usr/lib/systemd/network /usr/local/lib/systemd/network; do
	if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi
done
mkdir -p /run/udev/rules.d /run/systemd/network
# The packaged rule, its program path pointed at the binary under test and its config.
sed "s|\"/usr/sbin/hnxdp udev \(.*\)\"|\"$HNX udev \1 --config $CONF\"|" "$RULE" >/run/udev/rules.d/81-hnxdp.rules
grep -q -- "--config $CONF" /run/udev/rules.d/81-hnxdp.rules || { echo "sandbox: rule rewrite failed" >&2; exit 1; }
for dev in vf0 hn0 other0; do
	"$UDEVADM" test --action=add "/sys/class/net/$dev" >"$OUT/add-$dev" 2>"$OUT/add-$dev.log"
done
"$UDEVADM" test --action=change /sys/class/net/hn0 >"$OUT/change-hn0" 2>"$OUT/change-hn0.log"
# networkd: what cloud-init's fallback writes (match by MAC, which vf0 shares) and, unless
# this is the control, the packaged file.
printf '[Match]\nMACAddress=%s\n\n[Network]\nAddress=198.18.7.1/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$MAC" \
	>/run/systemd/network/50-cloud-init-like.network
if [ "$1" = with-network-file ]; then cp "$NETFILE" /usr/lib/systemd/network/; fi
"$NETWORKD" >"$OUT/networkd-$1.log" 2>&1 &
pid=$!
settled() {
	for i in $(cat /sys/class/net/hn0/ifindex) $(cat /sys/class/net/vf0/ifindex); do
		grep -qE '^ADMIN_STATE=(configured|unmanaged|failed)' "/run/systemd/netif/links/$i" 2>/dev/null || return 1
	done
	ip -4 -o addr show dev hn0 | grep -q 198.18.7.1 || return 1
}
n=0
while ! settled && [ $n -lt 200 ]; do n=$((n + 1)); sleep 0.05; done
for dev in hn0 vf0; do
	i=$(cat "/sys/class/net/$dev/ifindex")
	echo "$dev $(grep -E '^ADMIN_STATE=' "/run/systemd/netif/links/$i" 2>/dev/null | cut -d= -f2 || echo none)" \
		"$(grep -E '^NETWORK_FILE=' "/run/systemd/netif/links/$i" 2>/dev/null | sed 's|.*/||' || true)" \
		"$(ip -4 -o addr show dev "$dev" | grep -c 198.18.7.1 || true)"
done >"$OUT/networkd-$1"
kill "$pid"
wait "$pid" || true
SBX
sandbox() {
	mkdir -p "$RIG_TMP/sbx"
	rig_try timeout -k 5 60 env HNX="$HNXDP" CONF="$CONF" RULE="$RIG_REPO/packaging/udev/81-hnxdp.rules" \
		NETFILE="$RIG_REPO/packaging/network/05-hnxdp-vf.network" UDEVADM="$UDEVADM" NETWORKD="$NETWORKD" \
		MAC="$RIG_MAC" OUT="$RIG_TMP/sbx" \
		nsenter --net="/run/netns/$RIG_GUEST" -- unshare --mount --propagation private sh "$RIG_TMP/sandbox.sh" "$1"
	assert_eq "sandbox ($1) exits 0 (stderr: $(rig__short "$RIG_ERR"))" "$RIG_RC" 0
}
prop() { sed -n "s/^$2=//p" "$RIG_TMP/sbx/$1" | head -n 1; }

HOST_RUN_STATE="$({ ls -lR /run/udev /run/systemd/netif /run/systemd/network 2>&1 || true; } | md5sum | cut -c1-12)"
sandbox with-network-file
# 2. the rule
assert_eq "udevadm test add vf0: HNXDP_ROLE" "$(prop add-vf0 HNXDP_ROLE)" vf-candidate
assert_eq "udevadm test add vf0: HNXDP_SYNTHETIC" "$(prop add-vf0 HNXDP_SYNTHETIC)" hn0
assert_eq "udevadm test add vf0: NM_UNMANAGED (NetworkManager)" "$(prop add-vf0 NM_UNMANAGED)" 1
assert_eq "udevadm test add vf0: ID_NET_MANAGED_BY (networkd 256+)" "$(prop add-vf0 ID_NET_MANAGED_BY)" hnxdp
assert_eq "udevadm test add hn0: HNXDP_ROLE" "$(prop add-hn0 HNXDP_ROLE)" synthetic
assert_eq "udevadm test add hn0: no NM_UNMANAGED, no ID_NET_MANAGED_BY" "$(prop add-hn0 NM_UNMANAGED)$(prop add-hn0 ID_NET_MANAGED_BY)" ""
assert_eq "udevadm test add hn0: re-triggers the devices with its MAC" "$(grep -c "^run: '/bin/udevadm trigger --action=change --subsystem-match=net --attr-match=address=$RIG_MAC'\$" "$RIG_TMP/sbx/add-hn0" || true)" 1
assert_eq "udevadm test change hn0: HNXDP_ROLE, and no re-trigger" "$(prop change-hn0 HNXDP_ROLE) $(grep -c '^run:' "$RIG_TMP/sbx/change-hn0" || true)" "synthetic 0"
assert_eq "udevadm test add other0 (another MAC): no HNXDP_ROLE, NM_UNMANAGED, ID_NET_MANAGED_BY, RUN" \
	"$(grep -cE '^(HNXDP_|NM_UNMANAGED|ID_NET_MANAGED_BY|run:)' "$RIG_TMP/sbx/add-other0" || true)" 0
assert_eq "the rule's program ran (udevadm's log)" "$(grep -c "(out) 'HNXDP_ROLE=vf-candidate'" "$RIG_TMP/sbx/add-vf0.log" || true)" 1
# 3. networkd
assert_eq "networkd with 05-hnxdp-vf.network: hn0 configured by the MAC match, has the address" \
	"$(sed -n 's/^hn0 //p' "$RIG_TMP/sbx/networkd-with-network-file")" "configured 50-cloud-init-like.network 1"
assert_eq "networkd with 05-hnxdp-vf.network: vf0 unmanaged, no address" \
	"$(sed -n 's/^vf0 //p' "$RIG_TMP/sbx/networkd-with-network-file")" "unmanaged  0"
sandbox without-network-file
assert_eq "control, without 05-hnxdp-vf.network: networkd configures vf0 too (what the file prevents)" \
	"$(sed -n 's/^vf0 //p' "$RIG_TMP/sbx/networkd-without-network-file")" "configured 50-cloud-init-like.network 1"
host_run_state="$({ ls -lR /run/udev /run/systemd/netif /run/systemd/network 2>&1 || true; } | md5sum | cut -c1-12)"
assert_eq "the sandbox left no udev database or networkd state outside it" "$host_run_state" "$HOST_RUN_STATE"

rig_finish
