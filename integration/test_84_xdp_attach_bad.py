"""`hnxdp xdp attach` is all or nothing, ported from
scripts/tests/84-xdp-attach-bad.sh.

A file that is not a loadable XDP program (missing, empty, a directory,
random bytes, text, a BPF object with only a tc program, a --prog name the
object lacks) is refused with exit 2, one clear stderr line (no raw libbpf
error number), nothing on stdout, and changes nothing (links, XDP, tcx, pins
and the programs behind them: user_xdp.xdp_snapshot): on a pair with no XDP
at all, on a pair with a user program (which stays attached and working),
and on that pair after its VF left. A good object that fails late (a foreign
XDP program on vf0) exits 1 and every step taken is undone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lib import bpf
from lib.checks import assert_global_eq, assert_one_stderr_line, assert_unchanged
from lib.rig import G4, Rig, open_rig
from lib.traffic import ping
from lib.user_xdp import (DROP, FOREIGN_XDP_SOURCE, KEEP, N, STEER, TC_ONLY_SOURCE, build_bpf,
                          drop_udp_port_object, udp_received, xdp_pins, xdp_prog, xdp_snapshot)


@dataclass
class Objects:
    drop: Path
    foreign: Path
    bad: dict[str, tuple[str, ...]]  # label -> the arguments after `xdp attach --synthetic hn0`


def make_objects(rig: Rig) -> Objects:
    t = rig.tmp
    (t / "empty.o").write_bytes(b"")
    (t / "dir.o").mkdir()
    (t / "random.o").write_bytes(os.urandom(4096))
    (t / "text.o").write_text('SEC("xdp") int prog(void) { return 2; }\nnot an object file\n')
    drop = drop_udp_port_object(rig)
    tc = build_bpf(rig, TC_ONLY_SOURCE, "tc.o")
    return Objects(drop, build_bpf(rig, FOREIGN_XDP_SOURCE, "pass.o"), {
        "nonexistent path": (str(t / "missing.o"),),
        "empty file": (str(t / "empty.o"),),
        "directory": (str(t / "dir.o"),),
        "random bytes": (str(t / "random.o"),),
        "text file": (str(t / "text.o"),),
        "object with only a tc program": (str(tc),),
        "tc program named with --prog": (str(tc), "--prog", "tc_only"),
        "--prog name the object lacks": (str(drop), "--prog", "no_such_prog"),
    })


BAD = ("nonexistent path", "empty file", "directory", "random bytes", "text file",
       "object with only a tc program", "tc program named with --prog", "--prog name the object lacks")


@dataclass
class Pair:
    rig: Rig
    objects: Objects


def attached_pair(rig: Rig) -> Pair:
    """hn0/vf0 attached, the host on the VF, the remote's neighbour entry warm."""
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach hn0/vf0: {r}"
    rig.host_switch("vf")
    ping(rig, rig.remote, G4, count=2)
    return Pair(rig, make_objects(rig))


def attach_user_program(pair: Pair) -> None:
    r = pair.rig.hnxdp("xdp", "attach", "--synthetic", "hn0", str(pair.objects.drop), "--prog", "drop_udp_port")
    assert r.rc == 0, f"xdp attach of a good program: {r}"


STATES = ("no-xdp", "user-program", "user-program-vf-gone")


@pytest.fixture(scope="module", params=STATES)
def state(request: pytest.FixtureRequest, hnxdp_binary: Path) -> Iterator[tuple[str, Pair]]:
    """Refusals change nothing (each test checks it), so the tests of one state share a rig."""
    with open_rig(hnxdp_binary) as rig:
        pair = attached_pair(rig)
        if request.param != "no-xdp":
            attach_user_program(pair)
        if request.param == "user-program-vf-gone":
            rig.vf_remove_planned()
        yield request.param, pair


@pytest.mark.parametrize("bad", BAD)
def test_bad_object_refused_and_nothing_changes(state: tuple[str, Pair], bad: str) -> None:
    _, pair = state
    rig = pair.rig
    args = ("xdp", "attach", "--synthetic", "hn0", *pair.objects.bad[bad])
    before = xdp_snapshot(rig)
    r = rig.hnxdp(*args)
    after = xdp_snapshot(rig)
    assert r.rc == 2, f"{bad}: expected exit 2: {r}"
    assert_one_stderr_line(r, bad)
    assert "errno 40" not in r.err and "Unknown error" not in r.err, f"{bad}: raw libbpf error: {r.err!r}"
    assert r.out == "", f"{bad}: stdout: {r.out!r}"
    assert_unchanged(before, after, f"{bad}: links, XDP, tcx and pins")


@pytest.mark.parametrize("state", ["no-xdp"], indirect=True)
def test_nothing_attached_or_pinned_after_the_refusals(state: tuple[str, Pair]) -> None:
    _, pair = state
    assert [xdp_prog(pair.rig, d) for d in ("hn0", "vf0")] == [None, None]
    assert xdp_pins(pair.rig) == []


@pytest.mark.parametrize("state", ["user-program", "user-program-vf-gone"], indirect=True)
def test_user_program_stays_and_works_after_the_refusals(state: tuple[str, Pair]) -> None:
    """Steering on the pair's devices, the port dropped, the rest through
    (on the VF path, and on the synthetic path once the VF left)."""
    name, pair = state
    devices = ("hn0", "vf0") if name == "user-program" else ("hn0",)
    assert [xdp_prog(pair.rig, d) for d in devices] == [STEER] * len(devices)
    assert udp_received(pair.rig, (DROP, KEEP)) == {DROP: 0, KEEP: N}


def refused_late(pair: Pair) -> None:
    """A good object while vf0 has a foreign XDP program: attaching hnxdp's
    steering there fails after the object was loaded (and, with no XDP before,
    after steering was pinned and attached to hn0): exit 1, one line saying
    what is wrong, every step undone."""
    rig = pair.rig
    rig.ip(rig.guest, "link", "set", "dev", "vf0", "xdp", "obj", str(pair.objects.foreign), "sec", "xdp")
    before = xdp_snapshot(rig)
    r = rig.hnxdp("xdp", "attach", "--synthetic", "hn0", str(pair.objects.drop))
    after = xdp_snapshot(rig)
    rig.ip(rig.guest, "link", "set", "dev", "vf0", "xdp", "off")
    assert r.rc == 1, f"expected exit 1: {r}"
    assert_one_stderr_line(r, "late failure")
    assert "does not manage" in r.err, f"says what is wrong: {r.err!r}"
    assert_unchanged(before, after, "late failure rolled back: links, XDP, tcx and pins")


def test_late_failure_without_xdp_is_undone(rig: Rig) -> None:
    pair = attached_pair(rig)
    refused_late(pair)
    assert xdp_prog(rig, "hn0") is None, "steering left on hn0"
    assert xdp_pins(rig) == [], "XDP pins left"


def test_late_failure_keeps_the_user_program(rig: Rig) -> None:
    """The VF returns with a foreign XDP program: the pair joins it without
    XDP; attaching another program then fails on vf0 and the first one stays."""
    pair = attached_pair(rig)
    attach_user_program(pair)
    rig.vf_remove_planned()
    rig.vf_add()
    rig.ip(rig.guest, "link", "set", "dev", "vf0", "xdp", "obj", str(pair.objects.foreign), "sec", "xdp")
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach of the returned vf0 with a foreign XDP program: {r}"
    assert xdp_prog(rig, "vf0") == "foreign_pass", "the foreign program stays on vf0"
    rig.ip(rig.guest, "link", "set", "dev", "vf0", "xdp", "off")
    refused_late(pair)
    assert xdp_prog(rig, "hn0") == STEER
    assert udp_received(rig, (DROP, KEEP)) == {DROP: 0, KEEP: N}


def test_detach_leaves_nothing(rig: Rig) -> None:
    progs_before = set(bpf.hnxdp_progs())
    drop_before = set(bpf.progs_named("drop_udp_port"))
    pair = attached_pair(rig)
    attach_user_program(pair)
    r = rig.hnxdp("xdp", "detach", "--synthetic", "hn0")
    assert r.rc == 0, f"xdp detach: {r}"
    assert xdp_prog(rig, "hn0") is None, "XDP on hn0 after xdp detach"
    assert udp_received(rig, (DROP,)) == {DROP: N}, "the dropped port gets through after xdp detach"
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach: {r}"
    assert xdp_prog(rig, "hn0") is None, "XDP on hn0 after detach"
    assert not rig.pin_dir.exists() or rig.pins() == [], f"pins left after detach: {rig.pins()}"
    assert (rig.tcx_count("hn0", "ingress"), rig.tcx_count("hn0", "egress")) == (0, 0), "tcx programs left on hn0"
    assert_global_eq(sorted(set(bpf.hnxdp_progs()) - progs_before), [],
                     "no hnxdp_* program loaded that was not before (bpftool prog show)")
    assert_global_eq(sorted(set(bpf.progs_named("drop_udp_port")) - drop_before), [],
                     "no drop_udp_port program of this test left loaded")
