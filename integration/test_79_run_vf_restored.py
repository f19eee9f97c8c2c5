"""What `run` passes down to the VF while joined is taken back when the pair
lets the VF go, and nothing of it stays on the VF (B11, B13, B21): hnxdp's
multicast addresses, promiscuous and all-multicast mode, the pushed MTU and
admin state, and its IPv6 autoconfiguration (B24: off while joined). Ported
from scripts/tests/79-run-vf-restored.sh.

vf0 starts down with MTU 2000 (up and down once before, so what the kernel
keeps of having been up is in the baseline too).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from lib.control import REACT, flags, multicast, wait_joined
from lib.daemon import Daemon, wait_pair
from lib.rig import Rig, open_rig
from lib.wait import wait_until

MC = "01:00:5e:01:02:03"
OTHER_MAC = "02:00:00:00:79:79"


@pytest.fixture
def vf_down(hnxdp_binary: Path) -> Iterator[Rig]:
    with open_rig(hnxdp_binary, vf_up=False) as rig:
        rig.ip(rig.guest, "link", "set", "vf0", "mtu", "2000")
        rig.ip(rig.guest, "link", "set", "vf0", "up")
        rig.ip(rig.guest, "link", "set", "vf0", "down")
        yield rig


def vf_snapshot(rig: Rig) -> str:
    """vf0 as `ip -d link`, its multicast list and its IPv6 autoconfiguration
    show it, its address masked."""
    text = "\n".join([rig.ip(rig.guest, "-d", "link", "show", "dev", "vf0").out,
                      rig.ip(rig.guest, "maddr", "show", "dev", "vf0").out,
                      rig.g("sysctl", "net.ipv6.conf.vf0.autoconf", "net.ipv6.conf.vf0.accept_ra").out])
    return re.sub(f"{re.escape(rig.mac)}|{re.escape(OTHER_MAC)}", "MAC", text)


def wait_vf_as(rig: Rig, before: str, what: str) -> None:
    last = [""]

    def same() -> bool:
        last[0] = vf_snapshot(rig)
        return last[0] == before
    try:
        wait_until(same, REACT, what)
    except AssertionError:
        raise AssertionError(f"{what}: vf0 reads\n{last[0]}\ninstead of\n{before}") from None


def pass_down(rig: Rig) -> None:
    """hn0's multicast address, promiscuous and all-multicast mode reach vf0;
    the joined vf0 does no IPv6 autoconfiguration."""
    rig.ip(rig.guest, "maddr", "add", MC, "dev", "hn0")
    rig.ip(rig.guest, "link", "set", "hn0", "promisc", "on", "allmulticast", "on")
    wait_until(lambda: MC in multicast(rig, "vf0"), REACT, f"vf0 gets hn0's multicast address {MC}")
    wait_until(lambda: {"PROMISC", "ALLMULTI"} <= flags(rig, "vf0"), REACT, "vf0 promiscuous and all-multicast")
    r = rig.g("sysctl", "-n", "net.ipv6.conf.vf0.autoconf", "net.ipv6.conf.vf0.accept_ra")
    assert r.out.split() == ["0", "0"], f"no IPv6 autoconfiguration on the joined vf0: {r.out!r}"


def hn0_plain(rig: Rig) -> None:
    rig.ip(rig.guest, "link", "set", "hn0", "promisc", "off", "allmulticast", "off")
    rig.ip(rig.guest, "maddr", "del", MC, "dev", "hn0")


def test_a_vf_let_go_under_run_reads_as_before(vf_down: Rig) -> None:
    """The VF stops being the VF (its MAC changes) while run runs: vf0 reads
    exactly as before the join, but for its address."""
    rig = vf_down
    before = vf_snapshot(rig)
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "0")
    wait_joined(rig, "vf0", REACT)
    pass_down(rig)
    rig.ip(rig.guest, "link", "set", "vf0", "address", OTHER_MAC)
    wait_pair(rig, lambda p: p is not None and p["state"] != "active" and p["vf"] is None, REACT,
              "pair hn0 lets vf0 go")
    wait_vf_as(rig, before, "vf0 reads as before the join")
    assert d.stop() == 0
    d.assert_no_error()
    hn0_plain(rig)


def test_detach_after_run_restores_the_vf(vf_down: Rig) -> None:
    """vf0 joined, let go and joined again; run is stopped; `detach` restores
    vf0 the same way."""
    rig = vf_down
    before = vf_snapshot(rig)
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "0")
    wait_joined(rig, "vf0", REACT)
    pass_down(rig)
    rig.ip(rig.guest, "link", "set", "vf0", "address", OTHER_MAC)
    wait_pair(rig, lambda p: p is not None and p["vf"] is None, REACT, "pair hn0 lets vf0 go")
    hn0_plain(rig)
    rig.ip(rig.guest, "link", "set", "vf0", "address", rig.mac)
    wait_joined(rig, "vf0", REACT)
    pass_down(rig)
    assert d.stop() == 0
    d.assert_no_error()
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, str(r)
    after = vf_snapshot(rig)  # detach has returned: nothing left to wait for
    assert after == before, f"vf0 reads as before the join after detach:\n{after}\ninstead of\n{before}"
    hn0_plain(rig)
