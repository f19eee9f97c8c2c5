"""What the tests of `hnxdp run` (the control plane) share: VFs that arrive and
leave, waits on a pair's state, the switch history, what a device reads like,
and what a pair holds (BPF links, fds, pins) to show that nothing leaks.

    ifindex = vf_arrive(rig, "ethtool -K vf0 tso off") # prepared, then takes hn0's MAC
    p, seen = wait_joined(rig, "vf0", 60)                # active with vf0, datapath vf
    vf_depart(rig)                                       # `ip link del vf0`; idle, no VF
    assert last_switch(rig.hnxdp.pair())["reason"] == "departed"

Everything is read from `dump --json` (docs/json.md), the devices (`ip -j`,
ethtool) and bpftool: never map bytes or log text. There are no timed
assertions: a reaction is waited for with a generous bound.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from . import bpf
from .daemon import wait_pair
from .rig import Rig, python
from .wait import wait_until

Pair = dict[str, Any]

# How long the tests wait for a reaction of `run` (a join after its settle
# delay, a departure, a setting passed down): generous, the machine is shared.
REACT = 60


# ---------------------------------------------------------------- conditions on a pair

def history_complete(p: Pair | None) -> bool:
    """The switch history has caught up with the pair's switch count (hnxdp
    writes the history file just after the pair entry: a `dump` in between
    sees `switches` one ahead of `switch_history`)."""
    return p is not None and (p["switches"] == 0 or any(s["switch"] == p["switches"] for s in p["switch_history"]))


def active_with(vf: str, datapath: bool = True) -> Callable[[Pair | None], bool]:
    """A wait_pair condition: active, its VF named vf (and datapath vf), history complete."""
    def cond(p: Pair | None) -> bool:
        return (p is not None and p["state"] == "active" and (p["vf"] or {}).get("name") == vf
                and (not datapath or p["datapath"] == "vf") and history_complete(p))
    return cond


def idle_without_vf(p: Pair | None) -> bool:
    return p is not None and p["state"] == "idle" and p["vf"] is None and history_complete(p)


def wait_joined(rig: Rig, vf: str = "vf0", timeout: float = REACT, synthetic: str = "hn0") -> tuple[Pair, list[str]]:
    """Wait until synthetic's pair is active with vf (datapath vf); the pair and
    the states dump showed meanwhile, in order."""
    seen: list[str] = []
    p = wait_pair(rig, active_with(vf), timeout, f"{synthetic} active with {vf}", synthetic=synthetic, seen=seen)
    return p, seen


def last_switch(p: Pair) -> dict[str, Any]:
    """The pair's last switch (the history entry whose `switch` is the pair's `switches`)."""
    entries = [s for s in p["switch_history"] if s["switch"] == p["switches"]]
    assert entries, f"no history entry for switch {p['switches']}: {p['switch_history']}"
    return entries[0]


def switches_since(p: Pair, switches: int) -> list[tuple[str, str]]:
    """(direction, reason) of the pair's switches after the `switches`-th, oldest first."""
    return [(s["direction"], s["reason"]) for s in p["switch_history"] if s["switch"] > switches]


def assert_joined_no_earlier(p: Pair, since_ns: int, delay_ms: int, what: str) -> None:
    """The pair's last switch (a join) was recorded at least delay_ms after since_ns
    (CLOCK_REALTIME, taken before the VF appeared): the delay was honoured. A lower
    bound only: a slow machine cannot make it fail, only an early join can."""
    s = last_switch(p)
    assert s["direction"] == "to-vf", f"{what}: the last switch is not a join: {s}"
    waited_ms = (s["time_ns"] - since_ns) / 1e6
    assert waited_ms >= delay_ms, f"{what}: joined {waited_ms:.0f} ms after the VF appeared, before {delay_ms} ms"


def now_ns() -> int:
    """CLOCK_REALTIME, as the switch history's time_ns."""
    return time.time_ns()


# ---------------------------------------------------------------- VFs that come and go

def vf_arrive(rig: Rig, *setup: str) -> int:
    """vf0 is made with a MAC of its own, set up by the shell commands setup (in
    the guest), and only then takes hn0's MAC: it is hn0's VF once fully set up
    (as a hypervisor's VF appears). Returns its ifindex."""
    rig.vf_prepare(*setup)
    rig.vf_take_mac()
    return rig.ifindex(rig.guest, "vf0")


def vf_delete(rig: Rig, vf: str = "vf0") -> None:
    """`ip link del vf` in the guest (its host peer goes with it); the host switch
    stays as it is (a surprise removal, the switch follows later if at all)."""
    peer = f"{vf}h"
    rig.ip(rig.guest, "link", "del", vf)
    wait_until(lambda: not rig.exists(rig.host, peer), 30, f"{peer} gone after deleting {vf}")


def vf_depart(rig: Rig, vf: str = "vf0", synthetic: str = "hn0", timeout: float = REACT,
              until: Callable[[Pair | None], bool] = idle_without_vf) -> Pair:
    """Delete vf and wait for `run` to let it go (by default: synthetic's pair
    idle with no VF). Returns the pair."""
    vf_delete(rig, vf)
    return wait_pair(rig, until, timeout, f"{synthetic} lets {vf} go", synthetic=synthetic)


# ---------------------------------------------------------------- devices

def wait_settings(rig: Rig, dev: str, expected: dict[str, Any], what: str, timeout: float = REACT) -> None:
    """Wait until rig.dev_settings(dev) equals expected; the difference on timeout."""
    last: list[dict[str, Any]] = []

    def same() -> bool:
        last[:] = [rig.dev_settings(dev)]
        return last[0] == expected
    try:
        wait_until(same, timeout, what)
    except AssertionError:
        now = last[0] if last else {}
        diff = {k: (expected.get(k), now.get(k)) for k in set(expected) | set(now) if expected.get(k) != now.get(k)}
        if "features" in diff:
            e, n = diff.pop("features")
            diff["features"] = {f: ((e or {}).get(f), (n or {}).get(f)) for f in set(e or {}) | set(n or {})
                                if (e or {}).get(f) != (n or {}).get(f)}
        raise AssertionError(f"{what}: {dev} differs (expected, now): {diff}") from None


def flags(rig: Rig, dev: str) -> set[str]:
    """The flags `ip link` shows for a guest device (UP, PROMISC, ALLMULTI, ...)."""
    return set(rig.link(rig.guest, dev).get("flags", []))


def multicast(rig: Rig, dev: str) -> list[str]:
    """Link-layer multicast addresses of a guest device (`ip maddr`)."""
    out = json.loads(rig.ip(rig.guest, "-j", "maddr", "show", "dev", dev).out or "[]")
    return [m["link"] for d in out for m in d.get("maddr", []) if "link" in m]


# ---------------------------------------------------------------- what a pair holds

DATAPATH_PROGS = ("hnxdp_vf_ingress", "hnxdp_syn_ingress", "hnxdp_syn_egress")


def pinned_prog_ids(rig: Rig) -> set[int]:
    """Ids of the datapath programs pinned in the rig's pin directory."""
    return {bpf.pinned_prog_id(str(rig.pin_dir / name)) for name in DATAPATH_PROGS
            if (rig.pin_dir / name).exists()}


def our_links(rig: Rig) -> list[str]:
    """"link_id prog_id" of every BPF link (machine-wide) of a program pinned in the
    rig's pin directory: the links of this namespace's pairs, nobody else's."""
    return bpf.links_of(pinned_prog_ids(rig))


def limit_vf(rig: Rig, host_dev: str = "vf0h") -> None:
    """The "hypervisor" limits the VF: native XDP on its host-side veth end
    (lib/xdp_pass.py) caps the guest end's max MTU at about 3500 and turns its
    TSO off."""
    rig.h(python(), str(Path(__file__).with_name("xdp_pass.py")), host_dev)
