"""A joined VF that moves to another network namespace is never redirected
from there (B8, B13, B19); ported from scripts/tests/25-vf-netns-move.sh
(and its classic tc run in 26-classic-tc.sh).

A tcx link moves with its device, so the VF keeps hnxdp_vf_ingress in the new
namespace (a classic filter stays behind: the device loses its qdiscs); a
redirect from there would go to whatever device has the synthetic's ifindex
in that namespace. The namespace it moves to (lib/netns.py) has exactly such
a device: trap0, a veth made with hn0's ifindex.

vf0 offers less than hn0 (tso off, smaller GSO limits), so the join really
changes hn0. Two ways the VF leaves: after `hnxdp attach` with no hnxdp
process running, and under `hnxdp run`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest

from lib import bpf
from lib.counters import PathCounters
from lib.daemon import Daemon, state_is, wait_pair
from lib.netns import TRAP, Away, open_away
from lib.rig import G4, TC_MODES, Rig, tc_mode_id
from lib.traffic import Tcpdump, ping, udp_send
from lib.wait import WaitTimeout, wait_until

pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)

N = 20  # UDP datagrams remote -> guest per check
PORT = 5325
PINGS = 20


@dataclass
class Moved:
    """hn0/vf0 joined, then vf0 moved to `away`."""

    rig: Rig
    hn0_before: dict[str, Any]  # hn0's settings before the join
    vf0_ifindex: int
    vf_prog: int  # id of the namespace's hnxdp_vf_ingress program
    attachment: str  # the pair's, before the move (tcx or classic)
    daemon: Daemon | None = None
    away: Away | None = None


def vf_rx(rig: Rig) -> int:
    return rig.hnxdp.stats()["vf_rx_packets"]


def send_to_guest(rig: Rig) -> None:
    assert udp_send(rig, rig.remote, G4, PORT, N, rate=1000, dev="eth0") == N, "remote sent every datagram"


def join_prepared_vf(rig: Rig, start: Callable[[], Daemon | None]) -> Moved:
    """vf0 less capable than hn0; `start` joins them; frames enter through vf0."""
    rig.vf_less_capable()
    hn0_before = rig.dev_settings("hn0")
    daemon = start()
    hn0 = rig.dev_settings("hn0")
    assert hn0["gso_max_size"] == 30000, "the join gave hn0 the VF's gso_max_size"
    assert hn0["features"]["tx-tcp-segmentation"] == "off", "the join turned hn0's TSO off (the VF's)"
    pair = rig.hnxdp.pair("hn0")
    assert pair is not None and pair["state"] == "active" and pair["vf"]["name"] == "vf0", f"joined: {pair}"
    rig.host_switch("vf")
    ping(rig, rig.remote, G4, count=2)  # neighbour caches
    # The remote needs no ARP while vf0 is away (nothing reaches the guest then).
    rig.ip(rig.remote, "neigh", "replace", G4, "lladdr", rig.mac, "dev", "eth0", "nud", "permanent")
    rx0 = vf_rx(rig)
    send_to_guest(rig)
    wait_until(lambda: vf_rx(rig) - rx0 >= N, 10, f"the {N} datagrams entered through the VF (vf_rx_packets)")
    return Moved(rig, hn0_before, rig.ifindex(rig.guest, "vf0"),
                 bpf.pinned_prog_id(str(rig.pin_dir / "hnxdp_vf_ingress")), pair["attachment"], daemon)


def move_vf_away(moved: Moved, away: Away) -> None:
    moved.away = away
    away.take(moved.rig.guest, "vf0")
    assert away.ifindex("vf0") == moved.vf0_ifindex, "vf0 kept its ifindex in the other namespace"
    wait_until(lambda: away.carrier("vf0"), 10, "vf0 has carrier in the other namespace")


@pytest.fixture
def away(rig: Rig) -> Iterator[Away]:
    with open_away(rig, trap_ifindex=rig.ifindex(rig.guest, "hn0")) as a:
        yield a


@pytest.fixture
def attached_moved(rig: Rig, away: Away) -> Moved:
    """`hnxdp attach`, then vf0 moves away with no hnxdp process running."""
    def attach() -> None:
        r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
        assert r.rc == 0, f"attach hn0/vf0: {r}"
    moved = join_prepared_vf(rig, attach)
    move_vf_away(moved, away)
    return moved


@pytest.fixture
def run_joined(rig: Rig) -> Moved:
    """`hnxdp run --synthetic hn0` joined vf0 (still in the guest)."""
    def start() -> Daemon:
        d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "200")
        wait_pair(rig, state_is("active", "vf0"), 30, "run joined vf0")
        return d
    return join_prepared_vf(rig, start)


@pytest.fixture
def run_moved(run_joined: Moved, away: Away) -> Moved:
    """... and vf0 moved away while run runs: the pair goes idle."""
    move_vf_away(run_joined, away)
    wait_pair(run_joined.rig, lambda p: p and p["state"] == "idle" and p["vf"] is None, 30,
              "run left the moved VF: hn0 idle with no VF")
    return run_joined


# ---------------------------------------------------------------- shared checks

def assert_moved_vf_not_redirected(moved: Moved) -> None:
    """N frames for the guest arrive on the moved vf0: all of them go up the
    other namespace's own stack there, none reaches trap0 (hn0's ifindex
    there), and the datapath counts none."""
    rig, away = moved.rig, moved.away
    trap = Tcpdump.start(rig, away.name, TRAP, 1, f"ether dst {rig.mac}", seconds=60, immediate=True)
    rx0, vf0_rx0, ip0 = vf_rx(rig), away.link_packets("vf0", "rx"), away.ip_in_receives()
    send_to_guest(rig)
    # Each frame either is redirected (gone from vf0) or reaches this IPv4 stack.
    wait_until(lambda: away.ip_in_receives() - ip0 >= N, 30,
               f"the {N} datagrams reached the other namespace's IPv4 stack through the moved vf0")
    assert away.ip_in_receives() - ip0 == N, "exactly the datagrams sent went up the stack there"
    assert away.link_packets("vf0", "rx") - vf0_rx0 >= N, "the frames arrived on the moved vf0 (its rx counter)"
    assert trap.stop_and_count() == 0, f"a frame reached {TRAP}, the device with hn0's ifindex over there"
    assert vf_rx(rig) - rx0 == 0, "vf_rx_packets unchanged: hnxdp_vf_ingress redirected nothing"


def synthetic_carries(moved: Moved) -> dict[str, int]:
    """With the host switched to the synthetic, the remote pings the guest
    through hn0 and the replies leave through hn0. Returns the counters' growth."""
    rig = moved.rig
    rig.host_switch("syn")
    before = PathCounters.read(rig)
    r = ping(rig, rig.remote, G4, count=PINGS, interval=0.02)
    assert r.rc == 0, f"remote pings the guest on the synthetic path ({PINGS}/{PINGS}): {r.out}"
    d = before.delta()
    assert d["syn_rx_packets"] >= PINGS, f"syn_rx_packets rose by {d['syn_rx_packets']}"
    assert d["hn0h_rx"] >= PINGS, f"the guest's replies left through hn0: host hn0h rx rose by {d['hn0h_rx']}"
    return d


def assert_hn0_restored(moved: Moved) -> None:
    rig = moved.rig
    try:
        wait_until(lambda: rig.dev_settings("hn0") == moved.hn0_before, 15, "hn0 as before the join")
    except WaitTimeout:
        pass  # the assertion below shows the difference
    assert rig.dev_settings("hn0") == moved.hn0_before, "hn0's ethtool -k and GSO/TSO limits exactly as before"


def detach_leaves_nothing(moved: Moved) -> None:
    """`detach --synthetic hn0` exits 0 and nothing of hnxdp is left, on hn0
    nor on the moved vf0; hn0 reads as before the join."""
    rig = moved.rig
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach --synthetic hn0: {r}"
    assert not rig.pin_dir.exists(), f"pins left behind: {rig.pins()}"
    for direction in ("ingress", "egress"):
        assert rig.tcx_count("hn0", direction, prefix="") == 0, f"a program on hn0 {direction}"
        assert moved.away.tcx_count("vf0", direction, prefix="") == 0, f"a program on the moved vf0 {direction}"
    assert bpf.links_of_prog(moved.vf_prog) == [], "no BPF link of hnxdp_vf_ingress left"
    assert_hn0_restored(moved)


# ---------------------------------------------------------------- attach, then the VF moves

def test_the_vf_program_moves_with_a_tcx_link_only(attached_moved: Moved) -> None:
    """A tcx link moves with vf0; a classic filter goes with vf0's qdiscs."""
    expected = {"tcx": 1, "classic": 0}[attached_moved.attachment]
    assert attached_moved.away.tcx_count("vf0", "ingress") == expected, \
        f"hnxdp programs on the moved vf0's ingress ({attached_moved.attachment} attachment)"


def test_moved_vf_is_never_redirected(attached_moved: Moved) -> None:
    assert_moved_vf_not_redirected(attached_moved)


def test_status_shows_no_vf(attached_moved: Moved) -> None:
    pairs = attached_moved.rig.hnxdp.status()["pairs"]
    assert [(p["synthetic"]["name"], p["vf"], p["datapath"]) for p in pairs] == [("hn0", None, "synthetic")]


def test_synthetic_path_carries_and_replies_fall_back(attached_moved: Moved) -> None:
    d = synthetic_carries(attached_moved)
    assert d["tx_fallback_packets"] >= PINGS, f"the replies fell back: tx_fallback_packets rose by " \
                                              f"{d['tx_fallback_packets']}"


def test_detach_after_the_move_leaves_nothing(attached_moved: Moved) -> None:
    detach_leaves_nothing(attached_moved)


# ---------------------------------------------------------------- the VF moves under `hnxdp run`

def test_run_reports_the_departure(run_moved: Moved) -> None:
    rig = run_moved.rig
    for report in (rig.hnxdp.dump(), rig.hnxdp.status()):
        [p] = report["pairs"]
        assert (p["state"], p["vf"], p["datapath"]) == ("idle", None, "synthetic")
    last = rig.hnxdp.pair("hn0")["switch_history"][-1]
    assert (last["direction"], last["reason"], last["vf_ifindex"]) == \
        ("to-synthetic", "departed", run_moved.vf0_ifindex), f"the last switch: {last}"


def test_run_takes_its_program_off_the_moved_vf(run_moved: Moved) -> None:
    assert run_moved.away.tcx_count("vf0", "ingress") == 0, "no hnxdp program on the moved vf0"
    assert bpf.links_of_prog(run_moved.vf_prog) == [], "no BPF link of hnxdp_vf_ingress left"


def test_run_moved_vf_is_never_redirected(run_moved: Moved) -> None:
    assert_moved_vf_not_redirected(run_moved)


def test_run_synthetic_path_carries(run_moved: Moved) -> None:
    synthetic_carries(run_moved)


def test_run_restores_hn0(run_moved: Moved) -> None:
    assert_hn0_restored(run_moved)


def test_run_exits_0_on_sigterm_with_no_error(run_moved: Moved) -> None:
    run_moved.daemon.assert_no_error()
    assert run_moved.daemon.stop() == 0, "hnxdp run exits 0 on SIGTERM"


def test_detach_after_run_leaves_nothing(run_moved: Moved) -> None:
    assert run_moved.daemon.stop() == 0
    detach_leaves_nothing(run_moved)


def test_run_joins_the_vf_moved_back(run_moved: Moved) -> None:
    rig = run_moved.rig
    run_moved.away.give_back("vf0", rig.guest)
    assert rig.ifindex(rig.guest, "vf0") == run_moved.vf0_ifindex, "vf0 is back in the guest with its ifindex"
    p = wait_pair(rig, state_is("active", "vf0"), 30, "run joined vf0 again")
    assert (p["vf"]["ifindex"], p["datapath"]) == (run_moved.vf0_ifindex, "vf")
    rig.host_switch("vf")
    before = PathCounters.read(rig)
    send_to_guest(rig)
    wait_until(lambda: before.delta()["vf_rx_packets"] >= N, 10, "the datagrams entered through the VF again")
    assert before.delta()["hn0h_tx"] == 0, "nothing took the synthetic path"
