"""The datapath outlives a killed control plane, and a new one adopts it
without duplicating anything (B19), then handles the next departure (B13);
ported from scripts/tests/73-run-crash-adopt.sh (and its classic run in 26).

`hnxdp run` joins vf0 (no TSO, smaller GSO limits); the remote pings the guest
100/s through the VF (2000 pings); `kill -9` of the run:
  - traffic keeps entering through the VF (vf_rx_packets rises), the pair
    stays active, the links stay;
  - a new run adopts the pair: the same tcx link ids, pins and pinned link
    ids, the same number of BPF links of the namespace's programs, one hnxdp
    program per hook, no switch counted, hn0 keeps the joined limits, traffic
    still enters through the VF;
  - vf0 leaves (surprise): the new run makes the pair idle, hn0's features and
    limits read exactly as before the first join, no VF link is left, and the
    pings went on (at most 5 % lost through crash, adoption and removal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from lib.crash import assert_settings_again, link_field, links_of_pinned_programs, pinned_link_ids
from lib.daemon import Daemon, wait_pair
from lib.proc import Proc
from lib.rig import G4, TC_MODES, Rig, tc_mode_id
from lib.traffic import PingStats, ping, ping_bg
from lib.wait import wait_until

RUN = ("--synthetic", "hn0", "--settle-ms", "300")
PINGS = 2000  # 100/s: 20 s

pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)


def joined_by_vf(p: dict[str, Any] | None) -> bool:
    return bool(p and p["state"] == "active" and p["datapath"] == "vf" and (p["vf"] or {}).get("name") == "vf0")


@dataclass
class Crashed:
    """A pair joined by a run that was then killed with SIGKILL, pings running."""

    rig: Rig
    hn0_before: dict[str, Any]
    links: str
    pinned: dict[str, Any]
    pins: list[str]
    bpf_links: int
    pinger: Proc

    def vf_rx_rises(self, by: int, what: str) -> None:
        base = self.rig.hnxdp.stats()["vf_rx_packets"]
        wait_until(lambda: self.rig.hnxdp.stats()["vf_rx_packets"] >= base + by, 30, what)


@pytest.fixture
def crashed(rig: Rig) -> Iterator[Crashed]:
    rig.g("ethtool", "-K", "vf0", "tso", "off")
    rig.ip(rig.guest, "link", "set", "vf0", "gso_max_size", "40000", "gso_max_segs", "200")
    hn0_before = rig.dev_settings("hn0")
    d = Daemon.start(rig, *RUN)
    wait_pair(rig, joined_by_vf, 30, "hn0 active with vf0")
    assert link_field(rig, "hn0", "gso_max_size") == 40000, "the join gives hn0 vf0's gso_max_size"
    rig.host_switch("vf")
    ping(rig, rig.remote, G4, count=2)
    links = rig.tcx_summary("hn0", "vf0")
    assert len(links.split()) == 3, f"three hnxdp attachments (hn0 ingress+egress, vf0 ingress): {links}"
    c = Crashed(rig, hn0_before, links, pinned_link_ids(rig), rig.pins(), len(links_of_pinned_programs(rig)),
                ping_bg(rig, rig.remote, G4, count=PINGS, interval=0.01, wait=1))
    c.vf_rx_rises(50, "pings entering through the VF")
    d.kill9()
    assert not d.alive(), "run killed with SIGKILL"
    yield c


def test_the_datapath_outlives_a_killed_run(crashed: Crashed) -> None:
    c, rig = crashed, crashed.rig
    c.vf_rx_rises(100, "vf_rx_packets rising with no control plane")
    p = rig.hnxdp.pair()
    assert p is not None and (p["state"], p["datapath"]) == ("active", "vf"), f"with no control plane: {p}"
    assert rig.tcx_summary("hn0", "vf0") == c.links, "links unchanged by the crash"


def adopt(c: Crashed) -> Daemon:
    d = Daemon.start(c.rig, *RUN)
    wait_pair(c.rig, joined_by_vf, 30, "hn0 still active through vf0")
    return d


def test_a_new_run_adopts_without_duplicating(crashed: Crashed) -> None:
    c, rig = crashed, crashed.rig
    d = adopt(c)
    assert rig.tcx_summary("hn0", "vf0") == c.links, "same tcx link ids after adoption"
    assert pinned_link_ids(rig) == c.pinned, "same pinned link ids after adoption"
    assert rig.pins() == c.pins, "same pins after adoption"
    assert len(links_of_pinned_programs(rig)) == c.bpf_links, "same number of BPF links of the namespace's programs"
    for dev, direction in (("vf0", "ingress"), ("hn0", "ingress"), ("hn0", "egress")):
        assert rig.tcx_count(dev, direction) == 1, f"one hnxdp program on {dev} {direction} (nothing duplicated)"
    p = rig.hnxdp.pair()
    assert p is not None and p["switches"] == 1, f"adoption did not switch the datapath: {p and p['switch_history']}"
    assert link_field(rig, "hn0", "gso_max_size") == 40000, "hn0 keeps the joined limits"
    c.vf_rx_rises(50, "vf_rx_packets rising after adoption")
    assert d.stop() == 0
    d.assert_no_error()


def test_the_adopting_run_handles_the_next_departure(crashed: Crashed) -> None:
    c, rig = crashed, crashed.rig
    d = adopt(c)
    rig.vf_remove_surprise()
    p = wait_pair(rig, lambda p: p and p["state"] == "idle" and p["vf"] is None, 30, "hn0 idle with no VF")
    assert p["datapath"] == "synthetic", p
    assert p["switch_history"][-1]["reason"] == "departed", p["switch_history"]
    assert_settings_again(rig, c.hn0_before, "hn0", "features and limits as before the first join")
    assert not list(rig.pin_dir.rglob("link_vf_ingress")), f"no link_vf_ingress pin left: {rig.pins()}"
    expected = 0 if rig.tc_mode == "classic" else 2
    assert len(links_of_pinned_programs(rig)) == expected, f"BPF links left: hn0's ({expected})"
    assert rig.tcx_count("hn0", "ingress") + rig.tcx_count("hn0", "egress") == 2, "hn0 keeps its two programs"
    c.pinger.wait(60)
    stats = PingStats.parse(c.pinger.output())
    assert stats is not None, f"ping summary missing: {c.pinger.output()[-300:]!r}"
    assert stats.transmitted == PINGS, f"pings: all sent ({stats})"
    assert stats.lost <= PINGS // 20, f"at most 5 % lost through crash, adoption and a surprise removal: {stats}"
    assert d.stop() == 0, "the second run exits 0 on SIGTERM"
    d.assert_no_error()
