"""Another network namespace next to a rig, where a guest device can be moved
(a VF the hypervisor or an administrator gives to another namespace).

    with open_away(rig, trap_ifindex=rig.ifindex(rig.guest, "hn0")) as away:
        away.take(rig.guest, "vf0")           # vf0 moves there (same ifindex), up
        away.tcx_count("vf0", "ingress")       # its tcx programs (a tcx link moves along)
        away.ip_in_receives()                  # IPv4 datagrams its stack received

The namespace is named <rig.id>-away, so both harnesses' stale-rig reapers
remove it with the rig. IPv6 is off there, so nothing but what a test sends
reaches its IPv4 stack. With trap_ifindex it holds `trap0`, a veth made with
that ifindex (its peer trap0p gets one far off): a frame a program wrongly
redirects to that ifindex in this namespace lands on trap0.

Deleting the namespace (at the end of the `with`) destroys the devices still
in it, a moved veth with its peer.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .proc import run
from .rig import NETNS_DIR, Rig
from .wait import wait_until

TRAP = "trap0"


@dataclass
class Away:
    rig: Rig
    name: str

    # ------------------------------------------------------------ moving devices

    def take(self, ns: str, dev: str) -> None:
        """Move dev from namespace ns here and bring it up."""
        self.rig.ip(ns, "link", "set", dev, "netns", self.name)
        self.rig.ip(self.name, "link", "set", dev, "up")

    def give_back(self, dev: str, ns: str) -> None:
        """Move dev from here to namespace ns and bring it up there."""
        self.rig.ip(self.name, "link", "set", dev, "netns", ns)
        self.rig.ip(ns, "link", "set", dev, "up")

    # ------------------------------------------------------------ reading

    def ifindex(self, dev: str) -> int:
        return self.rig.ifindex(self.name, dev)

    def carrier(self, dev: str) -> bool:
        return self.rig.carrier(self.name, dev)

    def link_packets(self, dev: str, direction: str) -> int:
        return self.rig.link_packets(self.name, dev, direction)

    def tcx_count(self, dev: str, direction: str, prefix: str = "hnxdp_") -> int:
        """Programs attached to dev here with tcx or as classic tc filters."""
        return self.rig.tcx_count(dev, direction, prefix, ns=self.name)

    def ip_in_receives(self) -> int:
        """IPv4 datagrams this namespace's stack received (Ip: InReceives of
        /proc/net/snmp): a frame counts here once it passed its device's tc
        ingress without being redirected."""
        r = run(["ip", "netns", "exec", self.name, "cat", "/proc/net/snmp"], timeout=30, check=True)
        rows = [line.split() for line in r.out.splitlines() if line.startswith("Ip:")]
        header, values = rows[0], rows[1]
        return int(dict(zip(header[1:], values[1:]))["InReceives"])

    # ------------------------------------------------------------ life

    def delete(self) -> None:
        if (NETNS_DIR / self.name).exists():
            run(["ip", "netns", "del", self.name], timeout=30)


@contextmanager
def open_away(rig: Rig, trap_ifindex: int | None = None) -> Iterator[Away]:
    """The namespace <rig.id>-away (with trap0 at trap_ifindex), deleted when the block ends."""
    away = Away(rig, f"{rig.id}-away")
    assert not Path(NETNS_DIR / away.name).exists(), f"{away.name} exists already"
    run(["ip", "netns", "add", away.name], timeout=30, check=True)
    try:
        run(["ip", "netns", "exec", away.name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1"], timeout=30, check=True)
        rig.ip(away.name, "link", "set", "lo", "up")
        if trap_ifindex is not None:
            rig.ip(away.name, "link", "add", TRAP, "index", str(trap_ifindex), "type", "veth",
                   "peer", "name", f"{TRAP}p", "index", str(trap_ifindex + 1000))
            for dev in (TRAP, f"{TRAP}p"):
                rig.ip(away.name, "link", "set", dev, "up")
            assert away.ifindex(TRAP) == trap_ifindex
            wait_until(lambda: away.carrier(TRAP), 10, f"{TRAP} has carrier")
        yield away
    finally:
        away.delete()
