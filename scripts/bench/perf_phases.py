#!/usr/bin/env python3
"""perf_phases.py - where a benchmark frame's CPU time goes, per phase (ns/frame).

Reads the profiles `scripts/bench.sh --perf DIR` writes (DIR/LABEL.data: `perf record -a -g
-e cpu-clock -F FREQ`, DIR/LABEL.count: frames the sink got in that window) and
puts every sample of the load generator's process (trafgen: on this rig the
whole path, sender and softirq receive, runs in its context) into one phase:
the first frame, from the leaf up, that names a phase decides. Each sample is
1/FREQ s of CPU, so a phase's samples * 1e9/FREQ / frames is its ns per frame.

With --bpf, instead: inside the BPF programs, ns per frame per program and the
function it was in (the program itself, or a helper/map function it called).

  perf_phases.py DIR LABEL... [--freq 4999] [--comm trafgen] [--bpf]

--comm takes perf's comma-separated list: with `hnxdp gen` as the load (P1g, P2g), the
receive path runs in gen's process (comm hnxdp) and, when the softirq is deferred, in
ksoftirqd: --comm hnxdp,ksoftirqd/0,ksoftirqd/1.
"""
import argparse
import collections
import re
import subprocess
import sys

# (phase, frame-name matcher), checked for each frame from the leaf up.
PHASES = [
    ("BPF programs + helpers", re.compile(r"^bpf_prog_")),
    ("tc u32/mirred action", re.compile(r"^(tcf_|u32_classify|tcf_mirred|tc_run|mini_qdisc)")),
    ("backlog enqueue (netif_rx)", re.compile(r"^(enqueue_to_backlog|netif_rx_internal|__netif_rx|netif_rx)$")),
    ("dev_forward_skb (scrub, eth_type_trans, copy)", re.compile(r"^(__dev_forward_skb2?|dev_forward_skb(_nomtu)?|veth_forward_skb|skb_scrub_packet|eth_type_trans|skb_copy_ubufs)$")),
    ("redirect (skb_do_redirect, rest)", re.compile(r"^(skb_do_redirect|__bpf_redirect.*|__bpf_rx_skb.*)$")),
    ("IPv4 + UDP receive + drop", re.compile(r"^(ip_rcv|ip_rcv_core|ip_rcv_finish|ip_local_deliver|__udp4_lib_rcv|udp_rcv|ip_list_rcv|ip_sublist_rcv|ip_sublist_rcv_finish|ip_list_rcv_finish.*)$")),
    ("egress: __dev_queue_xmit (tcx egress, redirect)", re.compile(r"^(__dev_queue_xmit|dev_queue_xmit|sch_handle_egress)$")),
    ("netif_receive_skb_core (incl. tcx dispatch)", re.compile(r"^(__netif_receive_skb_core.*|__netif_receive_skb_one_core|__netif_receive_skb_list_core|netif_receive_skb_list_internal|__netif_receive_skb_list|sch_handle_ingress.*|tcx_run)$")),
    ("softirq + backlog dequeue", re.compile(r"^(process_backlog|__napi_poll|net_rx_action|handle_softirqs|do_softirq.*|__local_bh_enable_ip)$")),
    ("veth_xmit (rest)", re.compile(r"^veth_xmit$")),
    ("AF_PACKET send (trafgen)", re.compile(r"^(packet_sendmsg|tpacket_snd|packet_xmit|__dev_direct_xmit)$")),
    # With `hnxdp gen` as the load (P1g, P2g: --comm hnxdp,ksoftirqd/0,ksoftirqd/1):
    ("GRO", re.compile(r"^(napi_gro_receive|dev_gro_receive|gro_receive_skb|inet_gro_receive|udp4_gro_receive|udp_gro_receive|gro_normal_list|napi_gro_flush|__napi_gro_flush_chain|gro_flush.*)$")),
    ("veth NAPI: XDP frames to skbs", re.compile(r"^(veth_poll|veth_xdp_rcv.*|__xdp_build_skb_from_frame|xdp_build_skb_from_frame|veth_xdp_xmit|veth_ndo_xdp_xmit)$")),
    ("hnxdp gen: BPF_PROG_TEST_RUN live frames", re.compile(r"^(bpf_test_run_xdp_live|xdp_test_run_batch|bpf_prog_test_run_xdp|xdp_do_redirect.*|xdp_do_flush|bq_xmit_all|__dev_flush)$")),
]
OTHER = "other (the generator's user space, syscall entry)"


def classify(frames):
    for name in frames:
        for phase, rx in PHASES:
            if rx.search(name):
                return phase
    return OTHER


def bpf_site(frames):
    """'program' or 'program -> callee' for a sample inside a BPF program, else None."""
    for i, name in enumerate(frames):
        if name.startswith("bpf_prog_"):
            prog = name.split("_", 3)[-1]  # bpf_prog_<tag>_<name>
            return prog if i == 0 else f"{prog} -> {frames[i - 1] if i == 1 else frames[i - 1] + ' -> ' + frames[0]}"
    return None


def profile(path, comm, key=classify):
    out = subprocess.run(["perf", "script", "-i", path, "--comm", comm, "-F", "comm,ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    frames = None
    for line in out.splitlines():
        if not line.strip():
            continue
        if not line.startswith("\t"):  # "   COMM": a new sample; frames are tab-indented
            if frames is not None:
                counts[key(frames)] += 1
            frames = []
            continue
        parts = line.split()
        if frames is not None:
            frames.append(parts[1] if len(parts) > 1 else parts[0])
    if frames is not None:
        counts[key(frames)] += 1
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("labels", nargs="+")
    p.add_argument("--freq", type=float, default=4999.0)
    p.add_argument("--comm", default="trafgen")
    p.add_argument("--bpf", action="store_true")
    a = p.parse_args()
    if a.bpf:
        return bpf_report(a)
    cols = []
    for label in a.labels:
        with open(f"{a.dir}/{label}.count") as f:
            frames = int(f.read().split()[0])
        counts = profile(f"{a.dir}/{label}.data", a.comm)
        cols.append((label, frames, counts))
    ns = 1e9 / a.freq
    names = [ph for ph, _ in PHASES] + [OTHER]
    print("| phase | " + " | ".join(f"{l} ns/frame" for l, _, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name in names:
        vals = [c[name] * ns / fr if fr else 0.0 for _, fr, c in cols]
        if all(v < 0.5 for v in vals):
            continue
        print(f"| {name} | " + " | ".join(f"{v:.0f}" for v in vals) + " |")
    tot = [sum(c.values()) * ns / fr if fr else 0.0 for _, fr, c in cols]
    print("| **total (CPU time of the generator's context per delivered frame)** | " +
          " | ".join(f"**{v:.0f}**" for v in tot) + " |")
    print("| samples / frames | " + " | ".join(f"{sum(c.values())} / {fr}" for _, fr, c in cols) + " |")
    return 0


def bpf_report(a) -> int:
    ns = 1e9 / a.freq
    print("| profile | BPF program -> function | ns/frame |")
    print("|---|---|---|")
    for label in a.labels:
        with open(f"{a.dir}/{label}.count") as f:
            frames = int(f.read().split()[0])
        counts = profile(f"{a.dir}/{label}.data", a.comm, key=bpf_site)
        counts.pop(None, None)
        for site, n in counts.most_common():
            v = n * ns / frames
            if v >= 0.5:
                print(f"| {label} | {site} | {v:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
