"""One TCP connection stays open, never reset and never stopped, through
TCP_CYCLES (default 100) planned departures and returns of the VF handled by
`hnxdp run` (B13, B14, B15, B2; soak); ported from
scripts/tests/77-run-tcp-planned-cycles.sh.

The remote keeps ONE connection to an echo server bound to hn0 echoing
numbered 64-byte requests every 10 ms (tools/tcp_stream.py: resets counted,
every reply's number checked). A cycle, as a hypervisor does a planned
removal: the host switches to the synthetic, then deletes vf0; the leave
finishes (idle, record gone); the connection goes on over the synthetic path
(2K more replies, the host's hn0h carried K packets each way); vf0 returns,
run joins it, the host switches to it; the connection goes on through the VF
(2K more replies, the new vf0h carried K each way). The longest stall is
printed, not asserted (timing is the benchmark's).
"""
from __future__ import annotations

import os

from lib.continuity import TcpStream, wait_joined, wait_left
from lib.daemon import Daemon
from lib.rig import G4, Rig
from lib.traffic import TcpEcho

CYCLES = int(os.environ.get("TCP_CYCLES", "100"))
PORT = 5770
K = 5  # packets each way each path must carry per cycle (of 2K replies waited
#        for: the first request after a switch may have left before it)


def host_packets(rig: Rig, dev: str) -> tuple[int, int]:
    """rx and tx packets of a host-side port."""
    s = rig.link(rig.host, dev, stats=True)["stats64"]
    return int(s["rx"]["packets"]), int(s["tx"]["packets"])


def test_one_connection_through_planned_cycles(rig: Rig) -> None:
    assert CYCLES >= 1, "TCP_CYCLES must be >= 1"
    # settle 200 ms: a real settle on every return; no damping (threshold 1000)
    # since the cycles are well under a second apart.
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "200", "--hold-down-ms", "1000",
                     "--flap-threshold", "1000")
    switches0 = wait_joined(rig, "vf0", 30)["switches"]
    rig.host_switch("vf")
    echo = TcpEcho.start(rig, rig.guest, "hn0", PORT, seconds=120 + 6 * CYCLES, max_conns=1)
    stream = TcpStream.start(rig, rig.remote, G4, PORT, size=64, interval=0.01, seconds=90 + 6 * CYCLES)
    vrx, vtx = host_packets(rig, "vf0h")
    assert vrx >= 20 and vtx >= 20, f"the connection goes through the VF at the start (vf0h rx {vrx} tx {vtx})"

    for c in range(1, CYCLES + 1):
        # Planned departure: the host to the synthetic first, then vf0 goes.
        rig.vf_remove_planned()
        left = wait_left(rig, 30)
        assert left["switch_history"][-1]["reason"] == "departed", f"cycle {c}: {left['switch_history'][-1]}"
        s_rx, s_tx = host_packets(rig, "hn0h")
        stream.wait_rounds(stream.rounds() + 2 * K, 30, f"cycle {c}: {2 * K} replies over the synthetic path")
        s_rx2, s_tx2 = host_packets(rig, "hn0h")
        assert s_rx2 - s_rx >= K and s_tx2 - s_tx >= K, \
            f"cycle {c}: hn0h did not carry the replies (rx +{s_rx2 - s_rx} tx +{s_tx2 - s_tx})"

        # Return: vf0 back, run joins it, then the host switches to it.
        rig.vf_add()
        joined = wait_joined(rig, "vf0", 30)
        assert joined["switch_history"][-1]["reason"] == "joined", f"cycle {c}: {joined['switch_history'][-1]}"
        rig.host_switch("vf")
        stream.wait_rounds(stream.rounds() + 2 * K, 30, f"cycle {c}: {2 * K} replies through the returned VF")
        v_rx, v_tx = host_packets(rig, "vf0h")  # a new vf0h: its counters began at 0
        assert v_rx >= K and v_tx >= K, f"cycle {c}: the new vf0h did not carry the replies (rx {v_rx} tx {v_tx})"

    rc, summary = stream.finish()
    print(f"{CYCLES} planned cycles; longest stall {summary.get('max_gap_ms')} ms "
          f"(reply {summary.get('max_gap_round')}); {summary.get('rounds')} replies")
    assert rc == 0, f"the client ended well (stop file seen, no reset, every reply matched): {summary} " \
                    f"{stream.proc.errors()[-400:]!r}"
    assert summary["resets"] == 0, summary
    assert summary["mismatches"] == 0, summary
    assert summary["connections"] == 1, summary
    assert summary["after"] >= 50, f"still echoing after the last cycle: {summary}"
    assert echo.finish(60) == 0
    assert echo.proc.output().split()[0] == "1", "the echo server (bound to hn0) served exactly one connection"
    assert rig.hnxdp.pair()["switches"] - switches0 == 2 * CYCLES, "2 switches per cycle"
    assert d.stop() == 0, "run exits 0 on SIGTERM"
    d.assert_no_error()
