"""How the benchmark measures: settings, sinks, loads, counting windows and
interleaved rounds (docs/benchmarks.md, Method).

The receiver of a rate is a UDP socket bound to one device that never reads
(scripts/bench/udp_hold.py): the kernel counts each datagram it gets as Udp
RcvbufErrors (plus InDatagrams) in that namespace's /proc/net/snmp, read here
through the sink's own /proc/PID/net/snmp (the sink lives in the namespace).
A load runs for WARMUP, then the counters are read over a WINDOW-second window.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lib.hnxdp import Hnxdp
from lib.proc import Proc, run, spawn
from lib.rig import G4, R4, Rig, repo_root
from lib.wait import wait_until

from .build import Build, Helpers
from .report import Records

PORT = 9
H4 = R4  # the host's (far end's) address: vf0h in the bench's guests, eth0 in P7's remote
# trafgen runs at most ~2 Mpps here; the count bound is a safety net above that,
# the time bound (timeout) the other one.
TRAFGEN_MAX_PPS = 5_000_000

CASES = ("C1", "C4", "P1", "P1g", "P1b", "P2", "P2g", "P3", "P3r", "P4", "P4b", "P10", "P5", "P5g", "P6", "P7",
         "D1", "P12", "P8", "P11", "P9", "G1")


# The never-reading UDP socket of every receive case (Hold; P12 runs it in its guest).
UDP_HOLD = repo_root() / "scripts" / "bench" / "udp_hold.py"

# Cases that boot a QEMU guest: left out of --quick unless --cases names them.
NOT_QUICK = ("P12",)


class BenchError(Exception):
    """The run cannot go on (one line; the run is cleaned up and exits 1)."""


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    rounds: int
    quick: bool
    window: float
    warmup: float
    iperf_seconds: int
    iperf_omit: int
    testrun_repeat: int
    testrun_fresh: int
    p7_seconds: float
    p8_pairs: int
    p9_seconds: float
    d1_departures: int
    cases: tuple[str, ...]
    perf: Path | None

    @classmethod
    def make(cls, rounds: int | None, quick: bool, window: float | None, cases: tuple[str, ...],
             perf: Path | None) -> "Settings":
        if quick:
            return cls(rounds or 2, True, window if window is not None else 0.3, 0.15, 1, 0, 100_000, 20_000,
                       0.6, 16, 20, 10, cases, perf)
        return cls(rounds or 5, False, window if window is not None else 2, 0.3, 3, 1, 1_000_000, 200_000,
                   1, 256, 60, 100, cases, perf)

    def want(self, case: str) -> bool:
        return case in self.cases

    @property
    def window_arg(self) -> str:
        return f"{self.window:g}"

    @property
    def trafgen_seconds(self) -> int:
        return int(self.window + self.warmup + 4)

    @property
    def trafgen_count(self) -> int:
        return TRAFGEN_MAX_PPS * self.trafgen_seconds

    @property
    def gen_seconds(self) -> float:
        # hnxdp gen is stopped with SIGTERM; its own --seconds bound ends it just past the window anyway.
        return round(self.window + self.warmup + 0.4, 2)


def trafgen_frame(dst_mac: str, src_mac: str, saddr: str, daddr: str) -> str:
    """trafgen's configuration of the benchmark's 64-byte frame: Ethernet + IPv4 + UDP
    1024 -> PORT + 22 bytes, UDP checksum 0."""
    return ("{\n"
            f"  eth(da={dst_mac}, sa={src_mac}, type=0x0800),\n"
            f"  ipv4(saddr={saddr}, daddr={daddr}, ttl=64, df),\n"
            f"  udp(sport=1024, dport={PORT}, csum=0),\n"
            "  fill(0x00, 22)\n"
            "}\n")


def now_us() -> int:
    return time.monotonic_ns() // 1000


def proc_net_snmp_udp(pid: int) -> dict[str, int]:
    """The Udp counters of the namespace process pid lives in."""
    rows = [line.split() for line in Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
            if line.startswith("Udp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))


@dataclass
class Hold:
    """A never-reading UDP socket bound to one device (scripts/bench/udp_hold.py)."""

    proc: Proc
    ns: str
    dev: str

    def counters(self) -> tuple[int, int]:
        """(datagrams delivered to the namespace's sockets, datagrams that found no socket)."""
        u = proc_net_snmp_udp(self.proc.pid)
        return u["InDatagrams"] + u["RcvbufErrors"], u["NoPorts"]

    def stop(self) -> None:
        self.proc.stop()


class Bench:
    """One run: settings, records, the build and helpers, the run's own pins and files."""

    def __init__(self, settings: Settings, build: Build, helpers: Helpers, tmp: Path, pins: Path) -> None:
        self.s = settings
        self.build = build
        self.binary = build.path
        self.helpers = helpers
        self.tmp = tmp
        self.pins = pins          # this run's own pins (baselines' links, G1's counter)
        self.records = Records()
        self._serial = 0
        self._cfgs: dict[tuple[str, str], Path] = {}
        self.trafgen_version = _first_word(run(["trafgen", "-v"], timeout=10).out, 1)
        self.iperf3_version = _first_word(run(["iperf3", "-v"], timeout=10).out, 1)

    # ------------------------------------------------------------ names and helpers

    def name(self, kind: str) -> str:
        self._serial += 1
        return f"{kind}-{self._serial}"

    def job(self, argv: list[str], kind: str) -> Proc:
        """A background job, output to <tmp>/<kind>-N.out/.err."""
        n = self.name(kind)
        return spawn(argv, stdout=self.tmp / f"{n}.out", stderr=self.tmp / f"{n}.err")

    def hnxdp(self, ns: str) -> Hnxdp:
        return Hnxdp(self.binary, ns)

    @staticmethod
    def host_mac(rig: Rig) -> str:
        return rig.link(rig.host, "vf0h")["address"]

    def frame_cfg(self, rig: Rig, direction: str) -> Path:
        """trafgen's 64-byte frame (Ethernet + IPv4 + UDP + 22 bytes, UDP checksum 0):
        "rx" host vf0h -> guest (H4 -> G4), "tx" guest -> host vf0h (G4 -> H4)."""
        key = (rig.id, direction)
        if key not in self._cfgs:
            gmac, hmac = rig.mac, self.host_mac(rig)
            smac, dmac, saddr, daddr = (hmac, gmac, H4, G4) if direction == "rx" else (gmac, hmac, G4, H4)
            path = self.tmp / f"{rig.id}.{direction}.cfg"
            path.write_text(trafgen_frame(dmac, smac, saddr, daddr))
            self._cfgs[key] = path
        return self._cfgs[key]

    # ------------------------------------------------------------ sinks and loads

    def hold(self, ns: str, dev: str) -> Hold:
        n = self.name(f"hold-{dev}")
        ready = self.tmp / f"{n}.ready"
        proc = spawn(Rig.netns_argv(ns, [sys.executable, str(UDP_HOLD),
                                         "--dev", dev, "--port", str(PORT), "--seconds", "1800",
                                         "--ready-file", str(ready)]),
                     stdout=self.tmp / f"{n}.out", stderr=self.tmp / f"{n}.err")
        try:
            wait_until(lambda: ready.exists() or not proc.running(), 5, f"sink on {dev} in {ns}")
        except AssertionError:
            proc.stop()
            raise BenchError(f"sink on {dev} in {ns} did not start") from None
        if not ready.exists():
            raise BenchError(f"sink on {dev} in {ns} did not start: {proc.errors().strip()}")
        return Hold(proc, ns, dev)

    def trafgen(self, ns: str, dev: str, cfg: Path, *opts: str, count: int | None = None,
                seconds: int | None = None) -> Proc:
        """trafgen sending cfg on dev in ns: one CPU, bounded by count and time (timeout)."""
        return self.job(["timeout", "-s", "INT", str(seconds or self.s.trafgen_seconds),
                         *Rig.netns_argv(ns, ["trafgen", "-i", str(cfg), "-o", dev, "-P", "1",
                                              "-n", str(count or self.s.trafgen_count),
                                              "--no-sock-mem", "-Q", "-C", *opts])], "trafgen")

    def gen(self, ns: str, dev: str, dst_mac: str, src_mac: str, seconds: float | None = None) -> Proc:
        """`hnxdp gen` as fast as it goes: P1's frame (198.18.0.2:1024 -> 198.18.0.1:9, 64 bytes)."""
        return self.job(self.hnxdp(ns).argv("gen", "--dev", dev, "--dst-mac", dst_mac, "--src-mac", src_mac,
                                            "--dst-ip", G4, "--src-ip", H4, "--dst-port", str(PORT),
                                            "--src-port", "1024", "--count", str(self.s.trafgen_count),
                                            "--seconds", f"{seconds or self.s.gen_seconds:g}"), "gen")

    # ------------------------------------------------------------ windows

    def window(self, job: Proc, stop_signal: int, read: Callable[[], tuple[int, int]], what: str) -> float:
        """Frames/s read() counts over the window while job (the load) runs; the job
        is stopped after it. read() -> (count, count that found no socket)."""
        delivered, unmatched, per_second = self.counted(read, self.s.warmup, self.s.window)
        if not job.running():
            log(f"warning: the load ended before the window closed ({what})")
        job.stop(sig=stop_signal)
        if unmatched:
            log(f"warning: {unmatched} datagrams found no socket ({what}: wrong device?)")
        if delivered <= 0:
            raise BenchError(f"nothing delivered ({what}); load's stderr: {job.errors().strip()[-300:]!r}")
        return per_second

    @staticmethod
    def counted(read: Callable[[], tuple[int, int]], warmup: float, seconds: float) -> tuple[int, int, float]:
        """After warmup, read() at the start and the end of a window of `seconds`, each
        read timed at the midpoint of its call. read() -> (count, count that found no
        socket); returns (count's growth, the other's growth, count's growth per second)."""
        def timed() -> tuple[int, int, int]:
            t = now_us()
            c, n = read()
            return c, n, (t + now_us()) // 2

        time.sleep(warmup)
        c0, n0, t0 = timed()
        time.sleep(seconds)
        c1, n1, t1 = timed()
        return c1 - c0, n1 - n0, float(round((c1 - c0) * 1e6 / (t1 - t0)))

    def rx(self, rig: Rig, sink: Hold) -> float:
        """trafgen into the host's vf0h (qdisc bypass), counted by sink in the guest."""
        job = self.trafgen(rig.host, "vf0h", self.frame_cfg(rig, "rx"))
        return self.window(job, signal.SIGINT, sink.counters, f"trafgen into {rig.host} vf0h")

    def tx(self, rig: Rig, dev: str, sink: Hold) -> float:
        """trafgen on a guest device with -q (the qdisc path), counted by sink on the host's vf0h."""
        job = self.trafgen(rig.guest, dev, self.frame_cfg(rig, "tx"), "-q")
        return self.window(job, signal.SIGINT, sink.counters, f"trafgen on {rig.guest} {dev}")

    def rx_gen(self, rig: Rig, sink: Hold) -> float:
        """hnxdp gen out of the host's vf0h, counted by sink in the guest."""
        job = self.gen(rig.host, "vf0h", rig.mac, self.host_mac(rig))
        return self.window(job, signal.SIGTERM, sink.counters, f"hnxdp gen into {rig.host} vf0h")

    # ------------------------------------------------------------ rounds

    def interleave(self, cid: str, fa: Callable[[], float], fb: Callable[[], float]) -> None:
        """s.rounds rounds, A first in even rounds, B first in odd ones."""
        self.interleave_visits(lambda cfg: {cid: fa() if cfg == "A" else fb()})

    def interleave_visits(self, visit: Callable[[str], dict[str, float]]) -> None:
        """As interleave, for configurations that are costly to switch: visit("A" or "B")
        measures every case of one configuration, {case id: value}."""
        for r in range(self.s.rounds):
            for cfg in (("A", "B") if r % 2 == 0 else ("B", "A")):
                for cid, value in visit(cfg).items():
                    self.records.val(cid, r, cfg, value)
                    log(f"{cid} round {r} {cfg}: {value:g}")

    def case(self, cid: str, what: str, kind: str, op: str, target: float, unit: str, generator: str) -> None:
        self.records.case(cid, what, kind, op, target, unit, generator)

    def note(self, cid: str, key: str, value: Any) -> None:
        self.records.note(cid, key, value)

    # ------------------------------------------------------------ --perf

    def maybe_perf(self, label: str, start: Callable[[], Proc], sink: Hold) -> None:
        """With --perf, one more window of a configuration under `perf record -a -g -e
        cpu-clock`: DIR/LABEL.data, and DIR/LABEL.count (frames the sink got), for
        scripts/bench/perf_phases.py."""
        if self.s.perf is None:
            return
        self.s.perf.mkdir(parents=True, exist_ok=True)
        job = start()
        time.sleep(self.s.warmup)
        c0, _ = sink.counters()
        data = self.s.perf / f"{label}.data"
        for f in (data, self.s.perf / f"{label}.data.old"):
            f.unlink(missing_ok=True)
        r = run(["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F", "4999", "-o", str(data), "--",
                 "sleep", self.s.window_arg], timeout=self.s.window + 120)
        if r.rc != 0:
            log(f"perf record failed ({label}): {r.err.strip()[:200]}")
        c1, _ = sink.counters()
        job.stop(sig=signal.SIGINT)
        (self.s.perf / f"{label}.count").write_text(f"{c1 - c0}\n")
        log(f"profile of {label}: {data} ({c1 - c0} frames)")


def _first_word(text: str, index: int) -> str:
    words = (text.splitlines() or [""])[0].split()
    return words[index] if len(words) > index else "?"


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


def clk_tck() -> int:
    return os.sysconf("SC_CLK_TCK")
