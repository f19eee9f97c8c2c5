"""`hnxdp capture` records both directions of a pair with the path each frame
took (issue 16), ported from scripts/tests/87-capture.sh.

Whether the datapath copies frames (its capture flag) is read from
`dump --json` (`capture`, docs/json.md), never from the pinned map.
"""
from __future__ import annotations

import signal

import pytest

from lib.capture import CaptureJob, capture_flag, copying, pcapng_frames
from lib.checks import assert_one_stderr_line
from lib.proc import Result
from lib.rig import G4, G6, R4, R6, TC_MODES, Rig, tc_mode_id
from lib.traffic import ping, ping_bg
from lib.wait import wait_until


# Under both attachments (tcx, and classic tc as kernels before 6.6 get).
pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)


@pytest.fixture
def pinged(joined: Rig) -> Rig:
    """The joined pair; the remote reaches the guest through the VF."""
    r = ping(joined, joined.remote, G4, count=2)
    assert r.rc == 0, f"remote pings the guest through the VF: {r.out}"
    return joined


def assert_refused(r: Result, what: str) -> None:
    assert r.rc == 2, f"{what}: expected exit 2: {r}"
    assert_one_stderr_line(r, what)
    assert r.out == "", f"{what}: stdout: {r.out!r}"


def test_refused_before_anything_is_attached(rig: Rig) -> None:
    r = rig.hnxdp("capture", "--synthetic", "hn0", "-c", "1")
    assert_refused(r, "capture before attach")
    assert "not attached" in r.err, f"says hn0 is not attached: {r.err!r}"


BAD_INPUT = {
    "no such interface": ("--synthetic", "nosuch0", "-c", "1"),
    "vf0 is not a synthetic of a pair": ("--synthetic", "vf0", "-c", "1"),
    "-c 0": ("--synthetic", "hn0", "-c", "0"),
    "--snaplen 0": ("--synthetic", "hn0", "--snaplen", "0"),
    "--snaplen above the most": ("--synthetic", "hn0", "--snaplen", "70000"),
    "-w into a missing directory": ("--synthetic", "hn0", "-c", "1", "-w", "{tmp}/no/such/dir.pcapng"),
}


@pytest.mark.parametrize("args", BAD_INPUT.values(), ids=BAD_INPUT)
def test_bad_input_refused_flag_stays_off(pinged: Rig, args: tuple[str, ...]) -> None:
    rig = pinged
    assert capture_flag(rig) == {"copying": False}, "the flag is off after attach"
    argv = [a.format(tmp=rig.tmp) for a in args]
    assert_refused(rig.hnxdp("capture", *argv), " ".join(argv))
    assert capture_flag(rig) == {"copying": False}, "the flag is still off after the refusal"


def test_flag_on_while_capturing_off_after_exit(pinged: Rig) -> None:
    rig = pinged
    job = CaptureJob.start(rig, "--synthetic", "hn0", "-c", "4", "--seconds", "30", "-w", str(rig.tmp / "c.pcapng"))
    assert capture_flag(rig) == {"copying": True, "pid": job.pid, "synthetic_ifindex": rig.ifindex(rig.guest, "hn0")}
    assert ping(rig, rig.remote, G4, count=2).rc == 0
    assert job.proc.wait(20) == 0, f"capture -c 4: {job.stderr}"
    assert not copying(rig), "the flag is off after the capture exited"


def test_pcapng_to_tcpdump_both_directions_with_paths(pinged: Rig) -> None:
    """`capture -c 10 -w - | tcpdump -r -` while the guest and the remote ping
    each other: tcpdump reads 10 frames, requests and replies; the pcapng has
    the guest's frames on hn0:vf-tx and the remote's on hn0:vf-rx."""
    rig = pinged
    pcap, text = rig.tmp / "c2.pcapng", rig.tmp / "c2.txt"
    job = CaptureJob.start(rig, "--synthetic", "hn0", "-c", "10", "--seconds", "30", "-w", "-",
                           shell_tail=f"| tee '{pcap}' | timeout 30 tcpdump -r - -n >'{text}'")
    from_guest = ping_bg(rig, rig.guest, R4, count=4, interval=0.1, wait=2)
    r = ping(rig, rig.remote, G4, count=4)
    assert r.rc == 0, f"remote pings the guest (4/4): {r.out}"
    assert from_guest.wait(15) == 0, f"guest pings the remote (4/4): {from_guest.output()}"
    assert job.proc.wait(30) == 0, f"capture | tcpdump -r -: {job.stderr} {job.proc.errors()}"
    lines = text.read_text().splitlines()
    assert len(lines) == 10, f"tcpdump printed {len(lines)} frames: {lines}"
    assert any("ICMP echo request" in line for line in lines), lines
    assert any("ICMP echo reply" in line for line in lines), lines
    assert "hnxdp capture: 10 frames" in job.stderr, f"summary on stderr: {job.stderr!r}"
    frames = pcapng_frames(rig, pcap)
    assert len(frames) == 10
    seen = {(f.interface, f.direction, f.comment, f.summary) for f in frames}
    for kind, src, dst, where in (("echo-request", G4, R4, "tx"), ("echo-reply", R4, G4, "rx"),
                                  ("echo-request", R4, G4, "rx"), ("echo-reply", G4, R4, "tx")):
        expected = (f"hn0:vf-{where}", "out" if where == "tx" else "in", f"vf-{where} vf0", f"icmp {kind} {src}>{dst}")
        assert expected in seen, f"{expected} not captured: {frames}"
    icmp = [f for f in frames if f.summary.startswith("icmp ")]
    assert all(f.interface == "hn0:vf-tx" for f in icmp if f" {G4}>" in f.summary), icmp
    assert all(f.interface == "hn0:vf-rx" for f in icmp if f" {R4}>" in f.summary), icmp


def test_text_lines_without_w(pinged: Rig) -> None:
    rig = pinged
    job = CaptureJob.start(rig, "--synthetic", "hn0", "--seconds", "20")
    assert ping(rig, rig.remote, G4, count=2).rc == 0
    reply = f"vf-tx vf0 98: {G4} > {R4} ICMP echo reply"
    wait_until(lambda: reply in job.proc.output(), 15, f"a text line '{reply}'")
    assert f"vf-rx vf0 98: {R4} > {G4} ICMP echo request" in job.proc.output()


def test_second_capture_refused_naming_the_first(pinged: Rig) -> None:
    rig = pinged
    first = CaptureJob.start(rig, "--synthetic", "hn0", "--seconds", "20")
    r = rig.hnxdp("capture", "--synthetic", "hn0", "-c", "1")
    assert r.rc == 2, f"a second capture in the namespace: {r}"
    assert_one_stderr_line(r, "second capture")
    assert f"(pid {first.pid})" in r.err, f"names the first's pid {first.pid}: {r.err!r}"
    assert capture_flag(rig)["pid"] == first.pid, "the first capture still owns the flag"


@pytest.mark.parametrize("sig", (signal.SIGINT, signal.SIGTERM), ids=lambda s: s.name)
def test_signal_ends_capture_cleanly(pinged: Rig, sig: signal.Signals) -> None:
    rig = pinged
    job = CaptureJob.start(rig, "--synthetic", "hn0", "--seconds", "20")
    assert ping(rig, rig.remote, G4, count=2).rc == 0
    job.signal(sig)
    assert job.proc.wait(15) == 0, f"{sig.name} ends the capture with exit 0: {job.stderr}"
    assert "hnxdp capture: " in job.stderr, f"and its summary: {job.stderr!r}"
    assert not copying(rig), f"the flag is off after {sig.name}"


def test_capture_across_a_planned_departure(pinged: Rig) -> None:
    """The remote pings the guest (IPv4 and IPv6) while vf0 leaves: vf-rx/vf-tx
    first, then syn-rx/syn-tx; in each direction no vf-* frame after the first
    syn-* (receive switches when the host does, transmit when vf0 goes)."""
    rig = pinged
    pcap = rig.tmp / "c4.pcapng"
    job = CaptureJob.start(rig, "--synthetic", "hn0", "--seconds", "40", "-w", str(pcap))
    pings = [ping_bg(rig, rig.remote, dst, count=60, interval=0.05, wait=1) for dst in (G4, G6)]

    def replies_through_vf() -> bool:
        return sum(1 for f in pcapng_frames(rig, pcap, partial=True)
                   if f.interface == "hn0:vf-tx" and "echo-reply" in f.summary) >= 6

    wait_until(replies_through_vf, 15, "echo replies captured on hn0:vf-tx")
    rig.vf_remove_planned()
    for p in pings:
        p.wait(30)
    job.signal(signal.SIGTERM)
    assert job.proc.wait(15) == 0, f"SIGTERM ends the capture with exit 0: {job.stderr}"
    frames = pcapng_frames(rig, pcap)
    paths = [f.path for f in frames]
    for p in ("vf-rx", "vf-tx", "syn-rx", "syn-tx"):
        assert paths.count(p) >= 5, f"{paths.count(p)} frames on hn0:{p}, expected >= 5: {paths}"
    for d in ("rx", "tx"):
        last_vf = max(i for i, p in enumerate(paths) if p == f"vf-{d}")
        first_syn = min(i for i, p in enumerate(paths) if p == f"syn-{d}")
        assert last_vf < first_syn, f"a vf-{d} frame (#{last_vf}) after the first syn-{d} (#{first_syn}): {paths}"
    assert any(f.interface == "hn0:syn-tx" and f.direction == "out" and f.comment == "syn-tx hn0"
               and f.summary == f"icmp6 echo-reply {G6}>{R6}" for f in frames), \
        "no IPv6 echo reply on hn0:syn-tx after the departure"


def killed_capture(rig: Rig) -> int:
    """A capture killed with SIGKILL (it cannot switch the flag off); its pid."""
    job = CaptureJob.start(rig, "--synthetic", "hn0", "--seconds", "30", "-w", str(rig.tmp / "k.pcapng"))
    job.signal(signal.SIGKILL)
    assert job.proc.wait(15) == -signal.SIGKILL
    return job.pid


def test_killed_capture_flag_switched_off_by_the_datapath(pinged: Rig) -> None:
    """The flag stays on (naming the dead capture) until the pair's next frame,
    whose program finds no perf event and switches it off itself."""
    rig = pinged
    pid = killed_capture(rig)
    flag = capture_flag(rig)
    assert flag["copying"] is False or flag["pid"] == pid, f"the flag names another capture: {flag}"
    assert ping(rig, rig.remote, G4, count=3).rc == 0, "the pair still works after the killed capture"
    wait_until(lambda: not copying(rig), 15, "the datapath switching the flag off by itself")


def test_new_capture_after_a_killed_one(pinged: Rig) -> None:
    rig = pinged
    killed_capture(rig)
    r = rig.hnxdp("capture", "--synthetic", "hn0", "-c", "1", "--seconds", "2", "-w", str(rig.tmp / "c6.pcapng"))
    assert r.rc == 0, f"a new capture runs after the killed one: {r}"
    assert not copying(rig)


def test_datapath_without_capture_pins(pinged: Rig) -> None:
    """Pinned by an hnxdp without capture (no capture pins): capture refuses
    with the way out; status still works; dump shows no capture."""
    rig = pinged
    for pin in ("hnxdp_capture", "hnxdp_capture_ctl"):
        (rig.pin_dir / pin).unlink()
    r = rig.hnxdp("capture", "--synthetic", "hn0", "-c", "1")
    assert r.rc == 1, f"capture on a datapath without capture pins: {r}"
    assert_one_stderr_line(r, "capture without capture pins")
    assert "hnxdp detach --all" in r.err, f"names the way out: {r.err!r}"
    r = rig.hnxdp("status")
    assert r.rc == 0, f"status still works: {r}"
    assert capture_flag(rig) is None, "dump --json shows no capture on that datapath"
