"""No kill -9 anywhere in a join or a leave loses the devices' original
settings (B21), ported from scripts/tests/35-crash-kill-points.sh (and its
classic run in 26).

The VF is less capable and configured differently from the synthetic (tso off,
gso 30000/40, MTU 2000, all-multicast on); the synthetic has MTU 1400. strace
kills hnxdp with SIGKILL at spread points of its bpf, ioctl and sendto calls
(up to $KILL_POINTS_PER_CALL, default 7, per call and phase):

  attach        recovered by `detach`
  detach        recovered by `detach`
  run, join     (a VF arrives: vf0 takes the synthetic's MAC) recovered by a new `run`
  run, leave    (vf0 takes another MAC: it stops being the VF) recovered by `detach`

After each recovery, and again after a further attach + detach, the guest reads
exactly as before the first attach (lib/crash.py GuestState: links, features,
tc, tcx, multicast lists, the VF's IPv6 autoconfiguration, pins, records).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from lib.crash import SYSCALLS, GuestState, killed_at, record_phases, require_strace, spread, stop_strace, \
    strace_attach, syscall_count, traced, wait_dead
from lib.daemon import Daemon, state_is
from lib.rig import TC_MODES, Rig, tc_mode_id
from lib.wait import wait_until

PER_CALL = int(os.environ.get("KILL_POINTS_PER_CALL", "7"))
ATTACH = ("attach", "--synthetic", "hn0", "--vf", "vf0")
DETACH = ("detach", "--synthetic", "hn0")
RUN = ("--synthetic", "hn0", "--settle-ms", "0")
OTHER_MAC = "02:00:00:00:35:35"

pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)


def joined(rig: Rig, p: dict[str, Any] | None) -> bool:
    """The join is complete: active with vf0, and its record says joined."""
    return state_is("active", "vf0")(p) and record_phases(rig) == ["joined"]


def left(rig: Rig, p: dict[str, Any] | None) -> bool:
    """The leave is complete: no longer active, and the record is gone (the
    state changes first, the devices are restored after)."""
    return p is not None and p["state"] != "active" and record_phases(rig) == []


@dataclass
class Crash:
    rig: Rig
    before: GuestState
    killed: int = 0

    def recover_detach(self, label: str) -> None:
        """`detach` after a kill: exit 0, or 2 "not attached" when the kill came
        before anything was recorded; then the guest reads as before."""
        r = self.rig.hnxdp(*DETACH)
        assert r.rc == 0 or (r.rc == 2 and "not attached" in r.err), f"{label}: detach after the kill: {r}"
        self.before.assert_again(self.rig, f"{label}: after detach")

    def again(self, label: str) -> None:
        """A further attach + detach also ends as before (no already-changed
        value was recorded as an original)."""
        r = self.rig.hnxdp(*ATTACH)
        assert r.rc == 0, f"{label}: attach after the recovery: {r}"
        r = self.rig.hnxdp(*DETACH)
        assert r.rc == 0, f"{label}: detach after the recovery: {r}"
        self.before.assert_again(self.rig, f"{label}: after attach + detach")

    def vf_mac(self, mac: str) -> None:
        self.rig.ip(self.rig.guest, "link", "set", "vf0", "address", mac)

    def run_phase(self, phase: str, label: str, trace: str | None = None,
                  kill_at: tuple[str, int] | None = None) -> bool:
        """`run` idle with the phase's precondition, strace attached, then the
        trigger: vf0 takes the synthetic's MAC (join) or another one (leave).
        With trace, every call is written there and the phase is waited for;
        with kill_at, SIGKILL at that call. True when run was killed."""
        rig = self.rig
        d = Daemon.start(rig, *RUN)
        if phase == "leave":
            wait_until(lambda: joined(rig, rig.hnxdp.pair("hn0")), 30, f"{label}: run joined vf0 before the leave")
        done = joined if phase == "join" else left
        s = strace_attach(rig, d, f"strace-{label}", trace=rig.tmp / trace if trace else None, kill_at=kill_at)
        self.vf_mac(rig.mac if phase == "join" else OTHER_MAC)
        if kill_at is None:
            wait_until(lambda: done(rig, rig.hnxdp.pair("hn0")), 30, f"{label}: traced run completes the {phase}")
            stop_strace(s)
            d.stop()
            return False

        def dead_or_done() -> bool:
            return not d.alive() or done(rig, rig.hnxdp.pair("hn0"))

        wait_until(dead_or_done, 30, f"{label}: run killed or the {phase} done")
        # A point in the phase's tail (after the state is written) comes just after.
        if wait_dead(d.alive, 3, f"{label}: run killed in the {phase}'s tail"):
            d.wait_exit(10)
            s.wait(10)
            return True
        stop_strace(s)  # the point lies past this phase: stop it normally
        d.stop()
        return False


@pytest.fixture
def crash(rig: Rig) -> Iterator[Crash]:
    require_strace()
    rig.vf_less_capable()
    rig.ip(rig.guest, "link", "set", "vf0", "mtu", "2000", "allmulticast", "on")
    rig.ip(rig.guest, "link", "set", "hn0", "mtu", "1400")
    c = Crash(rig, GuestState.read(rig))
    yield c
    print(f"kill points hit: {c.killed}")


def points(trace_file, syscall: str) -> list[int]:
    n = syscall_count(trace_file, syscall)
    assert n > 0, f"the traced command made no {syscall} call"
    return spread(n, PER_CALL)


def assert_hit(c: Crash, tried: list[int], label: str) -> None:
    """The points were really hit (a kill test whose kills all missed proves nothing)."""
    assert c.killed >= max(1, (len(tried) * 2 + 2) // 3), \
        f"{label}: only {c.killed} of the kill points {tried} killed hnxdp"


@pytest.mark.parametrize("syscall", SYSCALLS)
def test_kill_in_attach(crash: Crash, syscall: str) -> None:
    c, rig = crash, crash.rig
    rig.hnxdp.ok(*ATTACH)  # warm-up: the counts below include nothing first-time
    rig.hnxdp.ok(*DETACH)
    trace = rig.tmp / "attach.trace"
    assert traced(rig, trace, *ATTACH).rc == 0, "traced attach"
    rig.hnxdp.ok(*DETACH)
    c.before.assert_again(rig, "traced attach + detach")
    tried = points(trace, syscall)
    for k in tried:
        label = f"attach {syscall}#{k}"
        c.killed += killed_at(rig, syscall, k, *ATTACH)
        c.recover_detach(label)
        c.again(label)
    assert_hit(c, tried, f"attach {syscall}")


@pytest.mark.parametrize("syscall", SYSCALLS)
def test_kill_in_detach(crash: Crash, syscall: str) -> None:
    c, rig = crash, crash.rig
    rig.hnxdp.ok(*ATTACH)
    rig.hnxdp.ok(*DETACH)
    rig.hnxdp.ok(*ATTACH)
    trace = rig.tmp / "detach.trace"
    assert traced(rig, trace, *DETACH).rc == 0, "traced detach"
    c.before.assert_again(rig, "traced detach")
    tried = points(trace, syscall)
    for k in tried:
        label = f"detach {syscall}#{k}"
        rig.hnxdp.ok(*ATTACH)
        c.killed += killed_at(rig, syscall, k, *DETACH)
        c.recover_detach(label)
        c.again(label)
    assert_hit(c, tried, f"detach {syscall}")


@pytest.mark.parametrize("syscall", SYSCALLS)
def test_kill_in_run_join(crash: Crash, syscall: str) -> None:
    """A new run finishes the cut join and joins again; detach then restores all."""
    c, rig = crash, crash.rig
    c.vf_mac(OTHER_MAC)
    c.run_phase("join", "traced join", trace="join.trace")
    rig.hnxdp.ok(*DETACH)
    c.before.assert_again(rig, "traced join + detach")
    tried = points(rig.tmp / "join.trace", syscall)
    for k in tried:
        label = f"run join {syscall}#{k}"
        c.vf_mac(OTHER_MAC)
        c.killed += c.run_phase("join", label, kill_at=(syscall, k))
        d = Daemon.start(rig, *RUN)
        wait_until(lambda: joined(rig, rig.hnxdp.pair("hn0")), 30, f"{label}: a new run joins vf0")
        d.stop()
        r = rig.hnxdp(*DETACH)
        assert r.rc == 0, f"{label}: detach: {r}"
        c.before.assert_again(rig, label)
    assert_hit(c, tried, f"run join {syscall}")


@pytest.mark.parametrize("syscall", SYSCALLS)
def test_kill_in_run_leave(crash: Crash, syscall: str) -> None:
    """detach finishes the cut leave."""
    c, rig = crash, crash.rig
    c.run_phase("leave", "traced leave", trace="leave.trace")
    c.vf_mac(rig.mac)
    rig.hnxdp.ok(*DETACH)
    c.before.assert_again(rig, "traced leave + detach")
    tried = points(rig.tmp / "leave.trace", syscall)
    for k in tried:
        label = f"run leave {syscall}#{k}"
        c.killed += c.run_phase("leave", label, kill_at=(syscall, k))
        c.vf_mac(rig.mac)
        c.recover_detach(label)
        c.again(label)
    assert_hit(c, tried, f"run leave {syscall}")
