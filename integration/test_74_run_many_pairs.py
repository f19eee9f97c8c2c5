"""One `hnxdp run` manages 8 pairs at once; a VF event touches only its own
pair (B1, B2, B13, B15, B20). Ported from scripts/tests/74-run-many-pairs.sh.

hn0..hn7 with vf0..vf7 in the guest (pair 0 is the rig's; pairs 1-7 are extra
veths whose peers sit in the host), each pair with its own MAC, under
`run --synthetic hn0 ... --synthetic hn7`. vf3 comes and goes. The bash test
timed the departure (<= 100 ms): here it is a correctness wait.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from lib.control import REACT, active_with, assert_joined_no_earlier, idle_without_vf, now_ns
from lib.counters import PathCounters
from lib.daemon import Daemon, wait_pair
from lib.rig import G4, Rig
from lib.traffic import ping
from lib.wait import wait_until

N = 8
SETTLE = 300  # ms
K = 3  # the pair whose VF comes and goes
DEVS = [f"{kind}{k}" for k in range(N) for kind in ("hn", "vf")]


def table(rig: Rig) -> dict[str, tuple[Any, ...]]:
    """Per synthetic: (state, VF name, VF ifindex, switches, slot)."""
    return {p["synthetic"]["name"]: (p["state"], (p["vf"] or {}).get("name"), (p["vf"] or {}).get("ifindex"),
                                     p["switches"], p["slot"]) for p in rig.hnxdp.dump()["pairs"]}


def all_joined(rig: Rig) -> dict[str, tuple[Any, ...]] | None:
    pairs = rig.hnxdp.dump()["pairs"]
    ok = len(pairs) == N and all(active_with("vf" + p["synthetic"]["name"][2:])(p) for p in pairs)
    return table(rig) if ok else None


def others(t: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {name: row for name, row in t.items() if name != f"hn{K}"}


def links(rig: Rig) -> list[str]:
    return rig.tcx_summary(*DEVS).split()


def links_but_vfk(rig: Rig) -> list[str]:
    return [link for link in links(rig) if not link.startswith(f"vf{K}/")]


@dataclass
class Eight:
    rig: Rig
    run: Daemon
    table: dict[str, tuple[Any, ...]]
    links: list[str]

    def depart(self) -> None:
        self.rig.vfk_del(K)
        wait_pair(self.rig, idle_without_vf, REACT, f"hn{K} idle with no VF", synthetic=f"hn{K}")


@pytest.fixture
def eight(rig: Rig) -> Iterator[Eight]:
    for k in range(1, N):
        rig.pair_add(k)
    d = Daemon.start(rig, *[a for k in range(N) for a in ("--synthetic", f"hn{k}")], "--settle-ms", str(SETTLE))
    t = wait_until(lambda: all_joined(rig), REACT, f"all {N} pairs active, each with its own VF")
    yield Eight(rig, d, t, links(rig))
    assert d.stop() == 0, "run exits 0 on SIGTERM"
    d.assert_no_error()


def test_one_run_joins_every_pair(eight: Eight) -> None:
    rig = eight.rig
    assert len(eight.table) == N
    assert len({row[4] for row in eight.table.values()}) == N, f"each pair its own slot: {eight.table}"
    assert len(eight.links) == 3 * N, f"one link per synthetic direction and per VF ingress: {eight.links}"
    rig.host_switch("vf")
    ping(rig, rig.remote, G4, count=2)
    before = PathCounters.read(rig)
    assert ping(rig, rig.remote, G4, count=10, interval=0.02).rc == 0, "pair 0 carries pings"
    before.assert_through_vf("rx", at_least=10)


def test_a_departure_touches_only_its_pair(eight: Eight) -> None:
    rig = eight.rig
    rig.host_switch("vf")
    eight.depart()
    t = table(rig)
    assert t[f"hn{K}"][:3] == ("idle", None, None)
    assert others(t) == others(eight.table), "the other pairs: same state, VF, switches, slot"
    assert links_but_vfk(rig) == [x for x in eight.links if not x.startswith(f"vf{K}/")], "the same links"
    assert ping(rig, rig.remote, G4, count=5, interval=0.02).rc == 0, "pair 0 still carries pings"


def test_a_return_touches_only_its_pair(eight: Eight) -> None:
    rig = eight.rig
    eight.depart()
    since = now_ns()
    rig.vfk_add(K)
    p = wait_pair(rig, active_with(f"vf{K}"), REACT, f"hn{K} active with vf{K}", synthetic=f"hn{K}")
    assert_joined_no_earlier(p, since, SETTLE, f"pair {K} joined after the settle delay")
    t = wait_until(lambda: all_joined(rig), REACT, f"all {N} pairs active again")
    old = eight.table[f"hn{K}"]
    assert t[f"hn{K}"][2] != old[2], f"vf{K} has a new ifindex"
    assert t[f"hn{K}"][3] == old[3] + 2, f"pair {K} counted a departure and a join"
    assert others(t) == others(eight.table), "the other pairs unchanged"
    now = links(rig)
    assert len(now) == 3 * N
    assert links_but_vfk(rig) == [x for x in eight.links if not x.startswith(f"vf{K}/")], "the same links"
    assert rig.tcx_count(f"vf{K}", "ingress") == 1
