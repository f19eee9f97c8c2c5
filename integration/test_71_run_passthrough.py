"""While a pair is joined by `hnxdp run`, changes on the synthetic reach the VF
and direct changes on the VF are put back (B6, B7, B11, B12, B13). Ported from
scripts/tests/71-run-passthrough.sh.

The VF is a real "VF that refuses some MTUs and lacks some offloads": a
native XDP program on its host-side end (vf0h) makes the kernel cap vf0's
max MTU at about 3500 and turn its TSO off.

What a user observes is what is asserted: the VF's settings (`ip -j link`,
`ip maddr`), hn0's offloads (ethtool) and `dump --json` (mtu, effective
features, state). The bash test bounded every reaction (<= 100 ms, multicast
<= 1 s): here each is a correctness wait with a generous bound; how fast
hnxdp reacts is the benchmark's business. The documented warnings (an MTU
the VF refuses, a change made directly on the VF) are checked by level: one
more warning-level line; their wording is not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from lib.control import REACT, flags, limit_vf, multicast, vf_depart, wait_joined
from lib.counters import PathCounters
from lib.daemon import Daemon
from lib.rig import G4, Rig
from lib.traffic import ping
from lib.wait import wait_until

MC = "33:33:00:48:4e:71"
# `ip link set hn0 ...` and the flag vf0 must then have (or not), in order.
FLAG_STEPS = {
    "up": ((("down",), "UP", False), (("up",), "UP", True)),
    "promisc": ((("promisc", "on"), "PROMISC", True), (("promisc", "off"), "PROMISC", False)),
    "allmulticast": ((("allmulticast", "on"), "ALLMULTI", True), (("allmulticast", "off"), "ALLMULTI", False)),
}


@dataclass
class Passthrough:
    rig: Rig
    run: Daemon
    vf_max_mtu: int
    hn0_before: dict[str, Any]

    def mtu(self, dev: str) -> int:
        return int(self.rig.link(self.rig.guest, dev)["mtu"])

    def wait_mtu(self, dev: str, mtu: int, what: str) -> None:
        wait_until(lambda: self.mtu(dev) == mtu, REACT, what)

    def feature(self, dev: str, name: str) -> str:
        return self.rig.features(dev)[name]

    def effective(self) -> list[str]:
        return self.rig.hnxdp.pair("hn0")["features"]["effective"]

    def warnings(self) -> int:
        return len(self.run.lines_at("warning"))

    def wait_warning(self, before: int, what: str) -> None:
        wait_until(lambda: self.warnings() > before, REACT, f"a warning: {what}")

    def set_hn0_mtu_1400(self) -> None:
        self.rig.ip(self.rig.guest, "link", "set", "hn0", "mtu", "1400")
        self.wait_mtu("vf0", 1400, "vf0 takes hn0's MTU 1400")

    def gre_off_on_hn0(self) -> None:
        """The user turns an offload both devices have off on hn0."""
        self.rig.g("ethtool", "-K", "hn0", "tx-gre-segmentation", "off")
        wait_until(lambda: "tx-gre-segmentation" not in self.effective(), REACT,
                   "dump: effective features lack tx-gre-segmentation")


@pytest.fixture
def joined_run(rig: Rig) -> Iterator[Passthrough]:
    limit_vf(rig)
    vf0 = rig.link(rig.guest, "vf0")
    assert vf0["max_mtu"] <= 3600, f"precondition: vf0 refuses MTUs above about 3500 (max_mtu {vf0['max_mtu']})"
    assert rig.features("vf0")["tx-tcp-segmentation"] == "off", "precondition: vf0 cannot do TSO"
    for dev in ("hn0", "vf0"):
        assert rig.features(dev)["tx-gre-segmentation"] == "on", f"precondition: {dev} has tx-gre-segmentation"
    before = rig.dev_settings("hn0")
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "300")
    wait_joined(rig, "vf0", REACT)
    assert rig.features("hn0")["tx-tcp-segmentation"] == "off", "join: hn0 TSO off (intersection with the VF)"
    yield Passthrough(rig, d, int(vf0["max_mtu"]), before)
    assert d.stop() == 0, "run exits 0 on SIGTERM"
    d.assert_no_error()


def test_the_mtu_passes_to_the_vf(joined_run: Passthrough) -> None:
    joined_run.set_hn0_mtu_1400()
    assert joined_run.rig.hnxdp.pair("hn0")["mtu"] == 1400


@pytest.mark.parametrize("flag", FLAG_STEPS)
def test_a_link_flag_follows_hn0(joined_run: Passthrough, flag: str) -> None:
    """up/down, promiscuous, all-multicast: changed on hn0 one way, then back; vf0 follows both times."""
    rig = joined_run.rig
    for setting, name, expect in FLAG_STEPS[flag]:
        rig.ip(rig.guest, "link", "set", "hn0", *setting)
        wait_until(lambda: (name in flags(rig, "vf0")) == expect, REACT,
                   f"hn0 {' '.join(setting)}: vf0 {name} {'set' if expect else 'cleared'}")
    # operstate follows carrier through the kernel's linkwatch, which may lag: waited for.
    wait_until(lambda: (rig.link(rig.guest, "hn0")["operstate"], rig.link(rig.guest, "vf0")["operstate"])
               == ("UP", "UP"), REACT, "hn0 and vf0 both operationally up")


def test_the_multicast_list_follows_hn0(joined_run: Passthrough) -> None:
    rig = joined_run.rig
    rig.ip(rig.guest, "maddr", "add", MC, "dev", "hn0")
    wait_until(lambda: MC in multicast(rig, "vf0"), REACT, f"vf0 gets hn0's multicast address {MC}")
    rig.ip(rig.guest, "maddr", "del", MC, "dev", "hn0")
    wait_until(lambda: MC not in multicast(rig, "vf0"), REACT, f"vf0 loses {MC} after hn0 dropped it")


def test_an_offload_turned_off_on_hn0_is_kept(joined_run: Passthrough) -> None:
    joined_run.gre_off_on_hn0()
    assert joined_run.feature("hn0", "tx-gre-segmentation") == "off", "hn0 keeps the user's choice"
    assert "tx-scatter-gather" in joined_run.effective()


def test_an_offload_turned_on_on_hn0_is_intersected_again(joined_run: Passthrough) -> None:
    rig = joined_run.rig
    joined_run.gre_off_on_hn0()
    r = rig.g("ethtool", "-K", "hn0", "tso", "on", check=False)
    assert r.rc == 0, f"ethtool -K hn0 tso on: {r}"
    wait_until(lambda: joined_run.feature("hn0", "tx-tcp-segmentation") == "off", REACT,
               "hn0 TSO off again (the VF cannot)")
    assert "tx-tcp-segmentation" not in joined_run.effective()
    assert joined_run.feature("hn0", "tx-gre-segmentation") == "off", "the user's earlier choice stays"


def test_an_mtu_the_vf_refuses_puts_hn0_back(joined_run: Passthrough) -> None:
    rig = joined_run.rig
    joined_run.set_hn0_mtu_1400()
    warnings = joined_run.warnings()
    assert joined_run.vf_max_mtu < 4000
    rig.ip(rig.guest, "link", "set", "hn0", "mtu", "4000")  # hn0 takes it; the VF cannot
    joined_run.wait_mtu("hn0", 1400, "hn0 put back to 1400")
    joined_run.wait_warning(warnings, "the VF refused MTU 4000")
    assert joined_run.mtu("vf0") == 1400, "vf0 MTU unchanged"
    assert rig.hnxdp.pair("hn0")["mtu"] == 1400


@pytest.mark.parametrize("change", ("mtu", "down"))
def test_a_direct_change_on_the_vf_is_put_back(joined_run: Passthrough, change: str) -> None:
    rig = joined_run.rig
    warnings = joined_run.warnings()
    if change == "mtu":
        rig.ip(rig.guest, "link", "set", "vf0", "mtu", "1300")
        joined_run.wait_mtu("vf0", joined_run.mtu("hn0"), "vf0's MTU put back to hn0's")
    else:
        rig.ip(rig.guest, "link", "set", "vf0", "down")
        wait_until(lambda: "UP" in flags(rig, "vf0"), REACT, "vf0 put back up")
    joined_run.wait_warning(warnings, f"vf0 {change} changed directly")
    assert rig.hnxdp.pair("hn0")["state"] == "active"


def test_traffic_still_uses_the_vf_after_changes(joined_run: Passthrough) -> None:
    rig = joined_run.rig
    joined_run.set_hn0_mtu_1400()
    rig.ip(rig.guest, "link", "set", "hn0", "down")
    wait_until(lambda: "UP" not in flags(rig, "vf0"), REACT, "vf0 down with hn0")
    rig.ip(rig.guest, "link", "set", "hn0", "up")
    wait_until(lambda: "UP" in flags(rig, "vf0") and rig.carrier(rig.guest, "vf0"), REACT, "vf0 up with hn0")
    rig.ip(rig.guest, "link", "set", "vf0", "down")
    wait_until(lambda: "UP" in flags(rig, "vf0"), REACT, "vf0 put back up")
    wait_until(lambda: rig.hnxdp.pair("hn0")["datapath"] == "vf", REACT, "datapath vf")
    rig.host_switch("vf")
    ping(rig, rig.remote, G4, count=2)
    before = PathCounters.read(rig)
    r = ping(rig, rig.remote, G4, count=10, interval=0.02)
    assert r.rc == 0, f"remote pings the guest through the VF: {r.out}"
    before.assert_through_vf("rx", at_least=10)
    before.assert_through_vf("tx", at_least=10)


def test_a_departure_restores_hn0_but_the_users_changes(joined_run: Passthrough) -> None:
    """hn0's offloads read as before the join except the one the user turned
    off meanwhile; the user's MTU stays."""
    rig = joined_run.rig
    joined_run.set_hn0_mtu_1400()
    joined_run.gre_off_on_hn0()
    vf_depart(rig)
    expected = {k: v for k, v in joined_run.hn0_before["features"].items() if k != "tx-gre-segmentation"}

    def features_restored() -> bool:
        now = rig.features("hn0")
        now.pop("tx-gre-segmentation")
        return now == expected
    wait_until(features_restored, REACT, "hn0's features as before the join, but tx-gre-segmentation")
    hn0 = rig.dev_settings("hn0")
    assert hn0["features"]["tx-gre-segmentation"] == "off", "the user's choice survives the departure"
    assert hn0["features"]["tx-tcp-segmentation"] == "on", "TSO back on"
    assert hn0["gso_max_size"] == joined_run.hn0_before["gso_max_size"]
    assert hn0["mtu"] == 1400, "hn0's MTU stays the user's 1400"
    assert not list(rig.pin_dir.rglob("link_vf_ingress")), f"no link_vf_ingress pin left: {rig.pins()}"
