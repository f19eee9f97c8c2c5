"""Receive through the VF (B8), ported from scripts/tests/10-rx.sh.

With the host switched to the VF, ICMP, UDP and TCP over IPv4 and IPv6 from
the remote reach what listens on hn0 (tcpdump -i hn0, sockets bound to hn0
with SO_BINDTODEVICE), never a socket bound to vf0; the host hands every frame
to vf0h and none to hn0h, and `vf_rx_packets` counts them. Each test runs with
the default attachment and with classic tc (which kernels before 6.6 get).
"""
from __future__ import annotations

import pytest

from lib.counters import PathCounters
from lib.rig import G4, G6, R4, R6, TC_MODES, Rig, tc_mode_id
from lib.traffic import TcpEcho, Tcpdump, UdpSink, ping, tcp_client, udp_send

N = 200  # UDP datagrams per address family
FAMILIES = {"4": G4, "6": G6}

pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)


def test_dump_shows_the_active_pair(joined: Rig) -> None:
    rig = joined
    pairs = rig.hnxdp.dump()["pairs"]
    assert len(pairs) == 1
    p = pairs[0]
    assert (p["state"], p["datapath"]) == ("active", "vf")
    assert p["vf"]["name"] == "vf0"
    assert p["vf"]["ifindex"] == rig.ifindex(rig.guest, "vf0")
    assert p["synthetic"]["name"] == "hn0"
    assert p["synthetic"]["ifindex"] == rig.ifindex(rig.guest, "hn0")
    assert p["synthetic"]["mac"] == rig.mac


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f"ipv{f}")
def test_icmp_and_neighbour_discovery_through_vf(joined: Rig, family: str) -> None:
    """Pings with empty neighbour tables (ARP/ND through the VF too) reach hn0."""
    rig = joined
    rig.ip(rig.remote, "neigh", "flush", "dev", "eth0")
    rig.ip(rig.guest, "neigh", "flush", "dev", "hn0")
    before = PathCounters.read(rig)
    echo_requests = (f"icmp[icmptype] == icmp-echo and src host {R4}" if family == "4"
                     else f"icmp6 and ip6[40] == 128 and src host {R6}")
    tcpdump = Tcpdump.start(rig, rig.guest, "hn0", 5, echo_requests)
    r = ping(rig, rig.remote, FAMILIES[family], count=5, interval=0.1)
    assert r.rc == 0, f"remote pings {FAMILIES[family]} through the VF: {r.out}"
    assert tcpdump.finish() == 0, "tcpdump -i hn0 did not see the 5 echo requests"
    before.assert_through_vf("rx", at_least=5)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f"ipv{f}")
def test_udp_reaches_hn0_and_not_vf0(joined: Rig, family: str) -> None:
    rig = joined
    port = 5100 + int(family)
    before = PathCounters.read(rig)
    on_hn0 = UdpSink.start(rig, rig.guest, "hn0", port, family, seconds=15, expect=N, linger=1)
    # vf0's sink listens from before the first datagram until after hn0's got them all.
    on_vf0 = UdpSink.start(rig, rig.guest, "vf0", port, family, seconds=4)
    assert udp_send(rig, rig.remote, FAMILIES[family], port, N, rate=1000) == N
    assert on_hn0.count() == N, "socket bound to hn0 received all"
    assert on_vf0.count() == 0, "socket bound to vf0 on the same port received none"
    before.assert_through_vf("rx", at_least=N)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f"ipv{f}")
def test_tcp_connection_to_hn0(joined: Rig, family: str) -> None:
    """One connection, 50 rounds of 1400 bytes echoed by a server bound to hn0."""
    rig = joined
    port = 5200 + int(family)
    before = PathCounters.read(rig)
    server = TcpEcho.start(rig, rig.guest, "hn0", port, family, seconds=20)
    r = tcp_client(rig, rig.remote, FAMILIES[family], port, rounds=50, size=1400, seconds=15)
    assert (r.rc, r.out.strip()) == (0, "50 70000"), f"tcp_client: {r}"
    assert server.finish() == 0, "the echo server bound to hn0 served the connection"
    before.assert_through_vf("rx", at_least=50)  # one data segment per round, at least
