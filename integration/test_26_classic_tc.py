"""The classic tc attachment, which kernels without tcx (before 6.6) get,
forced here with `--tc-mode classic`; ported from scripts/tests/26-classic-tc.sh
(its parts 1-3; receive and fallback under classic tc are the `classic`
parametrization of test_10 and test_20, VF namespace moves that of test_25).

hnxdp's three programs are cls_bpf direct-action filters at priority 1 handle
0x4858 on clsact; a clsact qdisc and a filter the user had on vf0 stay in
place; a pair keeps its attachment; detach removes only what hnxdp made; a
foreign filter at hnxdp's place and a bad mode are refused with one line,
nothing changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lib import bpf
from lib.checks import assert_one_stderr_line, assert_unchanged
from lib.counters import PathCounters
from lib.daemon import Daemon, state_is, wait_pair
from lib.toolchain import bpf_object
from lib.proc import run
from lib.rig import G4, Rig, repo_root
from lib.traffic import UdpSink, udp_send

N = 200
ATTACH_CLASSIC = ("attach", "--tc-mode", "classic", "--synthetic", "hn0", "--vf", "vf0")
HNXDP_FILTER = "tc-1-0x4858"  # priority 1, handle 0x4858
USER_FILTER = "tc-7-0x7/empty"  # the user's program "empty" at priority 7, handle 7


def filters(rig: Rig, dev: str, direction: str) -> list[str]:
    """The classic tc bpf filters of a guest device's hook, in order: "tc-<pref>-<handle>/<program name>"."""
    return [f"{p['link_id']}/{p['name']}" for p in rig.tcx(dev)[dev][direction] if p.get("classic")]


@dataclass
class UserTc:
    """vf0 with the user's own clsact and bpf filter; the guest before hnxdp."""

    rig: Rig
    program: Path  # the user's BPF object
    before: str  # Rig.snapshot()


@pytest.fixture
def user_tc(rig: Rig) -> UserTc:
    obj = bpf_object(repo_root() / "bpf" / "bench" / "empty.bpf.c", rig.tmp / "empty.o")
    rig.tc(rig.guest, "qdisc", "add", "dev", "vf0", "clsact")
    rig.tc(rig.guest, "filter", "add", "dev", "vf0", "ingress", "prio", "7", "handle", "7", "bpf", "da",
           "obj", str(obj), "sec", "tc")
    assert filters(rig, "vf0", "ingress") == [USER_FILTER]
    return UserTc(rig, obj, rig.snapshot())


@pytest.fixture
def classic_pair(user_tc: UserTc) -> UserTc:
    r = user_tc.rig.hnxdp(*ATTACH_CLASSIC)
    assert r.rc == 0, f"attach --tc-mode classic: {r}"
    return user_tc


BAD_MODES = {
    "option": ({}, ("attach", "--tc-mode", "bogus", "--synthetic", "hn0", "--vf", "vf0"), "auto, tcx or classic"),
    "variable": ({"HNXDP_TC_MODE": "fast"}, ("attach", "--synthetic", "hn0", "--vf", "vf0"), "HNXDP_TC_MODE"),
}


@pytest.mark.parametrize("env, args, named", BAD_MODES.values(), ids=BAD_MODES)
def test_bad_tc_mode_is_refused(user_tc: UserTc, env: dict[str, str], args: tuple[str, ...], named: str) -> None:
    rig = user_tc.rig
    r = run(rig.hnxdp.argv(*args), timeout=rig.hnxdp.timeout, env=env)
    assert r.rc == 2, f"exit 2 expected: {r}"
    assert_one_stderr_line(r, " ".join(args))
    assert named in r.err, f"the line names {named!r}: {r.err!r}"
    assert_unchanged(user_tc.before, rig.snapshot(), "a bad tc mode")


def test_programs_are_classic_filters_before_the_users(classic_pair: UserTc) -> None:
    rig = classic_pair.rig
    assert rig.hnxdp.pair("hn0")["attachment"] == "classic"
    assert filters(rig, "hn0", "ingress") == [f"{HNXDP_FILTER}/hnxdp_syn_ingre"]
    assert filters(rig, "hn0", "egress") == [f"{HNXDP_FILTER}/hnxdp_syn_egres"]
    assert filters(rig, "vf0", "ingress") == [f"{HNXDP_FILTER}/hnxdp_vf_ingres", USER_FILTER], \
        "hnxdp's filter first, the user's kept"
    tcx = [p for d in rig.tcx("hn0", "vf0").values() for h in ("ingress", "egress") for p in d[h]
           if not p.get("classic")]
    assert tcx == [], "no tcx program anywhere"


def test_frames_enter_through_the_vf(classic_pair: UserTc) -> None:
    rig = classic_pair.rig
    rig.host_switch("vf")
    before = PathCounters.read(rig)
    sink = UdpSink.start(rig, rig.guest, "hn0", 5260, seconds=15, expect=N)
    assert udp_send(rig, rig.remote, G4, 5260, N, rate=1000) == N
    assert sink.count() == N, "the socket bound to hn0 received every datagram"
    before.assert_through_vf("rx", at_least=N)


def test_second_pair_prints_nothing_on_stderr(classic_pair: UserTc) -> None:
    """On the loaded datapath, libbpf's messages about errors hnxdp expects
    (no clsact yet, a clsact that exists) stay off stderr."""
    rig = classic_pair.rig
    rig.pair_add(9)
    r = rig.hnxdp("attach", "--tc-mode", "classic", "--synthetic", "hn9", "--vf", "vf9")
    assert (r.rc, r.err) == (0, ""), f"attach of a second classic pair: {r}"
    r = rig.hnxdp("detach", "--synthetic", "hn9")
    assert (r.rc, r.err) == (0, ""), f"detach of the second pair: {r}"


def test_run_asked_for_tcx_adopts_the_pair_as_classic(classic_pair: UserTc) -> None:
    rig = classic_pair.rig
    attached = rig.tcx("hn0", "vf0")
    d = Daemon.start(rig, "--synthetic", "hn0", "--tc-mode", "tcx")
    p = wait_pair(rig, state_is("active", "vf0"), 30, "run adopted hn0")
    assert p["attachment"] == "classic", "the pair keeps its attachment"
    assert rig.tcx("hn0", "vf0") == attached, "the same filters, no tcx link made"
    assert d.stop() == 0, "run exits 0 on SIGTERM"
    d.assert_no_error()


def test_detach_removes_hnxdps_clsact_and_keeps_the_users(classic_pair: UserTc) -> None:
    rig = classic_pair.rig
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach: {r}"
    assert "clsact" not in rig.tc(rig.guest, "qdisc", "show", "dev", "hn0").out, "hnxdp's clsact on hn0 is gone"
    assert filters(rig, "vf0", "ingress") == [USER_FILTER], "vf0 keeps the user's clsact and filter"
    assert_unchanged(classic_pair.before, rig.snapshot(), "links, tc and pins after detach")


def test_foreign_filter_at_hnxdps_place_is_refused(user_tc: UserTc) -> None:
    rig = user_tc.rig
    rig.tc(rig.guest, "filter", "add", "dev", "vf0", "ingress", "prio", "1", "handle", "0x4858", "bpf", "da",
           "obj", str(user_tc.program), "sec", "tc")
    before = rig.snapshot()
    r = rig.hnxdp(*ATTACH_CLASSIC)
    assert r.rc == 1, f"exit 1 expected: {r}"
    assert_one_stderr_line(r, "attach over a foreign filter")
    assert "not hnxdp's" in r.err, f"the line says the filter is not hnxdp's: {r.err!r}"
    assert_unchanged(before, rig.snapshot(), "attach over a foreign filter")
