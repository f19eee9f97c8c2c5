"""AF_XDP sockets on the pair keep receiving after the VF leaves, run after
run (B17; issue 14), ported from scripts/tests/85-xsk-departure-repeat.sh.

RUNS runs on one rig and one pair, each with a fresh VF: attach joins it, one
ping from the guest to the remote, `hnxdp xsk count` steering every frame (no
--udp-port), 1000 datagrams from the remote through the VF, a planned
departure (host to the synthetic, vf0 deleted), 1000 more through the
synthetic. Every run counts >= 950 on the VF, >= 950 on the synthetic and
>= 1900 in total. IPv4 and IPv6 alternate.

The remote re-validates its neighbour entry of the guest within about two
seconds (short neighbour timers; the defaults take 5-8 s): a datapath that
keeps the guest's stack from answering ARP or IPv6 neighbour discovery while
the sockets run makes the remote stop sending to the guest, as it did in
issue 14 about 1 run in 4 with the default timers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from lib.rig import G4, G6, R4, Rig, open_rig
from lib.traffic import ping, udp_send
from lib.user_xdp import xdp_prog
from lib.xsk import XskApp, host_tx, per_binding, wait_host_delivered

RUNS = 20
N = 1000  # datagrams per phase
RATE = 2500  # per second
PORT = 6000
MIN_DEV = 950  # counted per device, of N: all but what was in flight at the departure
MIN_TOTAL = 1900


@pytest.fixture(scope="module")
def pair_rig(hnxdp_binary: Path) -> Iterator[Rig]:
    """One rig for every run; the pair is detached after the last one."""
    with open_rig(hnxdp_binary) as rig:
        for family in ("ipv4", "ipv6"):
            rig.r("sysctl", "-qw", f"net.{family}.neigh.eth0.base_reachable_time_ms=1000",
                  f"net.{family}.neigh.eth0.delay_first_probe_time=1", f"net.{family}.neigh.eth0.retrans_time_ms=200")
        yield rig


def send_phase(rig: Rig, port: str, dst: str) -> int:
    """N datagrams from the remote, all taken by the guest through the host's
    port (or, after a bounded wait, all but the tolerated); returns the number sent."""
    base = host_tx(rig, port)
    sent = udp_send(rig, rig.remote, dst, PORT, N, rate=RATE)
    wait_host_delivered(rig, port, base + sent, tolerated=base + MIN_DEV, timeout=10)
    return sent


@pytest.mark.parametrize("run", range(1, RUNS + 1))
def test_sockets_keep_receiving_after_departure(pair_rig: Rig, run: int) -> None:
    rig = pair_rig
    if rig.exists(rig.guest, "vf0"):  # the rig is new, or a failed run left its VF
        rig.vf_remove_planned()
    rig.vf_add()
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"run {run}: attach hn0/vf0: {r}"
    rig.host_switch("vf")
    vf, syn = rig.ifindex(rig.guest, "vf0"), rig.ifindex(rig.guest, "hn0")
    dst = G4 if run % 2 else G6
    r = ping(rig, rig.guest, R4, count=1)
    assert r.rc == 0, f"run {run}: guest pings the remote through vf0: {r.out}"

    app = XskApp.start(rig, "count", seconds=120)
    app.wait_bound_vf(vf)
    sent1 = send_phase(rig, "vf0h", dst)
    rig.vf_remove_planned()
    app.wait_left(vf)
    sent2 = send_phase(rig, "hn0h", dst)
    report = app.stop()

    on_vf, on_syn = per_binding(report, "vf0", vf), per_binding(report, "hn0", syn)
    line = (f"run {run} ({dst}): sent {sent1}+{sent2}, counted vf0 {on_vf}, hn0 {on_syn}, total {report['total']}; "
            f"{report}; remote: {rig.ip(rig.remote, 'neigh', 'show', 'dev', 'eth0').out.strip()!r}")
    assert (sent1, sent2) == (N, N), line
    assert on_vf >= MIN_DEV and on_syn >= MIN_DEV and report["total"] >= MIN_TOTAL, line
    assert xdp_prog(rig, "hn0") is None, f"run {run}: XDP left on hn0 after the application exited"


def test_detach_after_the_runs(pair_rig: Rig) -> None:
    """The pair the runs left (its VF gone) detaches cleanly; selected alone, the
    test attaches a pair of its own first."""
    rig = pair_rig
    if not rig.hnxdp.dump()["pairs"]:
        if not rig.exists(rig.guest, "vf0"):
            rig.vf_add()
        r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
        assert r.rc == 0, f"attach hn0/vf0: {r}"
        rig.vf_remove_planned()
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach hn0: {r}"
    assert rig.hnxdp.dump()["pairs"] == []
