"""Egress shaping of the rig's guest devices: tc as the user sees it, and real
TCP throughput measured with iperf3 (guest -> remote).

    srv = IperfServer.start(rig, port=5386)
    assert_rate(rig, 5386, 18, 22, "tbf 20mbit on hn0")
    egress_config(rig, "vf0")      # qdiscs, classes and filters, as tc prints them
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .proc import Proc
from .rig import R4
from .wait import wait_until


@dataclass
class IperfServer:
    """iperf3 -s on the remote's address (bounded in time)."""

    proc: Proc
    port: int

    @classmethod
    def start(cls, rig: Any, port: int, seconds: int = 600) -> "IperfServer":
        proc = rig.bg(rig.remote, "timeout", str(seconds), "iperf3", "-s", "-B", R4, "-p", str(port),
                      name=f"iperf3-server-{port}")
        wait_until(lambda: f":{port} " in rig.r("ss", "-Hltn").out or not proc.running(), 10,
                   f"iperf3 server listening on port {port}")
        assert proc.running(), f"iperf3 server did not start: {proc.errors().strip()}"
        return cls(proc, port)


def tcp_mbit(rig: Any, port: int, seconds: int = 3) -> float:
    """Mbit/s the remote received in one guest -> remote TCP transfer
    (iperf3, the first second omitted)."""
    r = rig.g("timeout", "30", "iperf3", "-c", R4, "-p", str(port), "-t", str(seconds), "-O", "1", "-J",
              timeout=45, check=False)
    try:
        return json.loads(r.out)["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError) as e:
        raise AssertionError(f"iperf3 failed: {r}; {r.out[-400:]!r}") from e


def assert_rate(rig: Any, port: int, low: float, high: float, what: str) -> float:
    mbit = tcp_mbit(rig, port)
    assert low <= mbit <= high, f"{what}: {mbit:.1f} Mbit/s, expected {low}..{high}"
    return mbit


def egress_config(rig: Any, dev: str) -> str:
    """Everything of dev's egress configuration tc shows (qdiscs, classes, filters)."""
    return "\n".join(rig.g("tc", what, "show", "dev", dev).out for what in ("qdisc", "class", "filter"))


def qdiscs(rig: Any, dev: str) -> list[dict[str, Any]]:
    return json.loads(rig.g("tc", "-j", "qdisc", "show", "dev", dev).out or "[]")


def tbf_rate(rig: Any, dev: str) -> int | None:
    """The rate (bytes/s) of dev's tbf, None without one."""
    for q in qdiscs(rig, dev):
        if q["kind"] == "tbf":
            return int(q["options"]["rate"])
    return None


def per_queue(rig: Any, dev: str) -> str:
    """"parent=kind/limit" of dev's egress qdiscs (not clsact/ingress), sorted."""
    return " ".join(sorted(f"{q.get('parent', 'root')}={q['kind']}/{q.get('options', {}).get('limit', '-')}"
                           for q in qdiscs(rig, dev) if q["kind"] not in ("clsact", "ingress")))
