"""kill -9 of an AF_XDP application leaves the normal path working (B17,
B19), ported from scripts/tests/83-xsk-kill.sh.

While `hnxdp xsk count` (no --udp-port) steers every frame of the queue, the
stack sees nothing. After SIGKILL its sockets leave the XSKMAP (the kernel
closes them): hnxdp's XDP program stays attached but passes every frame, so
ping and UDP through the VF and through the synthetic work. A new
application can start at once (the pair lock died with the process); `hnxdp
detach` removes everything.
"""
from __future__ import annotations

import signal
from typing import Iterator

import pytest

from lib.counters import PathCounters
from lib.rig import G4, R4, Rig
from lib.traffic import PingStats, UdpSink, ping, udp_send
from lib.user_xdp import STEER, xdp_prog
from lib.xsk import XskApp, wait_host_delivered

N = 200  # UDP datagrams per path, remote -> a socket bound to hn0


def start_steering_everything(rig: Rig) -> XskApp:
    """`xsk count` with no --udp-port (every frame but ARP/ND to the sockets), bound to vf0."""
    app = XskApp.start(rig, "count", seconds=120)
    app.wait_bound_vf(rig.ifindex(rig.guest, "vf0"))
    return app


def kill(app: XskApp) -> None:
    assert app.kill() == -signal.SIGKILL, "xsk count died of SIGKILL"


@pytest.fixture
def killed(joined: Rig) -> Iterator[Rig]:
    """The joined pair after an `xsk count` steering every frame was killed with SIGKILL."""
    rig = joined
    assert ping(rig, rig.remote, G4, count=2).rc == 0, "remote reaches the guest before the application"
    kill(start_steering_everything(rig))
    yield rig


def assert_udp_reaches_hn0(rig: Rig, port: int) -> None:
    sink = UdpSink.start(rig, rig.guest, "hn0", port, seconds=15, expect=N)
    assert udp_send(rig, rig.remote, G4, port, N) == N
    assert sink.count() == N, f"a socket bound to hn0 received all {N} datagrams"


def test_sockets_take_every_frame_while_running(joined: Rig) -> None:
    rig = joined
    assert ping(rig, rig.remote, G4, count=2).rc == 0, "remote reaches the guest before the application"
    app = start_steering_everything(rig)
    r = ping(rig, rig.remote, G4, count=3, wait=1)
    assert PingStats.parse(r.out) == PingStats(3, 0), f"the stack answered pings the sockets asked for: {r.out}"
    report = app.stop()
    assert report["total"] >= 3, f"the echo requests were not counted by the sockets: {report}"


def test_steering_program_stays_after_kill(killed: Rig) -> None:
    rig = killed
    assert xdp_prog(rig, "vf0") == STEER
    assert xdp_prog(rig, "hn0") == STEER


def test_remote_reaches_guest_through_vf_after_kill(killed: Rig) -> None:
    rig = killed
    before = PathCounters.read(rig)
    r = ping(rig, rig.remote, G4, count=5)
    assert r.rc == 0, f"remote pings the guest after the kill: {r.out}"
    assert_udp_reaches_hn0(rig, 6301)
    before.assert_through_vf("rx", at_least=N + 5)


def test_guest_reaches_remote_through_vf_after_kill(killed: Rig) -> None:
    rig = killed
    before = PathCounters.read(rig)
    r = ping(rig, rig.guest, R4, count=5)
    assert r.rc == 0, f"guest pings the remote after the kill: {r.out}"
    before.assert_through_vf("rx", at_least=5)  # the replies came in through vf0
    before.assert_through_vf("tx", at_least=5)


def test_synthetic_path_works_after_kill(killed: Rig) -> None:
    rig = killed
    rig.vf_remove_planned()
    r = ping(rig, rig.remote, G4, count=5)
    assert r.rc == 0, f"remote pings the guest through the synthetic after the kill: {r.out}"
    assert_udp_reaches_hn0(rig, 6302)


def test_new_application_starts_after_kill(killed: Rig) -> None:
    """A second application starts at once, takes the frames again and ends
    by itself after --seconds (exit 0)."""
    rig = killed
    app = XskApp.start(rig, "count", udp_port=6303, seconds=10)
    app.wait_bound_vf(rig.ifindex(rig.guest, "vf0"))
    base = rig.link_packets(rig.host, "vf0h", "tx")
    assert udp_send(rig, rig.remote, G4, 6303, 100, rate=500) == 100
    wait_host_delivered(rig, "vf0h", base + 100)
    report = app.report(timeout=60)
    assert report["total"] == 100, f"the second application received {report['total']} of 100: {report}"


def test_detach_after_kill_removes_everything(rig: Rig) -> None:
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach hn0/vf0: {r}"
    rig.host_switch("vf")
    kill(start_steering_everything(rig))
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach hn0 after the kill: {r}"
    assert xdp_prog(rig, "hn0") is None
    assert xdp_prog(rig, "vf0") is None
    assert not rig.pin_dir.exists(), f"pins left after detach: {rig.pins()}"
