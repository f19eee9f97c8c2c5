# shellcheck shell=bash
# vm.sh - a real guest (QEMU, TCG) for hnxdp's integration tests.
#
# Source it after rig.sh (it uses rig.sh's reporting and chains its EXIT trap;
# do not call rig_create):
#
#   . "$(dirname "$0")/../lib/rig.sh"
#   . "$(dirname "$0")/../lib/vm.sh"
#   rig_begin
#   vm_prepare                 # packages, guest kernel (cached), initramfs
#   vm_start                   # switch namespace, taps, QEMU; waits for the guest
#   vm_exec ip -br link        # a command in the guest: its output and exit code
#   vm_unplug_vf; vm_plug_vf   # hot-unplug / -plug the VF (QMP, waits for events)
#   rig_finish                 # vm_cleanup runs on EXIT, even on failure
#
# The guest: the Debian 6.12 generic kernel (package linux-image-6.12-amd64,
# `apt-get download`ed once, unpacked with dpkg-deb, never installed; its
# vmlinuz and the few modules the guest loads are kept in
# $VM_CACHE/<version>/), a busybox initramfs made per run whose /init loads the
# modules, mounts the host's / read-only over 9p with a tmpfs overlay on top
# and switch_roots into it. So the guest runs the host's own binaries (hnxdp,
# iproute2, ethtool, bpftool, python3...) at their host paths, with its own
# /proc, /sys, /dev, /run and bpffs (/tmp stays the host's, copy-on-write). Pid 1 then runs qemu-ga (the host's
# qemu-guest-agent) on a virtio-serial port: vm_exec is guest-exec through
# scripts/tools/vmctl.py (0.25-0.3 s a command under TCG, python start included).
#
# Topology (namespace name unique per run: hnxvm-<pid>-<random>):
#
#   guest:  virtio-net (synthetic)      e1000e (the VF, on root port rp1, id "vf")
#              | same MAC $VM_MAC            |
#   switch: tsyn (tap)                  tvf (tap)        taps: bridge ports, isolated,
#              \________ br0 (198.18.90.2/24) ___/        no learning; the guest MAC
#                                                         has one static fdb entry
#
# QEMU runs in the switch namespace. br0's address is "the host side": ping
# from there (vm_sw CMD). vm_switch vf|syn moves the fdb entry of $VM_MAC, i.e.
# where the hypervisor's switch sends frames for the guest. The guest side is
# configured by the test (VM_G4=198.18.90.1 is the address meant for the
# synthetic).
#
# Functions:
#   vm_prepare                  install the apt packages (install-deps.sh),
#                               the guest kernel into the cache, build the initramfs
#   vm_start                    boot; a guest that dies or does not answer within
#                               VM_BOOT_TIMEOUT s is killed and booted again
#                               (VM_BOOT_TRIES times in all); sets VM_BOOT_S
#   vm_exec CMD...              run CMD (argv) in the guest; stdout/stderr/exit code
#   vm_sh 'SCRIPT'              vm_exec sh -c 'SCRIPT'
#   vm_sw CMD...                run CMD in the switch namespace (host side)
#   vm_switch vf|syn            point the switch's fdb entry for $VM_MAC
#   vm_unplug_vf                QMP device_del vf, wait for DEVICE_DELETED
#   vm_plug_vf                  QMP device_add the e1000e again (same id, MAC, netdev)
#   vm_tap_stat TAP rx|tx       packet counter of a tap (switch side)
#   vm_udp_count DEV PORT       datagrams a guest UDP socket bound to DEV got of 200 sent
#   vm_bg VAR CMD...            host-side background job, pid in VAR (killed at cleanup)
#   vm_deadline SECS            end the test (SIGTERM to it, so cleanup runs) after SECS
#   vm_stop | vm_cleanup        stop QEMU (by pid), delete the namespace and temp dir
#   vm_reap_stale               (vm_start calls it) namespaces hnxvm-PID-* and temp
#                               dirs of runs whose PID is gone: the QEMU left in
#                               such a namespace (ip netns pids) is killed
# Variables: VM_NS VM_MAC VM_TMP VM_PID VM_QMP VM_QGA VM_KVER VM_BOOT_S VM_G4 VM_H4
#   VM_SYSTEMD_STATE (systemd guests: what `systemctl is-system-running` said at boot)
# Knobs: VM_CACHE (/var/cache/hnxdp-vm), VM_KPKG (linux-image-6.12-amd64),
#   VM_BOOT_TIMEOUT (60; 240 with VM_INIT=systemd), VM_BOOT_TRIES (4), VM_EXEC_TIMEOUT
#   (60), VM_VF_DRIVER (e1000e or vmxnet3), VM_APPEND (extra guest kernel command
#   line, for debugging), VM_SYN_OPTS / VM_VF_OPTS (more -device properties of the
#   synthetic / the VF, e.g. failover=on / failover_pair_id=syn for QEMU's virtio-net
#   failover), VM_VF_AT_BOOT (1; 0 boots without the VF, for vm_plug_vf: QEMU keeps
#   the id of a failover primary given on its command line after device_del, so a
#   failover primary that is replugged must have been plugged by QMP), VM_INIT and
#   VM_PREBOOT (below; set them before sourcing).
#
# VM_INIT=systemd (opt-in; the default, busybox, is the pid 1 described above):
# the guest boots Debian's systemd (the host's /lib/systemd/systemd) as pid 1 in
# the same overlay root, to multi-user.target. Before exec'ing it, the guest's
# first pid 1 (the host's /bin/sh, in the overlay) makes the throw-away root a
# machine of its own: a new /etc/machine-id, an empty /etc/fstab, a volatile
# journal, none of the host's enabled units (its *.wants symlinks are removed:
# only Debian's static units start, e.g. journald, logind, dbus, getty), /tmp
# not emptied by tmpfiles (it stays the host's, copy-on-write), network
# managers masked (NetworkManager, systemd-networkd, ifupdown's networking,
# resolved, timesyncd), and hnxvm-qga.service enabled: qemu-ga on the
# virtio-serial port (the host's root has no udev, so the Debian unit of
# qemu-guest-agent, bound to a udev device, cannot start). Then it runs
# VM_PREBOOT, if set: a host path (visible in the guest through the 9p root) of
# a sh script run in the guest's root before systemd starts (e.g. dpkg -i and
# systemctl enable: what a unit enabled "at boot" needs), its output and exit
# code in the guest's /var/log/hnxvm-preboot.log. vm_start waits for the agent
# and then for `systemctl is-system-running --wait` (running or degraded; the
# failed units of a degraded boot are listed).

VM_CACHE=${VM_CACHE:-/var/cache/hnxdp-vm}
VM_KPKG=${VM_KPKG:-linux-image-6.12-amd64}
VM_INIT=${VM_INIT:-busybox}
VM_PREBOOT=${VM_PREBOOT:-}
if [[ $VM_INIT == systemd ]]; then VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-240}; fi
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-60}
VM_BOOT_TRIES=${VM_BOOT_TRIES:-4}
VM_EXEC_TIMEOUT=${VM_EXEC_TIMEOUT:-60}
VM_VF_DRIVER=${VM_VF_DRIVER:-e1000e}
VM_G4=198.18.90.1
VM_H4=198.18.90.2
# virtio_pci/virtio_console are built in on 6.12 and modules on 6.1 (a module
# listed here that is built in is skipped). sch_ingress (clsact) and cls_bpf
# for the classic tc attachment: the guest cannot autoload modules (its
# /lib/modules is the host's).
VM_MODULES=(virtio_pci virtio_console virtio_net e1000e vmxnet3 9pnet_virtio 9p overlay sch_ingress cls_bpf)
VM_CTL="$RIG_TOOLS/vmctl.py"
VM_NS=""
VM_TMP=""
VM_PID=""
VM_KDIR=""
VM_KVER=""
VM_BOOT_S=""
VM_MAC=""
VM_SYSTEMD_STATE=""
VM_BG_PIDS=()

# ---------------------------------------------------------------- preparing

# The exact kernel package behind $VM_KPKG ("NAME VERSION"), from apt's lists.
vm__kernel_pkg() {
	local name ver
	name=$(apt-cache depends "$VM_KPKG" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n1)
	[[ -n "$name" ]] || return 1
	ver=$(apt-cache policy "$name" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	[[ -n "$ver" && "$ver" != "(none)" ]] || return 1
	echo "$name $ver"
}

vm_prepare() {
	"$RIG_REPO/scripts/install-deps.sh" || fatal "install-deps.sh failed"
	rig_require_tools qemu-system-x86_64 busybox qemu-ga depmod modprobe dpkg-deb apt-get gzip bridge flock
	case $VM_INIT in
	busybox) ;;
	systemd)
		[[ -x /lib/systemd/systemd ]] || fatal "VM_INIT=systemd: no /lib/systemd/systemd (Debian's systemd package)"
		rig_require_tools systemctl journalctl
		[[ -z "$VM_PREBOOT" || ("$VM_PREBOOT" =~ ^/[A-Za-z0-9_./-]+$ && -r "$VM_PREBOOT") ]] ||
			fatal "VM_PREBOOT must be a readable absolute path of plain characters: '$VM_PREBOOT'"
		;;
	*) fatal "VM_INIT must be busybox or systemd, not '$VM_INIT'" ;;
	esac
	mkdir -p "$VM_CACHE"
	local pkg name ver dir
	pkg=$(vm__kernel_pkg) || { apt-get update -qq >/dev/null 2>&1 || true; pkg=$(vm__kernel_pkg) || pkg=""; }
	if [[ -z "$pkg" ]]; then
		# Offline: the newest cached kernel, if any.
		dir=$(grep -lx -- "$VM_KPKG" "$VM_CACHE"/*/kpkg 2>/dev/null | sed 's|/kpkg$||' | sort -V | tail -n1)
		[[ -n "$dir" && -e "$dir/ready" ]] || dir=""
		[[ -n "$dir" ]] || fatal "cannot resolve $VM_KPKG with apt and no kernel is cached in $VM_CACHE"
	else
		read -r name ver <<<"$pkg"
		dir="$VM_CACHE/${name}_$ver"
		(
			flock 9
			[[ -e "$dir/ready" && "$(cat "$dir/wanted" 2>/dev/null)" == "${VM_MODULES[*]}" ]] && exit 0
			note "vm: caching $name $ver in $dir"
			local dl
			dl=$(mktemp -d /tmp/hnxvm-dl.XXXXXX)
			trap 'rm -rf "$dl"' EXIT
			chmod 755 "$dl"
			(cd "$dl" && apt-get download -qq "$name=$ver" >/dev/null 2>&1) || { echo "apt-get download $name=$ver failed" >&2; exit 1; }
			dpkg-deb -x "$dl"/*.deb "$dl/x"
			local kver
			kver=$(ls "$dl/x/lib/modules")
			depmod -b "$dl/x" "$kver"
			rm -rf "$dir"
			mkdir -p "$dir/modules"
			cp "$dl/x/boot/vmlinuz-$kver" "$dir/vmlinuz"
			echo "$kver" >"$dir/kver"
			# The modules the guest loads, with their dependencies, in load order.
			local m f
			for m in "${VM_MODULES[@]}"; do
				modprobe -d "$dl/x" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
			done | awk '!seen[$0]++' | while read -r f; do
				m=$(basename "$f")
				case $f in
				*.xz) busybox xzcat "$f" >"$dir/modules/${m%.xz}"; m=${m%.xz} ;;
				*) cp "$f" "$dir/modules/$m" ;;
				esac
				echo "$m" >>"$dir/modules/order"
			done
			# Other versions behind the same $VM_KPKG are stale (other kernels stay).
			echo "$VM_KPKG" >"$dir/kpkg"
			echo "${VM_MODULES[*]}" >"$dir/wanted"
			local old
			for old in "$VM_CACHE"/*/kpkg; do
				[[ -e "$old" && "${old%/kpkg}" != "$dir" && "$(cat "$old")" == "$VM_KPKG" ]] && rm -rf "${old%/kpkg}"
			done
			touch "$dir/ready"
		) 9>"$VM_CACHE/.lock" || fatal "could not cache the guest kernel $name $ver"
	fi
	VM_KDIR=$dir
	VM_KVER=$(cat "$dir/kver")
	note "vm: guest kernel $VM_KVER ($dir)"
}

# The initramfs: busybox, the modules and /init (made per run, in $VM_TMP).
vm__initramfs() {
	local r="$VM_TMP/initramfs"
	mkdir -p "$r/bin" "$r/modules" "$r/proc" "$r/sys" "$r/dev" "$r/lower" "$r/rw" "$r/newroot"
	cp "$(command -v busybox)" "$r/bin/busybox"
	cp "$VM_KDIR"/modules/* "$r/modules/"
	cat >"$r/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/modules/$m" || echo "hnxvm-init: insmod $m failed"; done </modules/order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower \
	|| { echo "hnxvm-init: 9p mount failed"; poweroff -f; }
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
	|| { echo "hnxvm-init: overlay mount failed"; poweroff -f; }
cp /stage2 /newroot/hnxvm-stage2
umount /proc /sys /dev
exec switch_root /newroot /bin/sh /hnxvm-stage2
EOF
	if [[ $VM_INIT == systemd ]]; then
		vm__stage2_systemd >"$r/stage2"
	else
		vm__stage2_busybox >"$r/stage2"
	fi
	chmod 755 "$r/init"
	(cd "$r" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$VM_TMP/initrd.gz"
	rm -rf "$r"
}

vm__stage2_busybox() {
	# Stage 2, pid 1 in the host's root: the host's /bin/sh.
	cat <<'EOF'
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
EOF
}

# Stage 2 of VM_INIT=systemd: pid 1 (the host's /bin/sh) prepares the overlay
# root as a machine of its own, runs VM_PREBOOT and execs systemd.
vm__stage2_systemd() {
	echo "VM_PREBOOT='$VM_PREBOOT'"
	cat <<'EOF'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "hnxvm: $*" >/dev/ttyS0; }
# The API file systems (systemd keeps them, as after an initrd).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# A machine of its own: identity, no host mounts, a journal in memory.
tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id
echo "# hnxvm: the root is the host's, read-only, under a tmpfs overlay (vm.sh)" >/etc/fstab
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
Description=QEMU guest agent of the hnxdp test harness (scripts/lib/vm.sh)
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
EOF
}

# ---------------------------------------------------------------- the switch and QEMU

vm_sw() { ip netns exec "$VM_NS" "$@"; }

vm__switch_create() {
	VM_NS="hnxvm-$$-$RANDOM"
	ip netns add "$VM_NS"
	vm_sw sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	vm_sw ip link set lo up
	vm_sw ip link add br0 type bridge
	vm_sw ip addr add "$VM_H4/24" dev br0
	local t
	for t in tsyn tvf; do
		vm_sw ip tuntap add dev "$t" mode tap vnet_hdr
		vm_sw ip link set "$t" master br0
		vm_sw bridge link set dev "$t" learning off isolated on
		vm_sw ip link set "$t" up
	done
	vm_sw ip link set br0 up
}

vm_switch() { # vf|syn
	local tap=tvf
	[[ $1 == syn ]] && tap=tsyn
	vm_sw bridge fdb replace "$VM_MAC" dev "$tap" master static
}

# Kernel command line for the init system: systemd to multi-user.target, no fstab.
vm__append_init() {
	[[ $VM_INIT == systemd ]] && echo "systemd.unit=multi-user.target fstab=no systemd.gpt_auto=0"
	true
}

vm__qemu_boot() { # one attempt: 0 when the guest agent answers (systemd: and the boot is done)
	# The VF at boot (VM_VF_AT_BOOT=0: none, the test plugs it with vm_plug_vf).
	local vf_device=""
	[[ ${VM_VF_AT_BOOT:-1} == 1 ]] && vf_device="$VM_VF_DRIVER,netdev=nvf,mac=$VM_MAC,id=vf,bus=rp1${VM_VF_OPTS:+,$VM_VF_OPTS}"
	local log="$VM_TMP/console.log"
	: >"$log"
	rm -f "$VM_QMP" "$VM_QGA"
	ip netns exec "$VM_NS" qemu-system-x86_64 \
		-machine q35,accel=tcg -cpu max -smp 2 -m 2G \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$VM_KDIR/vmlinuz" -initrd "$VM_TMP/initrd.gz" \
		-append "console=ttyS0 panic=1 oops=panic loglevel=4 nokaslr $(vm__append_init) ${VM_APPEND:-}" \
		-serial "file:$log" \
		-qmp "unix:$VM_QMP,server=on,wait=off" \
		-chardev "socket,id=qga0,path=$VM_QGA,server=on,wait=off" \
		-device virtio-serial-pci,id=vser0 \
		-device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
		-fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
		-device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
		-netdev tap,id=nsyn,ifname=tsyn,script=no,downscript=no,vhost=off,vnet_hdr=on \
		-device "virtio-net-pci,netdev=nsyn,mac=$VM_MAC,id=syn${VM_SYN_OPTS:+,$VM_SYN_OPTS}" \
		-device pcie-root-port,id=rp1,chassis=1,slot=1 \
		-netdev tap,id=nvf,ifname=tvf,script=no,downscript=no,vhost=off,vnet_hdr=on \
		${vf_device:+-device "$vf_device"} \
		>"$VM_TMP/qemu.out" 2>&1 </dev/null &
	VM_PID=$!
	local t0=$SECONDS
	while ((SECONDS - t0 < VM_BOOT_TIMEOUT)); do
		if ! kill -0 "$VM_PID" 2>/dev/null; then
			note "vm: QEMU exited during boot; console tail:"
			tail -n 5 "$log" | sed 's/^/    /'
			sed 's/^/    qemu: /' "$VM_TMP/qemu.out" | tail -n 3
			VM_PID=""
			return 1
		fi
		if [[ -S "$VM_QGA" ]] && "$RIG_PY" "$VM_CTL" qga "$VM_QGA" ping --timeout 3; then
			[[ $VM_INIT == systemd ]] || return 0
			vm__systemd_wait $((VM_BOOT_TIMEOUT - (SECONDS - t0))) && return 0
			note "vm: console tail:"
			tail -n 5 "$log" | sed 's/^/    /'
			vm_stop
			return 1
		fi
		sleep 0.5
	done
	note "vm: the guest did not answer within ${VM_BOOT_TIMEOUT}s; console tail:"
	tail -n 5 "$log" | sed 's/^/    /'
	vm_stop
	return 1
}

# systemd guests: wait (SECS at most) until the boot is done: running or degraded.
vm__systemd_wait() { # SECS
	local secs=$1
	((secs > 5)) || secs=5
	VM_SYSTEMD_STATE=$("$RIG_PY" "$VM_CTL" qga "$VM_QGA" exec --timeout $((secs + 5)) -- \
		timeout "$secs" systemctl is-system-running --wait 2>/dev/null) || true
	case $VM_SYSTEMD_STATE in
	running) return 0 ;;
	degraded)
		note "vm: systemd boot degraded; failed units: $(vm_exec systemctl list-units --failed --plain --no-legend --no-pager | awk '{ print $1 }' | tr '\n' ' ')"
		return 0
		;;
	esac
	note "vm: systemd did not finish booting (is-system-running: '${VM_SYSTEMD_STATE:-no answer}'); jobs: $(vm_exec systemctl list-jobs --no-legend --no-pager 2>/dev/null | head -n 5 | tr -s ' ' | tr '\n' ';')"
	return 1
}

vm_reap_stale() {
	local ns pid p d
	for ns in $(ip netns list | awk '{print $1}' | grep -E '^hnxvm-[0-9]+-[0-9]+$' || true); do
		pid=${ns#hnxvm-}; pid=${pid%%-*}
		kill -0 "$pid" 2>/dev/null && continue
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
		note "vm: removed stale namespace $ns"
	done
	for d in /tmp/hnxvm-[0-9]*.*; do
		[[ -d "$d" ]] || continue
		pid=${d#/tmp/hnxvm-}; pid=${pid%%.*}
		kill -0 "$pid" 2>/dev/null || rm -rf "$d"
	done
}

vm_start() {
	vm_reap_stale
	VM_TMP=$(mktemp -d "/tmp/hnxvm-$$.XXXXXX")
	RIG_TMP=${RIG_TMP:-$VM_TMP} # rig_try's scratch files (no rig_create here)
	VM_QMP="$VM_TMP/qmp.sock"
	VM_QGA="$VM_TMP/qga.sock"
	VM_MAC=$(printf '02:48:58:%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
	vm__initramfs
	vm__switch_create
	vm_switch vf
	local try t0
	for ((try = 1; try <= VM_BOOT_TRIES; try++)); do
		t0=$EPOCHREALTIME
		if vm__qemu_boot; then
			VM_BOOT_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
			note "vm: guest up in ${VM_BOOT_S}s (attempt $try, QEMU pid $VM_PID, kernel $VM_KVER)"
			return 0
		fi
		note "vm: boot attempt $try failed"
	done
	fatal "vm: the guest did not boot in $VM_BOOT_TRIES attempts"
}

# ---------------------------------------------------------------- commands

vm_exec() {
	"$RIG_PY" "$VM_CTL" qga "$VM_QGA" exec --timeout "$VM_EXEC_TIMEOUT" -- "$@"
}
vm_sh() { vm_exec sh -c "$1"; }

# Names of the guest's net devices bound to DRIVER (their device's driver link).
vm_dev_by_driver() {
	vm_sh "for d in /sys/class/net/*; do [ \"\$(basename \"\$(readlink \$d/device/driver)\")\" = $1 ] && echo \${d##*/}; done; true"
}
vm_ifindex() { vm_exec cat "/sys/class/net/$1/ifindex"; }
# Poll `hnxdp dump --json` in the guest (binary: VM_HNXDP, default $HNXDP) until
# EXPR (python, on p = the first pair or None) holds; print that pair (JSON).
# Exit 1 on timeout.
vm_wait_pair() { # SECS EXPR
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
    time.sleep(0.1)' "${VM_HNXDP:-$HNXDP}" "$1" "$2"
}

vm_unplug_vf() { "$RIG_PY" "$VM_CTL" qmp "$VM_QMP" device_del vf --timeout 30; }
vm_plug_vf() {
	"$RIG_PY" "$VM_CTL" qmp "$VM_QMP" device_add vf "$VM_VF_DRIVER" netdev=nvf "mac=$VM_MAC" bus=rp1 ${VM_VF_OPTS:+${VM_VF_OPTS//,/ }} --timeout 30
}

vm_deadline() { # SECS
	local secs=$1 me=$$
	(
		trap 'kill "$sp" 2>/dev/null; exit 0' TERM
		sleep "$secs" &
		sp=$!
		wait "$sp"
		echo "FAIL: $RIG_TEST: the test did not end within ${secs}s: stopped"
		kill -TERM "$me"
	) &
	VM_BG_PIDS+=("$!")
}

# A host-side job in the background (killed by pid at cleanup).
vm_bg() { # VAR CMD...
	local __var=$1
	shift
	"$@" &
	VM_BG_PIDS+=("$!")
	printf -v "$__var" '%s' "$!"
}

vm_tap_stat() { # TAP rx|tx
	vm_sw ip -j -s link show dev "$1" | "$RIG_PY" "$RIG_TOOLS/jsonq.py" "[0].stats64.$2.packets"
}

vm_udp_count() { # DEV PORT -> datagrams a guest socket bound to DEV got of 200 the host sent to VM_G4:PORT
	vm_sh "rm -f /tmp/u.ready /tmp/u.count; setsid python3 $RIG_TOOLS/udp_sink.py --dev $1 --port $2 --seconds 8 --expect 200 --linger 1 --ready-file /tmp/u.ready </dev/null >/tmp/u.count 2>&1 &"
	wait_until 20 "the guest's UDP socket on port $2 is bound" vm_exec test -e /tmp/u.ready
	vm_sw "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$VM_G4" --port "$2" --count 200 --rate 400 >/dev/null
	wait_until 20 "the guest's UDP socket on port $2 is done" vm_sh "test -s /tmp/u.count"
	vm_exec cat /tmp/u.count
}

# ---------------------------------------------------------------- cleanup

vm_stop() {
	if [[ -n "$VM_PID" ]]; then
		if kill -0 "$VM_PID" 2>/dev/null; then
			[[ -S "$VM_QMP" ]] && "$RIG_PY" "$VM_CTL" qmp "$VM_QMP" quit --timeout 3 >/dev/null 2>&1 || true
			local i
			for ((i = 0; i < 30; i++)); do kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$VM_PID" 2>/dev/null || true
		fi
		wait "$VM_PID" 2>/dev/null || true
		VM_PID=""
	fi
}

vm_cleanup() {
	local p
	for p in "${VM_BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	VM_BG_PIDS=()
	vm_stop
	if [[ -n "$VM_NS" ]]; then
		ip netns del "$VM_NS" 2>/dev/null || true
		VM_NS=""
	fi
	if [[ -n "$VM_TMP" ]]; then
		[[ "$RIG_TMP" != "$VM_TMP" ]] || RIG_TMP=""
		rm -rf "$VM_TMP"
		VM_TMP=""
	fi
}

# Chain rig.sh's EXIT trap: the VM goes first, then rig.sh's tally.
vm__on_exit() {
	local rc=$?
	trap - ERR
	vm_cleanup
	set +e # we are exiting: let rig__on_exit see the status
	(exit "$rc")
	rig__on_exit
}
trap vm__on_exit EXIT
