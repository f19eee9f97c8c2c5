"""The emulated hypervisor rig of the integration tests, the demo and the benchmark.

Three network namespaces per rig, named hnxrig-<pid>-<random>-{guest,host,remote}
(the pid is the test process's: both harnesses reap rigs whose process died):

    guest: hn0 (synthetic, 198.18.0.1/24, fd00::1/64)   vf0 (VF, no address)
             |  same locally administered MAC (rig.mac)    |
    host:  hn0h                                          vf0h      remh
             \\________ tc ingress: mirred -> remh ________/          |
             remh ingress: mirred -> vf0h ("vf") or hn0h ("syn")      |
    remote:                                                         eth0 (198.18.0.2/24, fd00::2/64)

The host plays the hypervisor's switch with tc only; it has no addresses and
IPv6 is off there. vf0 keeps IPv6 (a link-local address, like a real VF).
DAD is off in guest and remote. Pins are under pin_root()/<guest netns inode>
($HNXDP_BPFFS or hnxdp's default; never --bpffs).

`Rig.create()` builds it; `cleanup()` (idempotent, run by the fixtures'
finalizers) stops the rig's jobs, runs `hnxdp detach --all` in the guest,
removes leftover pins, AF_XDP and capture lock files and the namespace's
state directory, deletes the namespaces.

The benchmark (integration/bench) builds its guests with the same code and
`Rig.create(..., switch=False, ipv6=False)`: guest and host only, the host's
vf0h is the far end itself (198.18.0.2/24, no tc), rp_filter off in both;
`addr_dev="vf0"` puts the guest's address on vf0 instead (its baseline guest).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

from . import bpf
from .hnxdp import Hnxdp, pin_root
from .proc import Proc, Result, alive, run, spawn, spawn_mark, stop_spawned_since
from .wait import wait_until

G4, R4 = "198.18.0.1", "198.18.0.2"
G6, R6 = "fd00::1", "fd00::2"
PREFIX = "hnxrig"
NETNS_DIR = Path("/run/netns")

# Tools whose absence fails a test (install-deps.sh installs them all).
TOOLS_NEEDED = ("ip", "tc", "ethtool", "bpftool", "nsenter", "setpriv", "timeout", "ping",
                "tcpdump", "mountpoint")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def tools_dir() -> Path:
    """The traffic and inspection tools shared with the bash rig and the benchmark."""
    return repo_root() / "scripts" / "tools"


def strict_global() -> bool:
    """Count machine-wide BPF checks? RIG_STRICT_GLOBAL, default on under CI."""
    v = os.environ.get("RIG_STRICT_GLOBAL")
    if v is not None:
        return v == "1"
    return bool(os.environ.get("CI"))


def python() -> str:
    return sys.executable


def _random_mac() -> str:
    # 02:... = locally administered, unicast.
    return "02:48:4e:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))


@dataclass
class Rig:
    id: str
    binary: Path
    tc_mode: str | None = None
    vf_up: bool = True
    mac: str = field(default_factory=_random_mac)
    tmp: Path = Path()
    guest_ino: int = 0
    datapath: str = ""
    created: bool = False
    _mark: int = 0
    # The benchmark's layouts (defaults: the test rig above).
    switch: bool = True       # False: no remote, no tc switch; the host's vf0h has R4/24
    ipv6: bool = True         # False: IPv6 off in guest and remote too (no G6/R6)
    addr_dev: str = "hn0"     # the guest device that gets G4 (and G6)

    # ------------------------------------------------------------ names

    @property
    def guest(self) -> str:
        return f"{self.id}-guest"

    @property
    def host(self) -> str:
        return f"{self.id}-host"

    @property
    def remote(self) -> str:
        return f"{self.id}-remote"

    @property
    def pin_dir(self) -> Path:
        return pin_root() / str(self.guest_ino)

    @property
    def hnxdp(self) -> Hnxdp:
        """hnxdp in the guest (HNXDP_TC_MODE set when the rig has a tc mode)."""
        env = {"HNXDP_TC_MODE": self.tc_mode} if self.tc_mode else {}
        return Hnxdp(self.binary, self.guest, env)

    # ------------------------------------------------------------ running things

    @staticmethod
    def netns_argv(ns: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    @staticmethod
    def nsenter_argv(ns: str, argv: Sequence[str]) -> list[str]:
        """argv in namespace ns with the host's mount namespace (/sys and bpffs pins
        stay the real ones): for BPF tools and anything that reads pins."""
        return ["nsenter", f"--net={NETNS_DIR / ns}", "--", *argv]

    def in_ns(self, ns: str, *argv: str, timeout: float = 30, check: bool = True) -> Result:
        return run(self.netns_argv(ns, argv), timeout=timeout, check=check)

    def g(self, *argv: str, **kw: Any) -> Result:
        return self.in_ns(self.guest, *argv, **kw)

    def h(self, *argv: str, **kw: Any) -> Result:
        return self.in_ns(self.host, *argv, **kw)

    def r(self, *argv: str, **kw: Any) -> Result:
        return self.in_ns(self.remote, *argv, **kw)

    def ip(self, ns: str, *args: str, check: bool = True) -> Result:
        return run(["ip", "-n", ns, *args], timeout=30, check=check)

    def tc(self, ns: str, *args: str, check: bool = True) -> Result:
        return run(["tc", "-n", ns, *args], timeout=30, check=check)

    def spawn(self, argv: Sequence[str], name: str, env: Mapping[str, str] | None = None) -> Proc:
        """A background job; stdout/stderr to <tmp>/<name>.out/.err."""
        return spawn(argv, stdout=self.tmp / f"{name}.out", stderr=self.tmp / f"{name}.err", env=env)

    def bg(self, ns: str, *argv: str, name: str) -> Proc:
        """A background job in namespace ns (ip netns exec; never for hnxdp)."""
        return self.spawn(self.netns_argv(ns, argv), name)

    def tool(self, name: str) -> list[str]:
        """argv prefix of a scripts/tools/*.py tool."""
        return [python(), str(tools_dir() / name)]

    # ------------------------------------------------------------ creation

    @classmethod
    def create(cls, binary: Path, tc_mode: str | None = None, vf_up: bool = True, *, switch: bool = True,
               ipv6: bool = True, addr_dev: str = "hn0") -> "Rig":
        while True:
            rig_id = f"{PREFIX}-{os.getpid()}-{random.randrange(32768)}"
            if not any((NETNS_DIR / f"{rig_id}-{role}").exists() for role in ("guest", "host", "remote")):
                break
        rig = cls(rig_id, binary, tc_mode, vf_up, switch=switch, ipv6=ipv6, addr_dev=addr_dev)
        rig._mark = spawn_mark()
        rig.tmp = Path(tempfile.mkdtemp(prefix=f"{rig_id}.", dir="/tmp"))
        rig.tmp.chmod(0o755)
        rig.created = True  # from here on cleanup() deletes what exists
        try:
            rig._build()
        except BaseException:
            rig.cleanup()
            raise
        return rig

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.guest, self.host, self.remote) if self.switch else (self.guest, self.host)

    def _build(self) -> None:
        for ns in self.namespaces:
            run(["ip", "netns", "add", ns], check=True)
        self.guest_ino = os.stat(NETNS_DIR / self.guest).st_ino
        if self.pin_dir.exists():
            # The namespace is brand new, so nothing can own pins under its inode:
            # they are leftovers of a killed run whose namespace had the same inode.
            print(f"rig: removing stale pin directory {self.pin_dir} (left by an earlier run)", file=sys.stderr)
            shutil.rmtree(self.pin_dir, ignore_errors=True)

        # Sysctls first, so devices created below inherit them.
        no_dad = ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
        no_ipv6 = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        for ns in (self.guest, self.remote) if self.switch else (self.guest,):
            self.in_ns(ns, "sysctl", "-qw", *(no_dad if self.ipv6 else no_ipv6))
        self.h("sysctl", "-qw", *no_ipv6)
        if not self.switch:
            for ns in (self.guest, self.host):
                self.in_ns(ns, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        for ns in self.namespaces:
            self.ip(ns, "link", "set", "lo", "up")

        if self.switch:
            # Remote and the host's uplink port.
            self.ip(self.remote, "link", "add", "eth0", "type", "veth", "peer", "name", "remh", "netns", self.host)
            self.ip(self.host, "link", "set", "remh", "up")
            self.tc(self.host, "qdisc", "add", "dev", "remh", "clsact")

        # Synthetic.
        self.ip(self.guest, "link", "add", "hn0", "type", "veth", "peer", "name", "hn0h", "netns", self.host)
        self.ip(self.guest, "link", "set", "hn0", "address", self.mac)
        self.ip(self.host, "link", "set", "hn0h", "up")
        if self.switch:
            self._host_forward("hn0h")

        self.vf_add()
        if self.switch:
            # The host starts on the synthetic path, as before any VF is offered.
            self.host_switch("syn")
        else:
            self.ip(self.host, "addr", "add", f"{R4}/24", "dev", "vf0h")

        self.ip(self.guest, "addr", "add", f"{G4}/24", "dev", self.addr_dev)
        if self.ipv6:
            self.ip(self.guest, "addr", "add", f"{G6}/64", "dev", self.addr_dev, "nodad")
        self.ip(self.guest, "link", "set", "hn0", "up")
        if self.switch:
            self.ip(self.remote, "addr", "add", f"{R4}/24", "dev", "eth0")
            if self.ipv6:
                self.ip(self.remote, "addr", "add", f"{R6}/64", "dev", "eth0", "nodad")
            self.ip(self.remote, "link", "set", "eth0", "up")
            wait_until(lambda: self.carrier(self.guest, "hn0") and self.carrier(self.remote, "eth0"), 10,
                       "guest hn0 and remote eth0 have carrier")
        else:
            wait_until(lambda: self.carrier(self.guest, self.addr_dev) and self.carrier(self.host, "vf0h"), 10,
                       f"guest {self.addr_dev} and host vf0h have carrier")

    def _host_forward(self, dev: str) -> None:
        """Everything arriving on a host-side port goes out of remh."""
        self.tc(self.host, "qdisc", "add", "dev", dev, "clsact")
        self.tc(self.host, "filter", "add", "dev", dev, "ingress", "pref", "10", "protocol", "all",
                "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "remh")

    # ------------------------------------------------------------ the VF and the host switch

    def vf_add(self) -> None:
        """Create vf0 (again): same MAC, new ifindex. The host switch stays as it is."""
        assert not self.exists(self.guest, "vf0"), "vf_add: vf0 already exists"
        self.ip(self.guest, "link", "add", "vf0", "type", "veth", "peer", "name", "vf0h", "netns", self.host)
        self.ip(self.guest, "link", "set", "vf0", "address", self.mac)
        self.ip(self.host, "link", "set", "vf0h", "up")
        if self.switch:
            self._host_forward("vf0h")
        if self.vf_up:
            self.ip(self.guest, "link", "set", "vf0", "up")

    def host_switch(self, to: str) -> None:
        """Point the host's remote->guest path at vf0h ("vf") or hn0h ("syn")."""
        dev = {"vf": "vf0h", "syn": "hn0h"}[to]
        assert self.exists(self.host, dev), f"host_switch {to}: {dev} does not exist in the host"
        # `replace` with a fixed handle swaps the action atomically.
        self.tc(self.host, "filter", "replace", "dev", "remh", "ingress", "pref", "10", "protocol", "all",
                "handle", "800::800", "u32", "match", "u32", "0", "0",
                "action", "mirred", "egress", "redirect", "dev", dev)
        self.datapath = to

    def _vf_delete(self) -> None:
        self.ip(self.guest, "link", "del", "vf0")  # takes vf0h with it
        wait_until(lambda: not self.exists(self.host, "vf0h"), 5, "vf0h gone after deleting vf0")

    def vf_remove_surprise(self) -> None:
        """Delete vf0, then switch the host to the synthetic."""
        self._vf_delete()
        self.host_switch("syn")

    def vf_remove_planned(self) -> None:
        """Switch the host to the synthetic, then delete vf0."""
        self.host_switch("syn")
        self._vf_delete()

    def vf_less_capable(self, dev: str = "vf0") -> None:
        """The VF offers less than the synthetic (tso off, gso 30000/40)."""
        self.g("ethtool", "-K", dev, "tso", "off")
        self.ip(self.guest, "link", "set", dev, "gso_max_size", "30000", "gso_max_segs", "40")

    def vf_prepare(self, *guest_commands: str) -> None:
        """Create vf0 with its own (veth's random) MAC and run guest_commands (sh -c,
        in the guest) on it before vf_take_mac() makes it hn0's VF: a VF that
        arrives already configured."""
        assert not self.exists(self.guest, "vf0"), "vf_prepare: vf0 already exists"
        self.ip(self.guest, "link", "add", "vf0", "type", "veth", "peer", "name", "vf0h", "netns", self.host)
        for command in guest_commands:
            self.g("sh", "-c", command)
        self.ip(self.host, "link", "set", "vf0h", "up")
        self._host_forward("vf0h")

    def vf_take_mac(self) -> None:
        """Give a prepared vf0 hn0's MAC (and bring it up unless the rig keeps VFs down)."""
        self.ip(self.guest, "link", "set", "vf0", "address", self.mac)
        if self.vf_up:
            self.ip(self.guest, "link", "set", "vf0", "up")

    # ------------------------------------------------------------ more pairs: hnK/vfK

    def pair_mac(self, k: int) -> str:
        """MAC of extra pair k: the rig's MAC with 0x4f in the 3rd byte and k last."""
        octets = self.mac.split(":")
        return ":".join(["02", "48", "4f", octets[3], octets[4], f"{k:02x}"])

    def pair_add(self, k: int, vf: bool = True) -> None:
        """hn<k> (synthetic, up, no address; host side hn<k>h not forwarded) and,
        when vf, vf<k> with the same MAC."""
        self.ip(self.guest, "link", "add", f"hn{k}", "type", "veth", "peer", "name", f"hn{k}h", "netns", self.host)
        self.ip(self.guest, "link", "set", f"hn{k}", "address", self.pair_mac(k))
        self.ip(self.host, "link", "set", f"hn{k}h", "up")
        self.ip(self.guest, "link", "set", f"hn{k}", "up")
        if vf:
            self.vfk_add(k)

    def pairs_add(self, ks: Iterable[int]) -> None:
        """pair_add(k) for many k at once (hn<k> and vf<k> with pair_mac(k), all up),
        with one `ip -batch` per namespace: hundreds of pairs in a second."""
        guest, host = [], []
        for k in ks:
            for dev in (f"hn{k}", f"vf{k}"):
                guest += [f"link add {dev} address {self.pair_mac(k)} type veth peer name {dev}h netns {self.host}",
                          f"link set {dev} up"]
                host.append(f"link set {dev}h up")
        for ns, lines in ((self.guest, guest), (self.host, host)):
            batch = self.tmp / f"pairs-{ns}.batch"
            batch.write_text("\n".join(lines) + "\n")
            self.ip(ns, "-batch", str(batch))

    def vfk_add(self, k: int) -> None:
        self.ip(self.guest, "link", "add", f"vf{k}", "type", "veth", "peer", "name", f"vf{k}h", "netns", self.host)
        self.ip(self.guest, "link", "set", f"vf{k}", "address", self.pair_mac(k))
        self.ip(self.host, "link", "set", f"vf{k}h", "up")
        self.ip(self.guest, "link", "set", f"vf{k}", "up")

    def vfk_del(self, k: int) -> None:
        self.ip(self.guest, "link", "del", f"vf{k}")
        wait_until(lambda: not self.exists(self.host, f"vf{k}h"), 10, f"vf{k}h gone after deleting vf{k}")

    # ------------------------------------------------------------ reading devices

    # The `ip -d link` fields a device's settings are made of (dev_settings).
    SETTINGS_FIELDS = ("mtu", "flags", "operstate", "min_mtu", "max_mtu", "gso_max_size", "gso_max_segs",
                       "gso_ipv4_max_size", "tso_max_size", "tso_max_segs", "gro_max_size", "gro_ipv4_max_size",
                       "promiscuity", "allmulti", "address")

    def dev_settings(self, dev: str) -> dict[str, Any]:
        """A guest device's user-visible settings: `ethtool -k` and the
        SETTINGS_FIELDS of `ip -d link` (what hnxdp must give back unchanged)."""
        link = self.link(self.guest, dev)
        return {"features": self.features(dev), **{k: link.get(k) for k in self.SETTINGS_FIELDS}}

    def link(self, ns: str, dev: str, stats: bool = False) -> dict[str, Any]:
        args = ["-j", "-d"] + (["-s"] if stats else []) + ["link", "show", "dev", dev]
        return json.loads(self.ip(ns, *args).out)[0]

    def exists(self, ns: str, dev: str) -> bool:
        return self.ip(ns, "link", "show", "dev", dev, check=False).rc == 0

    def carrier(self, ns: str, dev: str) -> bool:
        return "LOWER_UP" in self.link(ns, dev).get("flags", [])

    def ifindex(self, ns: str, dev: str) -> int:
        return int(self.link(ns, dev)["ifindex"])

    def link_packets(self, ns: str, dev: str, direction: str) -> int:
        """veth packet counter of dev ("rx" or "tx")."""
        return int(self.link(ns, dev, stats=True)["stats64"][direction]["packets"])

    def features(self, dev: str) -> dict[str, str]:
        """`ethtool -k` of a guest device: feature name -> "on"/"off"."""
        out = {}
        for line in self.g("ethtool", "-k", dev).out.splitlines()[1:]:
            name, _, value = line.strip().partition(": ")
            if value:
                out[name] = value.split()[0]
        return out

    def tcx(self, *devs: str, ns: str | None = None) -> dict[str, Any]:
        """tcx (and classic tc bpf) attachments of guest devices (tools/tcx_query.py);
        of devices in namespace ns instead when given."""
        r = run(["nsenter", f"--net=/run/netns/{ns or self.guest}", "--", *self.tool("tcx_query.py"), *devs],
                timeout=30, check=True)
        return json.loads(r.out)

    def tcx_count(self, dev: str, direction: str, prefix: str = "hnxdp_", ns: str | None = None) -> int:
        d = self.tcx(dev, ns=ns)[dev]
        return 0 if d is None else sum(1 for p in d[direction] if p["name"].startswith(prefix))

    def hnxdp_attachments(self, *devs: str) -> list[dict[str, Any]]:
        """The hnxdp programs attached to guest devices: dev, dir, prog_id, link_id, name."""
        out = []
        for dev, d in sorted(self.tcx(*devs).items()):
            for direction in ("ingress", "egress"):
                for p in (d or {}).get(direction, []):
                    if p["name"].startswith("hnxdp_"):
                        out.append({"dev": dev, "dir": direction, **p})
        return out

    def tcx_summary(self, *devs: str) -> str:
        """"dev/dir=link_id ..." of the hnxdp attachments of guest devices."""
        return " ".join(f"{a['dev']}/{a['dir']}={a['link_id']}" for a in self.hnxdp_attachments(*devs))

    def xdp_devices(self) -> list[str]:
        """Guest devices that carry an XDP program."""
        return [link["ifname"] for link in json.loads(self.ip(self.guest, "-d", "-j", "link", "show").out)
                if "xdp" in link]

    # ------------------------------------------------------------ snapshots

    def snapshot(self, devs: Iterable[str] = ("hn0", "vf0")) -> str:
        """Everything an hnxdp command could change, as stable text (rig_snapshot):
        guest links, features, tc, tcx, pins, pinned links (and every hnxdp link
        of the machine under strict_global())."""
        devs = list(devs)
        parts = ["## ip -d link (guest; bridge timers masked)",
                 re.sub(r"([a-z_]*_timer) *[0-9.]*", r"\1 -", self.ip(self.guest, "-d", "link", "show").out)]
        for dev in devs:
            r = self.g("ethtool", "-k", dev, check=False)
            parts += [f"## ethtool -k {dev}", r.out + r.err]
        parts += ["## tc qdisc (guest)", self.tc(self.guest, "qdisc", "show").out]
        for dev in devs:
            for direction in ("ingress", "egress"):
                r = self.tc(self.guest, "filter", "show", "dev", dev, direction, check=False)
                parts += [f"## tc filter {dev} {direction}", r.out + r.err]
        parts += ["## tcx (guest)", json.dumps(self.tcx(*devs), sort_keys=True)]
        parts += ["## pins", "\n".join(self.pins()) if self.pin_dir.exists() else "absent"]
        parts += ["## pinned links", self._pinned_links()]
        if strict_global():
            parts += ["## bpf links of hnxdp programs (global)", "\n".join(bpf.hnxdp_links())]
        return "\n".join(parts)

    def pins(self) -> list[str]:
        """Paths under the guest's pin directory, relative, sorted."""
        if not self.pin_dir.exists():
            return []
        return sorted(str(p.relative_to(self.pin_dir)) for p in self.pin_dir.rglob("*"))

    def _pinned_links(self) -> str:
        if not self.pin_dir.is_dir():
            return ""
        lines = []
        for f in sorted(self.pin_dir.rglob("link_*")):
            r = run(["bpftool", "link", "show", "pinned", str(f)], timeout=30)
            first = (r.out + r.err).splitlines()[:1]
            lines.append(f"{f.relative_to(self.pin_dir)}: {first[0] if first else ''}")
        return "\n".join(lines)

    # ------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        """Delete everything the rig made (idempotent; never raises)."""
        if not self.created:
            return
        self.created = False
        problems = []
        stop_spawned_since(self._mark)
        if (NETNS_DIR / self.guest).exists() and os.access(self.binary, os.X_OK):
            try:
                r = run(Hnxdp(self.binary, self.guest).argv("detach", "--all"), timeout=30)
                if r.rc != 0:
                    problems.append(f"'hnxdp detach --all' failed: {r}")
            except AssertionError as e:
                problems.append(str(e))
        if self.guest_ino:
            state = Path(os.environ.get("HNXDP_STATE_DIR") or "/run/hnxdp")
            for lock in [*state.glob(f"xsk-{self.guest_ino}-*.lock"), state / f"capture-{self.guest_ino}.lock"]:
                lock.unlink(missing_ok=True)
            # What a process killed mid-write left (its *.tmp files): the namespace goes.
            shutil.rmtree(state / str(self.guest_ino), ignore_errors=True)
            if self.pin_dir.exists():
                problems.append(f"removing leftover pins {self.pin_dir}")
                shutil.rmtree(self.pin_dir, ignore_errors=True)
        for ns in (self.guest, self.host, self.remote):
            if (NETNS_DIR / ns).exists():
                run(["ip", "netns", "del", ns], timeout=30)
        if self.tmp != Path() and self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        for p in problems:
            print(f"rig: cleanup of {self.id}: {p}", file=sys.stderr)
            warnings.warn(f"rig cleanup of {self.id}: {p}")


def reap_stale(binary: Path) -> list[str]:
    """Remove namespaces hnxrig-<pid>-... whose process no longer exists, and
    the pins of their guest namespace. Returns the
    names removed."""
    removed = []
    for f in sorted(NETNS_DIR.glob(f"{PREFIX}-*")):
        pid = f.name.split("-")[1]
        if not pid.isdigit() or alive(int(pid)):
            continue
        if f.name.endswith("-guest"):
            try:
                ino = os.stat(f).st_ino
            except OSError:
                ino = 0
            if os.access(binary, os.X_OK):
                try:
                    run(["nsenter", f"--net={f}", "--", str(binary), "detach", "--all"], timeout=30)
                except AssertionError:
                    pass
            if ino and (pin_root() / str(ino)).exists():
                shutil.rmtree(pin_root() / str(ino), ignore_errors=True)
        run(["ip", "netns", "del", f.name], timeout=30)
        removed.append(f.name)
    return removed


@contextmanager
def open_rig(binary: Path, tc_mode: str | None = None, vf_up: bool = True, **layout: Any) -> Iterator[Rig]:
    """A rig for a `with` block (and a fixture's yield): cleaned up however it ends.
    layout: Rig.create's switch, ipv6, addr_dev."""
    rig = Rig.create(binary, tc_mode, vf_up, **layout)
    try:
        yield rig
    finally:
        rig.cleanup()


# The attachments a datapath test runs under: the kernel's default (`auto`:
# tcx on 6.6+, or whatever HNXDP_TC_MODE says) and classic tc (clsact +
# cls_bpf), which kernels before 6.6 get. Use as fixture params.
TC_MODES: tuple[str | None, ...] = (None, "classic")


def tc_mode_id(mode: str | None) -> str:
    return mode or "default"
