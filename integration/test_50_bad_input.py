"""Refusals (B1, the exit codes of docs/behaviour.md), ported from
scripts/tests/50-bad-input.sh.

Every refused command exits 2 (bad input) or 3 (no privilege), prints exactly
one line on stderr and changes nothing: guest links, the features of every
device involved, tc, tcx, pins and pinned links read the same before and
after (Rig.snapshot). A MAC mismatch is accepted with --force, and detach
undoes it.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lib.checks import assert_one_stderr_line, assert_unchanged
from lib.hnxdp import Hnxdp
from lib.proc import run
from lib.rig import Rig, open_rig

OTHER_MAC = "02:48:4f:00:00:99"
DEVICES = ("hn0", "vf0", "vfx", "hn1", "br0", "lo")
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
          "--bounding-set=-all", "--")


def add_extra_devices(rig: Rig) -> None:
    """vfx (another MAC), hn1 (hn0's MAC), br0 (a bridge, hn0's MAC); their
    peers stay in the guest and carry no traffic."""
    g = rig.guest
    rig.ip(g, "link", "add", "vfx", "type", "veth", "peer", "name", "vfxp")
    rig.ip(g, "link", "set", "vfx", "address", OTHER_MAC)
    rig.ip(g, "link", "add", "hn1", "type", "veth", "peer", "name", "hn1p")
    rig.ip(g, "link", "set", "hn1", "address", rig.mac)
    rig.ip(g, "link", "add", "br0", "type", "bridge")
    rig.ip(g, "link", "set", "br0", "address", rig.mac)
    for dev in ("vfx", "vfxp", "hn1", "hn1p", "br0"):
        rig.ip(g, "link", "set", dev, "up")


def unprivileged_binary(rig: Rig) -> Path:
    """The binary as uid 65534 can run it: a copy in the rig's (world-readable)
    scratch directory when its own directory is not reachable."""
    if run(["nsenter", f"--net=/run/netns/{rig.guest}", "--", *NOBODY, "test", "-x", str(rig.binary)]).rc == 0:
        return rig.binary
    copy = rig.tmp / "bin" / "hnxdp"
    copy.parent.mkdir(mode=0o755)
    shutil.copy(rig.binary, copy)
    copy.chmod(0o755)
    return copy


@dataclass
class Guest:
    """A rig with the extra devices, its hnxdp as root and as nobody."""

    rig: Rig
    nobody: Hnxdp

    def refused(self, hnxdp: Hnxdp, args: tuple[str, ...], codes: tuple[int, ...]) -> None:
        before = self.rig.snapshot(DEVICES)
        r = hnxdp(*args)
        assert r.rc in codes, f"exit code {r.rc}, expected one of {codes}: {r}"
        assert_one_stderr_line(r, " ".join(args))
        assert_unchanged(before, self.rig.snapshot(DEVICES), " ".join(args))


def make_guest(rig: Rig) -> Guest:
    add_extra_devices(rig)
    return Guest(rig, Hnxdp(unprivileged_binary(rig), rig.guest, prefix=NOBODY))


@pytest.fixture(scope="module")
def idle_guest(hnxdp_binary: Path) -> Iterator[Guest]:
    """Nothing attached. Refusals change nothing (each test checks it), so they share one rig."""
    with open_rig(hnxdp_binary) as rig:
        yield make_guest(rig)


@pytest.fixture(scope="module")
def paired_guest(hnxdp_binary: Path) -> Iterator[Guest]:
    """hn0/vf0 attached."""
    with open_rig(hnxdp_binary) as rig:
        guest = make_guest(rig)
        r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
        assert r.rc == 0, f"attach hn0/vf0: {r}"
        yield guest
        r = rig.hnxdp("detach", "--synthetic", "hn0")
        assert r.rc == 0, f"detach hn0: {r}"


REFUSED_WITH_NOTHING_ATTACHED = {
    "unknown synthetic": ("attach", "--synthetic", "nosuch0", "--vf", "vf0"),
    "unknown VF": ("attach", "--synthetic", "hn0", "--vf", "nosuch0"),
    "MAC mismatch without --force": ("attach", "--synthetic", "hn0", "--vf", "vfx"),
    "same device twice": ("attach", "--synthetic", "hn0", "--vf", "hn0"),
    "loopback as VF": ("attach", "--synthetic", "hn0", "--vf", "lo"),
    "loopback as synthetic": ("attach", "--synthetic", "lo", "--vf", "vf0"),
    "bridge (same MAC) as VF": ("attach", "--synthetic", "hn0", "--vf", "br0"),
    "bridge (same MAC) as synthetic": ("attach", "--synthetic", "br0", "--vf", "vf0"),
    "attach without --vf": ("attach", "--synthetic", "hn0"),
    "unknown subcommand": ("frobnicate",),
}

REFUSED_WITH_A_PAIR = {
    "second pair with an already-paired VF": ("attach", "--synthetic", "hn1", "--vf", "vf0"),
    "synthetic of a pair used as VF": ("attach", "--synthetic", "hn1", "--vf", "hn0"),
    "VF of a pair used as synthetic": ("attach", "--synthetic", "vf0", "--vf", "hn1"),
}

UNPRIVILEGED_WITH_A_PAIR = {
    "detach": ("detach", "--synthetic", "hn0"),
    "detach --all": ("detach", "--all"),
}


@pytest.mark.parametrize("args", REFUSED_WITH_NOTHING_ATTACHED.values(), ids=REFUSED_WITH_NOTHING_ATTACHED)
def test_refused_with_nothing_attached(idle_guest: Guest, args: tuple[str, ...]) -> None:
    idle_guest.refused(idle_guest.rig.hnxdp, args, codes=(2,))


def test_attach_without_privilege_exits_3(idle_guest: Guest) -> None:
    idle_guest.refused(idle_guest.nobody, ("attach", "--synthetic", "hn0", "--vf", "vf0"), codes=(3,))


def test_mac_mismatch_accepted_with_force_and_undone_by_detach(rig: Rig) -> None:
    add_extra_devices(rig)
    before = rig.snapshot(DEVICES)
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vfx", "--force")
    assert r.rc == 0, f"attach --force: {r}"
    pair = rig.hnxdp.pair("hn0")
    assert pair is not None and pair["vf"]["name"] == "vfx"
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach: {r}"
    assert_unchanged(before, rig.snapshot(DEVICES), "detach after attach --force")


def test_same_pair_again_changes_nothing(paired_guest: Guest) -> None:
    """A clear no-op (0) or a clear refusal (2, one line)."""
    rig = paired_guest.rig
    before = rig.snapshot(DEVICES)
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc in (0, 2), str(r)
    if r.rc != 0:
        assert_one_stderr_line(r, "same pair again")
    assert_unchanged(before, rig.snapshot(DEVICES), "same pair again")


@pytest.mark.parametrize("args", REFUSED_WITH_A_PAIR.values(), ids=REFUSED_WITH_A_PAIR)
def test_refused_with_a_pair(paired_guest: Guest, args: tuple[str, ...]) -> None:
    paired_guest.refused(paired_guest.rig.hnxdp, args, codes=(2,))


@pytest.mark.parametrize("args", UNPRIVILEGED_WITH_A_PAIR.values(), ids=UNPRIVILEGED_WITH_A_PAIR)
def test_without_privilege_with_a_pair_exits_3(paired_guest: Guest, args: tuple[str, ...]) -> None:
    paired_guest.refused(paired_guest.nobody, args, codes=(3,))
