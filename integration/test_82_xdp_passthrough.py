"""A user's XDP program on the pair (B18), ported from
scripts/tests/82-xdp-passthrough.sh.

`hnxdp xdp attach` puts hnxdp's steering program on hn0 and vf0 and the
user's program behind it: a program that drops one UDP port drops it on the
VF path and, after the VF left, on the synthetic path; other traffic and
pings are unaffected. `hnxdp xdp detach` removes it (the port gets through
again, no XDP on the devices, no XDP pins); `hnxdp detach` removes the XDP
objects with the pair. Bad input is refused with exit 2 and one line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from lib.checks import assert_one_stderr_line
from lib.counters import PathCounters
from lib.rig import G4, Rig
from lib.traffic import ping
from lib.user_xdp import DROP, KEEP, N, STEER, drop_udp_port_object, udp_received, xdp_pins, xdp_prog


@pytest.fixture
def with_program(joined: Rig) -> Rig:
    """The joined pair with drop_udp_port attached (remote's neighbour entry warm)."""
    rig = joined
    ping(rig, rig.remote, G4, count=2)
    obj = drop_udp_port_object(rig)
    r = rig.hnxdp("xdp", "attach", "--synthetic", "hn0", str(obj), "--prog", "drop_udp_port")
    assert r.rc == 0, f"xdp attach: {r}"
    return rig


BAD_INPUT: dict[str, Callable[[Rig, Path], tuple[str, ...]]] = {
    "missing file": lambda rig, obj: ("xdp", "attach", "--synthetic", "hn0", str(rig.tmp / "missing.o")),
    "missing program name": lambda rig, obj: ("xdp", "attach", "--synthetic", "hn0", str(obj), "--prog",
                                              "no_such_prog"),
    "unknown interface": lambda rig, obj: ("xdp", "attach", "--synthetic", "nosuch0", str(obj)),
    "xdp detach with nothing attached": lambda rig, obj: ("xdp", "detach", "--synthetic", "hn0"),
}


@pytest.mark.parametrize("args", BAD_INPUT.values(), ids=BAD_INPUT)
def test_bad_input_is_refused(joined: Rig, args: Callable[[Rig, Path], tuple[str, ...]]) -> None:
    rig = joined
    argv = args(rig, drop_udp_port_object(rig))
    r = rig.hnxdp(*argv)
    assert r.rc == 2, f"expected exit 2: {r}"
    assert_one_stderr_line(r, " ".join(argv))
    assert [xdp_prog(rig, d) for d in ("hn0", "vf0")] == [None, None], "an XDP program was attached"
    assert xdp_pins(rig) == [], "XDP pins were made"


def test_steering_on_both_devices(with_program: Rig) -> None:
    rig = with_program
    assert xdp_prog(rig, "vf0") == STEER
    assert xdp_prog(rig, "hn0") == STEER


def test_drops_its_port_on_the_vf_path(with_program: Rig) -> None:
    rig = with_program
    before = PathCounters.read(rig)
    assert udp_received(rig, (DROP, KEEP)) == {DROP: 0, KEEP: N}
    before.assert_through_vf("rx", at_least=N)
    r = ping(rig, rig.remote, G4, count=3)
    assert r.rc == 0, f"ping through the VF with the program attached: {r.out}"


def test_drops_its_port_on_the_synthetic_path_after_the_vf_left(with_program: Rig) -> None:
    rig = with_program
    rig.vf_remove_planned()
    hn0h_tx = rig.link_packets(rig.host, "hn0h", "tx")
    assert udp_received(rig, (DROP, KEEP)) == {DROP: 0, KEEP: N}
    assert rig.link_packets(rig.host, "hn0h", "tx") - hn0h_tx >= 2 * N, "the datagrams took the synthetic path"
    assert xdp_prog(rig, "hn0") == STEER
    r = ping(rig, rig.remote, G4, count=3)
    assert r.rc == 0, f"ping on the synthetic path with the program attached: {r.out}"


@pytest.mark.parametrize("vf", ("vf-joined", "vf-gone"))
def test_xdp_detach_removes_it(with_program: Rig, vf: str) -> None:
    rig = with_program
    if vf == "vf-gone":
        rig.vf_remove_planned()
    r = rig.hnxdp("xdp", "detach", "--synthetic", "hn0")
    assert r.rc == 0, f"xdp detach: {r}"
    devices = ("hn0", "vf0") if vf == "vf-joined" else ("hn0",)
    assert [xdp_prog(rig, d) for d in devices] == [None] * len(devices), "XDP left on the devices"
    assert xdp_pins(rig) == [], "XDP pins left in the pair directory"
    assert udp_received(rig, (DROP,)) == {DROP: N}, "the dropped port gets through again"


def test_detach_removes_the_xdp_objects_with_the_pair(rig: Rig) -> None:
    """xdp attach without --prog takes the object's first XDP program."""
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach: {r}"
    r = rig.hnxdp("xdp", "attach", "--synthetic", "hn0", str(drop_udp_port_object(rig)))
    assert r.rc == 0, f"xdp attach (first program of the object): {r}"
    assert xdp_prog(rig, "hn0") == STEER
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach: {r}"
    assert [xdp_prog(rig, d) for d in ("hn0", "vf0")] == [None, None], "XDP left after detach"
    assert not rig.pin_dir.exists() or rig.pins() == [], f"pins left after detach: {rig.pins()}"
