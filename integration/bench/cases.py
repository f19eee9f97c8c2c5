"""The benchmark's cases (docs/benchmarks.md, Cases and Method).

Guest A (rig `a`) has hn0 198.18.0.1/24 + vf0 with one MAC and hnxdp attached
(from `attach_hnxdp` on); guest B (rig `b`) is built alike with the address on
vf0 and carries each case's baseline. Their hosts hold the veth peers, vf0h
198.18.0.2/24. P7, P8/P11, P9, D1 and G1 build rigs of their own; P12 boots a QEMU guest.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import signal
import time
from contextlib import ExitStack
from typing import Any, Callable

from lib.daemon import Daemon, state_is, wait_pair
from lib.metrics import Exposition, scrape
from lib.proc import Proc, run
from lib.rig import G4, Rig, open_rig
from lib.wait import wait_until

from .measure import (H4, UDP_HOLD, Bench, BenchError, Hold, clk_tck, log, now_us, proc_cpu_ticks, proc_status_kib,
                      trafgen_frame)


def generators(b: Bench) -> dict[str, str]:
    tg = f"trafgen {b.trafgen_version} (netsniff-ng)"
    sink = "Udp InDatagrams+RcvbufErrors"
    return {
        "rx": f"{tg}, 64-byte UDP into vf0h, 1 CPU, qdisc bypass; sink: socket bound to the device, {sink}",
        "tx": f"{tg}, 64-byte UDP in the guest, 1 CPU, -q (qdisc path); sink: socket on vf0h, {sink}",
        "rx_gen": "hnxdp gen (BPF_PROG_TEST_RUN live frames, XDP redirect out of vf0h), 64-byte UDP, as fast as "
                  f"it goes; guest vf0 GRO on (veth NAPI) in A and B; sink: socket bound to the device, {sink}",
    }


def ok(r: Any, what: str) -> Any:
    if r.rc != 0:
        raise BenchError(f"{what}: {r}")
    return r


class Cases:
    def __init__(self, bench: Bench, a: Rig, b: Rig, stack: ExitStack) -> None:
        self.b = bench
        self.a_rig = a
        self.b_rig = b
        self.stack = stack      # the run's clean-ups (rigs of their own that live to the end)
        self.gen = generators(bench)
        self.p9: dict[str, Any] = {}

    # ------------------------------------------------------------ helpers

    def new_rig(self, **layout: Any) -> Rig:
        """A rig of the benchmark's layout (guest + host, vf0h the far end, IPv6 off),
        cleaned up at the end of the run (or earlier, by closing the returned rig)."""
        layout = {"switch": False, "ipv6": False, **layout}
        return self.stack.enter_context(open_rig(self.b.binary, **layout))

    def tcxattach(self, rig: Rig, obj: str, dev: str, target: str, pin: str, *egress: str) -> None:
        ok(run(Rig.nsenter_argv(rig.guest, [str(self.b.helpers.exe("tcxattach")), str(self.b.helpers.obj(obj)),
                                            str(rig.ifindex(rig.guest, dev)), str(rig.ifindex(rig.guest, target)),
                                            str(self.b.pins / pin), *egress]), timeout=60),
           f"tcxattach {obj}")

    def mirred(self, rig: Rig, add: bool) -> None:
        """tc clsact u32 + `mirred ingress redirect dev hn0` on the guest's vf0 (or its removal)."""
        if add:
            rig.tc(rig.guest, "qdisc", "add", "dev", "vf0", "clsact")
            rig.tc(rig.guest, "filter", "add", "dev", "vf0", "ingress", "protocol", "all", "prio", "1", "u32",
                   "match", "u32", "0", "0", "action", "mirred", "ingress", "redirect", "dev", "hn0")
        else:
            rig.tc(rig.guest, "qdisc", "del", "dev", "vf0", "clsact")

    def gro_vf0(self, state: str, *rigs: Rig) -> None:
        for rig in rigs:
            rig.g("ethtool", "-K", "vf0", "gro", state)

    def stat(self, name: str) -> int:
        return int(self.a_rig.hnxdp.stats("hn0")[name])

    def rx_perf(self, label: str, rig: Rig, sink: Hold) -> None:
        self.b.maybe_perf(label, lambda: self.b.trafgen(rig.host, "vf0h", self.b.frame_cfg(rig, "rx")), sink)

    def rx_gen_perf(self, label: str, rig: Rig, sink: Hold) -> None:
        self.b.maybe_perf(label, lambda: self.b.gen(rig.host, "vf0h", rig.mac, self.b.host_mac(rig)), sink)

    def tx_perf(self, label: str, rig: Rig, dev: str, sink: Hold) -> None:
        self.b.maybe_perf(label, lambda: self.b.trafgen(rig.guest, dev, self.b.frame_cfg(rig, "tx"), "-q"), sink)

    # ------------------------------------------------------------ controls

    def c1(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("C1", "control, nothing attached: UDP 64B rx to a vf0 socket, guest A / guest B", "ratio", "info", 1,
               "pps", self.gen["rx"])
        sa, sb = b.hold(A.guest, "vf0"), b.hold(B.guest, "vf0")
        b.interleave("C1", lambda: b.rx(A, sa), lambda: b.rx(B, sb))
        sa.stop(), sb.stop()

    def c4(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("C4", "control, nothing attached: UDP 64B tx on vf0, guest A / guest B", "ratio", "info", 1, "pps",
               self.gen["tx"])
        sa, sb = b.hold(A.host, "vf0h"), b.hold(B.host, "vf0h")
        b.interleave("C4", lambda: b.tx(A, "vf0", sa), lambda: b.tx(B, "vf0", sb))
        sa.stop(), sb.stop()

    def attach_hnxdp(self) -> None:
        A, B = self.a_rig, self.b_rig
        ok(A.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0"), "hnxdp attach in guest A")
        if not (A.pin_dir / "hnxdp_vf_ingress").exists():
            raise BenchError(f"hnxdp attach made no pins under {A.pin_dir}")
        # Resolve ARP both ways once, so no measurement window pays for it.
        ok(A.g("ping", "-c", "1", "-W", "2", H4, check=False), "guest A cannot reach host A through the pair")
        ok(B.g("ping", "-c", "1", "-W", "2", H4, check=False), "guest B cannot reach host B on vf0")

    # ------------------------------------------------------------ receive

    def p1(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("P1", "UDP 64B rx: vf0 -> hn0 socket (hnxdp) / vf0 socket, nothing attached", "ratio", ">=", 0.95,
               "pps", self.gen["rx"])
        sa, sb = b.hold(A.guest, "hn0"), b.hold(B.guest, "vf0")
        v0 = self.stat("vf_rx_packets")
        b.interleave("P1", lambda: b.rx(A, sa), lambda: b.rx(B, sb))
        b.note("P1", "hnxdp_vf_rx_packets", self.stat("vf_rx_packets") - v0)
        self.rx_perf("P1-A", A, sa)
        self.rx_perf("P1-B", B, sb)
        sa.stop(), sb.stop()

    def p1b(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("P1b", "UDP 64B rx: hnxdp / tcx bpf_redirect(hn0, INGRESS) only", "ratio", ">=", 0.99, "pps",
               self.gen["rx"])
        self.tcxattach(B, "redirect_only", "vf0", "hn0", "redirect_only")
        sa, sb = b.hold(A.guest, "hn0"), b.hold(B.guest, "hn0")
        b.interleave("P1b", lambda: b.rx(A, sa), lambda: b.rx(B, sb))
        self.rx_perf("P1b-B", B, sb)
        sa.stop(), sb.stop()
        (b.pins / "redirect_only").unlink()  # last reference: detaches the baseline

    def p2(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("P2", "UDP 64B rx: hnxdp / tc u32 + mirred ingress redirect", "ratio", ">=", 1.02, "pps",
               self.gen["rx"])
        self.mirred(B, True)
        sa, sb = b.hold(A.guest, "hn0"), b.hold(B.guest, "hn0")
        b.interleave("P2", lambda: b.rx(A, sa), lambda: b.rx(B, sb))
        self.rx_perf("P2-B", B, sb)
        sa.stop(), sb.stop()
        self.mirred(B, False)

    def p3(self, reverse: bool = False) -> None:
        b, A, B, s = self.b, self.a_rig, self.b_rig, self.b.s
        cid, direction = ("P3r", "host -> guest") if reverse else ("P3", "guest -> host")
        b.case(cid, f"TCP (iperf3, 1 stream) {direction}: via hn0 (hnxdp) / on vf0", "ratio", ">=", 0.98, "bps",
               f"iperf3 {b.iperf3_version}, 1 stream, {s.iperf_seconds}s (+{s.iperf_omit}s omitted), {direction}")
        servers = [b.job(["timeout", "1800", *Rig.netns_argv(rig.host, ["iperf3", "-s", "-B", H4, "-p", "5201"])],
                         "iperf3-s") for rig in (A, B)]
        try:
            wait_until(lambda: all(rig.h("ss", "-Hltn", "sport = :5201").out.strip() for rig in (A, B)), 5,
                       "both iperf3 servers listen")
        except AssertionError as e:
            raise BenchError(str(e)) from None

        def iperf(rig: Rig) -> float:
            secs = s.iperf_seconds
            r = run(Rig.netns_argv(rig.guest, ["timeout", str(secs + 15), "iperf3", "-c", H4, "-p", "5201",
                                               "-t", str(secs), "-O", str(s.iperf_omit), "-J",
                                               "--connect-timeout", "3000", *(["-R"] if reverse else [])]),
                    timeout=secs + 30)
            ok(r, f"iperf3 from {rig.guest}")
            return float(math.floor(json.loads(r.out)["end"]["sum_received"]["bits_per_second"]))

        b.interleave(cid, lambda: iperf(A), lambda: iperf(B))
        for p in servers:
            p.stop()

    # ------------------------------------------------------------ transmit

    def p4_path_check(self) -> None:
        """What path does trafgen take on hn0? Its default PACKET_QDISC_BYPASS sends with
        dev_direct_xmit(), which skips __dev_queue_xmit() and so tcx egress; -q does not."""
        b, A, n = self.b, self.a_rig, 2000
        sa = b.hold(A.host, "vf0h")
        for mode in ("bypass", "qdisc"):
            v0, (c0, _) = self.stat("vf_tx_packets"), sa.counters()
            run(Rig.netns_argv(A.guest, ["timeout", "10", "trafgen", "-i", str(b.frame_cfg(A, "tx")), "-o", "hn0",
                                         "-P", "1", "-n", str(n), "--no-sock-mem", "-Q", "-C",
                                         *(["-q"] if mode == "qdisc" else [])]), timeout=20)
            time.sleep(0.2)
            dv, dc = self.stat("vf_tx_packets") - v0, sa.counters()[0] - c0
            log(f"P4 path check: trafgen ({mode}) sent {n} on hn0: hnxdp vf_tx_packets +{dv}, host vf0h socket +{dc}")
            b.note("P4", f"path_check_{mode}", {"sent": n, "hnxdp_vf_tx_packets": dv, "host_vf0h_delivered": dc})
        sa.stop()

    def p4(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("P4", "UDP 64B tx: sent on hn0, leaves via vf0 (hnxdp) / sent on vf0", "ratio", ">=", 0.95, "pps",
               self.gen["tx"])
        self.p4_path_check()
        sa, sb = b.hold(A.host, "vf0h"), b.hold(B.host, "vf0h")
        v0 = self.stat("vf_tx_packets")
        b.interleave("P4", lambda: b.tx(A, "hn0", sa), lambda: b.tx(B, "vf0", sb))
        b.note("P4", "hnxdp_vf_tx_packets", self.stat("vf_tx_packets") - v0)
        self.tx_perf("P4-A", A, "hn0", sa)
        self.tx_perf("P4-B", B, "vf0", sb)
        sa.stop(), sb.stop()

    def p4b(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("P4b", "UDP 64B tx: sent on hn0, leaves via vf0: hnxdp / tcx egress bpf_redirect(vf0, 0) only",
               "ratio", ">=", 0.99, "pps", self.gen["tx"])
        self.tcxattach(B, "redirect_egress_only", "hn0", "vf0", "redirect_egress_only", "egress")
        sa, sb = b.hold(A.host, "vf0h"), b.hold(B.host, "vf0h")
        b.interleave("P4b", lambda: b.tx(A, "hn0", sa), lambda: b.tx(B, "hn0", sb))
        self.tx_perf("P4b-B", B, "hn0", sb)
        sa.stop(), sb.stop()
        (b.pins / "redirect_egress_only").unlink()  # last reference: detaches the baseline

    def p10(self) -> None:
        """The classic tc attachment (what kernels without tcx get) against tcx: guest B
        becomes a copy of guest A attached with --tc-mode classic, and is put back after."""
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("P10", "UDP 64B rx: hnxdp attached with classic tc (clsact + cls_bpf) / with tcx", "ratio", ">=", 0.98,
               "pps", self.gen["rx"])
        b.case("P10t", "UDP 64B tx: hnxdp attached with classic tc / with tcx", "ratio", ">=", 0.98, "pps",
               self.gen["tx"])
        B.ip(B.guest, "addr", "del", f"{G4}/24", "dev", "vf0")
        B.ip(B.guest, "addr", "add", f"{G4}/24", "dev", "hn0")
        ok(B.hnxdp("attach", "--tc-mode", "classic", "--synthetic", "hn0", "--vf", "vf0"),
           "attach --tc-mode classic in guest B")
        if B.hnxdp.pair("hn0")["attachment"] != "classic":
            raise BenchError("guest B's pair is not classic")
        ok(B.g("ping", "-c", "1", "-W", "2", H4, check=False), "guest B (classic) cannot reach host B through the pair")
        sa, sb = b.hold(A.guest, "hn0"), b.hold(B.guest, "hn0")
        b.interleave("P10", lambda: b.rx(B, sb), lambda: b.rx(A, sa))
        self.rx_perf("P10-A", B, sb)
        self.rx_perf("P10-B", A, sa)
        sa.stop(), sb.stop()
        sa, sb = b.hold(A.host, "vf0h"), b.hold(B.host, "vf0h")
        b.interleave("P10t", lambda: b.tx(B, "hn0", sb), lambda: b.tx(A, "hn0", sa))
        self.tx_perf("P10t-A", B, "hn0", sb)
        self.tx_perf("P10t-B", A, "hn0", sa)
        sa.stop(), sb.stop()
        ok(B.hnxdp("detach", "--synthetic", "hn0"), "detach in guest B")
        B.ip(B.guest, "addr", "del", f"{G4}/24", "dev", "hn0")
        B.ip(B.guest, "addr", "add", f"{G4}/24", "dev", "vf0")

    # ------------------------------------------------------------ P6: BPF_PROG_TEST_RUN

    def p6(self) -> None:
        self.testrun_cases("P6", self.a_rig, ["hnxdp_vf_ingress", "hnxdp_syn_ingress", "hnxdp_syn_egress"], ref=True)

    def testrun_cases(self, prefix: str, rig: Rig, progs: list[str], ref: bool) -> None:
        """BPF_PROG_TEST_RUN of each pinned program of rig's guest against the empty
        program, in both test-run modes; with ref the bare redirect program (target
        ifindex 0: only the helper call counts) runs alongside as a row without a target."""
        b, s = self.b, self.b.s
        vf, hn = rig.ifindex(rig.guest, "vf0"), rig.ifindex(rig.guest, "hn0")
        for mode in ("repeat", "fresh"):
            n = s.testrun_repeat if mode == "repeat" else s.testrun_fresh
            args = [f"{b.helpers.obj('empty')}={vf}"]
            args += [f"{rig.pin_dir / p}={vf if p.endswith('vf_ingress') else hn}" for p in progs]
            if ref:
                args.append(f"{b.helpers.obj('redirect_only')}={vf}")
            r = ok(run(Rig.nsenter_argv(rig.guest, [str(b.helpers.exe("testrun")), *(["-f"] if mode == "fresh" else []),
                                                    "-r", str(n), "-n", str(s.rounds), *args]), timeout=1800),
                   "testrun")
            (b.tmp / f"testrun.{prefix}.{mode}").write_text(r.out)
            ns: dict[str, dict[int, float]] = {}
            retval: dict[str, int] = {}
            for line in r.out.splitlines():
                f = line.split()
                if len(f) == 5:
                    ns.setdefault(f[1], {})[int(f[0])] = float(f[3])
                    retval[f[1]] = int(f[4])
            for prog in progs + (["redirect_only"] if ref else []):
                cid, op = f"{prefix} {prog}", "<="
                if mode == "repeat":
                    gen = f"BPF_PROG_TEST_RUN repeat {n} (one skb reused for all repeats), 64-byte UDP frame, ctx ifindex set"
                else:
                    # Only the VF program changes the skb (tc_index) in a way the next repeat sees.
                    if not (prog.endswith("vf_ingress") or prog == "redirect_only"):
                        continue
                    cid = f"{prefix} {prog} (fresh skb)"
                    gen = f"BPF_PROG_TEST_RUN repeat 1, {n} runs (a new skb each), 64-byte UDP frame, ctx ifindex set"
                if prog == "redirect_only":
                    op, cid = "info", f"{cid}, reference"
                b.case(cid, f"ns/frame: {prog} - empty tc program", "delta", op, 10, "ns", gen)
                for rnd, value in ns.get(prog, {}).items():
                    b.records.val(cid, rnd, "A", value)
                    b.records.val(cid, rnd, "B", ns.get("empty", {}).get(rnd, math.nan))
                b.note(cid, "retval", retval.get(prog))

    # ------------------------------------------------------------ hnxdp gen as the generator

    def p1g(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("P1g", "P1 with hnxdp gen: UDP 64B rx: vf0 -> hn0 socket (hnxdp) / vf0 socket, nothing attached",
               "ratio", ">=", 0.95, "pps", self.gen["rx_gen"])
        self.gro_vf0("on", A, B)
        sa, sb = b.hold(A.guest, "hn0"), b.hold(B.guest, "vf0")
        b.interleave("P1g", lambda: b.rx_gen(A, sa), lambda: b.rx_gen(B, sb))
        self.rx_gen_perf("P1g-A", A, sa)
        self.rx_gen_perf("P1g-B", B, sb)
        sa.stop(), sb.stop()
        self.gro_vf0("off", A, B)

    def p2g(self) -> None:
        b, A, B = self.b, self.a_rig, self.b_rig
        b.case("P2g", "P2 with hnxdp gen: UDP 64B rx: hnxdp / tc u32 + mirred ingress redirect", "ratio", ">=", 1.02,
               "pps", self.gen["rx_gen"])
        self.gro_vf0("on", A, B)
        self.mirred(B, True)
        sa, sb = b.hold(A.guest, "hn0"), b.hold(B.guest, "hn0")
        b.interleave("P2g", lambda: b.rx_gen(A, sa), lambda: b.rx_gen(B, sb))
        self.rx_gen_perf("P2g-A", A, sa)
        self.rx_gen_perf("P2g-B", B, sb)
        sa.stop(), sb.stop()
        self.mirred(B, False)
        self.gro_vf0("off", A, B)

    # ------------------------------------------------------------ G1: the generators

    def g1(self) -> None:
        """hnxdp gen / trafgen out of a rig's host vf0h; the guest's vf0 counts and drops
        in XDP (bpf/bench/xdp_drop.bpf.c), so the receiver costs almost nothing."""
        b = self.b
        with open_rig(b.binary, switch=False, ipv6=False) as g:
            pin = b.pins / "g1_count"
            ok(run(Rig.nsenter_argv(g.guest, [str(b.helpers.exe("xdpdrop")), "attach", str(b.helpers.obj("xdp_drop")),
                                              str(g.ifindex(g.guest, "vf0")), str(pin)]), timeout=60),
               "xdpdrop attach")

            def count() -> tuple[int, int]:
                return int(ok(run([str(b.helpers.exe("xdpdrop")), "count", str(pin)], timeout=30), "xdpdrop count")
                           .out.strip()), 0

            b.case("G1", "generators into one veth (peer: XDP_DROP, counted in its map): hnxdp gen / trafgen", "ratio",
                   ">=", 3, "pps",
                   f"A: hnxdp gen (BPF_PROG_TEST_RUN live frames), B: trafgen {b.trafgen_version} -P 1 (qdisc bypass); "
                   "64-byte UDP")
            hmac = b.host_mac(g)
            b.interleave("G1",
                         lambda: b.window(b.gen(g.host, "vf0h", g.mac, hmac), signal.SIGTERM, count, "G1 hnxdp gen"),
                         lambda: b.window(b.trafgen(g.host, "vf0h", b.frame_cfg(g, "rx")), signal.SIGINT, count,
                                          "G1 trafgen"))
        pin.unlink(missing_ok=True)

    # ------------------------------------------------------------ P5: AF_XDP against TPACKET_V3

    def p5_cases(self, cid: str, what: str, generator: str, load: Callable[[], Proc], stop_signal: int) -> None:
        b, A = self.b, self.a_rig
        b.case(cid, what, "ratio", ">=", 3, "pps", generator)
        outputs: dict[str, list[dict[str, Any]]] = {"xsk": [], "tpacket": []}
        receivers = {"xsk": A.hnxdp.argv("xsk", "count", "--synthetic", "hn0", "--seconds", b.s.window_arg, "--json"),
                     "tpacket": Rig.nsenter_argv(A.guest, [str(b.helpers.exe("tpacket_v3")), "hn0", b.s.window_arg])}

        def receive(kind: str) -> float:
            job = load()
            time.sleep(b.s.warmup)
            r = ok(run(receivers[kind], timeout=b.s.window + 60), f"{cid} receiver {kind}")
            out = json.loads(r.out)
            outputs[kind].append(out)
            if not job.running():
                log(f"warning: the load ended before the {cid} receiver finished")
            job.stop(sig=stop_signal)
            fps = out.get("fps")
            return float(math.floor(fps if fps is not None else out["total"] / b.s.window))

        # As in P1: frames the reader lets through end in a socket, not in ICMP port-unreachable work.
        sink = b.hold(A.guest, "hn0")
        b.interleave(cid, lambda: receive("xsk"), lambda: receive("tpacket"))
        sink.stop()
        if cid == "P5":
            b.note(cid, "xsk_mode", next((o.get("mode") for o in outputs["xsk"] if "mode" in o), None))
        b.note(cid, "tpacket_kernel_drops_last", outputs["tpacket"][-1].get("kernel_drops") if outputs["tpacket"] else None)

    def p5(self) -> None:
        b, A = self.b, self.a_rig
        self.p5_cases("P5", "rx frames/s on guest A's pair: hnxdp xsk count (AF_XDP) / TPACKET_V3 ring reader on hn0",
                      f"trafgen {b.trafgen_version} 64-byte UDP into vf0h (as P1), 1 CPU; A counts frames/--seconds, "
                      "B frames/its own clock",
                      lambda: b.trafgen(A.host, "vf0h", b.frame_cfg(A, "rx")), signal.SIGINT)

    def p5g(self) -> None:
        b, A = self.b, self.a_rig
        self.gro_vf0("on", A)
        # xsk count needs up to ~1 s to set up: gen runs 1.5 s longer.
        self.p5_cases("P5g", "P5 with hnxdp gen: rx frames/s on guest A's pair: xsk count (AF_XDP) / TPACKET_V3 "
                             "reader on hn0",
                      "hnxdp gen (live frames) 64-byte UDP into vf0h as fast as it goes; guest A vf0 GRO on (so the "
                      "veth takes XDP frames without an XDP program: B)",
                      lambda: b.gen(A.host, "vf0h", A.mac, b.host_mac(A), seconds=b.s.gen_seconds + 1.5),
                      signal.SIGTERM)
        self.gro_vf0("off", A)

    # ------------------------------------------------------------ P7: VF departure

    P7_RATE = 100_000

    def p7(self) -> None:
        """Frames lost around one VF departure at 100k frames/s while `hnxdp run`
        follows it, on the test rig's layout (guest, host with the tc switch, remote)."""
        b, s = self.b, self.b.s
        with open_rig(b.binary, ipv6=False) as rig:
            run_ = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "0", "--hold-down-ms", "1",
                                "--flap-threshold", "1000")
            sink = b.hold(rig.guest, "hn0")
            self._p7_active(rig)
            rig.host_switch("vf")
            b.case("P7 planned", "frames lost, planned switch (host -> synthetic, then vf0 deleted), 100k frames/s",
                   "value", "<=", 0, "frames",
                   "scripts/bench/pace.c: 64-byte UDP every 10 us (busy-wait pacing, no bursts) remote -> host (tc "
                   f"mirred switch) -> guest, {s.p7_seconds:g}s per round, departure in the middle; hnxdp run in the "
                   "guest; sink: socket on hn0, Udp counters")
            b.case("P7 surprise", "frames lost, surprise removal (vf0 deleted, then host -> synthetic), 100k frames/s",
                   "value", "<=", 500, "frames", "as P7 planned; target 500 frames = 5 ms at 100k frames/s")
            for mode in ("planned", "surprise"):
                b.case(f"P7 {mode} guest", f"of P7 {mode}'s lost frames: those the guest's datapath took (hnxdp vf_rx + "
                                           "syn_rx) that did not reach the socket", "value", "<=", 0, "frames",
                       f"as P7 {mode}; the rest (host_lost, remote_lost in the JSON) is the emulated host's and the "
                       "VF's teardown")
            control = self._p7_round(rig, sink, "none")
            # The never-read sink keeps its first 2 datagrams queued (not counted).
            b.note("P7 planned", "control_lost_no_departure", control["lost"])
            per: dict[str, list[dict[str, Any]]] = {"planned": [], "surprise": []}
            for r in range(s.rounds):
                for cfg in (("A", "B") if r % 2 == 0 else ("B", "A")):
                    mode = "planned" if cfg == "A" else "surprise"
                    x = self._p7_round(rig, sink, mode)
                    per[mode].append(x)
                    b.records.val(f"P7 {mode}", r, "A", x["lost"])
                    b.records.val(f"P7 {mode} guest", r, "A", x["guest"])
            for mode, rounds in per.items():
                cid = f"P7 {mode}"
                b.note(cid, "departure_steps_ms", [x["steps_ms"] for x in rounds])
                b.note(cid, "lost_ms", [round(x["lost"] * 1000 / self.P7_RATE, 2) for x in rounds])
                b.note(cid, "rate_fps", self.P7_RATE)
                b.note(cid, "host_lost", [x["host"] for x in rounds])
                b.note(cid, "remote_lost", [x["remote"] for x in rounds])
            run_.stop()
            sink.stop()

    @staticmethod
    def _p7_active(rig: Rig) -> None:
        try:
            wait_pair(rig, state_is("active"), 10, "P7: the pair active")
        except AssertionError as e:
            raise BenchError(str(e)) from None

    def _p7_counts(self, rig: Rig) -> tuple[int, int, int, int]:
        """What the host took in from the remote (remh rx) and sent out of its synthetic
        port (hn0h tx), and what the guest's datapath took in on each path (hnxdp's
        counters: they survive the VF, and `run` keeps them across departures)."""
        st = rig.hnxdp.stats("hn0")
        return (rig.link_packets(rig.host, "remh", "rx"), rig.link_packets(rig.host, "hn0h", "tx"),
                int(st["vf_rx_packets"]), int(st["syn_rx_packets"]))

    def _p7_round(self, rig: Rig, sink: Hold, mode: str) -> dict[str, Any]:
        """p7_seconds of 100k frames/s from remote to guest, the departure `mode`
        (planned|surprise|none) a third of the way in. `ip link del` returns after both
        veth ends are unregistered, so no waiting is needed in between."""
        b, s = self.b, self.b.s
        self._p7_active(rig)
        r0, h0, v0, s0 = self._p7_counts(rig)
        c0, _ = sink.counters()
        n = int(self.P7_RATE * s.p7_seconds)
        pace = b.job(["timeout", "-s", "INT", str(int(s.p7_seconds) + 10),
                      *Rig.netns_argv(rig.remote, [str(b.helpers.exe("pace")), "eth0", rig.mac, H4, G4,
                                                   str(self.P7_RATE), str(n), str(int(s.p7_seconds) + 5)])], "pace")
        for _ in range(300):  # until the traffic flows
            if sink.counters()[0] > c0:
                break
            time.sleep(0.01)
        time.sleep(s.p7_seconds / 3)
        t0 = now_us()
        if mode == "planned":
            rig.vf_remove_planned()
        elif mode == "surprise":
            rig.vf_remove_surprise()
        t1 = now_us()
        if pace.wait(int(s.p7_seconds) + 15) != 0:
            raise BenchError(f"P7: pace failed: {pace.errors().strip()[-300:]}")
        time.sleep(0.2)
        c1, _ = sink.counters()
        r1, h1, v1, s1 = self._p7_counts(rig)
        sent = int(json.loads(pace.output())["sent"])
        delivered = c1 - c0
        # Where the frames were lost: before the host (remote -> remh), in the host or the VF's
        # teardown (taken in, not sent to hn0h, never seen by the guest's datapath), or in the
        # guest after its datapath took them (hnxdp's share).
        x = {"lost": sent - delivered, "remote": sent - (r1 - r0), "host": (r1 - r0) - (h1 - h0) - (v1 - v0),
             "guest": (v1 - v0) + (s1 - s0) - delivered, "steps_ms": round((t1 - t0) / 1000, 1)}
        log(f"P7 {mode}: sent {sent}, delivered {delivered}, lost {x['lost']} (before the host {x['remote']}, "
            f"host/VF teardown {x['host']}, guest after hnxdp took them {x['guest']}); departure steps took "
            f"{x['steps_ms']} ms")
        if mode != "none":
            rig.vf_add()
            self._p7_active(rig)
            rig.host_switch("vf")
        return x

    # ------------------------------------------------------------ D1: departure reaction
    # (named P12 until 2026-11-27, when P12 became hnxdp against a bond in a QEMU guest)

    D1_METRICS = ("127.0.0.1", 9469)  # run's endpoint, in the guest's own namespace
    D1_TARGET_MS = 100                # the product's bound: a departure handled within 100 ms

    def d1(self) -> None:
        """`hnxdp run`'s reaction to VF departures: from the kernel's notification
        (RTM_DELLINK) to the pair's map update (datapath on the synthetic), read from
        its Prometheus histogram hnxdp_departure_reaction_seconds (docs/metrics.md).
        One departure at a time, so each one's time is the growth of the histogram's
        _sum while its _count grows by exactly 1."""
        b, s = self.b, self.b.s
        n = s.d1_departures
        host, port = self.D1_METRICS
        with open_rig(b.binary, switch=False, ipv6=False) as rig:
            try:
                d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "0", "--hold-down-ms", "1",
                                 "--flap-threshold", "1000", "--metrics-listen", f"{host}:{port}")
                wait_pair(rig, state_is("active"), 10, "D1: hnxdp run joins vf0")
            except AssertionError as e:
                raise BenchError(str(e)) from None

            def histogram() -> tuple[int, float]:
                m = Exposition.parse(scrape(rig, host, port))
                count = m.value("hnxdp_departure_reaction_seconds_count", synthetic="hn0") or 0
                return int(count), m.value("hnxdp_departure_reaction_seconds_sum", synthetic="hn0") or 0.0

            reactions_us: list[float] = []
            try:
                for i in range(n):
                    c0, s0 = histogram()
                    rig.ip(rig.guest, "link", "del", "vf0")  # takes vf0h with it
                    last = [(c0, s0)]

                    def counted() -> bool:
                        last[0] = histogram()
                        return last[0][0] > c0

                    wait_until(counted, 10, f"D1: departure {i + 1} in hnxdp_departure_reaction_seconds_count",
                               interval=0.02)
                    c1, s1 = last[0]
                    if c1 != c0 + 1:
                        raise BenchError(f"D1: departure {i + 1}: the histogram counted {c1 - c0} departures")
                    reactions_us.append((s1 - s0) * 1e6)
                    rig.vf_add()
                    wait_pair(rig, state_is("active"), 10, f"D1: hnxdp run joins vf0 again ({i + 1})")
            except AssertionError as e:
                raise BenchError(str(e)) from None
            errors = d.lines_at("error", "critical")
            d.stop()
        if errors:
            raise BenchError(f"D1: hnxdp run logged errors: {errors[:3]}")
        srt = sorted(reactions_us)

        def pct(q: float) -> float:  # nearest rank, as the bash script had it
            return round(srt[min(len(srt) - 1, int(round(q * (len(srt) - 1))))] / 1000, 3)

        how = (f"hnxdp run --synthetic hn0 --settle-ms 0 --hold-down-ms 1 in a guest of its own; {n} times "
               "`ip link del vf0`, then vf0 back and joined; per departure the growth of the _sum of "
               "hnxdp_departure_reaction_seconds (run's --metrics-listen endpoint), whose _count grows by 1")
        for q, cid in ((0.5, "D1 p50"), (0.99, "D1 p99")):
            b.case(cid, f"VF departure: notification to datapath fallback (pair's map update), "
                        f"p{round(q * 100)} over {n} departures (ms)", "value", "<=", self.D1_TARGET_MS, "ms", how)
            b.records.val(cid, 0, "A", pct(q))
        b.note("D1 p99", "departures", n)
        b.note("D1 p99", "max_ms", round(srt[-1] / 1000, 3))
        b.note("D1 p99", "reaction_ms", [round(x / 1000, 3) for x in reactions_us])
        log(f"D1: {n} departures, reaction p50 {pct(0.5)} ms, p99 {pct(0.99)} ms, max {srt[-1] / 1000:.3f} ms")

    # ------------------------------------------------------------ P12: hnxdp against a bond, in a QEMU guest

    P12_SECONDS = 3  # each measurement's window under TCG (the guest runs at a few % of native speed)

    def p12(self) -> None:
        """One QEMU guest (TCG, Debian's 6.12 kernel) with a virtio-net NIC and an e1000e VF of
        the same MAC, its switch (integration/lib/vm.py) pointed at the VF. A: hnxdp's pair
        (virtio synthetic, e1000e VF); B: an active-backup bond of the same two NICs, the VF
        primary (what KVM users set up without virtio's STANDBY). The guest switches between
        them within one boot, in interleaved rounds; each visit measures UDP rx frames/s, UDP
        tx frames/s and TCP throughput guest -> switch. Indicative only: under TCG the
        guest's emulated CPU, not the datapath, sets the pace."""
        from lib import vm  # the QEMU harness, only for this case

        b = self.b
        secs = self.P12_SECONDS
        kernel = vm.prepare_kernel(vm.KERNEL_6_12)
        gen = (f"QEMU TCG guest (Linux {kernel.release}, 2 vCPUs), virtio-net synthetic + e1000e VF, one MAC; "
               f"{secs}s windows")
        b.case("P12 rx", "QEMU guest, UDP 64B rx: hnxdp pair / active-backup bond of the same NICs (VF primary)",
               "ratio", ">=", 0.95, "pps", f"{gen}; trafgen {b.trafgen_version} into the VF's tap, 1 CPU; sink: "
               "socket bound to the synthetic or bond0 in the guest, Udp InDatagrams+RcvbufErrors")
        b.case("P12 tx", "QEMU guest, UDP 64B tx: hnxdp pair / active-backup bond", "ratio", ">=", 0.95, "pps",
               f"{gen}; scripts/bench/pace.c in the guest on the synthetic or bond0 (AF_PACKET sendto, qdisc "
               "path), as fast as it goes; sink: socket on the switch's br0, Udp InDatagrams+RcvbufErrors")
        b.case("P12 tcp", "QEMU guest, TCP guest -> switch: hnxdp pair / active-backup bond", "ratio", ">=", 0.95,
               "bps", f"{gen}; iperf3 {b.iperf3_version}, 1 stream, {secs}s (+1s omitted)")
        with vm.open_guest(kernel, b.binary, vf_driver="e1000e") as guest:
            try:
                self._p12_run(guest, vm, secs)
            except AssertionError as e:
                raise BenchError(f"P12: {e}") from None
            b.note("P12 rx", "guest_boot_s", round(guest.boot_s, 1))

    def _p12_run(self, guest: Any, vm: Any, secs: int) -> None:
        b, s = self.b, self.b.s
        guest.load_extra_modules({"bonding": "max_bonds=0"})
        syn, vf = guest.dev_by_driver("virtio_net")[0], guest.vf_name()
        for dev in (syn, vf):
            guest.exec("ip", "link", "set", dev, "up", check=True)
        br0 = json.loads(guest.sw("ip", "-j", "link", "show", "br0").out)[0]
        rx_cfg = b.tmp / "p12.rx.cfg"
        rx_cfg.write_text(trafgen_frame(guest.mac, br0["address"], vm.H4, vm.G4))
        mode = {"now": None}

        def enter(want: str) -> str:
            """The guest's configuration `want` ("hnxdp" or "bond"); returns the device
            that carries the guest's address in it."""
            dev = syn if want == "hnxdp" else "bond0"
            if mode["now"] == want:
                return dev
            if mode["now"] == "hnxdp":
                ok(guest.hnxdp("detach", "--synthetic", syn), "P12: detach in the guest")
                guest.exec("ip", "addr", "flush", "dev", syn, check=True)
            elif mode["now"] == "bond":
                guest.exec("ip", "link", "del", "bond0", check=True)
                for nic in (syn, vf):
                    guest.exec("ip", "link", "set", nic, "up", check=True)
            if want == "hnxdp":
                guest.exec("ip", "addr", "add", f"{vm.G4}/24", "dev", syn, check=True)
                ok(guest.hnxdp("attach", "--synthetic", syn, "--vf", vf), "P12: attach in the guest")
                wait_pair(guest, lambda p: p and p["state"] == "active" and p["datapath"] == "vf", 60,
                          "P12: the pair joined", synthetic=syn, interval=0.2)
            else:
                guest.sh(f"ip link add bond0 type bond mode active-backup miimon 100 && "
                         f"ip link set {syn} down && ip link set {vf} down && "
                         f"ip link set {vf} master bond0 && ip link set {syn} master bond0 && "
                         f"ip link set bond0 type bond primary {vf} && ip link set bond0 up && "
                         f"ip addr add {vm.G4}/24 dev bond0", check=True)
                wait_until(lambda: f"Currently Active Slave: {vf}\nMII Status: up" in guest.read("/proc/net/bonding/bond0"),
                           60, f"P12: bond0 active on {vf}", interval=0.2)
            mode["now"] = want
            ok(guest.exec("ping", "-c", "1", "-W", "5", vm.H4), f"P12 ({want}): the guest reaches the switch")
            return dev

        def rx(want: str) -> float:
            dev = enter(want)
            sink = vm.GuestJob.start(guest, ["python3", str(UDP_HOLD), "--dev", dev, "--port", "9", "--seconds", "600"],
                                     "p12-hold", ready_file=True)
            load = b.trafgen(guest.ns, "tvf", rx_cfg, seconds=secs + 30)
            try:
                time.sleep(s.warmup + 1)
                # Both counter reads and the window in one guest command, timed by the guest's clock.
                r = guest.sh(f"grep Udp: /proc/net/snmp | tail -1; sleep {secs}; grep Udp: /proc/net/snmp | tail -1",
                             timeout=secs + 60, check=True)
            finally:
                load.stop(sig=signal.SIGINT)
                sink.stop()
            head = guest.sh("grep Udp: /proc/net/snmp | head -1", check=True).out.split()[1:]
            c0, c1 = ({k: int(v) for k, v in zip(head, line.split()[1:])} for line in r.out.splitlines()[:2])
            return float((c1["InDatagrams"] + c1["RcvbufErrors"] - c0["InDatagrams"] - c0["RcvbufErrors"]) // secs)

        def tx(want: str, sink: Hold) -> float:
            dev = enter(want)
            # pace (one sendto per frame, through the qdisc and tc egress) as fast as it goes: trafgen's
            # TX ring gives up on the first EAGAIN of a full queue, which the guest's emulated NICs reach.
            load = vm.GuestJob.start(guest, [str(b.helpers.exe("pace")), dev, br0["address"], vm.G4, vm.H4,
                                             "100000000", "100000000", str(secs + 20)], "p12-pace")
            try:
                delivered, _, per_second = b.counted(sink.counters, s.warmup + 1, secs)
            finally:
                load.stop()
            if delivered <= 0:
                raise BenchError(f"P12 ({want}): nothing from pace on {dev} reached the switch: {load.errors()[-300:]!r}")
            return per_second

        def tcp(want: str) -> float:
            enter(want)
            r = guest.exec("iperf3", "-c", vm.H4, "-p", "5201", "-t", str(secs), "-O", "1", "-J",
                           "--connect-timeout", "5000", timeout=secs + 90)
            ok(r, f"P12 ({want}): iperf3 in the guest")
            return float(math.floor(json.loads(r.out)["end"]["sum_received"]["bits_per_second"]))

        host_sink = b.hold(guest.ns, "br0")
        server = b.job(["timeout", "3600", *Rig.netns_argv(guest.ns, ["iperf3", "-s", "-B", vm.H4, "-p", "5201"])],
                       "iperf3-s")
        try:
            wait_until(lambda: guest.sw("ss", "-Hltn", "sport = :5201").out.strip(), 5, "P12: iperf3 server listens")
            def visit(cfg: str) -> dict[str, float]:
                want = "hnxdp" if cfg == "A" else "bond"
                return {"P12 rx": rx(want), "P12 tx": tx(want, host_sink), "P12 tcp": tcp(want)}

            b.interleave_visits(visit)
        finally:
            server.stop()
            host_sink.stop()
            if mode["now"] == "hnxdp":
                guest.hnxdp("detach", "--synthetic", syn)

    # ------------------------------------------------------------ P8: many pairs, P11: adopting and reading them

    def p8(self) -> None:
        """256 pairs: how long attaching them takes, three ways, then P1 with all of
        them attached (the last way, tc mode auto: as guest A's pair) against guest A."""
        b, s, A = self.b, self.b.s, self.a_rig
        pairs = s.p8_pairs
        with open_rig(b.binary, switch=False, ipv6=False) as g8:
            g8.pairs_add(range(1, pairs))
            listing = g8.tmp / "p8-pairs.txt"
            listing.write_text("".join(f"hn{i} vf{i}\n" for i in range(pairs)))
            log(f"P8: {pairs} pairs of veths in {g8.guest}")
            startup = []
            for _ in range(10):  # process start-up + argument parsing alone
                t0 = now_us()
                ok(g8.hnxdp("attach", "--help"), "hnxdp attach --help")
                startup.append((now_us() - t0) / 1000)

            def attached(how: str) -> None:
                n = len(g8.hnxdp.dump()["pairs"])
                if n != pairs:
                    raise BenchError(f"P8: {n} pairs attached {how}, wanted {pairs}")

            def attach_all(mode: str) -> float:
                """One `attach --pairs` for every pair; seconds."""
                t0 = now_us()
                r = ok(g8.hnxdp("attach", "--tc-mode", mode, "--pairs", str(listing), "--json"), f"P8: attach --pairs ({mode})")
                t = (now_us() - t0) / 1e6
                if len(json.loads(r.out)["pairs"]) != pairs:
                    raise BenchError(f"P8: attach --pairs ({mode}) reported {r.out[:200]}")
                attached(f"by attach --pairs ({mode})")
                return t

            # 1. One invocation per pair, classic tc (the faster attachment).
            per = []
            t_all = now_us()
            for i in range(pairs):
                t0 = now_us()
                ok(g8.hnxdp("attach", "--tc-mode", "classic", "--synthetic", f"hn{i}", "--vf", f"vf{i}"), f"P8: attach hn{i}")
                per.append((now_us() - t0) / 1000)
            t_each = (now_us() - t_all) / 1e6
            attached("one invocation each")
            ok(g8.hnxdp("detach", "--all"), "P8: detach --all")
            # 2. One invocation for all, classic tc: the target.
            t_classic = attach_all("classic")
            ok(g8.hnxdp("detach", "--all"), "P8: detach --all")
            # 3. One invocation for all, tc mode auto (tcx here); these pairs stay for P1 and P11.
            t_auto = attach_all(os.environ.get("HNXDP_TC_MODE") or "auto")
            if s.want("P11"):
                self.p11(g8)
            if not s.want("P8"):
                return
            op = "<=" if pairs == 256 else "info"  # the target is for 256 pairs
            b.case("P8 attach", f"wall clock of one `hnxdp attach --pairs` of {pairs} pairs, classic tc (loads the datapath)",
                   "value", op, 2, "s", f"hnxdp {b.binary}, under nsenter, --tc-mode classic")
            b.records.val("P8 attach", 0, "A", round(t_classic, 3))
            b.case("P8 attach tcx", f"as P8 attach, tc mode {os.environ.get('HNXDP_TC_MODE') or 'auto'} (tcx on this kernel: "
                                    "each link waits one RCU grace period)", "value", "info", 2, "s",
                   f"hnxdp {b.binary}, under nsenter")
            b.records.val("P8 attach tcx", 0, "A", round(t_auto, 3))
            b.case("P8 attach each", f"wall clock of {pairs} `hnxdp attach` invocations, one per pair, classic tc",
                   "value", "info", 2, "s", f"hnxdp {b.binary}, sequential CLI invocations under nsenter")
            b.records.val("P8 attach each", 0, "A", round(t_each, 3))
            srt = sorted(per)
            b.note("P8 attach each", "per_attach_ms", {"first": round(per[0], 1), "median": round(srt[(len(srt) + 1) // 2 - 1], 1),
                                                       "p90": round(srt[max(int(len(srt) * 0.9) - 1, 0)], 1),
                                                       "max": round(srt[-1], 1)})
            b.note("P8 attach each", "process_startup_ms_median", round(sorted(startup)[(len(startup) + 1) // 2 - 1], 1))
            b.note("P8 attach", "pairs", pairs)
            b.case("P8", f"P1 with {pairs} pairs attached / P1 with 1 pair (guest A)", "ratio", ">=", 0.95, "pps",
                   self.gen["rx"])
            ok(g8.g("ping", "-c", "1", "-W", "2", H4, check=False), "P8 guest cannot reach its host")
            sa, sb = b.hold(g8.guest, "hn0"), b.hold(A.guest, "hn0")
            b.interleave("P8", lambda: b.rx(g8, sa), lambda: b.rx(A, sb))
            sa.stop(), sb.stop()

    def p11(self, g8: Rig) -> None:
        """In P8's guest with its pairs attached: `hnxdp run` adopting them all (start to
        its READY=1), and `hnxdp status` (start to exit)."""
        b, s = self.b, self.b.s
        pairs = s.p8_pairs
        op = "<=" if pairs == 256 else "info"  # the targets are for 256 pairs
        b.case("P11 adopt", f"hnxdp run over {pairs} pinned pairs: start to its READY=1 (ms)", "value", op, 500, "ms",
               f"hnxdp {b.binary}, nsenter, no --synthetic (the pinned pairs); ready: sd_notify READY=1 on its "
               "NOTIFY_SOCKET")
        for r in range(s.rounds):
            t0 = now_us()
            try:
                d = Daemon.start(g8, "--settle-ms", "0", ready_timeout=60)
            except AssertionError as e:
                raise BenchError(f"P11: {e}") from None
            ready = next(m.at_us for m in d.notify.snapshot() if m.has("READY"))
            status = d.status() or ""
            d.stop()
            if not status.startswith(f"managing {pairs} synthetic(s)"):
                raise BenchError(f"P11: run did not adopt the {pairs} pairs: STATUS={status!r}")
            b.records.val("P11 adopt", r, "A", round((ready - t0) / 1000, 1))
        runs = int(os.environ.get("P11_STATUS_RUNS") or 10)
        b.case("P11 status", f"wall time of `hnxdp status` with {pairs} pairs, start to exit (ms, median of {runs})",
               "value", op, 20, "ms", f"hnxdp {b.binary}, timed from fork to exit by scripts/bench/walltime.c "
                                      "in the guest's namespace")
        # walltime times each run from fork to waitpid inside the namespace: hnxdp's exec,
        # loading, work and exit, not this harness's fork of Python nor nsenter's setns.
        h = g8.hnxdp
        timed = json.loads(ok(run(Rig.nsenter_argv(h.netns, [str(b.helpers.exe("walltime")), str(runs), *h.prefix,
                                                             str(h.binary), "status"]), env=h.env, timeout=60 + 5 * runs),
                              "walltime hnxdp status").out)
        for r, us in enumerate(timed["runs_us"]):
            b.records.val("P11 status", r, "A", round(us / 1000, 1))
        # CPU (user + system) per run, the mean over the runs (the kernel's accounting has a
        # 10 ms tick): on a busy machine wall time is CPU time plus waiting for a CPU.
        b.note("P11 status", "cpu_ms_per_run", round(timed["cpu_us"] / 1000 / runs, 1))
        # The same through this harness (Python's fork, nsenter), for comparison with earlier runs.
        t0 = now_us()
        for _ in range(runs):
            ok(g8.hnxdp("status"), "hnxdp status")
        b.note("P11 status", "through_harness_ms_mean", round((now_us() - t0) / 1000 / runs, 1))
        lines = len(ok(g8.hnxdp("status"), "hnxdp status").out.splitlines())
        if lines != pairs:
            raise BenchError(f"P11: status listed {lines} pairs, not {pairs}")

    # ------------------------------------------------------------ P9: idle control plane

    def p9_start(self) -> None:
        """`hnxdp run` in a guest of its own joins vf0; from then until the end of the run
        nothing happens in its namespace."""
        g9 = self.new_rig()
        try:
            d = Daemon.start(g9, "--synthetic", "hn0", "--settle-ms", "0",
                             *shlex.split(os.environ.get("P9_RUN_ARGS", "")))
            wait_pair(g9, state_is("active"), 10, "P9: hnxdp run joins vf0")
        except AssertionError as e:
            raise BenchError(str(e)) from None
        time.sleep(0.5)
        self.p9 = {"daemon": d, "c0": proc_cpu_ticks(d.pid), "t0": now_us()}
        log(f"P9: hnxdp run (pid {d.pid}) idle from now, measured at the end (>= {self.b.s.p9_seconds:g}s)")

    def p9_finish(self) -> None:
        b, d = self.b, self.p9["daemon"]
        rest = b.s.p9_seconds - (now_us() - self.p9["t0"]) / 1e6
        if rest > 0:
            time.sleep(rest)
        c1, t1 = proc_cpu_ticks(d.pid), now_us()
        rss, hwm = proc_status_kib(d.pid, "VmRSS"), proc_status_kib(d.pid, "VmHWM")
        tick = clk_tck()
        cpu_s = round((c1 - self.p9["c0"]) / tick, 3)
        wall = round((t1 - self.p9["t0"]) / 1e6, 1)
        b.case("P9 cpu", f"hnxdp run idle CPU (utime+stime) over {wall:.1f}s, 1 pair joined, % of one CPU", "value",
               "<=", 0.1, "%", f"/proc/PID/stat, CLK_TCK {tick} (resolution {100 / tick / wall:.3f} %)")
        b.records.val("P9 cpu", 0, "A", round(100 * cpu_s / wall, 4))
        b.note("P9 cpu", "cpu_seconds", cpu_s)
        b.note("P9 cpu", "wall_seconds", wall)
        b.case("P9 rss", "hnxdp run resident memory VmRSS (MiB)", "value", "<=", 30, "MiB",
               f"/proc/PID/status, {b.build.configuration} build")
        b.records.val("P9 rss", 0, "A", round(rss / 1024, 1))
        b.note("P9 rss", "vmhwm_mib", round(hwm / 1024, 1))
        d.stop()
