"""hnxdp benchmark (cases, method and results: docs/benchmarks.md).

  python3 -m bench [--rounds N] [--quick] [--json FILE] [--cases P1,P1b,...] [--window S] [--perf DIR]
  (from integration/; scripts/bench.sh runs it with the same options, through sudo if needed)

Every figure is a ratio of two configurations measured in this run, in
interleaved rounds (A B, then B A, ...): the table shows the median of the
per-round ratios and their spread (min..max). Absolute numbers are printed
too, but only the ratios mean anything across runs. Cases:
  P1   frames/s to a socket bound to hn0 via vf0 (hnxdp) / to a socket on vf0, nothing attached
  P1b  hnxdp / a tcx program doing only bpf_redirect(hn0, BPF_F_INGRESS) (bpf/bench/redirect_only.bpf.c)
  P2   hnxdp / tc clsact u32 + `mirred ingress redirect dev hn0`
  P3   iperf3 TCP throughput via hn0 (through the pair) / directly on vf0, guest -> host
  P3r  the same, host -> guest (iperf3 -R)
  P4   frames/s sent on hn0 leaving via vf0 (hnxdp) / sent on vf0, nothing attached
  P4b  hnxdp / a tcx egress program on hn0 doing only bpf_redirect(vf0, 0)
       (bpf/bench/redirect_egress_only.bpf.c), same load
  P10  P1 (rx) and P4 (tx, "P10t") with hnxdp attached as classic tc filters (clsact +
       cls_bpf, what kernels without tcx get) / attached with tcx; guest B takes guest
       A's configuration for this case and is put back after it
  P6   ns per frame of each hnxdp program minus an empty tc program (BPF_PROG_TEST_RUN)
  P1g, P2g  P1 and P2 with `hnxdp gen` (BPF_PROG_TEST_RUN live frames) as the generator
       instead of trafgen (guest vf0 with GRO on, so the veth takes XDP frames, in A and B)
  P5   frames/s counted by `hnxdp xsk count` (AF_XDP, copy mode on veth) on guest A's pair /
       by an AF_PACKET TPACKET_V3 ring reader on hn0 (scripts/bench/tpacket_v3.c); same
       trafgen load into vf0h; a UDP sink on hn0 takes what the reader lets through
  P5g  P5 with `hnxdp gen` as the load (trafgen alone cannot offer more than ~0.5 Mpps)
  P7   frames lost around one VF departure at 100k frames/s (scripts/bench/pace.c, one
       frame every 10 us). The test rig's layout (guest/host/remote, host tc mirred switch,
       integration/lib/rig.py), `hnxdp run` in the guest. "P7 planned" (host switches, then
       vf0 deleted) and "P7 surprise" (vf0 deleted, then host switches): lost frames; lost ms
       = lost / rate in the JSON. "P7 surprise guest" (and planned): of those, frames the
       guest's datapath took (hnxdp's vf_rx + syn_rx) that did not reach the socket, target 0;
       host_lost in the JSON: frames the host took in and sent towards the VF that never
       reached the guest's datapath: the emulated host's and the VF's teardown
  D1   `hnxdp run`'s reaction to VF departures (own guest, --metrics-listen): notification
       to the pair's map update (datapath on the synthetic), per departure the growth of
       hnxdp_departure_reaction_seconds_sum; "D1 p50" and "D1 p99" over 100 departures
       (--quick 10), target <= 100 ms (named P12 before 2026-11-27)
  P12  in a QEMU guest (TCG; Debian's 6.12 kernel; virtio-net synthetic + e1000e VF of one
       MAC): hnxdp's pair / an active-backup bond of the same two NICs, VF primary (what KVM
       users set up without STANDBY), switched within one boot: "P12 rx", "P12 tx" (64-byte
       UDP frames/s) and "P12 tcp" (iperf3 guest -> switch). Indicative: under TCG the
       emulated CPU sets the pace. Not part of --quick unless named in --cases
  P8   P1 in a guest with 256 pairs attached / P1 in guest A (1 pair); "P8 attach": wall
       clock of one `hnxdp attach --pairs` of the 256 pairs with classic tc; "P8 attach tcx"
       the same with tc mode auto (info); "P8 attach each": 256 `hnxdp attach` invocations,
       classic tc (info; per attach and process start-up as notes)
  P11  with P8's 256 pairs attached (P8's guest): "P11 adopt": `hnxdp run` started over
       them, time from its start to its READY=1 (sd_notify; every pinned pair adopted);
       "P11 status": wall time of `hnxdp status`, fork to exit, timed in the guest's
       namespace by scripts/bench/walltime.c (P11_STATUS_RUNS runs, default 10; the
       median). Needs P8's rig: P11 alone runs P8's attaches too
  P9   `hnxdp run` (own guest, 1 pair joined) idle CPU (utime+stime) from its start to the
       end of the run, at least 60 s (--quick 20 s), and VmRSS (VmHWM as a note); it idles
       alongside the other cases
  G1   generators: frames/s of `hnxdp gen` / trafgen into the same veth, its peer running
       a counting XDP_DROP program (bpf/bench/xdp_drop.bpf.c), counted in that program's map
Controls, run before hnxdp is attached (nothing attached anywhere; expect 1.0: they
show how far guest A and guest B differ by themselves):
  C1   P1's traffic to a socket on vf0: guest A / guest B
  C4   P4's traffic sent on vf0: guest A / guest B

Rig (integration/lib/rig.py, namespaces hnxrig-<pid>-..., all deleted on exit;
addresses only 198.18.0.0/15):
  guest A (hnxdp):     hn0 198.18.0.1/24 + vf0 (no address), same MAC, hnxdp attached
  guest B (baselines): hn0 (no address) + vf0 198.18.0.1/24, same MAC, nothing or
                       the case's baseline on vf0 ingress
  host A / host B:     hn0h, vf0h 198.18.0.2/24 (peers of the guest's hn0/vf0)
Load: trafgen (netsniff-ng) with a fixed 64-byte UDP frame (bounded by count and
time, one CPU); the receiver is a UDP socket bound to the device that never reads
(scripts/bench/udp_hold.py), counted by the kernel in the namespace's Udp
InDatagrams + RcvbufErrors over a fixed window.

--quick: P8 (and P11) with 16 pairs instead of 256, D1 over 10 departures instead of 100,
P9 over about 20 s instead of 60 s.
Environment: HNXDP (binary; default: a release build made in .build-bench, printed
  with its version and commit), CLANG (default: clang on PATH, else the clang next to
  swift in the Swift toolchain), HNXDP_TC_MODE (passed through: P8/P11 attach with tcx
  or classic; default auto), P11_STATUS_RUNS (runs of `hnxdp status` in P11, default 10),
  P9_RUN_ARGS (more options for P9's `hnxdp run`, e.g. its metrics:
  P9_RUN_ARGS="--metrics-listen 127.0.0.1:9469 --metrics-textfile /tmp/p9.prom").
Exit codes: 0 done (targets missed or not), 1 the run failed, 2 bad usage, 3 not root
or a tool missing.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from lib.proc import run
from lib.rig import open_rig, reap_stale, repo_root
from lib.toolchain import ToolchainError

from .build import Build, BuildError, build_helpers, hnxdp_build
from .cases import Cases, generators
from .measure import CASES, NOT_QUICK, Bench, BenchError, Settings, log
from .report import write_json

TOOLS = ("ip", "tc", "ethtool", "ss", "ping", "trafgen", "iperf3", "nsenter", "gcc", "timeout", "mountpoint")
BPFFS = Path("/sys/fs/bpf")
PIN_PREFIX = "hnxb"


def parse(argv: list[str]) -> argparse.Namespace:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(prog="bench", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                usage="%(prog)s [--rounds N] [--quick] [--json FILE] [--cases LIST] [--window S] "
                                      "[--perf DIR]")
    p.add_argument("--rounds", type=_positive_int, help="rounds per case (default 5; --quick: 2)")
    p.add_argument("--quick", action="store_true", help="short windows, fewer repeats: the whole run in about a minute")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (one object per case id)")
    p.add_argument("--cases", metavar="LIST",
                   help=f"comma-separated subset of {','.join(CASES)} (default: all; with --quick all but "
                        f"{','.join(NOT_QUICK)}, which boot a QEMU guest)")
    p.add_argument("--window", type=_positive_float, metavar="S",
                   help="counting window per measurement in seconds (default 2; --quick 0.3)")
    p.add_argument("--perf", metavar="DIR",
                   help="after the rounds of P1, P1b, P2, P4, P4b, P10, P10t, P1g, P2g profile one more window of each configuration "
                        "(perf record -a -g -e cpu-clock): DIR/<case>-<A|B>.data and .count (frames delivered); "
                        "then scripts/bench/perf_phases.py DIR P1-B P1-A ... prints ns per frame per phase")
    a = p.parse_args(argv)
    if a.cases is None:
        cases = tuple(c for c in CASES if not (a.quick and c in NOT_QUICK))
    else:
        cases = tuple(c for c in a.cases.split(",") if c)
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        p.error(f"--cases: unknown case {','.join(unknown) or '(none given)'}; the cases: {','.join(CASES)}")
    a.cases = cases
    return a


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("needs a positive integer")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = 0
    if not v > 0:
        raise argparse.ArgumentTypeError("needs a positive number of seconds")
    return v


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _cleaning_up(signum: int, _frame: object) -> None:
    log(f"signal {signum}: cleaning up first")


def reap_stale_pins() -> None:
    """Pin directories /sys/fs/bpf/hnxb-<pid>-... of runs whose process is gone."""
    for d in BPFFS.glob(f"{PIN_PREFIX}-*"):
        pid = d.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)
            log(f"removed stale pins {d}")


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench: must run as root (namespaces, BPF): scripts/bench.sh runs it through sudo", file=sys.stderr)
        return 3
    missing = [t for t in TOOLS + (("perf",) if args.perf else ()) if shutil.which(t) is None]
    if missing:
        print(f"bench: missing tools: {' '.join(missing)} (scripts/install-deps.sh)", file=sys.stderr)
        return 3
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    settings = Settings.make(args.rounds, args.quick, args.window, args.cases,
                             Path(args.perf).resolve() if args.perf else None)
    json_out = Path(args.json).resolve() if args.json else None
    repo = repo_root()
    try:
        t_build = time.monotonic()
        build = hnxdp_build(repo, log)
        log(f"build: {build.line()} ({time.monotonic() - t_build:.0f} s)")
        started = time.monotonic()  # the run's elapsed time, as before: without the build
        if run(["mountpoint", "-q", str(BPFFS)]).rc != 0:
            run(["mount", "-t", "bpf", "bpf", str(BPFFS)], check=True)
        for name in reap_stale(build.path):
            log(f"removed stale namespace {name}")
        reap_stale_pins()
        with ExitStack() as stack:
            bench_id = f"{PIN_PREFIX}-{os.getpid()}-{random.randrange(32768)}"
            tmp = Path(tempfile.mkdtemp(prefix=f"{bench_id}.", dir="/tmp"))
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            pins = BPFFS / bench_id
            pins.mkdir()
            stack.callback(shutil.rmtree, pins, ignore_errors=True)
            log(f"building BPF baselines and helpers in {tmp}")
            helpers = build_helpers(repo, tmp)
            bench = Bench(settings, build, helpers, tmp, pins)
            a = stack.enter_context(open_rig(build.path, switch=False, ipv6=False))
            b = stack.enter_context(open_rig(build.path, switch=False, ipv6=False, addr_dev="vf0"))
            log(f"guest A {a.guest} (hnxdp), guest B {b.guest} (baselines), hosts {a.host} {b.host}")
            try:
                run_cases(Cases(bench, a, b, stack), settings)
            finally:
                # A second Ctrl-C or SIGTERM must not cut the clean-up short.
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(sig, _cleaning_up)
            lines, doc = bench.records.results(meta(settings, build, argv))
        # The rigs are gone here: print and write only what a finished, cleaned-up run measured.
        report(settings, bench, build, lines)
        if json_out:
            write_json(str(json_out), doc)
        print(f"\nelapsed: {time.monotonic() - started:.0f} s" + (f"; JSON: {json_out}" if json_out else ""))
        return 0
    except KeyboardInterrupt as e:
        print(f"bench: interrupted ({e or 'SIGINT'}); cleaned up", file=sys.stderr)
        return 130
    except (BenchError, BuildError, ToolchainError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    except AssertionError as e:  # lib's failures (a command that failed, a wait that timed out)
        print(f"bench: failed: {e}", file=sys.stderr)
        return 1


def run_cases(c: Cases, s: Settings) -> None:
    steps = [("C1", c.c1), ("C4", c.c4), ("P9", c.p9_start), (None, c.attach_hnxdp), ("P1", c.p1), ("P1b", c.p1b),
             ("P2", c.p2), ("P3", c.p3), ("P3r", lambda: c.p3(reverse=True)), ("P4", c.p4), ("P4b", c.p4b),
             ("P10", c.p10), ("P6", c.p6), ("G1", c.g1), ("P1g", c.p1g), ("P2g", c.p2g), ("P5", c.p5),
             ("P5g", c.p5g), ("P7", c.p7), ("D1", c.d1), ("P12", c.p12), ("P8", c.p8), ("P9", c.p9_finish)]
    for case, step in steps:
        if case == "P8":
            if not (s.want("P8") or s.want("P11")):
                continue
        elif case is not None and not s.want(case):
            continue
        t0 = time.monotonic()
        step()
        label = {None: "attach", "P9": "P9 start" if step == c.p9_start else "P9 finish"}.get(case, case)
        log(f"{label} took {time.monotonic() - t0:.1f} s")


def meta(s: Settings, build: Build, argv: list[str] | None) -> dict[str, object]:
    args = sys.argv[1:] if argv is None else argv
    entry = os.environ.get("HNXDP_BENCH_ENTRY", "python3 -m bench")
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "nproc": str(os.cpu_count()),
            "kernel": os.uname().release, "rounds": str(s.rounds), "window_s": s.window_arg,
            "quick": "1" if s.quick else "0", "command": " ".join([entry, *args]),
            "build": build.json()}


def report(s: Settings, bench: Bench, build: Build, lines: list[str]) -> None:
    print()
    print(f"hnxdp benchmark: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"Linux {os.uname().release}, rounds {s.rounds}, window {s.window_arg}s{', quick' if s.quick else ''}")
    print(f"build: {build.line()}")
    g = generators(bench)
    print(f"load: P1/P1b/P2: {g['rx']}")
    print(f"      P4: {g['tx']}")
    if s.want("P1g") or s.want("P2g"):
        print(f"      P1g/P2g: {g['rx_gen']}")
    if s.want("G1"):
        print("      G1: hnxdp gen vs trafgen into one veth; sink: XDP_DROP program on the peer, counted in its map")
    print()
    print("\n".join(lines))
