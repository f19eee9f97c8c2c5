"""`hnxdp run` joins a VF that arrives after it started, after the settle delay,
and undoes everything when the VF leaves (B1, B2, B4, B5, B8, B9, B13, B15,
B20); `--transparent off` only reports (B3). Ported from
scripts/tests/70-run-arrival-departure.sh, with its classic-tc run of
26-classic-tc.sh: every test runs with the default attachment and classic tc.

The VF that arrives is set up first (tso off, gso_max_size 32768,
gso_max_segs 100) and only then takes hn0's MAC, so the join really changes
hn0. The bash test timed the departure (<= 100 ms); here the departure is a
correctness wait (the pair reaches idle with no VF) and its cost is the
benchmark's business.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from lib import bpf
from lib.control import (REACT, assert_joined_no_earlier, last_switch, now_ns, vf_arrive, vf_depart,
                         wait_joined, wait_settings)
from lib.counters import PathCounters
from lib.daemon import Daemon, state_is, wait_pair
from lib.rig import G4, TC_MODES, Rig, tc_mode_id
from lib.traffic import ping

pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)

SETTLE = 2000  # ms: long enough that `dump` polled every 50 ms sees `settling`
PREPARE = ("ethtool -K vf0 tso off", "ip link set vf0 gso_max_size 32768 gso_max_segs 100")


@dataclass
class IdleRun:
    """`run --synthetic hn0` started with no VF; hn0 as it was before any join."""

    rig: Rig
    run: Daemon
    hn0_before: dict[str, Any]

    def join(self) -> tuple[dict[str, Any], list[str], int, int]:
        """A prepared vf0 arrives; returns the joined pair, the states dump
        showed, when the VF appeared (ns) and its ifindex."""
        since = now_ns()
        ifindex = vf_arrive(self.rig, *PREPARE)
        p, seen = wait_joined(self.rig, "vf0", REACT)
        return p, seen, since, ifindex


@pytest.fixture
def idle_run(rig: Rig) -> Iterator[IdleRun]:
    rig.vf_remove_planned()
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", str(SETTLE))
    wait_pair(rig, state_is("idle"), REACT, "pair hn0 installed and idle")
    before = rig.dev_settings("hn0")
    assert before["features"]["tx-tcp-segmentation"] == "on", "precondition: hn0 has TSO"
    assert before["gso_max_size"] != 32768, "precondition: hn0's gso_max_size is not the VF's"
    yield IdleRun(rig, d, before)
    if d.alive():
        assert d.stop() == 0, "run exits 0 on SIGTERM"
    d.assert_no_error()


def assert_joined_like_the_first(rig: Rig) -> None:
    """hn0 carries the intersection with the VF (B4, B5)."""
    hn0 = rig.dev_settings("hn0")
    assert hn0["features"]["tx-tcp-segmentation"] == "off", "hn0 TSO off (the VF's)"
    assert (hn0["gso_max_size"], hn0["gso_max_segs"]) == (32768, 100), "hn0 GSO limits are the VF's"


def test_without_a_vf_the_pair_is_idle(idle_run: IdleRun) -> None:
    p = idle_run.rig.hnxdp.pair("hn0")
    assert p is not None
    assert (p["state"], p["datapath"], p["vf"]) == ("idle", "synthetic", None)


def test_an_arriving_vf_settles_then_joins(idle_run: IdleRun) -> None:
    rig = idle_run.rig
    p, seen, since, ifindex = idle_run.join()
    assert seen in (["idle", "settling", "active"], ["settling", "active"]), f"dump showed {seen}"
    assert_joined_no_earlier(p, since, SETTLE, "the join waited for the settle delay")
    assert p["vf"]["ifindex"] == ifindex
    if rig.tc_mode == "classic":
        assert p["attachment"] == "classic"
    s = last_switch(p)
    assert (s["direction"], s["reason"], s["vf_ifindex"]) == ("to-vf", "joined", ifindex)
    assert_joined_like_the_first(rig)
    assert rig.tcx_count("vf0", "ingress") == 1, "one hnxdp program on vf0 ingress"


def test_a_joined_vf_carries_the_traffic(idle_run: IdleRun) -> None:
    rig = idle_run.rig
    idle_run.join()
    rig.host_switch("vf")
    ping(rig, rig.remote, G4, count=2)  # neighbour caches
    before = PathCounters.read(rig)
    r = ping(rig, rig.remote, G4, count=20, interval=0.02)
    assert r.rc == 0, f"remote pings the guest through the VF: {r.out}"
    before.assert_through_vf("rx", at_least=20)
    before.assert_through_vf("tx", at_least=20)


def test_a_departure_restores_hn0_and_falls_back(idle_run: IdleRun) -> None:
    rig = idle_run.rig
    idle_run.join()
    rig.host_switch("vf")
    switches = rig.hnxdp.pair("hn0")["switches"]
    vf_prog = bpf.pinned_prog_id(str(rig.pin_dir / "hnxdp_vf_ingress"))
    p = vf_depart(rig)
    rig.host_switch("syn")
    assert (p["state"], p["datapath"], p["vf"]) == ("idle", "synthetic", None)
    assert p["switches"] == switches + 1, "the departure is counted"
    assert (last_switch(p)["direction"], last_switch(p)["reason"]) == ("to-synthetic", "departed")
    wait_settings(rig, "hn0", idle_run.hn0_before, "hn0: features and limits exactly as before the join")
    assert not list(rig.pin_dir.rglob("link_vf_ingress")), f"no link_vf_ingress pin left: {rig.pins()}"
    assert bpf.links_of({vf_prog}) == [], "no BPF link of hnxdp_vf_ingress left"
    assert rig.tcx_count("hn0", "ingress") + rig.tcx_count("hn0", "egress") == 2, "hn0 keeps its two programs"
    before = PathCounters.read(rig)
    r = ping(rig, rig.remote, G4, count=20, interval=0.02)
    assert r.rc == 0, f"remote pings the guest on the synthetic path: {r.out}"
    d = before.delta()
    assert d["syn_rx_packets"] >= 20, f"syn_rx_packets rose by {d['syn_rx_packets']}"
    assert d["vf_rx_packets"] == 0


def test_a_returning_vf_is_joined_like_the_first(idle_run: IdleRun) -> None:
    """B15: joined again with hn0 changed as the first time; its departure
    restores hn0 exactly again."""
    rig = idle_run.rig
    idle_run.join()
    vf_depart(rig)
    wait_settings(rig, "hn0", idle_run.hn0_before, "hn0 restored after the first departure")
    p, _, _, ifindex = idle_run.join()
    assert p["vf"]["ifindex"] == ifindex, "the pair's VF is the new vf0"
    assert_joined_like_the_first(rig)
    assert p["gso"]["saved_max_size"] == idle_run.hn0_before["gso_max_size"], "saved: hn0's own, not the VF's"
    vf_depart(rig)
    wait_settings(rig, "hn0", idle_run.hn0_before, "hn0 restored after the second departure")


def test_sigterm_leaves_the_datapath_in_place(idle_run: IdleRun) -> None:
    rig = idle_run.rig
    idle_run.join()
    assert idle_run.run.stop() == 0, "run exits 0 on SIGTERM"
    assert (rig.pin_dir / "hnxdp_pairs").exists(), "datapath still pinned"
    assert rig.tcx_count("hn0", "ingress") + rig.tcx_count("hn0", "egress") == 2
    assert rig.tcx_count("vf0", "ingress") == 1
    p = rig.hnxdp.pair("hn0")
    assert p is not None and (p["state"], p["datapath"], p["vf"]["name"]) == ("active", "vf", "vf0")


def test_transparent_off_only_reports(rig: Rig) -> None:
    """B3: the VF is shown (state disabled) and nothing changes on hn0 or vf0.
    With --settle-ms 0 a join would follow the report at once; a reload after
    the report is the barrier before looking."""
    rig.vf_remove_planned()
    rig.ip(rig.guest, "link", "set", "hn0", "mtu", "1400")  # a join would push this to vf0
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "0", "--transparent", "off")
    wait_pair(rig, state_is("disabled"), REACT, "pair hn0 disabled")
    hn0 = rig.dev_settings("hn0")
    rig.vf_up = False
    rig.vf_prepare("ethtool -K vf0 tso off")
    vf0 = rig.dev_settings("vf0")
    rig.vf_take_mac()
    wait_pair(rig, state_is("disabled", "vf0"), REACT, "vf0 reported (state disabled)")
    d.hup()
    p = rig.hnxdp.pair("hn0")
    assert (p["state"], p["datapath"], p["vf"]["name"], p["switches"]) == ("disabled", "synthetic", "vf0", 0)
    assert rig.dev_settings("hn0") == hn0, "hn0 unchanged"
    vf0_after = rig.dev_settings("vf0")
    assert vf0_after.pop("address") == rig.mac
    vf0.pop("address")
    assert vf0_after == vf0, "vf0 unchanged (features, MTU, down)"
    assert vf0_after["mtu"] == 1500 and "UP" not in vf0_after["flags"]
    for dev in ("hn0", "vf0"):
        assert rig.tcx_count(dev, "ingress", "") + rig.tcx_count(dev, "egress", "") == 0, f"no program on {dev}"
    assert d.stop() == 0
    d.assert_no_error()
