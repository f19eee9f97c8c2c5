"""Counters of one rig's traffic paths: the host's veth ports to the guest
(hn0h, vf0h: what the "hypervisor" sent and received on each path) and the
pair's datapath counters from `dump --json` (docs/json.md, stats).

    before = PathCounters.read(rig)
    ... traffic ...
    before.assert_through_vf("rx", at_least=200)   # received by the guest via vf0 only
"""
from __future__ import annotations

from dataclasses import dataclass

from .rig import Rig

HOST_PORTS = ("hn0h", "vf0h")


@dataclass(frozen=True)
class PathCounters:
    rig: Rig
    values: dict[str, int]

    @classmethod
    def read(cls, rig: Rig, synthetic: str = "hn0") -> "PathCounters":
        values: dict[str, int] = dict(rig.hnxdp.stats(synthetic))
        for port in HOST_PORTS:
            if rig.exists(rig.host, port):
                stats = rig.link(rig.host, port, stats=True)["stats64"]
                values[f"{port}_rx"] = int(stats["rx"]["packets"])
                values[f"{port}_tx"] = int(stats["tx"]["packets"])
        return cls(rig, values)

    def delta(self) -> dict[str, int]:
        """Growth of every counter since this read (counters of devices that
        exist at both reads only)."""
        now = PathCounters.read(self.rig).values
        return {k: now[k] - v for k, v in self.values.items() if k in now}

    def assert_through_vf(self, direction: str, at_least: int) -> dict[str, int]:
        """Since this read, frames the guest received ("rx") or sent ("tx")
        took the VF path only: none on the host's synthetic port, at least
        at_least on the host's VF port and in the pair's vf_<direction>_packets."""
        d = self.delta()
        host = {"rx": "tx", "tx": "rx"}[direction]  # the host sends what the guest receives
        assert d[f"hn0h_{host}"] == 0, f"{d[f'hn0h_{host}']} frames took the synthetic path (host hn0h {host})"
        assert d[f"vf0h_{host}"] >= at_least, f"host vf0h {host} rose by {d[f'vf0h_{host}']}, expected >= {at_least}"
        stat = f"vf_{direction}_packets"
        assert d[stat] >= at_least, f"{stat} rose by {d[stat]}, expected >= {at_least}"
        return d
