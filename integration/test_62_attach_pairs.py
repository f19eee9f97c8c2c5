"""`hnxdp attach --pairs FILE`: many pairs in one invocation, all or nothing.

Three pairs (the rig's hn0/vf0 and two more, hn1/vf1 and hn2/vf2, each with a
MAC of its own) are attached by one `attach --pairs`: every pair is joined, with
the same result an `attach` of each would give, and traffic flows through the
rig's pair. The same list again changes nothing. When one pair of a list is
refused at attach time (its VF's MAC differs), the pairs attached before it
are detached again: every device is as it was, no pins are left, and the one
line on stderr names the pair. A malformed list is refused before anything
changes, as is one that cannot be read (missing, a directory, over 1 MiB).
"""
from __future__ import annotations

import json

import pytest

from lib.checks import assert_one_stderr_line, assert_unchanged
from lib.rig import G4, Rig
from lib.traffic import ping

DEVS = ("hn0", "vf0", "hn1", "vf1", "hn2", "vf2")
LIST = "# synthetic vf\nhn0 vf0\nhn1 vf1   # second\n\nhn2 vf2\n"


def three_pairs(rig: Rig) -> None:
    rig.pairs_add((1, 2))
    rig.host_switch("vf")


def joined(rig: Rig) -> list[tuple[str, str | None, str]]:
    return sorted((p["synthetic"]["name"], (p["vf"] or {}).get("name"), p["state"]) for p in rig.hnxdp.dump()["pairs"])


def test_one_invocation_attaches_every_pair(rig: Rig) -> None:
    three_pairs(rig)
    listing = rig.tmp / "pairs.txt"
    listing.write_text(LIST)
    r = rig.hnxdp("attach", "--pairs", str(listing), "--json")
    assert r.rc == 0, f"attach --pairs: {r}"
    out = json.loads(r.out)
    assert [(p["result"], p["synthetic"]["name"], p["vf"]["name"]) for p in out["pairs"]] == [
        ("attached", "hn0", "vf0"), ("attached", "hn1", "vf1"), ("attached", "hn2", "vf2")], r.out
    assert {"version", "schema_version"} <= out.keys(), r.out
    assert joined(rig) == [("hn0", "vf0", "active"), ("hn1", "vf1", "active"), ("hn2", "vf2", "active")]
    assert rig.tcx_count("vf1", "ingress") == 1 and rig.tcx_count("hn2", "egress") == 1
    assert ping(rig, rig.remote, G4, count=3, interval=0.05).rc == 0, "remote reaches the guest through hn0/vf0"

    # The same list from standard input: every pair is already attached, nothing changes.
    before = rig.snapshot(DEVS)
    r = rig.hnxdp("attach", "--pairs", "-", stdin=LIST)
    assert r.rc == 0, f"attach --pairs - (again): {r}"
    assert r.out.splitlines()[-1] == "attached 0 pairs, 3 already attached", r.out
    assert_unchanged(before, rig.snapshot(DEVS), "attach --pairs of attached pairs")

    r = rig.hnxdp("detach", "--all")
    assert r.rc == 0, f"detach --all: {r}"
    assert not rig.pin_dir.exists(), f"pins left: {rig.pins()}"


@pytest.mark.parametrize("hn0_attached_before", (False, True), ids=("fresh", "hn0-attached-before"))
def test_a_refused_pair_undoes_the_pairs_before_it(rig: Rig, hn0_attached_before: bool) -> None:
    """The pairs this invocation attached are detached again; a pair that was
    attached before it (hn0/vf0 in the second case) stays as it was."""
    three_pairs(rig)
    rig.ip(rig.guest, "link", "set", "vf2", "address", "02:48:4f:00:00:99")  # not hn2's MAC
    if hn0_attached_before:
        r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
        assert r.rc == 0, f"attach hn0/vf0: {r}"
    before = rig.snapshot(DEVS)
    settings = {d: rig.dev_settings(d) for d in DEVS}
    r = rig.hnxdp("attach", "--pairs", "-", stdin=LIST)
    assert r.rc != 0, f"a list with a refused pair was attached: {r}"
    assert_one_stderr_line(r, "attach --pairs with a refused pair")
    undone = "the 1 pair attached before it was" if hn0_attached_before else "the 2 pairs attached before it were"
    assert "pair 3 of 3 (hn2 <- vf2)" in r.err and f"{undone} detached again" in r.err, r.err
    assert joined(rig) == ([("hn0", "vf0", "active")] if hn0_attached_before else [])
    if not hn0_attached_before:
        assert not rig.pin_dir.exists(), f"pins left: {rig.pins()}"
    assert {d: rig.dev_settings(d) for d in DEVS} == settings, "a device kept a setting of the undone pairs"
    assert_unchanged(before, rig.snapshot(DEVS), "attach --pairs that failed on its third pair")


def test_bad_lists_change_nothing(rig: Rig) -> None:
    three_pairs(rig)
    before = rig.snapshot(DEVS)
    listing = rig.tmp / "bad.txt"
    for text, expected in (("hn0 vf0\nhn1\n", "line 2: expected 'SYNTHETIC VF', got 1 field"),
                           ("hn0 vf0\nhn1 vf0\n", "line 2: vf0 is already named on line 1"),
                           ("hn0 vf0\nhn1 bad/name\n", "line 2: 'bad/name' is not a valid interface name"),
                           ("# nothing\n", "names no pair")):
        listing.write_text(text)
        r = rig.hnxdp("attach", "--pairs", str(listing))
        assert r.rc == 2, f"{text!r}: {r}"
        assert_one_stderr_line(r, f"attach --pairs of {text!r}")
        assert expected in r.err, r.err
    for args in (("--pairs", str(listing), "--synthetic", "hn0"), ("--synthetic", "hn0"),
                 ("--pairs", str(rig.tmp / "no-such-file")), ("--pairs", str(rig.tmp))):
        r = rig.hnxdp("attach", *args)
        assert r.rc == 2, f"attach {args}: {r}"
        assert_one_stderr_line(r, f"attach {args}")
    r = rig.hnxdp("attach", "--pairs", "-", stdin="hn0 vf0 # " + "x" * (1 << 20) + "\n")
    assert r.rc == 2 and "larger than 1048576 bytes" in r.err, f"a list of over 1 MiB: {r}"
    assert_unchanged(before, rig.snapshot(DEVS), "refused attach --pairs")
    assert not rig.pin_dir.exists(), f"pins made: {rig.pins()}"
