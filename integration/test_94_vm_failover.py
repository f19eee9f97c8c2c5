"""A guest whose kernel pairs the VF itself (QEMU's virtio-net failover:
`failover=on` on the virtio NIC, `failover_pair_id` on the e1000e VF; the
guest's net_failover makes a master over the virtio standby and the VF
primary, all three with one MAC). hnxdp sees the kernel's pairing and never
steers it (B22); AF_XDP and a user's XDP program coexist with it. Ported from
scripts/tests/94-vm-failover.sh and 94-vm-failover-6.1.sh (the guest kernel is
the parameter: Debian's 6.12 and Debian 12's 6.1).

The primary is plugged after boot: QEMU keeps the id of a failover primary
from its command line after device_del, so only a primary plugged by QMP can
be plugged again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lib.checks import assert_one_stderr_line, assert_unchanged
from lib.traffic import udp_send
from lib.vm import G4, KERNEL_6_1, KERNEL_6_12, Guest, GuestDaemon, GuestJob, xdp_drop_object, open_guest, \
    prepare_kernel, stop_guest_jobs
from lib.wait import wait_until

KERNELS = {"6.12": KERNEL_6_12, "6.1": KERNEL_6_1}


@dataclass
class Failover:
    guest: Guest
    master: str
    standby: str

    def primary(self) -> tuple[str, int]:
        name = self.guest.vf_name()
        return name, self.guest.ifindex(name)

    def snapshot(self) -> str:
        """Everything hnxdp could change in the guest: links, qdiscs, bpffs."""
        return self.guest.sh("ip -d link show; tc qdisc show; ls -A /sys/fs/bpf", check=True).out

    def settings(self) -> str:
        return self.guest.settings(self.master, self.standby)

    def wait_enslaved(self, what: str, carrier: bool = True) -> tuple[str, int]:
        """The primary (after plug_vf) is the master's (and, when the master is
        up, has carrier); its name and ifindex."""
        g = self.guest

        def enslaved() -> bool:
            names = g.dev_by_driver(g.vf_driver)
            return len(names) == 1 and g.exec("readlink", f"/sys/class/net/{names[0]}/master").out.strip() \
                .endswith(f"/{self.master}")
        wait_until(enslaved, 180, what, interval=0.5)
        primary, idx = self.primary()
        if carrier:
            wait_until(lambda: g.read(f"/sys/class/net/{primary}/carrier").strip() == "1", 120,
                       f"the primary {primary} has carrier", interval=0.5)
        return primary, idx


@pytest.fixture(scope="module")
def xdp_drop() -> Iterator[Path]:
    with xdp_drop_object() as obj:
        yield obj


@pytest.fixture(scope="module", params=sorted(KERNELS), ids=str)
def failover(request: pytest.FixtureRequest, hnxdp_binary: Path, xdp_drop: Path) -> Iterator[Failover]:
    kernel = prepare_kernel(KERNELS[request.param])
    with open_guest(kernel, hnxdp_binary, vf_driver="e1000e", syn_opts={"failover": "on"},
                    vf_opts={"failover_pair_id": "syn"}, vf_at_boot=False) as g:
        g.plug_vf()
        wait_until(lambda: len(g.dev_by_driver("net_failover")) == 1, 180, "a net_failover master in the guest",
                   interval=0.5)
        f = Failover(g, g.dev_by_driver("net_failover")[0], g.dev_by_driver("virtio_net")[0])
        primary, _ = f.wait_enslaved("the primary is enslaved to the failover master", carrier=False)
        print(f"guest {kernel.release}: net_failover master {f.master}, standby {f.standby}, primary {primary}")
        g.exec("ip", "addr", "add", f"{G4}/24", "dev", f.master, check=True)
        g.exec("ip", "link", "set", f.master, "up", check=True)
        g.switch("vf")
        wait_until(lambda: g.pings(1) == 1, 120, "the failover master answers pings")
        f.wait_enslaved("the primary has carrier")
        yield f


@pytest.fixture(autouse=True)
def fresh(failover: Failover) -> Iterator[None]:
    """After each test: its guest jobs stopped, the primary plugged and
    enslaved, the switch on the VF."""
    g = failover.guest
    mark = len(g.jobs)
    yield
    stop_guest_jobs(g, mark)
    if not g.vf_plugged:
        g.plug_vf()
    failover.wait_enslaved("the primary is back")
    g.switch("vf")


def test_probe_sees_the_kernels_pair(failover: Failover) -> None:
    """probe: the standby and the primary are kernel-paired, each with a note
    naming the master and net_failover; the master is no synthetic."""
    f, g = failover, failover.guest
    primary, _ = f.primary()
    devices = {d["name"]: d for d in g.hnxdp.json("probe", "--json")["devices"]}
    for dev in (f.standby, primary):
        assert devices[dev]["role"] == "kernel-paired", devices[dev]
        assert f"kernel failover {f.master}" in devices[dev]["note"], devices[dev]
    assert "is the standby" in devices[f.standby]["note"], devices[f.standby]
    assert "is the primary" in devices[primary]["note"], devices[primary]
    assert devices[f.master]["role"] == "other", devices[f.master]


def test_run_and_attach_refuse(failover: Failover) -> None:
    """run without --synthetic manages nothing and says why, naming the
    kernel's pair; run --synthetic MASTER / STANDBY refuses each; attach of any
    combination exits 2 with one line naming net_failover; nothing changed."""
    f, g = failover, failover.guest
    primary, _ = f.primary()
    before = f.snapshot()
    d = GuestDaemon.start(g, "--settle-ms", "100")
    assert d.status() == "managing 0 synthetic(s), 0 pair(s) joined", f"run's STATUS: {d.status()!r}"
    dump = g.hnxdp.dump()
    assert dump["pairs"] == [] and [k["master"]["name"] for k in dump["kernel_pairs"]] == [f.master], dump
    # run's refusal is its user interface: one warning saying why.
    warning = " ".join(d.lines_at("warning"))
    for text in ("managing no synthetic interface", "the kernel pairs these itself", f"kernel failover {f.master}"):
        assert text in warning, f"run's warning names {text!r}: {warning!r}"
    assert d.stop() == 0
    for s in (f.master, f.standby):
        d = GuestDaemon.start(g, "--settle-ms", "100", "--synthetic", s)
        assert d.status() == "managing 0 synthetic(s), 0 pair(s) joined", f"run --synthetic {s}: {d.status()!r}"
        warning = " ".join(d.lines_at("warning"))
        assert f"not managing {s} named by --synthetic" in warning, f"run --synthetic {s}: {warning!r}"
        assert d.stop() == 0
    for s, v in ((f.standby, primary), (f.master, primary), (f.master, f.standby)):
        r = g.hnxdp("attach", "--synthetic", s, "--vf", v)
        assert r.rc == 2, f"attach --synthetic {s} --vf {v}: {r}"
        assert_one_stderr_line(r, f"attach --synthetic {s} --vf {v}")
        assert "net_failover" in r.err, r.err
    assert_unchanged(before, f.snapshot(), "the guest (links, qdiscs, bpffs)")


def test_coexistence_xsk_and_xdp(failover: Failover, xdp_drop: Path) -> None:
    """status and dump show the kernel's pair; `xsk count` named by the master
    binds to the standby and the primary and keeps counting through the
    standby while the primary is unplugged and through the new primary; a
    user's XDP program runs on the primary's path (generic XDP, e1000e); no
    device setting changes, no XDP program or pin is left."""
    f, g = failover, failover.guest
    primary, idx = f.primary()
    before = f.settings()
    dump = g.hnxdp.dump()
    assert len(dump["kernel_pairs"]) == 1 and dump["pairs"] == [], dump
    k = dump["kernel_pairs"][0]
    assert (k["master"]["name"], k["driver"], k["synthetic"]["name"], k["vf"]["name"], k["steered"]) == \
        (f.master, "net_failover", f.standby, primary, False), k
    status = g.hnxdp.ok("status").out
    assert f"{f.master}({g.ifindex(f.master)}): the kernel's pair (net_failover): standby {f.standby}" in status, status

    xsk = GuestJob.start(g, [str(g.binary), "xsk", "count", "--synthetic", f.master, "--udp-port", "6000",
                             "--seconds", "600", "--json", "--events"], "xsk")

    def bound(vf: str, idx: int) -> None:
        wait_until(lambda: f"bound to VF {vf} (ifindex {idx})" in xsk.errors(), 180, f"xsk count bound to {vf}",
                   interval=0.5)

    def send() -> None:
        assert udp_send(g, g.ns, G4, 6000, 300, rate=300) == 300

    bound(primary, idx)
    assert f"coexistence with the kernel's pair {f.master}" in xsk.errors(), xsk.errors()
    assert sorted(g.xdp_devices()) == sorted([f.standby, primary]), "hnxdp's XDP on the standby and the primary"
    assert g.hnxdp.dump()["kernel_pairs"][0]["xdp_steering"] is True
    send()
    g.switch("syn")
    g.unplug_vf()
    wait_until(lambda: not g.exists(f"/sys/class/net/{primary}"), 120, "the primary is gone")
    wait_until(lambda: f"VF {primary} (ifindex {idx}) left" in xsk.errors(), 120, "xsk count saw the primary leave")
    send()
    g.plug_vf()
    primary, idx = f.wait_enslaved(f"a new primary is enslaved to {f.master}")
    g.switch("vf")
    bound(primary, idx)
    send()
    # Pings through the same path after the last datagram: they have arrived.
    assert g.pings(5) >= 4
    xsk.signal(2)
    xsk.wait(60)
    out = json.loads(xsk.output())
    print(f"xsk count: {out}")
    total, on_standby = out.get("total", 0), out.get("per_device", {}).get(f.standby, 0)
    assert total >= 850, f"frames counted in all (3 x 300 sent): {out}"
    assert on_standby >= 280, f"frames counted on the standby while the primary was unplugged: {out}"
    assert total - on_standby >= 560, f"frames counted on the primaries, before and after the replug: {out}"
    assert out.get("departures", 0) >= 1, f"it followed the primary's departure: {out}"
    assert out.get("rebinds", 0) >= 2, f"it bound to the primary twice: {out}"
    wait_until(lambda: g.xdp_devices() == [], 60, "no XDP program left on any guest device")

    r = g.hnxdp("xdp", "attach", "--synthetic", f.master, str(xdp_drop), "--prog", "drop_udp_port")
    assert r.rc == 0, f"xdp attach on the kernel's pair: {r}"
    assert f"the kernel's pair {f.master}" in r.out, r.out
    assert g.xdp_mode(primary) == 2, f"XDP on the primary {primary} in generic mode (e1000e)"
    assert g.hnxdp.dump()["kernel_pairs"][0]["xdp_user_program"] is True
    assert g.udp_count(f.master, 5555) == 0, "the user's XDP program drops port 5555 on the primary's path"
    assert g.udp_count(f.master, 5556) == 200, "the user's XDP program lets port 5556 through"
    r = g.hnxdp("xdp", "detach", "--synthetic", f.standby)
    assert r.rc == 0, f"xdp detach named by the standby: {r}"
    assert g.xdp_devices() == [], "no XDP program left on any guest device"
    assert g.udp_count(f.master, 5555) == 200, "port 5555 gets through again"
    assert g.pin_count() == 0, "no hnxdp pins left in the guest"
    assert_unchanged(before, f.settings(), "the master's and standby's settings")


def test_kernel_failover_keeps_working(failover: Failover) -> None:
    """With hnxdp around, pings to the master go through the VF's tap and,
    once the primary is unplugged, through the standby's."""
    f, g = failover, failover.guest
    primary, _ = f.primary()
    before = g.taps()
    assert g.pings(10) == 10, "pings answered"
    assert g.tap_packets("tvf", "rx") - before["tvf_rx"] >= 9, "answers through the VF's tap"
    g.switch("syn")
    g.unplug_vf()
    wait_until(lambda: not g.exists(f"/sys/class/net/{primary}"), 120, "the primary is gone")
    before = g.taps()
    assert g.pings(10) >= 9, "pings answered with the primary unplugged"
    assert g.tap_packets("tsyn", "rx") - before["tsyn_rx"] >= 9, "answers through the standby's tap"
