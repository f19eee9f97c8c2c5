"""Egress shaping on the synthetic applies while a VF is joined (its qdiscs
are copied onto the VF), and the VF gets its own back (docs/behaviour.md,
"Egress shaping"); ported from scripts/tests/86-qdisc-passthrough.sh.

The shaping is proven with real TCP (iperf3, guest -> remote): a tbf of
20 Mbit/s on hn0 limits it to 20 Mbit/s +-10 % on either path. Each test runs
with the default attachment and with classic tc (which kernels before 6.6
get), replacing 86's classic run in 26-classic-tc.sh.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from lib.checks import require_tools
from lib.daemon import Daemon, state_is, wait_pair
from lib.hnxdp import Hnxdp
from lib.rig import TC_MODES, Rig, tc_mode_id
from lib.shaping import IperfServer, assert_rate, egress_config, per_queue, tbf_rate
from lib.wait import wait_until

pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)

PORT = 5386
TBF20 = ("tbf", "rate", "20mbit", "burst", "64kb", "latency", "50ms")
RATE20 = 2_500_000  # bytes/s
RATE40 = 5_000_000


@pytest.fixture
def shaped(rig: Rig) -> Iterator[Rig]:
    """The rig with an iperf3 server on the remote and a tbf of 20 Mbit/s on hn0."""
    require_tools("iperf3", "strace")
    IperfServer.start(rig, PORT)
    rig.g("tc", "qdisc", "add", "dev", "hn0", "root", "handle", "1:", *TBF20)
    yield rig


def dump_qdisc(rig: Rig, synthetic: str = "hn0") -> str:
    return rig.hnxdp.pair(synthetic)["qdisc"]


# ---------------------------------------------------------------- attach / detach

def test_tbf_limits_without_vf(shaped: Rig) -> None:
    assert_rate(shaped, PORT, 18, 22, "no VF joined: tbf 20mbit on hn0")


def test_attach_copies_tbf_onto_vf(shaped: Rig) -> None:
    """vf0 (the kernel's default qdisc) carries hn0's tbf; TCP really leaves
    through vf0 and is limited the same."""
    rig = shaped
    rig.hnxdp.ok("attach", "--synthetic", "hn0", "--vf", "vf0")
    rig.host_switch("vf")
    assert tbf_rate(rig, "vf0") == RATE20, "vf0 carries hn0's tbf (20 Mbit/s)"
    assert dump_qdisc(rig) == "mirrored"
    assert "qdisc mirrored" in rig.hnxdp.ok("status").out
    tx0 = rig.hnxdp.stats()["vf_tx_bytes"]
    assert_rate(rig, PORT, 18, 22, "VF joined: the same tbf")
    # 3 s at 18 Mbit/s or more after a second of warm-up: at least 6.75 MB.
    assert rig.hnxdp.stats()["vf_tx_bytes"] - tx0 >= 6_750_000, "the transfer left through the VF"


def test_detach_gives_vf_its_qdiscs_back(shaped: Rig) -> None:
    rig = shaped
    before = egress_config(rig, "vf0")
    rig.hnxdp.ok("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert tbf_rate(rig, "vf0") == RATE20
    rig.hnxdp.ok("detach", "--synthetic", "hn0")
    assert egress_config(rig, "vf0") == before, "vf0's qdiscs, classes and filters read as before the join"
    assert_rate(rig, PORT, 18, 22, "after detach: tbf on hn0, synthetic path")


# ---------------------------------------------------------------- run, vf0 with a qdisc of its own

@pytest.fixture
def run_joined(shaped: Rig) -> Iterator[tuple[Rig, Daemon, str]]:
    """vf0 with its own pfifo 7:, joined by `run`; the host on the VF. Yields
    (rig, daemon, vf0's egress configuration before the join)."""
    rig = shaped
    rig.g("tc", "qdisc", "add", "dev", "vf0", "root", "handle", "7:", "pfifo", "limit", "500")
    before = egress_config(rig, "vf0")
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "300")
    wait_pair(rig, lambda p: p and p["state"] == "active" and p["datapath"] == "vf", 30, "hn0 active with vf0")
    rig.host_switch("vf")
    wait_until(lambda: dump_qdisc(rig) == "mirrored", 30, "dump says qdisc mirrored")
    yield rig, d, before
    if d.alive():
        assert d.stop() == 0, "run exits 0 on SIGTERM"
    d.assert_no_error()


def test_run_copies_tbf_instead_of_vf_own(run_joined: tuple[Rig, Daemon, str]) -> None:
    rig, _d, _before = run_joined
    assert tbf_rate(rig, "vf0") == RATE20, "vf0 carries hn0's tbf instead of its pfifo"
    assert_rate(rig, PORT, 18, 22, "run, VF joined: tbf 20mbit")


def test_run_follows_a_changed_tbf(run_joined: tuple[Rig, Daemon, str]) -> None:
    rig, _d, _before = run_joined
    rig.g("tc", "qdisc", "change", "dev", "hn0", "root", "handle", "1:", "tbf", "rate", "40mbit", "burst", "64kbit",
          "latency", "50ms")
    wait_until(lambda: tbf_rate(rig, "vf0") == RATE40, 30, "hn0's tbf 20 -> 40 Mbit/s on vf0")
    assert_rate(rig, PORT, 36, 44, "VF joined: tbf 40mbit")
    assert dump_qdisc(rig) == "mirrored"


def install_htb(rig: Rig) -> None:
    """A classful tree with a u32 filter choosing class 1:10 (20 Mbit/s) for the test's port."""
    rig.g("tc", "qdisc", "del", "dev", "hn0", "root")
    rig.g("tc", "qdisc", "add", "dev", "hn0", "root", "handle", "1:", "htb", "default", "20")
    rig.g("tc", "class", "add", "dev", "hn0", "parent", "1:", "classid", "1:1", "htb", "rate", "100mbit")
    rig.g("tc", "class", "add", "dev", "hn0", "parent", "1:1", "classid", "1:10", "htb", "rate", "20mbit",
          "ceil", "20mbit")
    rig.g("tc", "class", "add", "dev", "hn0", "parent", "1:1", "classid", "1:20", "htb", "rate", "80mbit")
    rig.g("tc", "filter", "add", "dev", "hn0", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
          "match", "ip", "dport", str(PORT), "0xffff", "flowid", "1:10")
    wait_until(lambda: "1:10 parent 1:1" in rig.g("tc", "class", "show", "dev", "vf0").out
               and "flowid 1:10" in rig.g("tc", "filter", "show", "dev", "vf0").out, 30,
               "vf0 has hn0's htb classes and filter")
    wait_until(lambda: dump_qdisc(rig) == "mirrored", 30, "dump says qdisc mirrored (htb)")


def test_run_copies_an_htb_tree_with_its_filter(run_joined: tuple[Rig, Daemon, str]) -> None:
    rig, _d, _before = run_joined
    install_htb(rig)
    assert_rate(rig, PORT, 18, 22, "VF joined: htb class 1:10 (20mbit, chosen by the u32 filter)")


def test_leave_gives_vf_its_own_qdisc_back(run_joined: tuple[Rig, Daemon, str]) -> None:
    """The VF leaves while it still exists (its MAC changes) carrying hn0's
    htb tree: its own pfifo is back, also after `detach --all`."""
    rig, d, before = run_joined
    install_htb(rig)
    rig.host_switch("syn")
    rig.g("ip", "link", "set", "vf0", "address", "02:00:00:00:86:86")
    wait_pair(rig, state_is("idle"), 30, "hn0 idle")
    wait_until(lambda: egress_config(rig, "vf0") == before, 30, "vf0 reads as before the join after the leave")
    assert dump_qdisc(rig) == "none", "qdisc none once no VF is joined"
    assert_rate(rig, PORT, 18, 22, "after the leave: htb class 1:10 on hn0, synthetic path")
    assert d.stop() == 0, "run exits 0 on SIGTERM"
    rig.hnxdp.ok("detach", "--all")
    assert egress_config(rig, "vf0") == before, "vf0 reads as before the join after detach --all"


# ---------------------------------------------------------------- mq: per-queue qdiscs

@pytest.fixture
def mq_pair(rig: Rig) -> Rig:
    """hn9 (2 queues, mq root: bfifo on queue 1, pfifo on queue 2) and vf9 (4 queues), one MAC."""
    mac = rig.pair_mac(9)
    rig.ip(rig.guest, "link", "add", "hn9", "numtxqueues", "2", "numrxqueues", "2", "type", "veth",
           "peer", "name", "hn9h", "netns", rig.host)
    rig.ip(rig.guest, "link", "add", "vf9", "numtxqueues", "4", "numrxqueues", "4", "type", "veth",
           "peer", "name", "vf9h", "netns", rig.host)
    for dev in ("hn9", "vf9"):
        rig.ip(rig.guest, "link", "set", dev, "address", mac, "up")
    for dev in ("hn9h", "vf9h"):
        rig.ip(rig.host, "link", "set", dev, "up")
    rig.g("tc", "qdisc", "add", "dev", "hn9", "root", "handle", "1:", "mq")
    rig.g("tc", "qdisc", "replace", "dev", "hn9", "parent", "1:1", "handle", "10:", "bfifo", "limit", "30000")
    rig.g("tc", "qdisc", "replace", "dev", "hn9", "parent", "1:2", "handle", "20:", "pfifo", "limit", "300")
    return rig


def test_mq_queues_spread_over_the_vf_queues(mq_pair: Rig) -> None:
    """Queue k of vf9 gets the qdisc of hn9's queue ((k-1) mod 2)+1."""
    rig = mq_pair
    before = rig.g("tc", "qdisc", "show", "dev", "vf9").out
    r = rig.hnxdp("attach", "--synthetic", "hn9", "--vf", "vf9")
    assert r.rc == 0, str(r)
    assert r.err == "", "attach warned of nothing"
    assert per_queue(rig, "vf9") == "1:1=bfifo/30000 1:2=pfifo/300 1:3=bfifo/30000 1:4=pfifo/300 root=mq/-"
    assert dump_qdisc(rig, "hn9") == "mirrored"
    rig.hnxdp.ok("detach", "--synthetic", "hn9")
    assert rig.g("tc", "qdisc", "show", "dev", "vf9").out == before, "vf9 reads as before the join"


def test_mq_per_queue_shaper_is_reported_not_faithful(mq_pair: Rig) -> None:
    """A shaper per queue cannot mean the same on 4 queues as on 2: joined, and said."""
    rig = mq_pair
    before = rig.g("tc", "qdisc", "show", "dev", "vf9").out
    rig.g("tc", "qdisc", "replace", "dev", "hn9", "parent", "1:1", "handle", "30:", "tbf", "rate", "10mbit",
          "burst", "32kb", "latency", "50ms")
    r = rig.hnxdp("attach", "--synthetic", "hn9", "--vf", "vf9")
    assert r.rc == 0, str(r)
    assert "egress shaping is not faithfully on vf9" in r.err, f"attach warns: {r.err!r}"
    assert dump_qdisc(rig, "hn9") == \
        "not-faithful: hn9 shapes each of its 2 transmit queues; vf9 has 4, so the total differs"
    assert "qdisc not-faithful" in rig.hnxdp.ok("status").out
    rig.hnxdp.ok("detach", "--synthetic", "hn9")
    assert rig.g("tc", "qdisc", "show", "dev", "vf9").out == before, "vf9 reads as before that join"


# ---------------------------------------------------------------- kill -9 in a join's netlink traffic

def test_attach_killed_anywhere_keeps_both_qdiscs(shaped: Rig) -> None:
    """strace kills `attach` at spread points of its sendto calls (every netlink
    request, the tc copy's included); `detach` finishes from the write-ahead
    record: hn0's tbf and vf0's own pfifo read as before."""
    rig = shaped
    rig.g("tc", "qdisc", "add", "dev", "vf0", "root", "handle", "7:", "pfifo", "limit", "500")

    def both() -> str:
        return rig.g("tc", "qdisc", "show", "dev", "hn0").out + egress_config(rig, "vf0")

    before = both()
    trace = rig.tmp / "attach.strace"
    traced = Hnxdp(rig.binary, rig.guest, rig.hnxdp.env,
                   prefix=("strace", "-f", "-qq", "-o", str(trace), "-e", "trace=sendto"))
    r = traced("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach under strace: {r}"
    rig.hnxdp.ok("detach", "--synthetic", "hn0")
    calls = trace.read_text().count("sendto(")
    assert calls >= 10, f"attach makes netlink requests to count: {calls} sendto calls"
    points = sorted({1 + i * (calls - 1) // 11 for i in range(12)})
    killed, bad = 0, []
    for k in points:
        killer = Hnxdp(rig.binary, rig.guest, rig.hnxdp.env,
                       prefix=("strace", "-f", "-qq", "-o", "/dev/null", "-e", f"inject=sendto:signal=KILL:when={k}"))
        r = killer("attach", "--synthetic", "hn0", "--vf", "vf0")
        killed += r.rc in (-9, 137)  # strace dies of its tracee's SIGKILL
        d = rig.hnxdp("detach", "--synthetic", "hn0")
        now = both()
        if now != before:
            bad.append(f"killed at sendto {k} (exit {r.rc}), detach exit {d.rc}:\n{now}")
    assert killed >= len(points) - 1, f"attach was killed at {killed} of {len(points)} points"
    assert bad == [], "hn0's and vf0's qdiscs differ after a kill and a detach:\n" + "\n".join(bad)[:3000]
