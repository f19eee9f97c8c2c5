"""Attaching a pair that is already attached never duplicates anything (B19),
also when two `attach` run at the same time; ported from
scripts/tests/60-second-attach.sh.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lib.checks import assert_one_stderr_line
from lib.proc import Result
from lib.rig import G4, Rig
from lib.traffic import ping
from lib.wait import wait_until

ATTACH = ("attach", "--synthetic", "hn0", "--vf", "vf0")


def assert_exactly_one(rig: Rig) -> None:
    """One attachment of hn0/vf0: one program per used hook, one pair, one
    pair directory, and traffic flows through it."""
    assert rig.tcx_count("vf0", "ingress") == 1
    assert rig.tcx_count("hn0", "egress") == 1
    assert rig.tcx_count("vf0", "egress") <= 1
    assert rig.tcx_count("hn0", "ingress") <= 1
    pairs = rig.hnxdp.dump()["pairs"]
    assert [(p["synthetic"]["name"], (p["vf"] or {}).get("name")) for p in pairs] == [("hn0", "vf0")]
    assert len([d for d in rig.pin_dir.iterdir() if d.is_dir()]) == 1, f"pins: {rig.pins()}"
    assert ping(rig, rig.remote, G4, count=3, interval=0.05).rc == 0, "remote reaches the guest through the pair"


def assert_noop_or_clean_refusal(r: Result, codes: tuple[int, ...]) -> None:
    assert r.rc in codes, str(r)
    if r.rc != 0:
        assert_one_stderr_line(r, "the other attach")


def detach_leaves_nothing(rig: Rig) -> None:
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach: {r}"
    assert rig.tcx_count("vf0", "ingress") == 0
    assert rig.tcx_count("hn0", "egress") == 0
    assert not rig.pin_dir.exists(), f"pins left: {rig.pins()}"


def test_second_attach_in_a_row_changes_nothing(rig: Rig) -> None:
    rig.host_switch("vf")
    r = rig.hnxdp(*ATTACH)
    assert r.rc == 0, f"first attach: {r}"
    links = rig.tcx_summary("hn0", "vf0")
    assert_noop_or_clean_refusal(rig.hnxdp(*ATTACH), codes=(0, 2))
    assert_exactly_one(rig)
    assert rig.tcx_summary("hn0", "vf0") == links, "the first attach's tcx links stay in place"
    detach_leaves_nothing(rig)


@pytest.mark.parametrize("round_", (1, 2, 3), ids=lambda n: f"round{n}")
def test_two_concurrent_attaches_make_one_pair(rig: Rig, round_: int) -> None:
    """Both start at once (they spin on a go-file): at least one succeeds, the
    other succeeds as a no-op or fails cleanly (1 or 2, one line)."""
    rig.host_switch("vf")
    go = rig.tmp / "go"
    racers = []
    for name in ("a", "b"):
        # Say it is ready, spin (bounded) until the go-file appears, then become hnxdp attach.
        spin = 'touch "$0.$1"; i=0; while [ ! -e "$0" ] && [ $i -lt 2000000 ]; do i=$((i+1)); done; shift; exec "$@"'
        argv = ["sh", "-c", spin, str(go), name, "timeout", "-k", "5", str(int(rig.hnxdp.timeout)),
                *rig.hnxdp.argv(*ATTACH)]
        racers.append(rig.spawn(argv, name=f"racer-{name}", env=rig.hnxdp.env))
    wait_until(lambda: all(Path(f"{go}.{n}").exists() for n in ("a", "b")), 10, "both racers spinning")
    go.touch()
    results = [p.result(rig.hnxdp.timeout + 10) for p in racers]
    assert 0 in [r.rc for r in results], f"no concurrent attach succeeded: {results}"
    for r in results:
        assert_noop_or_clean_refusal(r, codes=(0, 1, 2))
    assert_exactly_one(rig)
    detach_leaves_nothing(rig)
