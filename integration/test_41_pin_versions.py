"""The pins say which hnxdp made them (the pinned map hnxdp_meta: pin layout
and version), a binary refuses pins of another layout, and `hnxdp migrate`
moves the pairs onto pins it can use without losing the devices' originals;
ported from scripts/tests/41-pin-versions.sh.

vf0 has tso off and gso 30000/40, hn0 MTU 1400; the host sends to the guest
through vf0 only. Pins of another hnxdp are made by rewriting the pinned
hnxdp_meta as that hnxdp would have written it (struct hnxdp_meta of
bpf/hnxdp_shared.h, which never changes), or by removing it (pins made before
versioning). Checked:
  - nothing pinned, or pins of this layout: migrate changes nothing;
  - attach's pins name this hnxdp (status --json pinned_by);
  - migrate refuses while `hnxdp run` runs, naming its pid;
  - pins of this layout by another version are used as they are;
  - pins of another layout, or unversioned: attach, detach, run, xsk and
    status refuse with exit 1 and one line naming both and `hnxdp migrate`
    (status --json still says who made them), changing nothing; migrate
    attaches the pair again with this hnxdp, and UDP from the remote reaches
    a socket on hn0 through the VF;
  - migrate SIGKILLed at spread points of its bpf, ioctl and rename calls, then
    a second migrate or `detach --all`: after a final detach the guest reads
    exactly as before the first attach, with no pin, link or record left.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from lib.crash import GuestState, assert_refused, killed_at, meta_path, meta_set_layout, meta_set_version, \
    records, require_strace, spread, syscall_count, traced
from lib.daemon import Daemon
from lib.rig import G4, Rig
from lib.traffic import UdpSink, udp_send

ATTACH = ("attach", "--synthetic", "hn0", "--vf", "vf0")
N = 20  # UDP datagrams after a migrate
PER_CALL = 4


@dataclass
class Versions:
    rig: Rig
    before: GuestState  # before the first attach
    version: str = ""
    layout: int = 0

    @property
    def this(self) -> str:
        return f"hnxdp {self.version} (pin layout {self.layout})"

    def attach(self) -> None:
        self.rig.hnxdp.ok(*ATTACH)

    def status(self) -> dict[str, Any]:
        return self.rig.hnxdp.status()

    def attached_again(self, label: str) -> None:
        """hn0 <- vf0 active on pins of this hnxdp, with a record, and frames
        from the remote reach a socket on hn0 through the VF."""
        rig = self.rig
        s = self.status()
        p = s["pairs"][0]
        assert (p["state"], (p["vf"] or {}).get("name")) == ("active", "vf0"), f"{label}: {p}"
        assert (s["pinned_by"]["version"], s["pinned_by"]["pin_layout"]) == (self.version, self.layout), \
            f"{label}: pins made by this hnxdp: {s['pinned_by']}"
        assert len(records(rig)) == 1, f"{label}: a write-ahead record again: {records(rig)}"
        before = rig.hnxdp.stats()["vf_rx_packets"]
        sink = UdpSink.start(rig, rig.guest, "hn0", 7000, seconds=8, expect=N, linger=0.5)
        assert udp_send(rig, rig.remote, G4, 7000, N) == N
        assert sink.count() == N, f"{label}: the socket on hn0 received every datagram"
        assert rig.hnxdp.stats()["vf_rx_packets"] - before >= N, f"{label}: they came in through the VF"


@pytest.fixture
def versions(rig: Rig) -> Iterator[Versions]:
    rig.vf_less_capable()
    rig.ip(rig.guest, "link", "set", "hn0", "mtu", "1400")
    v = Versions(rig, GuestState.read(rig))
    rig.host_switch("vf")  # the remote's frames reach the guest through vf0 only
    s = rig.hnxdp.dump()
    v.version, v.layout = s["version"], s["pin_layout"]
    yield v


@pytest.fixture
def attached(versions: Versions) -> Versions:
    versions.attach()
    return versions


def test_migrate_with_nothing_pinned_changes_nothing(versions: Versions) -> None:
    rig = versions.rig
    r = rig.hnxdp("migrate")
    assert r.rc == 0, f"migrate: {r}"
    assert "nothing to migrate" in r.out, r.out
    versions.before.assert_again(rig, "migrate with nothing pinned")


def test_pins_name_the_hnxdp_that_made_them(attached: Versions) -> None:
    v, rig = attached, attached.rig
    pinned_by = v.status()["pinned_by"]
    assert pinned_by == {"version": v.version, "pin_layout": v.layout, "usable": True}, pinned_by
    assert meta_path(rig).exists(), "hnxdp_meta is pinned with the others"
    state = GuestState.read(rig)
    r = rig.hnxdp("migrate")
    assert r.rc == 0 and "nothing to migrate" in r.out, f"pins of this layout: {r}; {r.out!r}"
    state.assert_again(rig, "migrate of pins of this layout")


def test_migrate_refuses_while_run_runs(attached: Versions) -> None:
    rig = attached.rig
    d = Daemon.start(rig, "--synthetic", "hn0")
    r = rig.hnxdp("migrate")
    assert_refused(r, "migrate while run runs", f"hnxdp run (pid {d.pid})", "stop it first")
    assert d.alive()
    assert d.stop() == 0


def test_pins_of_another_version_of_this_layout_are_used(attached: Versions) -> None:
    v, rig = attached, attached.rig
    meta_set_version(rig, "0.0.1")
    r = rig.hnxdp("status", "--json", "-v")
    assert r.rc == 0, f"status: {r}"
    s = json.loads(r.out)
    assert s["pinned_by"] == {"version": "0.0.1", "pin_layout": v.layout, "usable": True}, s["pinned_by"]
    assert s["pairs"][0]["state"] == "active", s["pairs"]
    assert f"made by hnxdp 0.0.1 with the same pin layout ({v.layout}): using them" in r.err, \
        f"said at info level (-v): {r.err!r}"
    r = rig.hnxdp(*ATTACH, "--json")
    assert r.rc == 0, f"attach: {r}"
    assert json.loads(r.out)["result"] == "already-attached", r.out


# ---------------------------------------------------------------- pins of another layout, unversioned pins

def make_foreign(v: Versions, kind: str) -> list[str]:
    """Turn the pins into another hnxdp's; the words its refusals name."""
    if kind == "other-layout":
        meta_set_layout(v.rig, v.layout + 1)
        return [f"pin layout {v.layout + 1}"]
    meta_path(v.rig).unlink()
    return ["before pin versioning"]


COMMANDS = {"attach": ATTACH, "detach": ("detach", "--synthetic", "hn0"), "run": ("run", "--synthetic", "hn0"),
            "xsk-count": ("xsk", "count", "--synthetic", "hn0", "--seconds", "1")}
KINDS = ("other-layout", "unversioned")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", KINDS)
def test_foreign_pins_are_refused(attached: Versions, kind: str, command: str) -> None:
    v, rig = attached, attached.rig
    words = make_foreign(v, kind)
    state = GuestState.read(rig, locks=False)  # a refused run leaves its <ino>.run lock file
    assert_refused(rig.hnxdp(*COMMANDS[command]), f"{kind}: {command}", *words, v.this, "hnxdp migrate")
    state.assert_again(rig, f"{kind}: the refused {command}")


@pytest.mark.parametrize("kind", KINDS)
def test_status_says_who_made_foreign_pins(attached: Versions, kind: str) -> None:
    v, rig = attached, attached.rig
    words = make_foreign(v, kind)
    r = rig.hnxdp("status", "--json")
    assert_refused(r, f"{kind}: status --json", *words, "hnxdp migrate")
    pinned_by = json.loads(r.out)["pinned_by"]
    expected = {"other-layout": v.layout + 1, "unversioned": None}[kind]
    # docs/json.md: null for unversioned pins (this hnxdp leaves the key out; .get reads both as None).
    assert (pinned_by.get("pin_layout"), pinned_by["usable"]) == (expected, False), pinned_by
    assert len(records(rig)) == 1, "the record of the originals is still there"


@pytest.mark.parametrize("kind", KINDS)
def test_migrate_attaches_the_pairs_again(attached: Versions, kind: str) -> None:
    v, rig = attached, attached.rig
    words = make_foreign(v, kind)
    r = rig.hnxdp("migrate")
    assert r.rc == 0, f"migrate: {r}"
    for w in ["hn0 <- vf0"] + (words if kind == "other-layout" else []):
        assert w in r.out, f"migrate names {w!r}: {r.out!r}"
    v.attached_again(kind)
    rig.hnxdp.ok("detach", "--synthetic", "hn0")
    v.before.assert_again(rig, f"{kind}: migrate, then detach")


# ---------------------------------------------------------------- migrate killed half-way

@pytest.mark.parametrize("syscall", ("bpf", "ioctl", "rename"))
def test_migrate_killed_half_way_loses_nothing(attached: Versions, syscall: str) -> None:
    """Even points: a second migrate finishes (then detach); odd points:
    `detach --all` finishes."""
    require_strace()
    v, rig = attached, attached.rig
    meta_set_layout(rig, v.layout + 1)
    trace = rig.tmp / "migrate.trace"
    r = traced(rig, trace, "migrate", syscalls=("bpf", "ioctl", "rename"))
    assert r.rc == 0, f"traced migrate: {r}"
    points = spread(syscall_count(trace, syscall), PER_CALL)
    assert len(points) >= 2, f"migrate makes too few {syscall} calls to kill: {points}"
    killed = 0
    for i, k in enumerate(points):
        label = f"{syscall}#{k}"
        meta_set_layout(rig, v.layout + 1)
        killed += killed_at(rig, syscall, k, "migrate")
        if i % 2 == 0:
            r = rig.hnxdp("migrate")
            assert r.rc == 0, f"{label}: migrate again: {r}"
            p = rig.hnxdp.pair("hn0")
            assert p is not None and p["state"] == "active", f"{label}: hn0 active again: {p}"
            r = rig.hnxdp("detach", "--synthetic", "hn0")
            assert r.rc == 0, f"{label}: detach: {r}"
        else:
            r = rig.hnxdp("detach", "--all")
            assert r.rc == 0, f"{label}: detach --all: {r}"
        v.before.assert_again(rig, label)
        v.attach()
    assert killed >= 1, f"no kill point of {points} killed migrate"
    rig.hnxdp.ok("detach", "--synthetic", "hn0")
    v.before.assert_again(rig, "final")
