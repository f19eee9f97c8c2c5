"""Detach leaves nothing behind (B13), ported from scripts/tests/40-detach-clean.sh.

Attach pins the pair's links (the pinned link ids are the ones attached to
the devices). After `detach` (and after `detach --all` of a pair whose VF is
gone): no tcx program or tc filter/qdisc on the devices, no XDP program, no
pin directory, the links and programs this attach made are gone, and the
guest reads as before the attach. Machine-wide listings (no new hnxdp link or
program at all) count under CI=1 only (lib/checks.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from lib import bpf
from lib.checks import assert_global_eq, assert_unchanged
from lib.rig import G4, R4, Rig
from lib.traffic import ping
from lib.wait import wait_until


@dataclass(frozen=True)
class Before:
    """The machine's hnxdp programs and links, and the rig's guest, before attach."""

    progs: frozenset[str]
    links: frozenset[str]
    snapshot: str

    @classmethod
    def read(cls, rig: Rig) -> "Before":
        return cls(frozenset(bpf.hnxdp_progs()), frozenset(bpf.hnxdp_links()), rig.snapshot())

    def new_progs(self) -> list[str]:
        return sorted(set(bpf.hnxdp_progs()) - self.progs)

    def new_links(self) -> list[str]:
        return sorted(set(bpf.hnxdp_links()) - self.links)


@dataclass(frozen=True)
class Made:
    """The BPF links and programs an attach put on the rig's devices."""

    link_ids: frozenset[int]
    prog_ids: frozenset[int]


def attach(rig: Rig) -> Made:
    """Attach hn0/vf0 and check what it made: pins, one program per hook,
    links listed by bpftool, pinned links = attached links."""
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach hn0/vf0: {r}"
    assert rig.pin_dir.is_dir(), f"pin directory {rig.pin_dir} missing after attach"
    assert rig.tcx_count("vf0", "ingress") == 1
    assert rig.tcx_count("hn0", "egress") == 1
    attached = rig.hnxdp_attachments("hn0", "vf0")
    link_ids = frozenset(int(a["link_id"]) for a in attached)
    assert len(link_ids) >= 2, f"attached: {attached}"
    listed = bpf.hnxdp_link_ids()
    assert link_ids <= listed, f"bpftool link show lacks {sorted(link_ids - listed)}"
    pair_dir = rig.pin_dir / str(rig.ifindex(rig.guest, "hn0"))
    assert pair_dir.is_dir(), f"per-pair pin directory {pair_dir} missing"
    pinned = {bpf.pinned_link_id(str(f)) for f in pair_dir.glob("link_*")}
    assert pinned == link_ids, "pinned link ids are the attached tcx links"
    return Made(link_ids, frozenset(int(a["prog_id"]) for a in attached))


def assert_clean(rig: Rig, before: Before, made: Made, devices: tuple[str, ...]) -> None:
    """Nothing of hnxdp is left on the devices that still exist, in the pins or the kernel."""
    for dev in devices:
        for direction in ("ingress", "egress"):
            assert rig.tcx_count(dev, direction, prefix="") == 0, f"a tcx program on {dev} {direction}"
            r = rig.tc(rig.guest, "filter", "show", "dev", dev, direction, check=False)
            assert r.out == "", f"a tc filter on {dev} {direction}: {r.out}"
        qdiscs = rig.tc(rig.guest, "qdisc", "show", "dev", dev).out
        assert "clsact" not in qdiscs and "ingress" not in qdiscs, f"{dev}: {qdiscs}"
    assert rig.xdp_devices() == [], "no XDP program on any guest device"
    assert not rig.pin_dir.exists(), f"pins left behind: {rig.pins()}"
    # Links go at once, programs once their last reference is freed (asynchronously).
    wait_until(lambda: not any(bpf.link_exists(i) for i in made.link_ids), 10, "the pair's BPF links gone")
    wait_until(lambda: not any(bpf.prog_exists(i) for i in made.prog_ids), 10, "the pair's programs freed")
    assert_global_eq(before.new_links(), [], "no new BPF link of an hnxdp program (bpftool link show)")
    assert_global_eq(before.new_progs(), [], "no hnxdp_* program loaded that was not before (bpftool prog show)")


def test_attach_pins_the_attached_links(rig: Rig) -> None:
    attach(rig)


def test_detach_leaves_the_guest_as_before(rig: Rig) -> None:
    before = Before.read(rig)
    made = attach(rig)
    rig.host_switch("vf")
    assert ping(rig, rig.remote, G4, count=3).rc == 0, "remote pings the guest through the pair"
    rig.host_switch("syn")
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach hn0: {r}"
    assert_clean(rig, before, made, ("hn0", "vf0"))
    assert_unchanged(before.snapshot, rig.snapshot(), "guest links, features, tc, tcx, hnxdp links and pins")


def test_detach_all_after_the_vf_left_leaves_nothing(rig: Rig) -> None:
    before = Before.read(rig)
    made = attach(rig)
    rig.vf_remove_surprise()
    r = rig.hnxdp("detach", "--all")
    assert r.rc == 0, f"detach --all with the VF gone: {r}"
    assert_clean(rig, before, made, ("hn0",))
    assert ping(rig, rig.guest, R4, count=3).rc == 0, "guest reaches the remote on the synthetic path"
