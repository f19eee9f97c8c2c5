"""A TCP connection on the synthetic survives three VF departure/return cycles
handled by `hnxdp run` (B14, B15, B2, B13); ported from
scripts/tests/75-run-tcp-continuity.sh.

The remote keeps ONE connection to an echo server bound to hn0
(SO_BINDTODEVICE) echoing 1000-byte rounds every 20 ms. The host's switch
follows as a hypervisor would: planned (host to the synthetic, then the VF
removed), surprise (VF removed, then the host switched), planned. Each cycle
the segments arrive on the synthetic path, then, once the returned VF is
joined and the host switched back, through the VF again.
"""
from __future__ import annotations

from lib.continuity import TcpStream
from lib.daemon import Daemon, wait_pair
from lib.rig import G4, Rig
from lib.traffic import TcpEcho
from lib.wait import wait_until

PORT = 5751


def grows(rig: Rig, stat: str, by: int, what: str) -> None:
    base = rig.hnxdp.stats()[stat]
    wait_until(lambda: rig.hnxdp.stats()[stat] >= base + by, 30, what)


def active_on_vf0(p: dict | None) -> bool:
    return bool(p and p["state"] == "active" and p["datapath"] == "vf" and (p["vf"] or {}).get("name") == "vf0")


def test_one_connection_survives_three_cycles(rig: Rig) -> None:
    # Cycles are ~1.5 s apart: with the default hold-down (5 s, 3 departures)
    # the third return would be damped (B16, test 72); here the point is TCP.
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "300", "--hold-down-ms", "1000")
    wait_pair(rig, active_on_vf0, 30, "hn0 active with vf0")
    rig.host_switch("vf")
    echo = TcpEcho.start(rig, rig.guest, "hn0", PORT, seconds=150, max_conns=1)
    base = rig.hnxdp.stats()["vf_rx_packets"]
    stream = TcpStream.start(rig, rig.remote, G4, PORT, size=1000, interval=0.02, seconds=140)
    wait_until(lambda: rig.hnxdp.stats()["vf_rx_packets"] >= base + 20, 30, "the segments enter through the VF")

    for cycle, planned in enumerate((True, False, True), 1):
        mode = "planned" if planned else "surprise"
        syn_rx = rig.hnxdp.stats()["syn_rx_packets"]
        rig.vf_remove_planned() if planned else rig.vf_remove_surprise()
        wait_pair(rig, lambda p: p and p["state"] == "idle" and p["vf"] is None, 30,
                  f"cycle {cycle}: idle after the {mode} removal")
        wait_until(lambda: rig.hnxdp.stats()["syn_rx_packets"] >= syn_rx + 20, 30,
                   f"cycle {cycle}: segments arrive on the synthetic path")
        stream.wait_rounds(stream.rounds() + 1, 30, f"cycle {cycle}: echoing after the departure")

        vf_rx = rig.hnxdp.stats()["vf_rx_packets"]
        rig.vf_add()
        wait_pair(rig, active_on_vf0, 30, f"cycle {cycle}: the returned vf0 joined")
        rig.host_switch("vf")
        wait_until(lambda: rig.hnxdp.stats()["vf_rx_packets"] >= vf_rx + 20, 30,
                   f"cycle {cycle}: segments enter through the returned VF")
        stream.wait_rounds(stream.rounds() + 1, 30, f"cycle {cycle}: echoing after the return")

    rc, summary = stream.finish()
    assert rc == 0, f"the connection opened before the first departure echoed intact throughout: {summary} " \
                    f"{stream.proc.errors()[-400:]!r}"
    assert summary["resets"] == 0 and summary["mismatches"] == 0 and summary["connections"] == 1, summary
    assert summary["after"] >= 50, f"still open and echoing after three cycles: {summary}"
    assert echo.finish(160) == 0
    assert echo.proc.output().split()[0] == "1", "the echo server (bound to hn0) served exactly one connection"
    assert rig.hnxdp.pair()["switches"] == 7, "initial join + 3 departures + 3 returns"
    assert d.stop() == 0, "run exits 0 on SIGTERM"
    d.assert_no_error()
