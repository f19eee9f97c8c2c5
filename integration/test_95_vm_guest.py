"""hnxdp in a real guest (QEMU under TCG, lib/vm.py): a virtio-net synthetic
and a VF of the same MAC that is hot-unplugged and plugged back through QMP,
like a hypervisor does. Ported from scripts/tests/95-vm-guest.sh and its
wrappers (95-vm-guest-vmxnet3, 96-vm-guest-6.1-e1000e, 96-vm-guest-6.1-vmxnet3),
which are now the parametrization guest kernel x VF driver:

    6.12-e1000e    Debian's 6.12 (tcx), e1000e (generic XDP only)   every test, 5 cycles
    6.1-vmxnet3    Debian 12's 6.1 (classic tc, kfunc-free object),
                   vmxnet3 (generic XDP on 6.1)                     every test, 5 cycles
    6.12-vmxnet3   Debian's 6.12, vmxnet3 (native XDP)              the "lite" set, 2 cycles
    6.1-e1000e     Debian 12's 6.1, e1000e                          the "lite" set, 2 cycles

The lite set leaves out the MTU limits and AF_XDP, which the other VF model of
the same kernel covers. One guest per case (module scope): every test starts
with nothing attached, the VF plugged and the switch on the synthetic, and
`fresh` puts the guest back so when a test ends, however it ends.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from lib.checks import assert_one_stderr_line, assert_unchanged
from lib.daemon import wait_pair
from lib.traffic import tcp_client, udp_send
from lib.vm import (G4, G6, H6, KERNEL_6_1, KERNEL_6_12, Guest, GuestDaemon, GuestJob, Pinger, xdp_drop_object,
                    open_guest, prepare_kernel, stop_guest_jobs)
from lib.wait import wait_until

PLANNED_LOSS = 5  # pings (every 0.1 s) lost in a planned cycle, at most
SURPRISE_LOSS = 40  # ... in a surprise cycle (the switch moves after the unplug)


@dataclass(frozen=True)
class Case:
    kernel: str  # the kernel package
    vf_driver: str
    full: bool  # also the MTU limits and AF_XDP
    cycles: int  # unplug/replug cycles under run, planned and surprise in turn

    @property
    def id(self) -> str:
        return f"{'6.12' if self.kernel == KERNEL_6_12 else '6.1'}-{self.vf_driver}"


# The full cases first: a test of the full set only gets them at the same
# parameter indices as the others, so pytest keeps each case's tests together
# (one boot per case).
CASES = (Case(KERNEL_6_12, "e1000e", True, 5), Case(KERNEL_6_1, "vmxnet3", True, 5),
         Case(KERNEL_6_12, "vmxnet3", False, 2), Case(KERNEL_6_1, "e1000e", False, 2))
FULL_ONLY = ("test_run_mtu_limits", "test_xsk_count_follows_replug")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = [c for c in CASES if c.full or metafunc.function.__name__ not in FULL_ONLY]
        metafunc.parametrize("case", cases, ids=[c.id for c in cases], scope="module")


@dataclass
class Net:
    """The booted guest with the synthetic configured (G4, G6) and what every
    test compares against."""

    guest: Guest
    case: Case
    syn: str
    mode: str  # the attachment this kernel must get: tcx (6.6+) or classic
    before: str  # the synthetic's settings before any hnxdp

    def vf(self) -> tuple[str, int]:
        name = self.guest.vf_name()
        return name, self.guest.ifindex(name)

    def wait_pair(self, cond: Any, what: str, timeout: float = 120) -> dict[str, Any]:
        return wait_pair(self.guest, cond, timeout, what, synthetic=self.syn, interval=0.2)

    def wait_joined(self, ifindex: int, what: str) -> dict[str, Any]:
        return self.wait_pair(lambda p: p and p["state"] == "active" and p["datapath"] == "vf"
                              and (p["vf"] or {}).get("ifindex") == ifindex, what)

    def run(self) -> GuestDaemon:
        """`hnxdp run --settle-ms 200` (no --synthetic) in the guest, READY=1."""
        return GuestDaemon.start(self.guest, "--settle-ms", "200")

    def assert_restored(self, what: str) -> None:
        assert_unchanged(self.before, self.guest.settings(self.syn), f"{what}: the synthetic's ethtool -k and ip -d link")


@pytest.fixture(scope="module")
def xdp_drop() -> Iterator[Path]:
    """The user's XDP program (drops UDP port 5555), built before the guest boots."""
    with xdp_drop_object() as obj:
        yield obj


@pytest.fixture(scope="module")
def net(case: Case, hnxdp_binary: Path, xdp_drop: Path) -> Iterator[Net]:
    kernel = prepare_kernel(case.kernel)
    with open_guest(kernel, hnxdp_binary, vf_driver=case.vf_driver) as g:
        syn = g.dev_by_driver("virtio_net")
        assert len(syn) == 1, f"virtio_net devices in the guest: {syn}"
        syn = syn[0]
        vf = g.vf_name()
        g.sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 && "
             f"ip addr add {G4}/24 dev {syn} && ip -6 addr add {G6}/64 dev {syn} nodad && "
             f"ip link set {syn} up && ip link set {vf} up", check=True)
        # The switch namespace has IPv6 off: on for br0 (the host side) only.
        g.sw("sysctl", "-qw", "net.ipv6.conf.br0.disable_ipv6=0", "net.ipv6.conf.br0.accept_dad=0")
        g.sw("ip", "-6", "addr", "add", f"{H6}/64", "dev", "br0", "nodad")
        # Before hnxdp the switch sends to the synthetic (the VF carries nothing).
        g.switch("syn")
        wait_until(lambda: g.pings(1) == 1, 120, "the synthetic answers pings before attach")
        mode = "tcx" if kernel.has_tcx else "classic"
        print(f"guest {kernel.release}, VF {case.vf_driver} ({vf}), synthetic {syn}: {mode}; boot {g.boot_s:.1f}s")
        yield Net(g, case, syn, mode, g.settings(syn))


@pytest.fixture(autouse=True)
def fresh(net: Net) -> Iterator[None]:
    """After each test: its guest jobs stopped, nothing attached, the VF
    plugged, the switch on the synthetic."""
    g = net.guest
    mark = len(g.jobs)
    yield
    stop_guest_jobs(g, mark)
    r = g.hnxdp("detach", "--all")
    assert r.rc == 0, f"detach --all after the test: {r}"
    if not g.vf_plugged:  # the test ended between an unplug and a replug
        g.plug_vf()
        name, _ = g.wait_vf()
        g.exec("ip", "link", "set", name, "up", check=True)
    g.switch("syn")


def cycle(net: Net, kind: str, n: int) -> None:
    """One unplug/replug under run (planned: the switch moves first; surprise:
    the VF goes first), a ping running throughout."""
    g = net.guest
    what = f"cycle {n} ({kind})"
    old_vf, old_idx = net.vf()
    pinger = Pinger.start(g)
    wait_until(lambda: pinger.proc.output().count("bytes from") >= 5, 60, f"{what}: pings answered before the cycle")
    if kind == "planned":
        g.switch("syn")
    g.unplug_vf()
    if kind == "surprise":
        g.switch("syn")
    net.wait_pair(lambda p: p and p["state"] == "idle" and p["vf"] is None and p["datapath"] == "synthetic",
                  f"{what}: VF unplugged: pair idle, datapath synthetic, no VF")
    net.assert_restored(f"{what}: idle")
    assert not g.exists(f"/sys/class/net/{old_vf}"), f"{what}: {old_vf} is still in the guest"
    g.plug_vf()
    new_vf, new_idx = g.wait_vf()
    assert new_idx != old_idx, f"{what}: the new VF has the old ifindex {old_idx}"
    net.wait_joined(new_idx, f"{what}: VF back: pair active, datapath vf, VF {new_vf} ifindex {new_idx}")
    g.switch("vf")
    answered = pinger.proc.output().count("bytes from")
    wait_until(lambda: pinger.proc.output().count("bytes from") >= answered + 5, 60,
               f"{what}: pings answered after the switch moved back")
    stats = pinger.stop()
    print(f"{what}: ping: {stats.transmitted} sent, {stats.received} received")
    assert stats.transmitted >= 20, f"{what}: only {stats.transmitted} pings sent during the cycle"
    limit = PLANNED_LOSS if kind == "planned" else SURPRISE_LOSS
    assert stats.lost <= limit, f"{what}: {stats.lost} pings lost, at most {limit}"
    g.assert_via_vf(f"{what}: after the replug")


# ---------------------------------------------------------------- tests

def test_probe(net: Net, case: Case) -> None:
    """probe finds the synthetic, the VF candidate, the attachment and XDP
    features the rest of the test finds; without tcx, --tc-mode tcx exits 3."""
    g, syn = net.guest, net.syn
    vf, _ = net.vf()
    probe = g.hnxdp.json("probe", "--json")
    devices = {d["name"]: d for d in probe["devices"]}
    assert probe["attachment"] == net.mode
    assert probe["kernel"]["tcx"] == (net.mode == "tcx")
    assert devices[syn]["role"] == "synthetic"
    assert devices[vf]["role"] == "vf-candidate"
    assert devices[vf]["driver"] == case.vf_driver
    if net.mode == "tcx":  # 6.6+: the netdev family (6.3+) reports XDP features
        assert devices[syn]["xdp"] == "native", "virtio_net has native XDP"
        assert devices[vf]["xdp"] == ("native" if case.vf_driver == "vmxnet3" else "generic")
        if case.vf_driver == "e1000e":
            assert devices[vf]["xdp_transmit"] is False, "e1000e cannot transmit XDP frames (what gen needs)"
    else:
        assert devices[vf]["xdp"] == "unknown", "XDP features are not reported before 6.3"
        r = g.hnxdp("attach", "--tc-mode", "tcx", "--synthetic", syn, "--vf", vf)
        assert r.rc == 3, f"attach --tc-mode tcx without tcx: {r}"
        assert_one_stderr_line(r, "attach --tc-mode tcx without tcx")
        assert "has no tcx" in r.err, r.err
        assert g.pin_count() == 0, "nothing pinned"


def test_attach_carries_traffic_through_vf(net: Net) -> None:
    """attach: IPv4/IPv6 pings, 200 UDP datagrams and a TCP echo reach
    sockets bound to the synthetic through the VF's tap both ways; detach puts
    the synthetic back exactly."""
    g, syn = net.guest, net.syn
    vf, _ = net.vf()
    r = g.hnxdp("attach", "--synthetic", syn, "--vf", vf)
    assert r.rc == 0, f"attach: {r}"
    g.switch("vf")
    p = net.wait_pair(lambda p: p and p["state"] == "active" and p["datapath"] == "vf", "attach: pair active")
    assert p["attachment"] == net.mode
    assert g.hook_programs(syn, vf) == (1, 1, 1), "one hnxdp program on each hook (syn in, syn out, VF in)"
    g.assert_via_vf("attached")
    assert g.hnxdp.stats(syn)["vf_rx_packets"] >= 9, "hnxdp counted frames from the VF"

    before = g.taps()
    assert g.pings(10, G6) >= 9, "IPv6 pings answered"
    assert g.udp_count(syn, 5301) == 200, f"a socket bound to {syn} received all 200 datagrams"
    echo = GuestJob.tool(g, "tcp_echo", "--dev", syn, "--port", "5302", "--seconds", "60", ready_file=True)
    r = tcp_client(g, g.ns, G4, 5302, rounds=50, size=1000, seconds=60)
    assert r.rc == 0, f"TCP: 50 rounds echoed by a server bound to {syn}: {r} {r.out}"
    assert echo.wait(60) == 0
    d = {k: v - before[k] for k, v in g.taps().items()}
    # Answers: 10 IPv6 echo replies and at least one TCP segment per round (UDP has none).
    assert d["tvf_rx"] >= 60, f"IPv6/TCP answers left through the VF: tvf rx +{d['tvf_rx']}"
    assert d["tvf_tx"] >= 259, f"IPv6/UDP/TCP requests came through the VF: tvf tx +{d['tvf_tx']}"
    assert d["tsyn_rx"] <= 3, f"answers on the synthetic's tap: tsyn rx +{d['tsyn_rx']}"

    r = g.hnxdp("detach", "--synthetic", syn)
    assert r.rc == 0, f"detach: {r}"
    g.switch("syn")
    net.assert_restored("detach")
    assert g.pings(3) == 3, "the synthetic answers pings again"


def test_run_mtu_limits(net: Net, case: Case) -> None:
    """Under run the synthetic's MTU passes to the VF (9000); one the VF driver
    refuses (9500: e1000e's limit is 9212, vmxnet3's 9000) puts the synthetic
    back, with a warning naming it."""
    g, syn = net.guest, net.syn
    vf, idx = net.vf()
    d = net.run()
    net.wait_joined(idx, f"run joined {vf}")

    def mtu(dev: str) -> int:
        return int(g.read(f"/sys/class/net/{dev}/mtu"))

    g.exec("ip", "link", "set", syn, "mtu", "9000", check=True)
    wait_until(lambda: mtu(vf) == 9000, 60, f"{vf} follows {syn}'s MTU 9000")
    g.exec("ip", "link", "set", syn, "mtu", "9500")  # accepted by virtio_net, refused by the VF
    wait_until(lambda: mtu(syn) == 9000, 60, f"{syn} put back to 9000 ({vf} refuses 9500)")
    assert mtu(vf) == 9000, f"9500 refused by {case.vf_driver}: {vf} stays at 9000"
    assert net.wait_pair(lambda p: p and p["mtu"] == 9000, "dump: the pair's MTU 9000")["state"] == "active"
    warnings = d.lines_at("warning")
    assert any("9500" in line for line in warnings), f"run warned about the refused MTU: {warnings}"
    g.exec("ip", "link", "set", syn, "mtu", "1500", check=True)
    wait_until(lambda: mtu(vf) == 1500, 60, f"{vf} follows {syn} back to MTU 1500")
    assert d.stop() == 0, "run exits 0 on SIGTERM"


def test_run_follows_replugs(net: Net, case: Case) -> None:
    """run, with no --synthetic, finds the virtio_net synthetic and the VF by
    itself; planned and surprise unplug/replug cycles lose at most
    PLANNED_LOSS / SURPRISE_LOSS pings, the synthetic reads as before while
    idle, the new VF carries the traffic, and one TCP connection open
    throughout is never reset."""
    g, syn = net.guest, net.syn
    vf, idx = net.vf()
    d = net.run()
    p = net.wait_joined(idx, f"run joined {vf} (ifindex {idx})")
    assert p["transparent"] and not p["explicit"], f"run made the pair of {syn} by itself: {p}"
    assert (d.status() or "").startswith("managing 1 synthetic(s)"), f"run's STATUS: {d.status()!r}"
    g.switch("vf")
    g.assert_via_vf("run, first join")

    GuestJob.tool(g, "tcp_echo", "--dev", syn, "--port", "5303", "--seconds", "1500", "--max-conns", "5",
                  ready_file=True)
    stop_file, status_file = g.tmp / "tcp.stop", g.tmp / "tcp.status"
    stream = g.bg(g.ns, *g.tool("tcp_stream.py"), "--dst", G4, "--port", "5303", "--stop-file", str(stop_file),
                  "--interval", "0.05", "--seconds", "1200", "--stall-timeout", "60", "--gap-log-ms", "1000",
                  "--status-file", str(status_file), name="tcp-stream")
    wait_until(lambda: re.match(r"rounds [1-9]", status_file.read_text()), 60, "the long TCP connection echoes")

    for n in range(1, case.cycles + 1):
        cycle(net, "planned" if n % 2 else "surprise", n)

    stop_file.touch()
    rc = stream.wait(120)
    result = stream.output().strip()
    print(f"the long TCP connection: {result} {stream.errors().strip()[:300]}")
    assert rc == 0, f"the TCP connection open through {case.cycles} cycles: tcp_stream exited {rc}: {result}"
    assert " resets 0 " in f" {result} ", f"the TCP connection was reset: {result}"
    assert d.stop() == 0, "run exits 0 on SIGTERM"


def test_xsk_count_follows_replug(net: Net) -> None:
    """AF_XDP sockets on the pair (xsk count, UDP port 6000) keep counting
    across an unplug and a replug: through the VF, through the synthetic while
    the VF is gone, through the new VF."""
    g, syn = net.guest, net.syn
    vf, idx = net.vf()
    net.run()
    net.wait_joined(idx, f"run joined {vf}")
    g.switch("vf")
    xsk = GuestJob.start(g, [str(g.binary), "xsk", "count", "--synthetic", syn, "--udp-port", "6000",
                             "--seconds", "600", "--json", "--events"], "xsk")

    def bound(vf: str, idx: int) -> None:
        wait_until(lambda: f"bound to VF {vf} (ifindex {idx})" in xsk.errors(), 120, f"xsk count bound to {vf}")

    def send() -> None:
        assert udp_send(g, g.ns, G4, 6000, 300, rate=300) == 300

    bound(vf, idx)
    send()
    g.switch("syn")
    g.unplug_vf()
    net.wait_pair(lambda p: p and p["state"] == "idle", "pair idle after the unplug")
    send()
    g.plug_vf()
    vf, idx = g.wait_vf()
    net.wait_joined(idx, f"pair active with the new {vf}")
    g.switch("vf")
    bound(vf, idx)
    send()
    # Pings through the same path after the last datagram: they have arrived.
    g.assert_via_vf("after the AF_XDP application's datagrams")
    xsk.signal(15)
    xsk.wait(60)
    out = json.loads(xsk.output())
    print(f"xsk count: {out}")
    assert out["mode"] in ("copy", "zerocopy", "zero-copy"), f"xsk count reports its bind mode: {out}"
    total, on_syn = out.get("total", 0), out.get("per_device", {}).get(syn, 0)
    assert total >= 850, f"frames counted in all (3 x 300 sent): {out}"
    assert on_syn >= 280, f"frames counted on the synthetic while the VF was gone: {out}"
    assert total - on_syn >= 560, f"frames counted on the VFs, before and after the replug: {out}"
    assert out.get("departures", 0) >= 1, f"it followed the VF's departure: {out}"


def test_user_xdp_program(net: Net, case: Case, xdp_drop: Path) -> None:
    """A user's XDP program on the pair (`hnxdp xdp attach`) drops one UDP
    port on the VF path: native XDP where the VF driver has it (vmxnet3 from
    6.6 on), generic where not; xdp detach removes it."""
    g, syn = net.guest, net.syn
    vf, idx = net.vf()
    d = net.run()
    net.wait_joined(idx, f"run joined {vf}")
    g.switch("vf")
    want = 1 if case.vf_driver == "vmxnet3" and net.mode == "tcx" else 2  # IFLA_XDP: 1 native, 2 generic
    r = g.hnxdp("xdp", "attach", "--synthetic", syn, str(xdp_drop), "--prog", "drop_udp_port")
    assert r.rc == 0, f"xdp attach: {r}"
    assert g.xdp_mode(vf) == want, f"XDP on {vf} in mode {want} (1 native, 2 generic) for {case.vf_driver}"
    assert g.udp_count(syn, 5555) == 0, "the user's XDP program drops port 5555 on the VF path"
    assert g.udp_count(syn, 5556) == 200, "the user's XDP program lets port 5556 through"
    r = g.hnxdp("xdp", "detach", "--synthetic", syn)
    assert r.rc == 0, f"xdp detach: {r}"
    assert g.xdp_mode(vf) is None, f"no XDP left on {vf}"
    assert g.udp_count(syn, 5555) == 200, "port 5555 gets through again"
    assert d.stop() == 0, "run exits 0 on SIGTERM"


def test_kill9_and_adoption(net: Net) -> None:
    """kill -9 of run with traffic flowing: the pinned datapath carries on
    through the VF; a new run adopts the pair (no switch, no second program
    on any hook) losing at most one ping; stopped, detached: the synthetic
    reads as before and no pin is left."""
    g, syn = net.guest, net.syn
    vf, idx = net.vf()
    d = net.run()
    p = net.wait_joined(idx, f"run joined {vf}")
    g.switch("vf")
    g.assert_via_vf("run joined")
    pinger = Pinger.start(g)
    wait_until(lambda: pinger.proc.output().count("bytes from") >= 5, 60, "pings answered")
    assert d.kill9() == 137, "run is gone after kill -9"
    g.assert_via_vf("kill -9: no control plane, the pinned datapath carries on")
    d2 = net.run()
    answered = pinger.proc.output().count("bytes from")
    wait_until(lambda: pinger.proc.output().count("bytes from") >= answered + 5, 60, "pings answered after the adoption")
    stats = pinger.stop()
    print(f"kill -9 and adoption: ping: {stats.transmitted} sent, {stats.received} received")
    assert stats.lost <= 1, f"kill -9 and adoption: {stats.lost} pings lost"
    q = net.wait_joined(idx, f"adopted: pair active with {vf}")
    assert q["attachment"] == net.mode, "adopted: the attachment is the same"
    assert q["switches"] == p["switches"], "adopted: no switch"
    assert g.hook_programs(syn, vf) == (1, 1, 1), "adopted: still one hnxdp program on each hook"
    g.assert_via_vf("adopted")

    assert d2.stop() == 0, "run exits 0 on SIGTERM"
    r = g.hnxdp("detach", "--all")
    assert r.rc == 0, f"detach --all: {r}"
    g.switch("syn")
    net.assert_restored("end")
    assert g.pin_count() == 0, "no hnxdp pins left in the guest"
    assert g.pings(3) == 3, "the synthetic answers pings"
