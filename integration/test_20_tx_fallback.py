"""Transmit through the VF (B9), fall back with no control plane (B13/B14,
B19), a VF that returns, and a planned removal (B15); ported from
scripts/tests/20-tx-fallback.sh. Each test runs with the default attachment
and with classic tc (which kernels before 6.6 get).

No hnxdp process runs while the VF goes: every command has returned, only the
pinned datapath is left to react.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from lib.counters import PathCounters
from lib.proc import Proc
from lib.rig import G4, G6, R4, R6, TC_MODES, Rig, tc_mode_id
from lib.traffic import PingStats, TcpEcho, Tcpdump, UdpSink, ping, ping_bg, tcp_client_bg, udp_send
from lib.wait import wait_until

pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)

N = 300  # UDP datagrams the guest sends
PINGS = 600  # per family, every 10 ms, while the VF goes


def warm_neighbours(rig: Rig) -> None:
    """Neighbour entries on both sides, learnt through the VF path."""
    for dst in (G4, G6):
        ping(rig, rig.remote, dst, count=2)


def vf_tx(rig: Rig) -> int:
    return rig.hnxdp.stats()["vf_tx_packets"]


@dataclass
class FlowsAcrossSwitch:
    """Guest pings to the remote (v4 and v6, 100/s) and one TCP connection from
    the remote to an echo server on hn0, running while the VF goes away."""

    pings: dict[str, Proc]
    server: TcpEcho
    client: Proc

    @classmethod
    def start(cls, rig: Rig, port: int) -> "FlowsAcrossSwitch":
        server = TcpEcho.start(rig, rig.guest, "hn0", port, seconds=30)
        pings = {fam: ping_bg(rig, rig.guest, dst, count=PINGS, interval=0.01) for fam, dst in (("4", R4), ("6", R6))}
        client = tcp_client_bg(rig, rig.remote, G4, port, rounds=100, interval=0.05, size=1000, seconds=28)
        base = vf_tx(rig)
        wait_until(lambda: vf_tx(rig) >= base + 50, 10, "traffic flowing through the VF")
        return cls(pings, server, client)

    def assert_survived(self, max_lost: int) -> None:
        for fam, proc in self.pings.items():
            proc.wait(30)
            stats = PingStats.parse(proc.output())
            assert stats is not None, f"ping -{fam}: no summary: {proc.output()[-300:]!r}"
            assert stats.transmitted == PINGS, f"ping -{fam} sent {stats.transmitted} of {PINGS}"
            assert stats.lost <= max_lost, f"ping -{fam} lost {stats.lost} of {PINGS}, at most {max_lost} allowed"
        rc = self.client.wait(35)
        assert rc == 0, f"the TCP connection broke: {self.client.output().strip()} {self.client.errors().strip()}"
        self.server.finish()


def return_vf(rig: Rig) -> int:
    """vf0 comes back (same MAC, new ifindex) and is attached again; the host
    switches back to it. Returns its new ifindex."""
    old = rig.ifindex(rig.guest, "vf0") if rig.exists(rig.guest, "vf0") else None
    rig.vf_add()
    new = rig.ifindex(rig.guest, "vf0")
    assert new != old
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach of the returned vf0: {r}"
    rig.host_switch("vf")
    return new


@pytest.mark.parametrize("family", ("4", "6"), ids=lambda f: f"ipv{f}")
def test_replies_leave_through_vf(joined: Rig, family: str) -> None:
    rig = joined
    warm_neighbours(rig)
    before = PathCounters.read(rig)
    dst, replies = ((G4, f"icmp[icmptype] == icmp-echoreply and src host {G4}") if family == "4"
                    else (G6, f"icmp6 and ip6[40] == 129 and src host {G6}"))
    tcpdump = Tcpdump.start(rig, rig.host, "vf0h", 10, replies)
    r = ping(rig, rig.remote, dst, count=10, interval=0.05)
    assert r.rc == 0, f"remote pings {dst}: {r.out}"
    assert tcpdump.finish() == 0, "the host's vf0h did not see the guest's 10 echo replies"
    before.assert_through_vf("tx", at_least=10)


def test_guest_udp_leaves_through_vf(joined: Rig) -> None:
    rig = joined
    warm_neighbours(rig)
    before = PathCounters.read(rig)
    sink = UdpSink.start(rig, rig.remote, "eth0", 5301, seconds=15, expect=N)
    assert udp_send(rig, rig.guest, R4, 5301, N, rate=2000, dev="hn0") == N
    assert sink.count() == N, "the remote received every datagram"
    before.assert_through_vf("tx", at_least=N)


def test_surprise_removal_falls_back_without_control_plane(joined: Rig) -> None:
    """vf0 deleted with the host still on it, then the host switches: at most
    5 % of pings lost, the TCP connection survives, the synthetic path counts."""
    rig = joined
    warm_neighbours(rig)
    before = PathCounters.read(rig)
    flows = FlowsAcrossSwitch.start(rig, 5401)
    rig.vf_remove_surprise()
    flows.assert_survived(max_lost=30)
    d = before.delta()
    assert d["syn_tx_packets"] >= 100, f"syn_tx_packets rose by {d['syn_tx_packets']}"
    assert d["tx_fallback_packets"] >= 100, f"tx_fallback_packets rose by {d['tx_fallback_packets']}"


def test_returned_vf_is_attached_again(joined: Rig) -> None:
    rig = joined
    warm_neighbours(rig)
    rig.vf_remove_surprise()
    new_ifindex = return_vf(rig)
    pairs = rig.hnxdp.dump()["pairs"]
    assert len(pairs) == 1
    assert pairs[0]["vf"]["ifindex"] == new_ifindex, "the pair's VF is the new vf0"
    assert ping(rig, rig.remote, G4, count=5, interval=0.05).rc == 0, "remote reaches the guest through the new VF"
    before = PathCounters.read(rig)
    assert ping(rig, rig.guest, R4, count=20, interval=0.02).rc == 0, "guest reaches the remote through the new VF"
    before.assert_through_vf("tx", at_least=20)


def test_planned_removal_loses_no_ping(joined: Rig) -> None:
    """The host switches to the synthetic before the (returned) VF is deleted:
    nothing is lost but, per family, one ping for the instant between vf0
    closing and its devmap entry going away."""
    rig = joined
    warm_neighbours(rig)
    rig.vf_remove_surprise()
    return_vf(rig)
    flows = FlowsAcrossSwitch.start(rig, 5402)
    rig.vf_remove_planned()
    flows.assert_survived(max_lost=1)
