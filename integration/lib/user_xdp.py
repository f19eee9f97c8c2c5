"""A user's XDP program on the pair (`hnxdp xdp attach`, B18): the test
objects built with clang, what XDP the guest's devices carry, and UDP
counted behind a program that drops one port (tests 82, 84).

    obj = drop_udp_port_object(rig)                 # scripts/tools/xdp_drop_udp_port.bpf.c
    rig.hnxdp("xdp", "attach", "--synthetic", "hn0", str(obj), "--prog", "drop_udp_port")
    assert xdp_prog(rig, "vf0") == STEER
    assert udp_received(rig, (DROP, KEEP)) == {DROP: 0, KEEP: N}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from .proc import run
from .rig import G4, Rig, tools_dir
from .toolchain import bpf_object
from .traffic import UdpSink, udp_send

DROP = 5555  # the port the test program drops
KEEP = 5556  # a port it lets through
N = 200  # datagrams per port and check
STEER = "hnxdp_xsk_steer"  # hnxdp's XDP program on the pair's devices

# A BPF object with a tc program only, and a foreign XDP program (not hnxdp's).
TC_ONLY_SOURCE = """#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "Dual BSD/GPL";
SEC("tc")
int tc_only(struct __sk_buff *skb) { return 0; }
"""
FOREIGN_XDP_SOURCE = """#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "Dual BSD/GPL";
SEC("xdp")
int foreign_pass(struct xdp_md *ctx) { return XDP_PASS; }
"""


def build_bpf(rig: Rig, source: Path | str, out: str, defines: Sequence[str] = ()) -> Path:
    """Compile a BPF C file (a path, or source text) into rig.tmp/out."""
    if isinstance(source, str):
        path = rig.tmp / f"{Path(out).stem}.bpf.c"
        path.write_text(source)
        source = path
    obj = bpf_object(source, rig.tmp / out, defines)
    return obj


def drop_udp_port_object(rig: Rig) -> Path:
    """scripts/tools/xdp_drop_udp_port.bpf.c: program drop_udp_port drops UDP to DROP."""
    return build_bpf(rig, tools_dir() / "xdp_drop_udp_port.bpf.c", "drop.bpf.o", [f"DROP_PORT={DROP}"])


def xdp_prog(rig: Rig, dev: str) -> str | None:
    """Name of the XDP program on a guest device (`ip -d -j link`), None without one."""
    xdp = rig.link(rig.guest, dev).get("xdp")
    if not xdp:
        return None
    prog = xdp.get("prog") or next((a.get("prog") for a in xdp.get("attached", []) if a.get("prog")), None)
    return (prog or {}).get("name", "?")


def xdp_pins(rig: Rig) -> list[str]:
    """The XDP pins (programs, maps, links) under the guest's pin directory."""
    return [p for p in rig.pins() if Path(p).name.startswith(("xdp_", "link_xdp_"))]


def xdp_snapshot(rig: Rig, devs: Iterable[str] = ("hn0", "vf0")) -> str:
    """Rig.snapshot plus what it does not show: bpftool's view of the guest
    devices' XDP and the program behind each XDP program pin."""
    parts = [rig.snapshot(devs), "## bpftool net (guest)"]
    r = run(["nsenter", f"--net=/run/netns/{rig.guest}", "--", "bpftool", "-j", "net", "show"], timeout=30)
    parts.append(r.out + r.err)
    parts.append("## pinned XDP programs")
    for rel in xdp_pins(rig):
        path = rig.pin_dir / rel
        if path.name.startswith("link_"):
            continue
        r = run(["bpftool", "-j", "prog", "show", "pinned", str(path)], timeout=30)
        try:
            prog = json.loads(r.out)
            parts.append(f"{rel}: {prog.get('id')} {prog.get('name')}")
        except ValueError:
            parts.append(f"{rel}: not a program")
    return "\n".join(parts)


def udp_received(rig: Rig, ports: Sequence[int], count: int = N, seconds: float = 6) -> dict[int, int]:
    """count datagrams from the remote to the guest on each port, at once;
    returns how many a socket bound to hn0 received per port. A sink stops
    once it has all (or after seconds)."""
    sinks = {port: UdpSink.start(rig, rig.guest, "hn0", port, seconds=seconds, expect=count, linger=0.5)
             for port in ports}
    for port in ports:
        assert udp_send(rig, rig.remote, G4, port, count, rate=1000) == count, f"udp_send to port {port}"
    return {port: sink.count() for port, sink in sinks.items()}
