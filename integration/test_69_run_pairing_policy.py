"""`run` says when it manages nothing, and never guesses between equally good
VFs (B1, B22); a VF with addresses or routes of its own is warned about (B24).
Ported from scripts/tests/69-run-pairing-policy.sh.

The guest has veth devices only: no virtio_net, which is what `run` takes by
itself. "Says so at warning level" and "one warning names both" are the
documented behaviour (docs/behaviour.md, Pairing) and no JSON field carries
them, so those two are checked as warning-level log lines; everything else is
`status --json`, sd_notify STATUS, pins and exit codes.
"""
from __future__ import annotations

import pytest

from lib.checks import assert_one_stderr_line
from lib.control import REACT, wait_joined
from lib.daemon import Daemon
from lib.rig import Rig

NOTHING_MANAGED = "managing 0 synthetic(s), 0 pair(s) joined"


def pairs_of(rig: Rig) -> list[dict]:
    return rig.hnxdp.status()["pairs"]


def hn0_vf(rig: Rig) -> dict:
    pairs = [p for p in pairs_of(rig) if p["synthetic"].get("name") == "hn0"]
    assert len(pairs) == 1 and pairs[0]["vf"] is not None, f"no pair hn0 with a VF: {pairs}"
    return pairs[0]["vf"]


@pytest.mark.parametrize("drivers", ((), ("xen-netfront",)), ids=("default", "xen-netfront"))
def test_run_without_a_synthetic_says_it_manages_nothing(rig: Rig, drivers: tuple[str, ...]) -> None:
    args = [a for d in drivers for a in ("--synthetic-driver", d)]
    d = Daemon.start(rig, "--settle-ms", "0", *args)
    assert d.status() == NOTHING_MANAGED, f"sd_notify STATUS: {d.status()!r}"
    assert pairs_of(rig) == []
    named = drivers or ("virtio_net",)
    warnings = [line for line in d.lines_at("warning") if "managing no synthetic" in line]
    assert len(warnings) == 1, f"one warning that nothing is managed: {d.lines_at('warning')}"
    for driver in named:
        assert driver in warnings[0], f"the warning names the driver {driver} it would take: {warnings[0]}"
    assert d.stop() == 0
    d.assert_no_error()
    assert not rig.pin_dir.exists(), f"nothing pinned: {rig.pins()}"


@pytest.mark.parametrize("driver", ("hv_netvsc", "net_failover", "virtio net"))
def test_run_refuses_a_kernel_pairing_or_bad_driver(rig: Rig, driver: str) -> None:
    r = rig.hnxdp("run", "--synthetic-driver", driver, timeout=30)
    assert r.rc == 2, str(r)
    assert_one_stderr_line(r, f"run --synthetic-driver {driver!r}")
    assert not rig.pin_dir.exists(), f"nothing pinned: {rig.pins()}"


def test_a_tie_between_two_vfs_joins_neither(rig: Rig) -> None:
    """vf0 and vf1 share hn0's MAC: one warning names both, neither is joined
    (with --settle-ms 0 a join would follow at once: a reload after the warning
    is the barrier); once vf1 is gone vf0 is joined."""
    rig.ip(rig.guest, "link", "add", "vf1", "type", "veth", "peer", "name", "vf1p")
    rig.ip(rig.guest, "link", "set", "vf1", "address", rig.mac)
    rig.ip(rig.guest, "link", "set", "vf1", "up")
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "0")
    ties = [line for line in d.lines_at("warning") if "vf0" in line and "vf1" in line]
    assert len(ties) == 1, f"one warning names vf0 and vf1: {d.lines_at('warning')}"
    d.hup()
    p = rig.hnxdp.pair("hn0")
    assert p is not None and (p["state"], p["vf"], p["switches"]) == ("idle", None, 0), f"neither joined: {p}"
    rig.ip(rig.guest, "link", "del", "vf1")
    wait_joined(rig, "vf0", REACT)
    assert d.stop() == 0
    d.assert_no_error()
    assert rig.hnxdp("detach", "--synthetic", "hn0").rc == 0


def test_a_vf_with_an_address_is_warned_about(rig: Rig) -> None:
    rig.ip(rig.guest, "addr", "add", "198.18.9.9/24", "dev", "vf0")
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, str(r)
    assert "vf0 has addresses of its own (198.18.9.9/24)" in r.err, f"attach warns: {r.err!r}"
    vf = hn0_vf(rig)
    assert vf["addresses"] == ["198.18.9.9/24"]
    assert vf["routes"] == [], "the kernel's route for that address is not the VF's own"
    assert "warning: the VF has addresses of its own (198.18.9.9/24)" in rig.hnxdp.ok("status").out
    rig.ip(rig.guest, "addr", "del", "198.18.9.9/24", "dev", "vf0")
    assert hn0_vf(rig)["addresses"] == []
    assert "addresses of its own" not in rig.hnxdp.ok("status").out
    assert rig.hnxdp("detach", "--synthetic", "hn0").rc == 0


def test_routes_through_the_vf_are_warned_about(rig: Rig) -> None:
    rig.hnxdp.ok("attach", "--synthetic", "hn0", "--vf", "vf0")
    rig.ip(rig.guest, "route", "add", "198.18.60.0/24", "dev", "vf0")
    rig.ip(rig.guest, "-6", "route", "add", "fd00:60::/64", "dev", "vf0")
    assert hn0_vf(rig)["routes"] == ["198.18.60.0/24", "fd00:60::/64"]
    assert "warning: routes go through the VF (198.18.60.0/24, fd00:60::/64)" in rig.hnxdp.ok("status").out
    assert rig.hnxdp("detach", "--synthetic", "hn0").rc == 0
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, str(r)
    assert "routes go through vf0 (198.18.60.0/24, fd00:60::/64)" in r.err, f"attach warns: {r.err!r}"
    rig.ip(rig.guest, "route", "del", "198.18.60.0/24", "dev", "vf0")
    rig.ip(rig.guest, "-6", "route", "del", "fd00:60::/64", "dev", "vf0")
    assert hn0_vf(rig)["routes"] == []
    assert "routes go through" not in rig.hnxdp.ok("status").out
    assert rig.hnxdp("detach", "--synthetic", "hn0").rc == 0
