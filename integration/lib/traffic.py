"""Real traffic between the rig's namespaces, with the tools the bash rig and
the benchmark use (scripts/tools/*.py) and iputils ping / tcpdump. Every job
is bounded in count and time, and stopped at the end of the test whatever
happens (proc.spawn).

    sink = UdpSink.start(rig, rig.guest, "hn0", port=5104)
    assert udp_send(rig, rig.remote, G4, 5104, count=200) == 200
    assert sink.count() == 200
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import count as _counter
from pathlib import Path

from .proc import Proc, Result, run
from .rig import Rig
from .wait import wait_until

_serial = _counter()


def _name(kind: str) -> str:
    return f"{kind}-{next(_serial)}"


def _wait_ready(path: Path, proc: Proc, what: str) -> None:
    wait_until(lambda: path.exists() or not proc.running(), 10, f"{what} to start")
    assert path.exists(), f"{what} did not start (exit {proc.popen.poll()}): {proc.errors().strip()}"


def family_of(addr: str) -> str:
    return "6" if ":" in addr else "4"


@dataclass
class UdpSink:
    """tools/udp_sink.py: UDP datagrams counted by a socket bound to one device."""

    proc: Proc

    @classmethod
    def start(cls, rig: Rig, ns: str, dev: str, port: int, family: str = "4", seconds: float = 15,
              expect: int = 0, linger: float = 0.5) -> "UdpSink":
        name = _name(f"udp-sink-{dev}-{port}")
        ready = rig.tmp / f"{name}.ready"
        proc = rig.bg(ns, *rig.tool("udp_sink.py"), "--dev", dev, "--port", str(port), "--family", family,
                      "--seconds", str(seconds), "--expect", str(expect), "--linger", str(linger),
                      "--ready-file", str(ready), name=name)
        _wait_ready(ready, proc, f"UDP sink on {dev} port {port}")
        return cls(proc)

    def count(self, timeout: float = 30) -> int:
        rc = self.proc.wait(timeout)
        assert rc == 0, f"udp_sink exited {rc}: {self.proc.errors().strip()}"
        return int(self.proc.output().strip())


def udp_send(rig: Rig, ns: str, dst: str, port: int, count: int, rate: float = 1000,
             dev: str | None = None) -> int:
    """tools/udp_send.py: send count datagrams; returns how many were sent."""
    argv = [*rig.tool("udp_send.py"), "--dst", dst, "--port", str(port), "--count", str(count),
            "--rate", str(rate)] + (["--dev", dev] if dev else [])
    r = rig.in_ns(ns, *argv, timeout=60, check=False)
    assert r.rc in (0, 1), f"udp_send failed: {r}"
    return int(r.out.strip())


@dataclass
class TcpEcho:
    """tools/tcp_echo.py: a TCP echo server bound to one device."""

    proc: Proc

    @classmethod
    def start(cls, rig: Rig, ns: str, dev: str, port: int, family: str = "4", seconds: float = 30,
              max_conns: int = 1) -> "TcpEcho":
        name = _name(f"tcp-echo-{dev}-{port}")
        ready = rig.tmp / f"{name}.ready"
        proc = rig.bg(ns, *rig.tool("tcp_echo.py"), "--dev", dev, "--port", str(port), "--family", family,
                      "--seconds", str(seconds), "--max-conns", str(max_conns), "--ready-file", str(ready),
                      name=name)
        _wait_ready(ready, proc, f"TCP echo server on {dev} port {port}")
        return cls(proc)

    def finish(self, timeout: float = 40) -> int:
        """Exit code: 0 when it served at least one connection."""
        return self.proc.wait(timeout)


def tcp_client_argv(rig: Rig, dst: str, port: int, rounds: int, size: int, seconds: float,
                    interval: float = 0) -> list[str]:
    return [*rig.tool("tcp_client.py"), "--dst", dst, "--port", str(port), "--rounds", str(rounds),
            "--size", str(size), "--seconds", str(seconds), "--interval", str(interval)]


def tcp_client(rig: Rig, ns: str, dst: str, port: int, rounds: int, size: int = 1000,
               seconds: float = 15, interval: float = 0) -> Result:
    """tools/tcp_client.py over one connection; out is "<rounds> <bytes verified>"."""
    return rig.in_ns(ns, *tcp_client_argv(rig, dst, port, rounds, size, seconds, interval),
                     timeout=seconds + 15, check=False)


def tcp_client_bg(rig: Rig, ns: str, dst: str, port: int, rounds: int, size: int = 1000,
                  seconds: float = 30, interval: float = 0) -> Proc:
    return rig.bg(ns, *tcp_client_argv(rig, dst, port, rounds, size, seconds, interval),
                  name=_name("tcp-client"))


@dataclass(frozen=True)
class PingStats:
    transmitted: int
    received: int

    @property
    def lost(self) -> int:
        return self.transmitted - self.received

    @classmethod
    def parse(cls, text: str) -> "PingStats | None":
        m = re.search(r"^(\d+) packets transmitted, (\d+) received", text, re.M)
        return cls(int(m.group(1)), int(m.group(2))) if m else None


def ping_argv(dst: str, count: int, interval: float, wait: float) -> list[str]:
    return ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait), dst]


def ping(rig: Rig, ns: str, dst: str, count: int = 3, interval: float = 0.1, wait: float = 2) -> Result:
    """iputils ping; rc 0 when every echo was answered."""
    return rig.in_ns(ns, *ping_argv(dst, count, interval, wait), timeout=count * interval + wait + 30,
                     check=False)


def ping_bg(rig: Rig, ns: str, dst: str, count: int, interval: float, wait: float = 1) -> Proc:
    return rig.bg(ns, *ping_argv(dst, count, interval, wait), name=_name("ping"))


@dataclass
class Tcpdump:
    """tcpdump on one device, stopping after count matching frames (or seconds)."""

    proc: Proc
    pcap: Path | None = None

    @classmethod
    def start(cls, rig: Rig, ns: str, dev: str, count: int, bpf_filter: str, seconds: int = 15,
              immediate: bool = False) -> "Tcpdump":
        """immediate: every frame is handed to tcpdump at once (--immediate-mode;
        otherwise libpcap may hold frames back for up to a second)."""
        name = _name(f"tcpdump-{dev}")
        pcap = rig.tmp / f"{name}.pcap"
        proc = rig.bg(ns, "timeout", str(seconds), "tcpdump", "-i", dev, "-n", "-l", "-U", "-c", str(count),
                      *(["--immediate-mode"] if immediate else []), "-w", str(pcap), bpf_filter, name=name)
        wait_until(lambda: "listening on" in proc.errors() or not proc.running(), 10,
                   f"tcpdump listening on {dev}")
        assert proc.running(), f"tcpdump on {dev} ended early: {proc.errors().strip()}"
        return cls(proc, pcap)

    def stop_and_count(self) -> int:
        """Stop the capture now (SIGTERM) and return the number of frames in its
        file; tcpdump's own tally on exit must agree (the file holds all it saw)."""
        self.proc.stop()
        assert self.pcap is not None and self.pcap.exists(), f"no capture file: {self.proc.errors().strip()}"
        r = run(["tcpdump", "-r", str(self.pcap), "-n"], timeout=30, check=True)
        frames = len(r.out.splitlines())
        tally = re.search(r"^(\d+) packets? captured$", self.proc.errors(), re.M)
        assert tally is not None, f"tcpdump ended without its tally: {self.proc.errors().strip()!r}"
        assert int(tally.group(1)) == frames, f"tcpdump captured {tally.group(1)}, its file holds {frames}"
        return frames

    def finish(self, timeout: float = 20) -> int:
        """Exit code: 0 once count frames were seen, 124 when its time ran out first."""
        return self.proc.wait(timeout)
