# Stage 2 of the test guest (integration/lib/vm.py), pid 1 in the host's root
# (the host's /bin/sh): API file systems, then qemu-ga on the virtio-serial port.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
# /tmp stays the overlay's (the host's, read-only below, writable above): a
# checkout or build under the host's /tmp (CI clones there) must be visible.
for d in /run /var/tmp /dev/shm; do mount -t tmpfs tmpfs "$d"; done
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
hostname hnxvm
ip link set lo up
port=""
for p in /sys/class/virtio-ports/*; do
	[ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/${p##*/}
done
echo "hnxvm: stage 2 up, agent on $port" >/dev/ttyS0
# Pid 1: keep the agent running; `wait` also reaps orphans.
while :; do
	qemu-ga -m virtio-serial -p "$port" -t /run >/dev/ttyS0 2>&1 &
	wait
	echo "hnxvm: qemu-ga exited; restarting" >/dev/ttyS0
	sleep 1
done
