#!/usr/bin/env bash
# install-deps.sh - install what hnxdp's build, tests and demo need, on Debian
# bookworm, as root (as another user it runs itself again through sudo).
# Idempotent: it calls apt only when a package is missing, and mounts bpffs at
# /sys/fs/bpf only when it is not mounted.
#
#   scripts/install-deps.sh               # quiet; prints what it installs
#
# The Swift toolchain is not a Debian package: it is expected on PATH
# (install it from swift.org; its bin directory on PATH).
set -euo pipefail

PACKAGES=(
	# build: libbpf/libxdp for the Swift system-library target
	libbpf-dev libxdp-dev libelf-dev zlib1g-dev linux-libc-dev pkg-config
	# datapath inspection and the test rig
	bpftool iproute2 ethtool iputils-ping tcpdump util-linux procps
	# kill points of the crash-safety tests (35, 86)
	strace
	# load generators (bench, demo)
	netsniff-ng iperf3
	# helpers of the tests (scripts/tools/*.py use the standard library only),
	# and the pytest suite (integration/; bookworm has pytest 7.2.1)
	python3 python3-pytest jq
	# `hnxdp monitor` on a real terminal (test 89: a detached tmux session)
	tmux
	# test 88 (metrics): promtool (only Debian's prometheus package ships it; about
	# 96 MB installed, its server is not started here, see below) and chattr
	prometheus e2fsprogs
	# the real-guest tests (integration/lib/vm.py): QEMU (TCG), the guest agent the
	# guest runs from the host's root, busybox for its initramfs, depmod/modprobe
	qemu-system-x86 qemu-guest-agent busybox-static kmod
	# the Debian package (scripts/package.sh, test 97): strip/objdump/readelf,
	# dpkg-deb, and systemd-analyze to verify hnxdp.service; lintian checks the .deb
	# and deb-systemd-helper (init-system-helpers) runs in its maintainer scripts
	binutils dpkg systemd lintian init-system-helpers
)

. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/as_root.sh"
as_root "$@"

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
	echo "install-deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	log=$(mktemp /tmp/hnxdp-install-deps.XXXXXX)
	if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
		echo "install-deps.sh: apt-get failed; its output:" >&2
		tail -n 30 "$log" >&2
		rm -f "$log"
		exit 1
	fi
	rm -f "$log"
	# Only promtool is wanted: a Prometheus server that the package started (on a
	# machine run by systemd) is stopped and disabled again, unless it was there before.
	if [[ " ${missing[*]} " == *" prometheus "* ]] && [[ -d /run/systemd/system ]]; then
		systemctl disable --now prometheus.service >/dev/null 2>&1 || true
	fi
fi

# Test 91 runs the packaged udev rule with a real `udevadm test` in a sandbox. The
# udev package is unpacked, not installed: installing it would start the udev
# daemon on a machine that runs without one (its postinst does).
UDEV_TOOLS=/usr/local/lib/hnxdp-tests/udev
if ! command -v udevadm >/dev/null 2>&1 && [[ ! -x $UDEV_TOOLS/bin/udevadm ]]; then
	echo "install-deps.sh: unpacking udevadm (Debian's udev package) into $UDEV_TOOLS"
	tmp=$(mktemp -d /tmp/hnxdp-udev.XXXXXX)
	if ! (cd "$tmp" && { apt-get download -qq -o APT::Sandbox::User=root udev 2>/dev/null \
		|| { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root udev; }; }) >/dev/null; then
		echo "install-deps.sh: apt-get download udev failed" >&2
		rm -rf "$tmp"
		exit 1
	fi
	mkdir -p "$UDEV_TOOLS"
	dpkg -x "$tmp"/udev_*.deb "$UDEV_TOOLS"
	rm -rf "$tmp"
fi

if ! mountpoint -q /sys/fs/bpf; then
	mkdir -p /sys/fs/bpf
	mount -t bpf bpf /sys/fs/bpf
	echo "install-deps.sh: mounted bpffs at /sys/fs/bpf"
fi

if ! command -v swift >/dev/null 2>&1; then
	echo "install-deps.sh: warning: no swift on PATH: put the Swift toolchain's bin directory on PATH" >&2
fi
exit 0
