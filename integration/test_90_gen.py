"""`hnxdp gen` (BPF_PROG_TEST_RUN live frames), ported from
scripts/tests/90-gen.sh.

gen runs in the host and sends into vf0h, the host-side peer of the guest's
vf0 (a joined pair). It sends exactly the frames it says; as fast as it goes
veth drops what its peer's ring cannot take, so gen reports how many left
(`left`, the device's transmit counter) and every frame that left reaches
the guest's UDP stack through the VF (UdpNoPorts: nothing listens on port 9).
A device that sends none of them is refused (exit 1); --rate spreads the
frames out; bad input exits 2 with one stderr line.
"""
from __future__ import annotations

import json

import pytest

from lib.checks import assert_one_stderr_line
from lib.proc import Result, run
from lib.rig import G4, G6, R4, R6, Rig
from lib.wait import wait_until

FAST = 200_000  # frames of the unpaced run
NEIGHBOUR_SLACK = 4  # a neighbour's frame or two the device counts besides gen's


@pytest.fixture
def gen_rig(joined: Rig) -> Rig:
    """The joined pair; vf0 takes XDP frames (veth needs NAPI on the receiving side: GRO on)."""
    joined.g("ethtool", "-K", "vf0", "gro", "on")
    return joined


def gen(rig: Rig, *args: str, timeout: float = 60) -> Result:
    """hnxdp gen in the rig's host namespace."""
    return run(["nsenter", f"--net=/run/netns/{rig.host}", "--", str(rig.binary), "gen", *args], timeout=timeout)


def udp_no_ports(rig: Rig, family: str = "4") -> int:
    """The guest's count of UDP datagrams to a port nothing listens on."""
    if family == "6":
        text = rig.g("cat", "/proc/net/snmp6").out
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("Udp6NoPorts")))
    rows = [line.split() for line in rig.g("cat", "/proc/net/snmp").out.splitlines() if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("NoPorts")])


def host_tx(rig: Rig) -> int:
    return rig.link_packets(rig.host, "vf0h", "tx")


def fast_run(rig: Rig) -> dict:
    r = gen(rig, "--dev", "vf0h", "--dst-mac", rig.mac, "--dst-ip", G4, "--src-ip", R4, "--dst-port", "9",
            "--count", str(FAST), "--seconds", "20", "--json")
    assert r.rc == 0, f"gen: {r}"
    return json.loads(r.out)


def test_reports_what_the_device_counted_as_transmitted(gen_rig: Rig) -> None:
    rig = gen_rig
    before = host_tx(rig)
    report = fast_run(rig)
    sent = host_tx(rig) - before
    assert report["frames"] == FAST, f"gen reports all frames sent: {report}"
    assert report["left"] >= 1000, f"frames left vf0h: {report}"
    assert 0 <= sent - report["left"] <= NEIGHBOUR_SLACK, \
        f"left ({report['left']}) is what vf0h counted as transmitted ({sent}), a neighbour's frame or two aside"


def test_every_frame_that_left_reaches_the_guest_through_the_vf(gen_rig: Rig) -> None:
    rig = gen_rig
    no_ports, vf_rx = udp_no_ports(rig), rig.hnxdp.stats()["vf_rx_packets"]
    left = fast_run(rig)["left"]
    # left is the device's counter, so a neighbour's frame sent meanwhile is in it too.
    delivered = wait_until(lambda: (d := udp_no_ports(rig) - no_ports) >= left - NEIGHBOUR_SLACK and d, 30,
                           f"the {left} frames that left reaching the guest's UDP stack")
    assert delivered <= left, f"{delivered} datagrams reached the guest, only {left} left vf0h"
    assert rig.hnxdp.stats()["vf_rx_packets"] - vf_rx >= delivered, "vf_rx_packets counted them"


def test_device_that_sends_none_is_refused(gen_rig: Rig) -> None:
    """hn0h's peer takes no XDP frames (GRO off, no XDP program): exit 1, not reported as sent."""
    rig = gen_rig
    rig.g("ethtool", "-K", "hn0", "gro", "off")
    no_ports = udp_no_ports(rig)
    r = gen(rig, "--dev", "hn0h", "--dst-mac", rig.mac, "--dst-ip", G4, "--count", "1000", "--seconds", "10")
    assert r.rc == 1, f"gen out of a device that sends none of them: {r}"
    assert_one_stderr_line(r, "gen out of hn0h")
    assert "none of the 1000 frames left hn0h" in r.err, f"says so: {r.err!r}"
    assert udp_no_ports(rig) - no_ports <= NEIGHBOUR_SLACK, "frames reached the guest"


def test_paced_run_spreads_the_frames_out(gen_rig: Rig) -> None:
    """--rate 1000 for 3000 frames: while it runs, vf0h has sent some of them
    and not all (an unpaced run sends them in one go); at the end all."""
    rig = gen_rig
    count = 3000
    before = host_tx(rig)
    job = rig.spawn(["nsenter", f"--net=/run/netns/{rig.host}", "--", str(rig.binary), "gen", "--dev", "vf0h",
                     "--dst-mac", rig.mac, "--dst-ip", G4, "--count", str(count), "--rate", "1000",
                     "--seconds", "30", "--json"], "gen-paced")
    partial = wait_until(lambda: (d := host_tx(rig) - before) > 0 and d < count - 500 and d, 30,
                         "vf0h part-way through the paced frames")
    assert job.wait(40) == 0, f"paced gen: {job.errors()}"
    report = json.loads(job.output())
    assert report["frames"] == count, report
    assert host_tx(rig) - before >= count, f"all {count} frames left vf0h (seen part-way: {partial})"


def test_ipv6(gen_rig: Rig) -> None:
    rig = gen_rig
    before = udp_no_ports(rig, "6")
    r = gen(rig, "--dev", "vf0h", "--dst-mac", rig.mac, "--dst-ip", G6, "--src-ip", R6, "--count", "1000")
    assert r.rc == 0, f"gen IPv6: {r}"
    wait_until(lambda: udp_no_ports(rig, "6") - before >= 1000, 30, "1000 IPv6 datagrams reaching the guest")
    assert udp_no_ports(rig, "6") - before == 1000, "IPv6 frames reached the guest"


BAD_INPUT = {
    "unknown device": ("--dev", "nope0", "--dst-mac", "{mac}", "--dst-ip", G4, "--count", "1"),
    "bad MAC": ("--dev", "vf0h", "--dst-mac", "zz", "--dst-ip", G4, "--count", "1"),
    "bad IPv4 address": ("--dev", "vf0h", "--dst-mac", "{mac}", "--dst-ip", "198.18.0.999", "--count", "1"),
    "mixed families": ("--dev", "vf0h", "--dst-mac", "{mac}", "--dst-ip", G4, "--src-ip", "fd00::2", "--count", "1"),
    "count 0": ("--dev", "vf0h", "--dst-mac", "{mac}", "--dst-ip", G4, "--count", "0"),
}


@pytest.mark.parametrize("args", BAD_INPUT.values(), ids=BAD_INPUT)
def test_bad_input_refused(gen_rig: Rig, args: tuple[str, ...]) -> None:
    rig = gen_rig
    argv = [a.format(mac=rig.mac) for a in args]
    tx = host_tx(rig)
    r = gen(rig, *argv)
    assert r.rc == 2, f"gen {' '.join(argv)}: {r}"
    assert_one_stderr_line(r, f"gen {' '.join(argv)}")
    assert host_tx(rig) - tx <= NEIGHBOUR_SLACK, "frames were sent"
