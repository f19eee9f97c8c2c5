"""hnxdp's main job, shown in network namespaces (`scripts/demo.sh` runs this
as `python3 -m demo` from integration/, as root, with $HNXDP set).

A guest with a synthetic NIC (hn0) and a VF (vf0) sharing one MAC, a host
playing the hypervisor's switch, a remote peer: the test rig (lib/rig.py).
hnxdp pairs hn0 and vf0; traffic enters and leaves through the VF while every
socket and address stays on hn0; the VF is yanked (no hnxdp process running:
the pinned datapath falls back by itself); then `hnxdp run` adopts the pair and
follows the VF through a return and a planned migration, while a ping stream
and a TCP connection keep flowing. It checks itself: exit 0 only when every
check passed ("demo: N passed, 0 failed"). Ctrl-C or a failure still removes
everything it made.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

from lib.daemon import Daemon, wait_pair
from lib.hnxdp import binary_from_env
from lib.rig import G4, G6, open_rig, repo_root
from lib.traffic import PingStats, TcpEcho, UdpSink, ping, ping_bg, tcp_client_bg, udp_send
from lib.wait import wait_until


class Tally:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str) -> None:
        if ok:
            self.passed += 1
            print(f"PASS: demo: {what}")
        else:
            self.failed += 1
            print(f"FAIL: demo: {what}")


def say(text: str) -> None:
    print(f"\n\033[1m### {text}\033[0m", flush=True)


def show(rig, ns: str, *argv: str) -> None:
    print(f"$ {' '.join(argv)}")
    r = rig.in_ns(ns, *argv, check=False)
    print((r.out + r.err).rstrip(), flush=True)


def hnxdp_show(rig, *args: str) -> None:
    print(f"$ hnxdp {' '.join(args)}   (in the guest)")
    r = rig.hnxdp(*args)
    print((r.out + r.err).rstrip(), flush=True)


def active_on_vf(p) -> bool:
    return bool(p) and p["state"] == "active" and p["datapath"] == "vf"


def demo(binary: Path, tally: Tally) -> None:
    with open_rig(binary) as rig:
        say("1. The rig: guest (hn0 + vf0, same MAC), host (the hypervisor's switch), remote")
        print(f"rig: {rig.id} up (guest netns inode {rig.guest_ino}, namespaces {rig.guest}, {rig.host}, {rig.remote})")
        show(rig, rig.guest, "ip", "-br", "link", "show")
        print("host switch: remote -> hn0h (synthetic path); everything from the guest -> remote")
        show(rig, rig.guest, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "198.18.0.2")

        say("2. Pair them: hnxdp attach (the datapath stays pinned after the command exits)")
        hnxdp_show(rig, "attach", "--synthetic", "hn0", "--vf", "vf0")
        print("The hypervisor now switches its datapath to the VF.")
        rig.host_switch("vf")
        hnxdp_show(rig, "status")

        say("3. Traffic through the VF: ping and UDP from the remote to sockets on hn0")
        show(rig, rig.remote, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", G4)
        show(rig, rig.remote, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", G6)
        sink = UdpSink.start(rig, rig.guest, "hn0", 6000, seconds=10, expect=1000)
        print(f"remote sends 1000 UDP datagrams to {G4}:6000 ...")
        udp_send(rig, rig.remote, G4, 6000, 1000, rate=5000)
        got = sink.count()
        print(f"a UDP socket bound to hn0 (SO_BINDTODEVICE) received {got} of 1000")
        tally.check(got == 1000, f"UDP through the VF reached the socket on hn0 ({got} of 1000)")
        print(f"host counters: frames handed to the VF port vf0h: {rig.link_packets(rig.host, 'vf0h', 'tx')}, "
              f"to the synthetic port hn0h: {rig.link_packets(rig.host, 'hn0h', 'tx')}")
        hnxdp_show(rig, "dump")

        say("4. Continuous traffic: remote pings the guest 100/s and a TCP connection echoes every 50 ms")
        echo = TcpEcho.start(rig, rig.guest, "hn0", 6001, seconds=40)
        pings = ping_bg(rig, rig.remote, G4, count=1000, interval=0.01)
        tcp = tcp_client_bg(rig, rig.remote, G4, 6001, rounds=200, interval=0.05, seconds=38)
        # The stream is under way once the pair has counted the first of it.
        wait_until(lambda: rig.hnxdp.stats("hn0")["vf_rx_packets"] >= 100, 20, "the ping stream through the VF")

        say("5. Surprise: the VF disappears (hot-unplug), then the host falls back to the synthetic path")
        print("No hnxdp process is running: the pinned datapath falls back on its own.")
        rig.vf_remove_surprise()
        show(rig, rig.guest, "ip", "-br", "link", "show")
        before = rig.hnxdp.stats("hn0")["syn_rx_packets"]
        wait_until(lambda: rig.hnxdp.stats("hn0")["syn_rx_packets"] >= before + 50, 20,
                   "the ping stream through the synthetic")
        hnxdp_show(rig, "dump")

        say("6. The control plane: hnxdp run adopts the pinned pair; the VF returns and run joins it")
        run = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "500")
        print(f"hnxdp run (pid {run.pid}) is following hn0; the VF comes back (new ifindex, same MAC):")
        rig.vf_add()
        show(rig, rig.guest, "ip", "-br", "link", "show")
        wait_pair(rig, active_on_vf, 30, "the returned VF joined after the settle delay")
        rig.host_switch("vf")
        hnxdp_show(rig, "status")

        say("7. Planned migration: the host moves to the synthetic path first, then the VF leaves and returns")
        rig.vf_remove_planned()
        wait_pair(rig, lambda p: p and p["state"] == "idle" and p["datapath"] == "synthetic", 30,
                  "hn0 idle on the synthetic path, features and limits restored")
        hnxdp_show(rig, "status")
        rig.vf_add()
        wait_pair(rig, active_on_vf, 30, "the VF joined again")
        rig.host_switch("vf")
        hnxdp_show(rig, "status")
        print("What hnxdp run logged:")
        for line in run.log().splitlines():
            print(f"    {line}")

        say("8. Results of the continuous traffic")
        pings.wait(60)
        stats = PingStats.parse(pings.output())
        print("\n".join(pings.output().strip().splitlines()[-2:]))
        received = stats.received if stats else 0
        tally.check(received >= 950, f"pings answered across VF removal and return ({received} of 1000, at least 950)")
        tcp_rc = tcp.wait(60)
        print(f"TCP connection: {tcp.output().strip()} (rounds, bytes verified)")
        tally.check(tcp_rc == 0, "the TCP connection survived the VF leaving and returning")
        echo.finish(60)
        hnxdp_show(rig, "dump")

        say("9. Tear-down: run exits on SIGTERM leaving the datapath; hnxdp detach restores hn0 exactly; the rig is deleted")
        tally.check(run.stop() == 0, "hnxdp run exits 0 on SIGTERM")
        hnxdp_show(rig, "detach", "--synthetic", "hn0")


def main() -> int:
    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    tally = Tally()
    try:
        demo(binary_from_env(repo_root()), tally)
    except KeyboardInterrupt:
        print("demo: interrupted; everything it made is removed", file=sys.stderr)
        return 130
    except AssertionError as e:  # a wait that timed out, a command that failed
        tally.check(False, str(e))
    print(f"demo: {tally.passed} passed, {tally.failed} failed")
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
