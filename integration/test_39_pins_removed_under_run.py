"""`hnxdp run` notices its pins being removed under it and makes them again,
or undoes every pair when it cannot (B19, B21); ported from
scripts/tests/39-pins-removed-under-run.sh.

vf0 has tso off and gso 30000/40; `run --synthetic hn0` joins it.
  - `rm -r` of the namespace's pin directory (every tcx link goes with its
    pin): run pins its maps and programs again and attaches the three links
    again; the remote's pings enter through the VF again, the pair stays active.
  - With its pins on a private bpffs (--bpffs) that is then unmounted, run
    cannot pin again: it undoes the pair from the write-ahead record (hn0
    reads exactly as before the join), exits 1 with one line saying so, and
    leaves no record, lock or link.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from lib.crash import assert_settings_again, link_field, state_files
from lib.daemon import Daemon, state_is, wait_pair
from lib.proc import run
from lib.rig import G4, Rig
from lib.traffic import ping
from lib.wait import wait_until

RUN = ("--synthetic", "hn0", "--settle-ms", "0")


def hnxdp_programs_attached(rig: Rig) -> int:
    return rig.tcx_count("hn0", "ingress") + rig.tcx_count("hn0", "egress") + rig.tcx_count("vf0", "ingress")


@pytest.fixture
def less_capable(rig: Rig) -> Rig:
    rig.vf_less_capable()
    return rig


def test_removed_pins_are_made_again(less_capable: Rig) -> None:
    rig = less_capable
    hn0_before = rig.dev_settings("hn0")
    d = Daemon.start(rig, *RUN)
    wait_pair(rig, state_is("active", "vf0"), 30, "hn0 active")
    rig.host_switch("vf")
    assert ping(rig, rig.remote, G4, count=3).rc == 0, "ping through the VF before"
    old_links = rig.tcx_summary("hn0", "vf0")
    run(["rm", "-rf", str(rig.pin_dir)], check=True)
    wait_until(lambda: (rig.pin_dir / "hnxdp_pairs").exists() and hnxdp_programs_attached(rig) == 3, 30,
               "run pins its maps and programs again and attaches the three links again")
    assert rig.tcx_summary("hn0", "vf0") != old_links, "the links are new ones"
    assert d.alive(), "run keeps running"
    base = rig.hnxdp.stats()["vf_rx_packets"]
    assert ping(rig, rig.remote, G4, count=3).rc == 0, "ping after the repair"
    assert rig.hnxdp.stats()["vf_rx_packets"] >= base + 3, "and it entered through the VF"
    p = rig.hnxdp.pair()
    assert p is not None and (p["state"], p["datapath"]) == ("active", "vf"), f"still active: {p}"
    assert d.stop() == 0
    rig.host_switch("syn")
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach: {r}"
    assert_settings_again(rig, hn0_before, "hn0", "after detach")


@pytest.fixture
def private_bpffs(less_capable: Rig) -> Iterator[Path]:
    path = less_capable.tmp / "bpffs"
    path.mkdir()
    run(["mount", "-t", "bpf", "bpf", str(path)], check=True)
    yield path
    if run(["mountpoint", "-q", str(path)]).rc == 0:
        run(["umount", str(path)], check=True)


def test_unmounted_pins_undo_every_pair(less_capable: Rig, private_bpffs: Path) -> None:
    rig = less_capable
    hn0_before = rig.dev_settings("hn0")
    d = Daemon.start(rig, *RUN, "--bpffs", str(private_bpffs / "hnxdp"))
    link = private_bpffs / "hnxdp" / str(rig.guest_ino) / str(rig.ifindex(rig.guest, "hn0")) / "link_vf_ingress"
    wait_until(link.exists, 30, f"the pair joined on the private bpffs ({link})")
    assert link_field(rig, "hn0", "gso_max_size") == 30000, "hn0 took vf0's gso_max_size"
    run(["umount", str(private_bpffs)], check=True)
    rc = d.wait_exit(60)
    assert rc == 1, f"run exits 1, not {rc}: {d.log()[-600:]!r}"
    last = d.log().splitlines()[-1]
    assert last.startswith("hnxdp: ") and "cannot be made again: every pair was undone" in last, \
        f"its failure line says why: {last!r}"
    assert_settings_again(rig, hn0_before, "hn0", "after run undid the pair")
    assert state_files(rig) == [], f"no write-ahead record or lock file left: {state_files(rig)}"
    assert hnxdp_programs_attached(rig) == 0, f"no hnxdp program left: {rig.tcx_summary('hn0', 'vf0')}"
