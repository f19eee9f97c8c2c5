"""hnxdp trusts nothing pinned, and the write-ahead record (B21) gives the
devices back whatever happened to the pins; ported from
scripts/tests/37-tampered-pins.sh.

vf0 has tso off and gso 30000/40, hn0 MTU 1400; hn0 <- vf0 is attached, then:
  - the pairs map is replaced by an ARRAY of the same key and value sizes, or
    the VF-ingress program pin by another hnxdp program: `status`, `attach`
    and `detach --synthetic` refuse (exit 1) with one line naming the pin and
    `hnxdp detach --all`; `detach --all` then restores everything;
  - the namespace's pin directory is removed (every link goes with it):
    `detach --synthetic` restores from the record alone; `attach` puts the
    originals back and joins afresh;
  - every link pin is removed: `detach --synthetic` restores.
"Restores" = the guest reads exactly as before the attach (lib/crash.py
GuestState), with no pin, link or write-ahead record left.
"""
from __future__ import annotations

import json
import shutil
from typing import Callable, Iterator

import pytest

from lib.crash import GuestState, assert_refused, link_field
from lib.proc import run
from lib.rig import Rig

ATTACH = ("attach", "--synthetic", "hn0", "--vf", "vf0")
COMMANDS = {"status": ("status",), "attach": ATTACH, "detach": ("detach", "--synthetic", "hn0")}


@pytest.fixture
def attached(rig: Rig) -> Iterator[tuple[Rig, GuestState]]:
    rig.vf_less_capable()
    rig.ip(rig.guest, "link", "set", "hn0", "mtu", "1400")
    before = GuestState.read(rig)
    rig.hnxdp.ok(*ATTACH)
    yield rig, before


def foreign_pairs_map(rig: Rig) -> str:
    """hnxdp_pairs replaced by an ARRAY of the same key and value sizes."""
    layout = rig.hnxdp.dump()["pair_map"]
    pin = rig.pin_dir / "hnxdp_pairs"
    pin.unlink()
    run(["bpftool", "map", "create", str(pin), "type", "array", "key", str(layout["key_size"]),
         "value", str(layout["value_size"]), "entries", "1024", "name", "hnxdp_pairs"], timeout=30, check=True)
    return str(pin)


def foreign_program(rig: Rig) -> str:
    """hnxdp_vf_ingress replaced by another hnxdp program (hnxdp_syn_egress)."""
    pin = rig.pin_dir / "hnxdp_vf_ingress"
    r = run(["bpftool", "-j", "prog", "show", "pinned", str(rig.pin_dir / "hnxdp_syn_egress")], timeout=30, check=True)
    other = json.loads(r.out)["id"]
    pin.unlink()
    run(["bpftool", "prog", "pin", "id", str(other), str(pin)], timeout=30, check=True)
    return str(pin)


TAMPERINGS: dict[str, Callable[[Rig], str]] = {"pairs-map": foreign_pairs_map, "program": foreign_program}
REFUSALS = [("pairs-map", "status"), ("pairs-map", "attach"), ("pairs-map", "detach"),
            ("program", "status"), ("program", "detach")]


@pytest.mark.parametrize("tampering,command", REFUSALS, ids=[f"{t}-{c}" for t, c in REFUSALS])
def test_foreign_pin_is_refused_naming_it(attached: tuple[Rig, GuestState], tampering: str, command: str) -> None:
    rig, before = attached
    pin = TAMPERINGS[tampering](rig)
    assert_refused(rig.hnxdp(*COMMANDS[command]), f"{tampering}: {command}", pin, "hnxdp detach --all")
    rig.hnxdp.ok("detach", "--all")
    before.assert_again(rig, f"{tampering}: detach --all after the refused {command}")


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_detach_all_restores_after_a_foreign_pin(attached: tuple[Rig, GuestState], tampering: str) -> None:
    rig, before = attached
    TAMPERINGS[tampering](rig)
    r = rig.hnxdp("detach", "--all")
    assert r.rc == 0, f"{tampering}: detach --all: {r}"
    before.assert_again(rig, f"{tampering}: after detach --all")


def test_detach_restores_from_the_record_when_the_pins_are_gone(attached: tuple[Rig, GuestState]) -> None:
    rig, before = attached
    shutil.rmtree(rig.pin_dir)
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach from the record alone: {r}"
    before.assert_again(rig, "pin directory removed, detach")


def test_attach_restores_and_joins_afresh_when_the_pins_are_gone(attached: tuple[Rig, GuestState]) -> None:
    rig, before = attached
    shutil.rmtree(rig.pin_dir)
    r = rig.hnxdp(*ATTACH)
    assert r.rc == 0, f"attach after the pins were removed: {r}"
    p = rig.hnxdp.pair("hn0")
    assert p is not None and (p["state"], p["datapath"]) == ("active", "vf"), f"pair after the attach: {p}"
    assert link_field(rig, "hn0", "gso_max_size") == 30000, "hn0 takes vf0's gso_max_size again"
    hn0_before = next(link for link in before.data["links"] if link["ifname"] == "hn0")
    assert (p["gso"]["saved_max_size"], p["gso"]["saved_max_segs"]) == \
        (hn0_before["gso_max_size"], hn0_before["gso_max_segs"]), "the originals saved again are the true ones"
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach: {r}"
    before.assert_again(rig, "pin directory removed, attach, detach")


def test_detach_restores_when_the_link_pins_are_gone(attached: tuple[Rig, GuestState]) -> None:
    rig, before = attached
    links = sorted(rig.pin_dir.rglob("link_*"))
    assert links, f"no link pins: {rig.pins()}"
    for f in links:
        f.unlink()
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach with the link pins gone: {r}"
    before.assert_again(rig, "link pins removed, detach")

