"""Capabilities, segmentation limits and MTU on join, exact restore on detach
(B4, B5, B6, B13); ported from scripts/tests/30-features.sh.

vf0 has tso and tx-udp-segmentation off, gso_max_size 32768, gso_max_segs 100
and a larger MTU (2000); hn0 an MTU of 1400.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pytest

from lib.checks import assert_unchanged
from lib.rig import G4, Rig
from lib.traffic import TcpEcho, tcp_client

SEGMENTATION = ("tcp-segmentation-offload", "tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-udp-segmentation")


@dataclass(frozen=True)
class Prepared:
    """A rig whose VF offers less than its synthetic, and hn0/vf0 as they were."""

    rig: Rig
    hn0_gso_max_size: int
    hn0_gso_max_segs: int
    before: dict[str, str]

    def device(self, dev: str) -> str:
        """What must read the same before attach and after detach."""
        return self.rig.g("ethtool", "-k", dev).out + self.rig.ip(self.rig.guest, "-d", "link", "show", "dev", dev).out


@pytest.fixture
def attached(rig: Rig) -> Iterator[Prepared]:
    rig.g("ethtool", "-K", "vf0", "tso", "off", "tx-udp-segmentation", "off")
    rig.ip(rig.guest, "link", "set", "vf0", "gso_max_size", "32768", "gso_max_segs", "100", "mtu", "2000")
    rig.ip(rig.guest, "link", "set", "hn0", "mtu", "1400")
    assert rig.features("vf0")["tx-tcp-segmentation"] == "off"
    assert rig.features("hn0")["tx-tcp-segmentation"] == "on"
    hn0 = rig.link(rig.guest, "hn0")
    prepared = Prepared(rig, hn0["gso_max_size"], hn0["gso_max_segs"], {})
    prepared.before.update({dev: prepared.device(dev) for dev in ("hn0", "vf0")})
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach hn0/vf0: {r}"
    yield prepared


def test_join_intersects_the_features(attached: Prepared) -> None:
    hn0 = attached.rig.features("hn0")
    assert {f: hn0[f] for f in SEGMENTATION} == {f: "off" for f in SEGMENTATION}
    assert (hn0["tx-scatter-gather"], hn0["tx-checksum-ip-generic"]) == ("on", "on"), "what both have stays on"


def test_join_takes_the_smaller_segmentation_limits(attached: Prepared) -> None:
    hn0 = attached.rig.link(attached.rig.guest, "hn0")
    assert (hn0["gso_max_size"], hn0["gso_max_segs"]) == (32768, 100)


def test_join_pushes_the_mtu_to_the_vf(attached: Prepared) -> None:
    rig = attached.rig
    assert (rig.link(rig.guest, "vf0")["mtu"], rig.link(rig.guest, "hn0")["mtu"]) == (1400, 1400)


def test_dump_reports_saved_and_effective_values(attached: Prepared) -> None:
    p = attached.rig.hnxdp.pair("hn0")
    assert p is not None
    assert p["mtu"] == 1400
    assert p["gso"] == {"max_size": 32768, "max_segs": 100, "saved_max_size": attached.hn0_gso_max_size,
                        "saved_max_segs": attached.hn0_gso_max_segs}
    features = p["features"]
    assert "tx-tcp-segmentation" in features["saved"]
    assert "tx-tcp-segmentation" not in features["vf"]
    assert "tx-tcp-segmentation" not in features["effective"]
    assert "tx-scatter-gather" in features["effective"]


def test_tcp_with_large_writes_through_the_pair(attached: Prepared) -> None:
    """Segments built for hn0 fit the VF."""
    rig = attached.rig
    rig.host_switch("vf")
    server = TcpEcho.start(rig, rig.guest, "hn0", 5501, seconds=20)
    r = tcp_client(rig, rig.remote, G4, 5501, rounds=20, size=60000, seconds=15)
    assert (r.rc, r.out.strip()) == (0, "20 1200000"), f"tcp_client: {r}"
    server.finish()


def test_detach_restores_both_devices_exactly(attached: Prepared) -> None:
    r = attached.rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach: {r}"
    for dev, before in attached.before.items():
        assert_unchanged(before, attached.device(dev), f"{dev}: ethtool -k and ip -d link show")
