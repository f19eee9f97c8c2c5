"""What a long-running `hnxdp run` holds, for soak tests that check nothing
accumulates: its fds, VmRSS and BPF objects, the namespace's pins, the BPF
links of its pinned programs, its files under the state directory, and the
machine's hnxdp programs and links (other runs count there too).

    start = Resources.read(rig, daemon)
    ... many cycles ...
    end = Resources.read(rig, daemon)
    assert_same_resources(rig, daemon, start, "joined")
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import bpf
from .checks import assert_global_eq
from .continuity import state_dir
from .proc import run
from .wait import wait_until

PROGRAMS = ("hnxdp_vf_ingress", "hnxdp_syn_ingress", "hnxdp_syn_egress")


def fd_count(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def fewest_fds(pid: int, looks: int = 10) -> int:
    """The fewest fds of `looks` looks 20 ms apart: run opens a socket for a
    moment now and then (the multicast comparison every second, an event in
    progress); a leaked fd stays and shows in every look."""
    seen: list[int] = []
    wait_until(lambda: seen.append(fd_count(pid)) or len(seen) >= looks, 10, f"{looks} looks at /proc/{pid}/fd",
               interval=0.02)
    return min(seen)


def pinned_prog_ids(pin_dir: Path) -> set[int]:
    ids = set()
    for name in PROGRAMS:
        if (pin_dir / name).exists():
            r = run(["bpftool", "-j", "prog", "show", "pinned", str(pin_dir / name)], timeout=30, check=True)
            ids.add(int(json.loads(r.out)["id"]))
    return ids


def namespace_links(pin_dir: Path) -> int:
    """How many BPF links (any namespace) there are of the programs pinned in
    pin_dir (a joined VF's link is a new one at every join: counted, not named)."""
    ids = pinned_prog_ids(pin_dir)
    r = run(["bpftool", "-j", "link", "show"], timeout=30)
    links = json.loads(r.out or "[]") if r.rc == 0 else []
    return sum(1 for link in links if link.get("prog_id") in ids)


def state_files(rig: Any) -> list[str]:
    """The namespace's files under the state directory (relative): records,
    switch histories, its directory, its locks."""
    root = state_dir()
    ino = str(rig.guest_ino)
    out = [p for p in (root / f"{ino}.lock", root / f"{ino}.run", root / ino) if p.exists()]
    if (root / ino).is_dir():
        out += list((root / ino).rglob("*"))
    return sorted(str(p.relative_to(root)) for p in out)


@dataclass
class Resources:
    fds: int
    rss_kb: int
    bpf_fds: dict[str, int]
    pins: list[str]
    ns_links: int
    state_files: list[str]
    hnxdp_progs: int
    hnxdp_links: int
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, rig: Any, daemon: Any) -> "Resources":
        return cls(fds=fewest_fds(daemon.pid), rss_kb=rss_kb(daemon.pid), bpf_fds=daemon.bpf_fds(),
                   pins=rig.pins(), ns_links=namespace_links(rig.pin_dir), state_files=state_files(rig),
                   hnxdp_progs=len(bpf.hnxdp_progs()), hnxdp_links=len(bpf.hnxdp_links()))

    def row(self) -> str:
        return (f"fds {self.fds} rss {self.rss_kb} kB bpf {self.bpf_fds} pins {len(self.pins)} "
                f"links {self.ns_links} state {len(self.state_files)} "
                f"hnxdp progs/links {self.hnxdp_progs}/{self.hnxdp_links}")


def assert_nothing_accumulated(start: Resources, end: Resources, phase: str, rss_slack_kb: int) -> None:
    """end against start, in the same phase: fds, BPF fds, pins, links and state
    files exactly equal; RSS at most rss_slack_kb higher; the machine's hnxdp
    programs and links equal (counted under strict_global())."""
    for name in ("fds", "bpf_fds", "pins", "ns_links", "state_files"):
        a, b = getattr(start, name), getattr(end, name)
        assert a == b, f"{phase}: {name} at the end {b!r}, at the start {a!r}"
    assert end.rss_kb <= start.rss_kb + rss_slack_kb, \
        f"{phase}: VmRSS {end.rss_kb} kB at the end, {start.rss_kb} kB at the start (+{rss_slack_kb} kB allowed)"
    assert_global_eq(end.hnxdp_progs, start.hnxdp_progs, f"{phase}: machine-wide hnxdp programs")
    assert_global_eq(end.hnxdp_links, start.hnxdp_links, f"{phase}: machine-wide hnxdp links")
