"""A real guest for hnxdp's integration tests: QEMU under TCG (no KVM), a
Debian kernel, a virtio-net synthetic and a hot-pluggable VF of the same MAC
(e1000e or vmxnet3), the way scripts/lib/vm.sh builds it (same cache, same
namespace and temp-dir names, so either harness reaps what the other left).

    kernel = prepare_kernel("linux-image-6.12-amd64")      # cached in $VM_CACHE
    with open_guest(kernel, binary, vf_driver="e1000e") as guest:   # boots; always stopped
        syn, vf = guest.dev_by_driver("virtio_net")[0], guest.vf_name()
        guest.exec("ip", "link", "set", syn, "up", check=True)
        guest.hnxdp("attach", "--synthetic", syn, "--vf", vf)       # Result
        wait_pair(guest, lambda p: p and p["state"] == "active", 60, "joined", synthetic=syn)
        guest.switch("vf"); guest.unplug_vf(); guest.plug_vf()
        d = GuestDaemon.start(guest, "--settle-ms", "200")        # READY=1 on its NOTIFY_SOCKET

The guest: the kernel package's vmlinuz and the few modules the guest loads
(`apt-get download`ed once, unpacked, never installed; kept in
$VM_CACHE/<package>_<version>/), a busybox initramfs made per guest
(lib/guest/init) that mounts the host's / read-only over 9p with a tmpfs
overlay and switch_roots into it: the guest runs the host's own binaries
(hnxdp at its host path, iproute2, python3, scripts/tools/*) with its own
/proc, /sys, /dev, /run and bpffs. /tmp stays the host's as it was at boot
(build what the guest needs before booting it). Pid 1
(lib/guest/stage2-busybox.sh, or stage2-systemd.sh with init="systemd")
keeps qemu-ga running on a virtio-serial port; every guest command is a
guest-exec through scripts/tools/vmctl.py (imported: its qga_exec), QMP
(device_del/add of the VF, quit) is vmctl.py run as a command.

Topology (namespace hnxvm-<pid>-<random>, the test process's pid):

    guest:  virtio-net (synthetic, id syn)   VF (e1000e|vmxnet3, id vf, root port rp1)
               | same MAC (guest.mac)              |
    switch: tsyn (tap)                       tvf (tap)      bridge ports: isolated,
               \\________ br0 (H4/24) ___________/           no learning; one static
                                                             fdb entry for the MAC
QEMU runs in the switch namespace; br0's address is "the host side". switch()
points the fdb entry (where the hypervisor's switch sends frames for the
guest) at the VF's tap or the synthetic's. The guest's addresses are the
test's: G4/G6 are meant for the synthetic.

Cleanup (Guest.cleanup, run by open_guest whatever happens): QEMU stopped by
its pid (QMP quit, then SIGTERM/SIGKILL to its own process group), host jobs
stopped, namespace and temp dir deleted. reap_stale() removes what a killed
run left (namespaces hnxvm-PID-* and /tmp/hnxvm-PID.* of dead PIDs, with the
QEMU still running in such a namespace).

Knobs (environment, as vm.sh): VM_CACHE (/var/cache/hnxdp-vm), VM_BOOT_TIMEOUT
(seconds per boot attempt; 120, 300 for systemd), VM_BOOT_TRIES (4),
VM_EXEC_TIMEOUT (60, per guest command), VM_APPEND (extra kernel command line).
"""
from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count as _counter
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .daemon import _LEVEL
from .hnxdp import Hnxdp
from .proc import Proc, Result, alive, kill_netns_processes, run, spawn
from .rig import Rig, python, tools_dir
from .traffic import PingStats, ping, udp_send
from .wait import WaitTimeout, wait_until

VM_CACHE = Path(os.environ.get("VM_CACHE") or "/var/cache/hnxdp-vm")
PREFIX = "hnxvm"
NETNS_DIR = Path("/run/netns")
GUEST_FILES = Path(__file__).resolve().parent / "guest"
VMCTL = tools_dir() / "vmctl.py"
# The switch's address (the host side) and the addresses meant for the synthetic.
G4, H4 = "198.18.90.1", "198.18.90.2"
G6, H6 = "fd00:90::1", "fd00:90::2"
# Kernel packages: Debian's 6.12 (tcx, kfuncs) and Debian 12's own (6.1: classic tc).
KERNEL_6_12 = "linux-image-6.12-amd64"
KERNEL_6_1 = "linux-image-amd64"
# The modules the guest loads, in this order (a built-in one is skipped):
# virtio_pci/virtio_console are built in on 6.12 and modules on 6.1;
# sch_ingress and cls_bpf for the classic tc attachment (the guest cannot
# autoload modules: its /lib/modules is the host's).
MODULES = ("virtio_pci", "virtio_console", "virtio_net", "e1000e", "vmxnet3", "9pnet_virtio", "9p", "overlay",
           "sch_ingress", "cls_bpf")
# Cached with the kernel but not loaded at boot (loading bonding makes a bond0 in
# every guest): the benchmark's P12 loads them into its guest (Guest.load_extra_modules).
EXTRA_MODULES = ("bonding",)
# Host tools the guest needs (scripts/install-deps.sh installs them).
TOOLS_NEEDED = ("qemu-system-x86_64", "busybox", "qemu-ga", "depmod", "modprobe", "dpkg-deb", "apt-get", "apt-cache",
                "gzip", "bridge", "stdbuf")
GUEST_RUN_DIR = "/run/hnxvm-test"  # the guest's files of background jobs (tmpfs)


def vmctl() -> Any:
    """scripts/tools/vmctl.py as a module: guest commands run in-process
    (qga_exec), without a Python start each."""
    module = sys.modules.get("hnxdp_vmctl")
    if module is None:
        spec = importlib.util.spec_from_file_location("hnxdp_vmctl", VMCTL)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["hnxdp_vmctl"] = module
    return module


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def require_tools() -> None:
    missing = [t for t in TOOLS_NEEDED if shutil.which(t) is None]
    assert not missing, f"missing tools for the guest: {' '.join(missing)} (run scripts/install-deps.sh as root)"


# ---------------------------------------------------------------- the guest kernel

@dataclass(frozen=True)
class GuestKernel:
    """A guest kernel in the cache: vmlinuz, modules/ (and modules/order)."""

    package: str  # what was asked for, e.g. linux-image-6.12-amd64
    dir: Path

    @property
    def release(self) -> str:
        return (self.dir / "kver").read_text().strip()

    @property
    def vmlinuz(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def extra_modules(self) -> list[Path]:
        """EXTRA_MODULES and their dependencies, in load order (the guest sees the
        cache at the same path through its 9p root)."""
        d = self.dir / "extra"
        return [d / m for m in (d / "order").read_text().split()]

    @property
    def has_tcx(self) -> bool:
        """Linux 6.6 or later (tcx links): hnxdp attaches with tcx, else classic tc."""
        return release_at_least(self.release, (6, 6))


def release_at_least(release: str, version: tuple[int, int]) -> bool:
    m = re.match(r"(\d+)\.(\d+)", release)
    assert m, f"cannot read a kernel version from {release!r}"
    return (int(m.group(1)), int(m.group(2))) >= version


def _resolve_package(package: str) -> tuple[str, str] | None:
    """The exact kernel package behind a metapackage, from apt's lists: (name, version)."""
    r = run(["apt-cache", "depends", package], timeout=60)
    m = re.search(r"^\s*Depends: (linux-image-\S+)$", r.out, re.M)
    if not m:
        return None
    name = m.group(1)
    m = re.search(r"^\s*Candidate: (\S+)$", run(["apt-cache", "policy", name], timeout=60).out, re.M)
    if not m or m.group(1) == "(none)":
        return None
    return name, m.group(1)


def prepare_kernel(package: str) -> GuestKernel:
    """The kernel behind `package` in VM_CACHE, downloaded and unpacked once
    (under the cache's lock, shared with vm.sh); offline, the newest cached
    kernel of that package."""
    require_tools()
    VM_CACHE.mkdir(parents=True, exist_ok=True)
    exact = _resolve_package(package)
    if exact is None:
        run(["apt-get", "update", "-qq"], timeout=300)
        exact = _resolve_package(package)
    if exact is None:
        cached = sorted((d.parent for d in VM_CACHE.glob("*/kpkg")
                         if d.read_text().strip() == package and (d.parent / "ready").exists()),
                        key=lambda d: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", d.name)])
        assert cached, f"cannot resolve {package} with apt and no kernel of it is cached in {VM_CACHE}"
        return GuestKernel(package, cached[-1])
    name, version = exact
    kdir = VM_CACHE / f"{name}_{version}"
    with open(VM_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = kdir / "wanted"
        if not ((kdir / "ready").exists() and wanted.exists() and wanted.read_text().strip() == _wanted()):
            _cache_kernel(package, name, version, kdir)
    return GuestKernel(package, kdir)


def _wanted() -> str:
    """What a cache entry holds: the boot modules, then the extra ones."""
    return " ".join(MODULES) + " + " + " ".join(EXTRA_MODULES)


def _module_files(x: Path, kver: str, modules: Sequence[str], skip: Sequence[str] = ()) -> list[str]:
    """The .ko files of modules and their dependencies, in load order, less skip's."""
    files: list[str] = []
    for m in modules:
        r = run(["modprobe", "-d", str(x), "-S", kver, "--show-depends", m], timeout=60, check=True)
        for line in r.out.splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod" and parts[1] not in files and parts[1] not in skip:
                files.append(parts[1])
    return files


def _copy_modules(files: Sequence[str], into: Path) -> None:
    """Copies (unpacks .xz) files into `into`, with their names in load order in into/order."""
    into.mkdir(parents=True, exist_ok=True)
    order = []
    for f in files:
        base = os.path.basename(f)
        if f.endswith(".xz"):
            base = base[:-3]
            with open(into / base, "wb") as out:
                subprocess.run(["busybox", "xzcat", f], stdout=out, check=True, timeout=120)
        else:
            shutil.copy(f, into / base)
        order.append(base)
    (into / "order").write_text("".join(f"{m}\n" for m in order))


def _cache_kernel(package: str, name: str, version: str, kdir: Path) -> None:
    print(f"vm: caching {name} {version} in {kdir}", file=sys.stderr)
    dl = Path(tempfile.mkdtemp(prefix="hnxvm-dl.", dir="/tmp"))
    try:
        dl.chmod(0o755)  # apt-get download runs as _apt
        r = run(["sh", "-c", f"cd {shlex.quote(str(dl))} && apt-get download -qq {shlex.quote(f'{name}={version}')}"],
                timeout=900)
        assert r.rc == 0, f"apt-get download {name}={version} failed: {r}"
        deb = next(dl.glob("*.deb"))
        x = dl / "x"
        run(["dpkg-deb", "-x", str(deb), str(x)], timeout=300, check=True)
        kver = next((x / "lib" / "modules").iterdir()).name
        run(["depmod", "-b", str(x), kver], timeout=300, check=True)
        shutil.rmtree(kdir, ignore_errors=True)
        (kdir / "modules").mkdir(parents=True)
        shutil.copy(x / "boot" / f"vmlinuz-{kver}", kdir / "vmlinuz")
        (kdir / "kver").write_text(kver + "\n")
        # The modules the guest loads at boot, with their dependencies, in load order;
        # then the extra ones (and what they need beyond those), loaded on demand.
        boot = _module_files(x, kver, MODULES)
        _copy_modules(boot, kdir / "modules")
        _copy_modules(_module_files(x, kver, EXTRA_MODULES, skip=boot), kdir / "extra")
        (kdir / "kpkg").write_text(package + "\n")
        (kdir / "wanted").write_text(_wanted() + "\n")
        # Other versions behind the same package are stale (other kernels stay).
        for old in VM_CACHE.glob("*/kpkg"):
            if old.parent != kdir and old.read_text().strip() == package:
                shutil.rmtree(old.parent, ignore_errors=True)
        (kdir / "ready").touch()
    finally:
        shutil.rmtree(dl, ignore_errors=True)


# ---------------------------------------------------------------- hnxdp in the guest

@dataclass
class GuestHnxdp(Hnxdp):
    """Hnxdp (dump(), status(), pair(), stats(), ok(), json()) run in the guest
    through the agent; env is ignored (the agent's environment is vmctl.py's)."""

    guest: "Guest | None" = None

    def argv(self, *args: str) -> list[str]:
        assert self.guest is not None
        return self.guest.exec_argv([str(self.binary), *args], self.timeout)

    def __call__(self, *args: str, timeout: float | None = None) -> Result:
        assert self.guest is not None
        return self.guest.exec(str(self.binary), *args, timeout=timeout or self.timeout)


# ---------------------------------------------------------------- the guest

_serial = _counter()


def _random_mac() -> str:
    return "02:48:58:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))


@dataclass
class Guest:
    """One QEMU guest and its switch namespace. Create with open_guest()."""

    kernel: GuestKernel
    binary: Path  # hnxdp, at a host path the guest sees through its 9p root
    vf_driver: str = "e1000e"
    init: str = "busybox"  # or "systemd" (lib/guest/stage2-systemd.sh)
    preboot: Path | None = None  # systemd: a sh script run in the guest's root before systemd starts
    syn_opts: Mapping[str, str] = field(default_factory=dict)  # more -device properties of the synthetic
    vf_opts: Mapping[str, str] = field(default_factory=dict)  # ... of the VF (e.g. failover_pair_id=syn)
    vf_at_boot: bool = True  # False: no VF until plug_vf()
    ns: str = ""
    mac: str = field(default_factory=_random_mac)
    tmp: Path = Path()
    qemu: Proc | None = None
    boot_s: float = 0.0
    systemd_state: str = ""  # systemd guests: `systemctl is-system-running --wait` at boot
    vf_plugged: bool = False
    jobs: list["GuestJob"] = field(default_factory=list)
    created: bool = False

    @property
    def qmp_sock(self) -> Path:
        return self.tmp / "qmp.sock"

    @property
    def qga_sock(self) -> Path:
        return self.tmp / "qga.sock"

    @property
    def console(self) -> Path:
        return self.tmp / "console.log"

    @property
    def hnxdp(self) -> GuestHnxdp:
        return GuestHnxdp(self.binary, netns="", guest=self)

    # ------------------------------------------------------------ running things

    def exec_argv(self, argv: Sequence[str], timeout: float) -> list[str]:
        return [python(), str(VMCTL), "qga", str(self.qga_sock), "exec", "--timeout", str(timeout), "--", *argv]

    def exec(self, *argv: str, timeout: float | None = None, check: bool = False) -> Result:
        """argv in the guest (guest-exec): its exit code and output (rc 124: it
        outlived timeout; 125: the agent did not answer)."""
        timeout = timeout or _env_float("VM_EXEC_TIMEOUT", 60)
        rc, out, err = vmctl().qga_exec(str(self.qga_sock), [str(a) for a in argv], timeout)
        r = Result(tuple(str(a) for a in argv), rc, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and r.rc != 0:
            raise AssertionError(f"in the guest: {r}")
        return r

    def sh(self, script: str, **kw: Any) -> Result:
        return self.exec("sh", "-c", script, **kw)

    def read(self, path: str) -> str:
        return self.exec("cat", path, check=True).out

    def exists(self, path: str) -> bool:
        return self.exec("test", "-e", path).rc == 0

    # The host side: the switch namespace (the interface traffic.py's helpers use).
    def in_ns(self, ns: str, *argv: str, timeout: float = 30, check: bool = True) -> Result:
        return run(Rig.netns_argv(ns, argv), timeout=timeout, check=check)

    def sw(self, *argv: str, timeout: float = 30, check: bool = True) -> Result:
        return self.in_ns(self.ns, *argv, timeout=timeout, check=check)

    def bg(self, ns: str, *argv: str, name: str) -> Proc:
        return spawn(Rig.netns_argv(ns, argv), stdout=self.tmp / f"{name}.out", stderr=self.tmp / f"{name}.err")

    def tool(self, name: str) -> list[str]:
        return [python(), str(tools_dir() / name)]

    # ------------------------------------------------------------ devices

    def dev_by_driver(self, driver: str) -> list[str]:
        """Guest devices of driver, as ethtool names it (net_failover's master
        shares its standby's parent device: the device's driver link would not
        tell them apart)."""
        r = self.sh("for d in /sys/class/net/*; do n=${d##*/}; "
                    "[ \"$(ethtool -i $n 2>/dev/null | sed -n 's/^driver: //p')\" = " + shlex.quote(driver) +
                    " ] && echo $n; done; true", check=True)
        return r.out.split()

    def vf_name(self) -> str:
        """The one device of the VF's driver (asserted)."""
        devs = self.dev_by_driver(self.vf_driver)
        assert len(devs) == 1, f"guest devices of {self.vf_driver}: {devs}"
        return devs[0]

    def ifindex(self, dev: str) -> int:
        return int(self.read(f"/sys/class/net/{dev}/ifindex"))

    def link(self, dev: str) -> dict[str, Any]:
        return json.loads(self.exec("ip", "-j", "-d", "link", "show", "dev", dev, check=True).out)[0]

    def xdp_mode(self, dev: str) -> int | None:
        """IFLA_XDP mode of dev's XDP program (1 native, 2 generic), None without one."""
        return (self.link(dev).get("xdp") or {}).get("mode")

    def xdp_devices(self) -> list[str]:
        return [link["ifname"] for link in json.loads(self.exec("ip", "-j", "-d", "link", "show", check=True).out)
                if "xdp" in link]

    def pin_count(self) -> int:
        """Entries in the guest's /sys/fs/bpf/hnxdp (0 when absent)."""
        return int(self.sh("ls -A /sys/fs/bpf/hnxdp 2>/dev/null | wc -l", check=True).out)

    def settings(self, *devs: str) -> str:
        """What "restored" means for devices: `ip -d link show` and `ethtool -k`
        of each, as text (compare with checks.assert_unchanged)."""
        script = "; ".join(f"ip -d link show dev {shlex.quote(d)}; ethtool -k {shlex.quote(d)}" for d in devs)
        r = self.sh(script)
        assert r.rc == 0, f"reading the settings of {devs}: {r}"
        return r.out

    def hook_programs(self, syn: str, vf: str) -> tuple[int, int, int]:
        """hnxdp programs on the pair's hooks: (synthetic ingress, synthetic
        egress, VF ingress), tcx or classic tc (tools/tcx_query.py in the guest)."""
        d = json.loads(self.exec("python3", str(tools_dir() / "tcx_query.py"), syn, vf, check=True).out)

        def n(dev: str, hook: str) -> int:
            return sum(1 for p in (d.get(dev) or {}).get(hook, []) if p["name"].startswith("hnxdp_"))
        return n(syn, "ingress"), n(syn, "egress"), n(vf, "ingress")

    # ------------------------------------------------------------ the switch (host side)

    def switch(self, to: str) -> None:
        """Point the switch's fdb entry for the MAC at the VF's tap ("vf") or the synthetic's ("syn")."""
        tap = {"vf": "tvf", "syn": "tsyn"}[to]
        self.sw("bridge", "fdb", "replace", self.mac, "dev", tap, "master", "static")

    def tap_packets(self, tap: str, direction: str) -> int:
        """Packets a tap counted ("rx": from the guest, "tx": to the guest)."""
        return int(json.loads(self.sw("ip", "-j", "-s", "link", "show", "dev", tap).out)[0]
                   ["stats64"][direction]["packets"])

    def taps(self) -> dict[str, int]:
        return {f"{t}_{d}": self.tap_packets(t, d) for t in ("tvf", "tsyn") for d in ("rx", "tx")}

    def pings(self, n: int, dst: str = G4) -> int:
        """n pings from the switch (0.2 s apart); how many were answered."""
        r = ping(self, self.ns, dst, count=n, interval=0.2, wait=2)
        stats = PingStats.parse(r.out)
        return stats.received if stats else 0

    def assert_via_vf(self, what: str, n: int = 10) -> None:
        """n pings from the switch are answered through the VF: its tap carries
        them both ways, the synthetic's tap carries no answer."""
        before = self.taps()
        got = self.pings(n)
        d = {k: v - before[k] for k, v in self.taps().items()}
        assert got >= n - 1, f"{what}: {got} of {n} pings answered"
        assert d["tvf_rx"] >= n - 1, f"{what}: the guest answered through the VF: tvf rx +{d['tvf_rx']}"
        assert d["tvf_tx"] >= n - 1, f"{what}: the switch sent to the VF: tvf tx +{d['tvf_tx']}"
        assert d["tsyn_rx"] <= 1, f"{what}: answers on the synthetic's tap: tsyn rx +{d['tsyn_rx']}"

    def udp_count(self, dev: str, port: int, count: int = 200) -> int:
        """Datagrams a guest socket bound to dev got of count the switch sent to G4:port."""
        sink = GuestJob.tool(self, "udp_sink", "--dev", dev, "--port", str(port), "--seconds", "8",
                             "--expect", str(count), "--linger", "1", ready_file=True)
        assert udp_send(self, self.ns, G4, port, count, rate=400) == count
        assert sink.wait(60) == 0, f"udp_sink in the guest: {sink.errors()}"
        return int(sink.output().strip())

    def load_extra_modules(self, params: Mapping[str, str] | None = None) -> None:
        """insmod the kernel's EXTRA_MODULES (with their dependencies) that the guest
        has not loaded yet; params: a module's name -> its parameters ("max_bonds=0")."""
        for path in self.kernel.extra_modules:
            name = path.name.removesuffix(".ko").replace("-", "_")
            if not self.exists(f"/sys/module/{name}"):
                self.exec("insmod", str(path), *(params or {}).get(name, "").split(), check=True)

    # ------------------------------------------------------------ QMP: the VF

    def _qmp(self, *args: str, timeout: float = 30) -> Result:
        return run([python(), str(VMCTL), "qmp", str(self.qmp_sock), *args, "--timeout", str(timeout)],
                   timeout=timeout + 30)

    def _vf_props(self) -> list[str]:
        return ["netdev=nvf", f"mac={self.mac}", "bus=rp1", *(f"{k}={v}" for k, v in self.vf_opts.items())]

    def unplug_vf(self) -> None:
        """QMP device_del of the VF; returns once QEMU reported DEVICE_DELETED."""
        r = self._qmp("device_del", "vf")
        assert r.rc == 0, f"device_del vf: {r}"
        self.vf_plugged = False

    def plug_vf(self) -> None:
        """QMP device_add of a VF (same id, MAC and netdev); the guest sees it a little later."""
        r = self._qmp("device_add", "vf", self.vf_driver, *self._vf_props())
        assert r.rc == 0, f"device_add vf: {r}"
        self.vf_plugged = True

    def wait_vf(self, timeout: float = 120) -> tuple[str, int]:
        """After plug_vf: the new VF's name and ifindex, once the guest has it."""
        name = wait_until(lambda: (self.dev_by_driver(self.vf_driver) or [None])[0], timeout,
                          f"a {self.vf_driver} device in the guest")
        return name, self.ifindex(name)

    # ------------------------------------------------------------ boot

    def boot(self) -> None:
        """Initramfs, switch namespace, QEMU; returns once the agent answers
        (systemd: once the boot is done). A guest that dies or does not answer
        within VM_BOOT_TIMEOUT is stopped and booted again (VM_BOOT_TRIES in all)."""
        self.created = True
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-{os.getpid()}.", dir="/tmp"))
        self.tmp.chmod(0o755)
        self._initramfs()
        self._switch_create()
        self.switch("vf")
        tries = int(os.environ.get("VM_BOOT_TRIES") or 4)
        timeout = _env_float("VM_BOOT_TIMEOUT", 300 if self.init == "systemd" else 120)
        for attempt in range(1, tries + 1):
            t0 = time.monotonic()
            why = self._boot_once(timeout)
            if why is None:
                self.boot_s = time.monotonic() - t0
                self.vf_plugged = self.vf_at_boot
                print(f"vm: guest up in {self.boot_s:.1f}s (attempt {attempt}, QEMU pid {self.qemu.pid}, "
                      f"kernel {self.kernel.release})", file=sys.stderr)
                return
            print(f"vm: boot attempt {attempt} failed: {why}; console tail: {self.console_tail()!r}", file=sys.stderr)
            self._stop_qemu()
        raise AssertionError(f"vm: the guest did not boot in {tries} attempts (console: {self.console_tail()!r})")

    def console_tail(self, n: int = 5) -> str:
        lines = self.console.read_text(errors="replace").splitlines() if self.console.exists() else []
        return " | ".join(lines[-n:])

    def _initramfs(self) -> None:
        r = self.tmp / "initramfs"
        for d in ("bin", "modules", "proc", "sys", "dev", "lower", "rw", "newroot"):
            (r / d).mkdir(parents=True)
        shutil.copy(shutil.which("busybox"), r / "bin" / "busybox")
        for m in (self.kernel.dir / "modules").iterdir():
            shutil.copy(m, r / "modules" / m.name)
        shutil.copy(GUEST_FILES / "init", r / "init")
        (r / "init").chmod(0o755)
        if self.init == "systemd":
            pre = str(self.preboot or "")
            assert re.fullmatch(r"(/[A-Za-z0-9_./-]+)?", pre), f"preboot must be an absolute path of plain characters: {pre}"
            stage2 = f"VM_PREBOOT='{pre}'\n" + (GUEST_FILES / "stage2-systemd.sh").read_text()
        else:
            assert self.init == "busybox", f"init must be busybox or systemd, not {self.init}"
            stage2 = (GUEST_FILES / "stage2-busybox.sh").read_text()
        (r / "stage2").write_text(stage2)
        run(["sh", "-c", "cd \"$1\" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >\"$2\"",
             "_", str(r), str(self.tmp / "initrd.gz")], timeout=120, check=True)
        shutil.rmtree(r)

    def _switch_create(self) -> None:
        while True:
            ns = f"{PREFIX}-{os.getpid()}-{random.randrange(32768)}"
            if not (NETNS_DIR / ns).exists():
                break
        run(["ip", "netns", "add", ns], check=True)
        self.ns = ns
        self.sw("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        self.sw("ip", "link", "set", "lo", "up")
        self.sw("ip", "link", "add", "br0", "type", "bridge")
        self.sw("ip", "addr", "add", f"{H4}/24", "dev", "br0")
        for tap in ("tsyn", "tvf"):
            self.sw("ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr")
            self.sw("ip", "link", "set", tap, "master", "br0")
            self.sw("bridge", "link", "set", "dev", tap, "learning", "off", "isolated", "on")
            self.sw("ip", "link", "set", tap, "up")
        self.sw("ip", "link", "set", "br0", "up")

    def _qemu_argv(self) -> list[str]:
        append = "console=ttyS0 panic=1 oops=panic loglevel=4 nokaslr"
        if self.init == "systemd":
            append += " systemd.unit=multi-user.target fstab=no systemd.gpt_auto=0"
        append += " " + os.environ.get("VM_APPEND", "")
        props = "".join(f",{k}={v}" for k, v in self.syn_opts.items())
        argv = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2", "-m", "2G",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", str(self.kernel.vmlinuz), "-initrd", str(self.tmp / "initrd.gz"),
                "-append", append.strip(),
                "-serial", f"file:{self.console}",
                "-qmp", f"unix:{self.qmp_sock},server=on,wait=off",
                "-chardev", f"socket,id=qga0,path={self.qga_sock},server=on,wait=off",
                "-device", "virtio-serial-pci,id=vser0",
                "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
                "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
                "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot",
                "-netdev", "tap,id=nsyn,ifname=tsyn,script=no,downscript=no,vhost=off,vnet_hdr=on",
                "-device", f"virtio-net-pci,netdev=nsyn,mac={self.mac},id=syn{props}",
                "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
                "-netdev", "tap,id=nvf,ifname=tvf,script=no,downscript=no,vhost=off,vnet_hdr=on"]
        if self.vf_at_boot:
            argv += ["-device", ",".join([self.vf_driver, "id=vf", *self._vf_props()])]
        return argv

    def _boot_once(self, timeout: float) -> str | None:
        """One boot attempt: None when the guest is up, else why not."""
        self.console.write_text("")
        for s in (self.qmp_sock, self.qga_sock):
            s.unlink(missing_ok=True)
        self.qemu = spawn(Rig.netns_argv(self.ns, self._qemu_argv()), stdout=self.tmp / "qemu.out",
                          stderr=self.tmp / "qemu.err")

        def agent_or_dead() -> bool:
            if not self.qemu.running():
                return True
            if not self.qga_sock.exists():
                return False
            c = vmctl().qga_sync(str(self.qga_sock), 3)
            if c is not None:
                c.close()
            return c is not None

        t0 = time.monotonic()
        try:
            wait_until(agent_or_dead, timeout, "the guest agent answers", interval=0.5)
        except WaitTimeout:
            return f"no answer from the guest agent within {timeout:.0f}s"
        if not self.qemu.running():
            return f"QEMU exited ({self.qemu.popen.returncode}): {(self.tmp / 'qemu.err').read_text()[-300:]!r}"
        if self.init != "systemd":
            return None
        left = max(5.0, timeout - (time.monotonic() - t0))
        r = self.exec("timeout", str(int(left)), "systemctl", "is-system-running", "--wait", timeout=left + 10)
        self.systemd_state = r.out.strip()
        if self.systemd_state in ("running", "degraded"):
            if self.systemd_state == "degraded":
                failed = self.exec("systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager").out
                print(f"vm: systemd boot degraded; failed units: {' '.join(l.split()[0] for l in failed.splitlines() if l.split())}",
                      file=sys.stderr)
            return None
        jobs = self.exec("systemctl", "list-jobs", "--no-legend", "--no-pager").out.splitlines()[:5]
        return f"systemd did not finish booting (is-system-running: {self.systemd_state or 'no answer'!r}; jobs: {jobs})"

    # ------------------------------------------------------------ cleanup

    def _stop_qemu(self) -> None:
        q, self.qemu = self.qemu, None
        if q is None:
            return
        if q.running() and self.qmp_sock.exists():
            try:
                self._qmp("quit", timeout=3)
                wait_until(lambda: not q.running(), 5, "QEMU gone after QMP quit", interval=0.1)
            except AssertionError:
                pass
        q.stop()

    def cleanup(self) -> None:
        """Stop QEMU (by pid) and the host jobs, delete the namespace and the temp
        dir (idempotent; never raises)."""
        if not self.created:
            return
        self.created = False
        try:
            self._stop_qemu()
        except Exception as e:  # noqa: BLE001 - cleanup goes on
            print(f"vm: stopping QEMU: {e}", file=sys.stderr)
        if self.ns and (NETNS_DIR / self.ns).exists():
            # Host jobs in the namespace were spawned by the test (stopped by the
            # conftest); anything left there is ours too: QEMU's helpers.
            kill_netns_processes(self.ns)
            run(["ip", "netns", "del", self.ns], timeout=30)
        if self.tmp != Path() and self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)


def reap_stale() -> list[str]:
    """Namespaces hnxvm-PID-N and temp dirs /tmp/hnxvm-PID.* of runs whose PID
    is gone (vm.sh's vm_reap_stale): a QEMU left in such a namespace is killed."""
    removed = []
    for f in sorted(NETNS_DIR.glob(f"{PREFIX}-*")):
        m = re.fullmatch(rf"{PREFIX}-(\d+)-\d+", f.name)
        if not m or alive(int(m.group(1))):
            continue
        kill_netns_processes(f.name)
        run(["ip", "netns", "del", f.name], timeout=30)
        removed.append(f.name)
    for d in Path("/tmp").glob(f"{PREFIX}-*.*"):
        m = re.fullmatch(rf"{PREFIX}-(\d+)\..*", d.name)
        if m and d.is_dir() and not alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
    return removed


@contextmanager
def open_guest(kernel: GuestKernel, binary: Path, **kw: Any) -> Iterator[Guest]:
    """A booted guest for a `with` block (and a fixture's yield): stopped and
    deleted however the block ends."""
    require_tools()
    for name in reap_stale():
        print(f"vm: removed stale namespace {name}", file=sys.stderr)
    guest = Guest(kernel, Path(os.path.abspath(binary)), **kw)
    try:
        guest.boot()
        yield guest
    finally:
        guest.cleanup()


# ---------------------------------------------------------------- background jobs in the guest

# Starts "$@" in the background of the guest (its own session, stdin /dev/null,
# output to D/N.out and D/N.err), writes its pid to D/N.pid and, when it ends,
# its exit code to D/N.rc; prints the pid.
_BG = r'''d=$1 n=$2; shift 2
mkdir -p "$d"; rm -f "$d/$n".*
setsid sh -c 'd=$1 n=$2; shift 2
"$@" </dev/null >"$d/$n.out" 2>"$d/$n.err" &
echo $! >"$d/$n.pid.new"; mv "$d/$n.pid.new" "$d/$n.pid"
wait $!; echo $? >"$d/$n.rc.new"; mv "$d/$n.rc.new" "$d/$n.rc"' _ "$d" "$n" "$@" </dev/null >/dev/null 2>&1 &
i=0; while [ ! -e "$d/$n.pid" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
cat "$d/$n.pid"'''


@dataclass
class GuestJob:
    """A background process in the guest: pid, exit code, output (files under
    GUEST_RUN_DIR). Gone with the guest at the latest."""

    guest: Guest
    name: str
    pid: int
    argv: tuple[str, ...]

    @classmethod
    def start(cls, guest: Guest, argv: Sequence[str], name: str, ready_file: bool = False) -> "GuestJob":
        """ready_file: argv takes `--ready-file PATH` (scripts/tools servers):
        returns once the job created it."""
        name = f"{name}-{next(_serial)}"
        ready = f"{GUEST_RUN_DIR}/{name}.ready"
        argv = [*argv, "--ready-file", ready] if ready_file else list(argv)
        r = guest.exec("sh", "-c", _BG, "_", GUEST_RUN_DIR, name, *argv, check=True)
        job = cls(guest, name, int(r.out.strip()), tuple(argv))
        guest.jobs.append(job)
        if ready_file:
            wait_until(lambda: guest.exists(ready) or not job.running(), 60, f"`{' '.join(argv)}` in the guest ready")
            assert job.running() or guest.exists(ready), f"`{' '.join(argv)}` ended at start: {job.errors()!r}"
        return job

    @classmethod
    def tool(cls, guest: Guest, name: str, *args: str, ready_file: bool = False) -> "GuestJob":
        """A scripts/tools/NAME.py in the guest (the guest's python3)."""
        return cls.start(guest, ["python3", str(tools_dir() / f"{name}.py"), *args], name, ready_file)

    def path(self, ext: str) -> str:
        return f"{GUEST_RUN_DIR}/{self.name}.{ext}"

    def rc(self) -> int | None:
        r = self.guest.exec("cat", self.path("rc"))
        return int(r.out) if r.rc == 0 and r.out.strip() else None

    def running(self) -> bool:
        return self.rc() is None

    def wait(self, timeout: float) -> int:
        """Exit code (a timeout fails the test; the job is left to stop())."""
        seen: list[int] = []

        def ended() -> bool:
            rc = self.rc()
            if rc is not None:
                seen.append(rc)
            return rc is not None
        wait_until(ended, timeout, f"`{' '.join(self.argv)}` in the guest to exit", interval=0.2)
        return seen[-1]

    def signal(self, sig: int) -> None:
        self.guest.exec("kill", f"-{sig}", str(self.pid), check=True)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, SIGKILL when still there after timeout; the exit code (None
        when the guest does not answer)."""
        try:
            if self.running():
                self.guest.exec("kill", "-TERM", str(self.pid))
                try:
                    return self.wait(timeout)
                except WaitTimeout:
                    self.guest.exec("kill", "-KILL", str(self.pid))
                    return self.wait(timeout)
            return self.rc()
        except AssertionError:
            return None

    def output(self) -> str:
        return self.guest.exec("cat", self.path("out")).out

    def errors(self) -> str:
        return self.guest.exec("cat", self.path("err")).out


def stop_guest_jobs(guest: Guest, mark: int = 0) -> None:
    """Stop the guest's jobs started after mark (newest first)."""
    for job in reversed(guest.jobs[mark:]):
        job.stop()
    del guest.jobs[mark:]


@dataclass
class GuestDaemon:
    """`hnxdp run ARGS` in the guest, with a NOTIFY_SOCKET of the test
    (tools/notify_listen.py in the guest, as systemd's): ready on READY=1."""

    job: GuestJob
    listener: GuestJob
    notify_log: str

    @classmethod
    def start(cls, guest: Guest, *args: str, ready_timeout: float = 120) -> "GuestDaemon":
        n = next(_serial)
        sock, log = (f"{GUEST_RUN_DIR}/notify-{n}.{ext}" for ext in ("sock", "log"))
        listener = GuestJob.tool(guest, "notify_listen", "--address", sock, "--log", log, "--seconds", "1800",
                                 ready_file=True)
        job = GuestJob.start(guest, ["env", f"NOTIFY_SOCKET={sock}", str(guest.binary), "run", *args], "run")
        d = cls(job, listener, log)
        wait_until(lambda: d.readies() > 0 or not job.running(), ready_timeout,
                   f"READY=1 from `hnxdp run {' '.join(args)}` in the guest", interval=0.2)
        assert d.readies() > 0, f"`hnxdp run {' '.join(args)}` exited {job.rc()} at start: {d.log()[-600:]!r}"
        return d

    @property
    def pid(self) -> int:
        return self.job.pid

    def messages(self) -> list[dict[str, str]]:
        r = self.job.guest.exec("cat", self.notify_log)
        out = []
        for line in r.out.splitlines() if r.rc == 0 else []:
            _, _, text = line.partition(" ")
            out.append(dict(f.partition("=")[::2] for f in text.split("|") if "=" in f))
        return out

    def readies(self) -> int:
        return sum(1 for m in self.messages() if m.get("READY") == "1")

    def status(self) -> str | None:
        """The last STATUS= it sent."""
        for m in reversed(self.messages()):
            if "STATUS" in m:
                return m["STATUS"]
        return None

    def log(self) -> str:
        return self.job.output() + self.job.errors()

    def lines_at(self, *levels: str) -> list[str]:
        """Its log lines at these levels (lib/daemon.py's log format)."""
        return [line for line in self.log().splitlines() if (m := _LEVEL.match(line)) and m.group(1) in levels]

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM; its exit code."""
        self.job.signal(signal.SIGTERM)
        rc = self.job.wait(timeout)
        self.listener.stop()
        return rc

    def kill9(self, timeout: float = 60) -> int:
        self.job.signal(signal.SIGKILL)
        rc = self.job.wait(timeout)
        self.listener.stop()
        return rc


# ---------------------------------------------------------------- a ping that runs through a change

@dataclass
class Pinger:
    """Pings from the switch every 0.1 s (-O: a line for each echo left
    unanswered) until stopped: how many were sent and answered."""

    proc: Proc

    @classmethod
    def start(cls, guest: Guest, dst: str = G4) -> "Pinger":
        return cls(guest.bg(guest.ns, "stdbuf", "-oL", "ping", "-O", "-n", "-i", "0.1", "-W", "1", "-w", "900", dst,
                            name=f"ping-{next(_serial)}"))

    def stop(self) -> PingStats:
        if self.proc.running():
            os.kill(self.proc.pid, signal.SIGINT)  # ping prints its summary on SIGINT
        self.proc.wait(30)
        text = self.proc.output()
        stats = PingStats.parse(text)
        if stats is None:  # no summary: the highest sequence number seen, and the answers
            seqs = [int(s) for s in re.findall(r"icmp_seq=(\d+)", text)]
            stats = PingStats(max(seqs, default=0), len(re.findall(r"bytes from", text)))
            print(f"vm: ping printed no summary; counted its lines: {stats}", file=sys.stderr)
        return stats


@contextmanager
def xdp_drop_object(port: int = 5555) -> Iterator[Path]:
    """build_xdp_drop into a temp dir of its own (/tmp/hnxvm-PID.xdp.*, which
    reap_stale removes after a killed run), deleted when the block ends."""
    d = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-{os.getpid()}.xdp.", dir="/tmp"))
    try:
        d.chmod(0o755)
        yield build_xdp_drop(d, port)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def build_xdp_drop(out_dir: Path, port: int = 5555) -> Path:
    """tools/xdp_drop_udp_port.bpf.c built to drop UDP port `port` (clang, or
    the Swift toolchain's). Build it before a guest boots: the guest sees the
    host's /tmp as it was then."""
    clang = os.environ.get("CLANG") or shutil.which("clang")
    if not clang:
        swift = shutil.which("swift")
        assert swift, "no clang and no swift on PATH to build the test XDP program"
        clang = str(Path(swift).resolve().parent / "clang")
    obj = out_dir / "drop.bpf.o"
    run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", f"-DDROP_PORT={port}",
         "-c", str(tools_dir() / "xdp_drop_udp_port.bpf.c"), "-o", str(obj)], timeout=120, check=True)
    return obj


__all__ = ["G4", "G6", "H4", "H6", "KERNEL_6_1", "KERNEL_6_12", "Guest", "GuestDaemon", "GuestJob", "GuestKernel",
           "Pinger", "build_xdp_drop", "open_guest", "prepare_kernel", "reap_stale", "release_at_least",
           "stop_guest_jobs", "xdp_drop_object"]
