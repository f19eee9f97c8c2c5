# Stage 2 of the test guest with systemd (integration/lib/vm.py): pid 1 (the
# host's /bin/sh) makes the overlay root a machine of its own, runs VM_PREBOOT
# (set on the line before this header) and execs systemd.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "hnxvm: $*" >/dev/ttyS0; }
# The API file systems (systemd keeps them, as after an initrd).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# A machine of its own: identity, no host mounts, a journal in memory.
tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id
echo "# hnxvm: the root is the host's, read-only, under a tmpfs overlay (vm.py)" >/etc/fstab
mkdir -p /etc/systemd/journald.conf.d /etc/systemd/system/sysinit.target.wants
printf '[Journal]\nStorage=volatile\n' >/etc/systemd/journald.conf.d/hnxvm.conf
# Only Debian's static units start: none of the host's enabled ones...
rm -f /etc/systemd/system/*.wants/* /etc/systemd/system/default.target
# /tmp stays the host's view (as with busybox): tmpfiles' boot-time "D /tmp"
# would hide every file in it (a checkout under /tmp) and takes ~50 s over 9p.
mkdir -p /etc/tmpfiles.d
ln -sf /dev/null /etc/tmpfiles.d/tmp.conf
# ...and nothing that configures the network or the clock.
for u in NetworkManager.service NetworkManager-wait-online.service systemd-networkd.service \
	systemd-networkd.socket systemd-networkd-wait-online.service networking.service \
	ifupdown-pre.service systemd-resolved.service wpa_supplicant.service ModemManager.service \
	systemd-timesyncd.service systemd-firstboot.service; do
	ln -sf /dev/null "/etc/systemd/system/$u"
done
# qemu-ga for vm_exec, started early (no udev here: no device unit to bind to).
cat >/etc/systemd/system/hnxvm-qga.service <<'UNIT'
[Unit]
Description=QEMU guest agent of the hnxdp test harness (integration/lib/vm.py)
DefaultDependencies=no
Before=sysinit.target shutdown.target
Conflicts=shutdown.target

[Service]
ExecStart=/bin/sh /etc/hnxvm-qga.sh
Restart=always
RestartSec=1

[Install]
WantedBy=sysinit.target
UNIT
cat >/etc/hnxvm-qga.sh <<'SCRIPT'
for p in /sys/class/virtio-ports/*; do
	[ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && exec qemu-ga -m virtio-serial -p "/dev/${p##*/}" -t /run
done
echo "hnxvm-qga: no virtio-serial port named org.qemu.guest_agent.0"
exit 1
SCRIPT
ln -sf /etc/systemd/system/hnxvm-qga.service /etc/systemd/system/sysinit.target.wants/hnxvm-qga.service
hostname hnxvm
echo hnxvm >/etc/hostname
if [ -n "$VM_PREBOOT" ]; then
	rc=0
	sh "$VM_PREBOOT" >/var/log/hnxvm-preboot.log 2>&1 </dev/null || rc=$?
	echo "exit $rc" >>/var/log/hnxvm-preboot.log
	say "VM_PREBOOT $VM_PREBOOT: exit $rc"
fi
say "stage 2: exec systemd"
exec /lib/systemd/systemd
