"""`hnxdp monitor` on a real terminal (tmux) and as JSON lines, `attach` /
`detach --json` and errors as JSON, and the switch history under `hnxdp run`;
ported from scripts/tests/89-monitor.sh.

The live view's rates are checked against the pair's counters (`dump --json`)
over the real time of the window in which the view was read, under a paced
UDP load from the remote through the VF.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from lib.checks import assert_one_stderr_line, require_tools
from lib.daemon import Daemon, state_is, wait_pair
from lib.proc import Proc
from lib.rig import G4, Rig
from lib.terminal import TmuxSession
from lib.traffic import UdpSink
from lib.wait import wait_until

RATE = 400  # datagrams per second, remote -> guest through the VF
LOAD_S = 14
PORT = 5389
ATTACH = ("attach", "--synthetic", "hn0", "--vf", "vf0")


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tools("tmux", "stty")


def one_json_line(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {text!r}"
    return json.loads(lines[0])


# ---------------------------------------------------------------- attach/detach --json, errors

def test_attach_json(rig: Rig) -> None:
    r = rig.hnxdp(*ATTACH, "--json")
    assert r.rc == 0, str(r)
    out = one_json_line(r.out)
    assert out["result"] == "attached"
    assert out["synthetic"]["name"] == "hn0"
    assert out["vf"]["name"] == "vf0"
    assert out["datapath"] == "vf"
    assert out["mtu"] == rig.link(rig.guest, "hn0")["mtu"], "the mtu is the synthetic's"
    again = rig.hnxdp(*ATTACH, "--json")
    assert again.rc == 0, str(again)
    assert one_json_line(again.out)["result"] == "already-attached"


def test_detach_json(joined: Rig) -> None:
    r = joined.hnxdp("detach", "--synthetic", "hn0", "--json")
    assert r.rc == 0, str(r)
    out = one_json_line(r.out)
    assert out["result"] == "detached"
    assert [(p["synthetic"]["name"], p["vf"]["name"]) for p in out["pairs"]] == [("hn0", "vf0")]
    assert out["pins_removed"] is True
    joined.hnxdp.ok(*ATTACH)  # the fixture detaches at the end


JSON_ERRORS = {
    # id: (arguments, exit code, what the error names)
    "attach-unknown-vf": (("attach", "--synthetic", "hn0", "--vf", "nosuch0", "--json"), 2, "nosuch0"),
    "attach-usage": (("attach", "--synthetic", "hn0", "--json"), 2, "--vf"),
    "detach-not-attached": (("detach", "--synthetic", "vf0", "--json"), 2, "vf0"),
    "monitor-interval-0": (("monitor", "--json", "--interval", "0"), 2, "--interval"),
}


@pytest.mark.parametrize("case", JSON_ERRORS, ids=str)
def test_error_is_one_json_line_on_stderr(joined: Rig, case: str) -> None:
    args, code, names = JSON_ERRORS[case]
    r = joined.hnxdp(*args)
    assert r.rc == code, str(r)
    assert r.out == "", f"nothing on stdout: {r.out!r}"
    assert_one_stderr_line(r, case)
    err = json.loads(r.err)
    assert err["exit_code"] == code
    assert names in err["error"], err


def test_monitor_without_terminal_suggests_json(joined: Rig) -> None:
    r = joined.hnxdp("monitor", "--count", "1")
    assert r.rc == 2, str(r)
    assert_one_stderr_line(r, "monitor without a terminal")
    assert "--json" in r.err


# ---------------------------------------------------------------- monitor --json

def udp_load(rig: Rig, rate: int, seconds: float) -> tuple[UdpSink, Proc]:
    """A paced UDP load, remote -> a socket on hn0 (through the VF when the host is on it)."""
    n = int(rate * seconds)
    sink = UdpSink.start(rig, rig.guest, "hn0", PORT, seconds=seconds + 10, expect=n)
    sender = rig.bg(rig.remote, *rig.tool("udp_send.py"), "--dst", G4, "--port", str(PORT), "--count", str(n),
                    "--rate", str(rate), "--seconds", str(seconds + 10), name="udp-load")
    return sink, sender


def test_monitor_json_lines(joined: Rig) -> None:
    """--count 3: three lines that parse; each line's rates are the counters'
    growth since the line before divided by its elapsed_s."""
    rig = joined
    _sink, _sender = udp_load(rig, 200, 8)
    wait_until(lambda: rig.hnxdp.stats()["vf_rx_packets"] >= 50, 15, "the load arrives through the VF")
    r = rig.hnxdp("monitor", "--json", "--count", "3", "--interval", "0.3")
    assert r.rc == 0, str(r)
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert len(lines) == 3, r.out
    for n, line in enumerate(lines, 1):
        assert line["schema_version"] == 1
        pair = line["pairs"][0]
        assert pair["synthetic"]["name"] == "hn0"
        assert pair["datapath"] == "vf"
        assert isinstance(pair["rates"]["vf_rx_pps"], (int, float)), f"line {n}: {pair['rates']}"
        assert pair["elapsed_s"] >= 0.25, f"line {n}: elapsed_s {pair['elapsed_s']} below the interval"
    for prev, line in zip(lines, lines[1:]):
        a, b = prev["pairs"][0], line["pairs"][0]
        grown = b["stats"]["vf_rx_packets"] - a["stats"]["vf_rx_packets"]
        assert grown > 0, "the load shows in the counters"
        expected = grown / b["elapsed_s"]
        assert abs(b["rates"]["vf_rx_pps"] - expected) <= 0.1 + expected * 0.001, \
            f"vf_rx_pps {b['rates']['vf_rx_pps']} is not {grown} frames / {b['elapsed_s']} s"


# ---------------------------------------------------------------- the live view in tmux

def monitor_command(rig: Rig) -> str:
    return f"timeout --foreground -k 5 120 {' '.join(rig.hnxdp.argv('monitor'))}"


@pytest.fixture
def view(joined: Rig) -> Iterator[TmuxSession]:
    """monitor running in a 100x30 tmux session; the shell records the terminal
    mode before (stty-before) and, after monitor exits, its exit code (rc-1)
    and the mode again (stty-after, stty-a)."""
    rig = joined
    with TmuxSession.open(rig, 100, 30, name="mon") as tm:
        t = rig.tmp
        tm.type(f"stty -g >{t}/stty-before; {monitor_command(rig)}; echo $? >{t}/rc-1; "
                f"stty -g >{t}/stty-after.tmp; stty -a >{t}/stty-a; mv {t}/stty-after.tmp {t}/stty-after")
        tm.wait_for(lambda s: "rx pkt/s" in s, 30, "monitor draws its view in the pane")
        yield tm


UNITS = {"k": 1e3, "M": 1e6, "G": 1e9}


def number(shown: str) -> float:
    return float(shown[:-1]) * UNITS[shown[-1]] if shown[-1] in UNITS else float(shown)


def vf_row(screen: str) -> tuple[float, float] | None:
    """rx pkt/s and rx B/s of the view's vf row: "  vf  <rx pkt/s> <rx B/s> <tx pkt/s> <tx B/s>"."""
    for line in screen.splitlines():
        f = line.split()
        if len(f) == 5 and f[0] == "vf":
            try:
                return number(f[1]), number(f[2])
            except ValueError:
                return None
    return None


def clock_line(screen: str) -> str:
    return next((line for line in screen.splitlines() if "UTC" in line), "")


def counters(rig: Rig) -> tuple[int, int, float]:
    """hn0's vf_rx_packets, vf_rx_bytes (dump --json) and the real time in the middle of the read."""
    a = time.time()
    s = rig.hnxdp.stats()
    b = time.time()
    return s["vf_rx_packets"], s["vf_rx_bytes"], (a + b) / 2


def test_live_view_rates_agree_with_counters(view: TmuxSession, joined: Rig) -> None:
    """The vf rx pkt/s and B/s the view shows, four refreshes in a row, are
    within 10 % of the counters' growth over the real time of that window."""
    rig, tm = joined, view
    _sink, sender = udp_load(rig, RATE, LOAD_S)
    tm.wait_for(lambda s: (vf_row(s) or (0, 0))[0] >= RATE / 2, 15, "the view shows the load on the vf path")
    p0, b0, t0 = counters(rig)
    samples = []
    for i in range(4):
        prev = clock_line(tm.screen())
        screen = tm.wait_for(lambda s: clock_line(s) != prev, 10, f"the view refreshed ({i + 1})")
        row = vf_row(screen)
        assert row is not None, f"no vf row in the view:\n{screen}"
        samples.append(row)
    p1, b1, t1 = counters(rig)
    assert sender.running(), "the load ended inside the measuring window"
    ref_pps, ref_bps = (p1 - p0) / (t1 - t0), (b1 - b0) / (t1 - t0)
    for pps, bps in samples:
        assert abs(pps - ref_pps) <= ref_pps * 0.10, f"shown {pps} pkt/s, counters {ref_pps:.1f} (all shown: {samples})"
        assert abs(bps - ref_bps) <= ref_bps * 0.10, f"shown {bps} B/s, counters {ref_bps:.1f} (all shown: {samples})"
    screen = tm.screen()
    assert "hn0(" in screen, "the view names the pair"
    assert "datapath vf" in screen, "the view shows the datapath"


def test_live_view_fits_after_resize(view: TmuxSession) -> None:
    tm = view
    tm.resize(50, 12)
    screen = tm.wait_for(lambda s: re.search(r"^  vf ", s, re.M) and all(len(line) <= 50 for line in s.splitlines()),
                         15, "after a resize to 50x12 the view fits 50 columns and shows the vf row")
    assert "hn0(" in screen, "the resized view still shows the pair"
    assert len([line for line in screen.splitlines() if line]) <= 12, f"the resized view fits 12 rows:\n{screen}"


def wait_exited(rig: Rig) -> None:
    wait_until((rig.tmp / "stty-after").exists, 15, "monitor exited (the shell wrote stty -g after it)")


@pytest.mark.parametrize("key", ("q", "C-c"))
def test_key_quits_and_gives_the_terminal_back(view: TmuxSession, joined: Rig, key: str) -> None:
    """q (and Ctrl-C) exit 0, leave the alternate screen and put the terminal
    mode back as it was."""
    rig, tm = joined, view
    tm.keys(key)
    wait_exited(rig)
    assert (rig.tmp / "rc-1").read_text().strip() == "0", f"monitor exits 0 on {key}"
    assert (rig.tmp / "stty-after").read_text() == (rig.tmp / "stty-before").read_text(), "stty -g as before"
    modes = (rig.tmp / "stty-a").read_text().split()
    assert "icanon" in modes and "echo" in modes, f"canonical mode and echo after {key}: {modes}"
    assert "rx pkt/s" not in tm.screen(), "the pane left the alternate screen (no monitor frame left)"


# ---------------------------------------------------------------- switch history under run

def history(rig: Rig) -> list[dict[str, Any]]:
    return rig.hnxdp.pair()["switch_history"]


def depart_and_return(rig: Rig) -> None:
    rig.vf_remove_surprise()
    wait_pair(rig, lambda p: p and p["state"] == "idle" and p["vf"] is None, 30, "hn0 idle after the departure")
    rig.vf_add()
    rig.host_switch("vf")
    wait_pair(rig, state_is("active", "vf0"), 30, "hn0 active again after the return")


def start_run(rig: Rig, *extra: str) -> Daemon:
    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "200", *extra)
    wait_pair(rig, state_is("active", "vf0"), 30, "hn0 active under run")
    return d


def test_switch_history_of_a_departure_and_return(rig: Rig) -> None:
    d = start_run(rig)
    depart_and_return(rig)
    p = rig.hnxdp.pair()
    assert p["switches"] == 3
    h = p["switch_history"]
    assert [(e["direction"], e["reason"], e["switch"]) for e in h] == [
        ("to-vf", "joined", 1), ("to-synthetic", "departed", 2), ("to-vf", "joined", 3)]
    assert h[2]["vf_ifindex"] == rig.ifindex(rig.guest, "vf0"), "the last entry names the returned VF"
    assert h[2]["time"] == p["last_switch"], "the last entry's time is last_switch"
    assert "to-synthetic departed" in rig.hnxdp.ok("dump").out, "the text dump shows the history"
    assert d.stop() == 0
    d.assert_no_error()


def test_switch_history_survives_a_restart(rig: Rig) -> None:
    d = start_run(rig)
    depart_and_return(rig)
    assert d.stop() == 0, "run stops with SIGTERM"
    d = start_run(rig)
    assert len(history(rig)) == 3, "the history survives a restart of run"
    r = rig.hnxdp("monitor", "--json", "--count", "1", "--interval", "0.2")
    assert r.rc == 0, str(r)
    pair = json.loads(r.out)["pairs"][0]
    assert (pair["last_switch_direction"], pair["last_switch_reason"]) == ("to-vf", "joined")
    assert d.stop() == 0
    d.assert_no_error()


def test_flapping_shows_held_down_and_hold_down_ended(rig: Rig) -> None:
    """--flap-threshold 2: the second departure within the hold-down holds the
    pair down; the VF that then stays is joined after the hold-down."""
    d = start_run(rig, "--hold-down-ms", "5000", "--flap-threshold", "2")
    rig.vf_remove_surprise()
    wait_pair(rig, lambda p: p and p["state"] == "idle" and p["vf"] is None, 30, "idle after the first departure")
    rig.vf_add()
    wait_pair(rig, state_is("active", "vf0"), 30, "active after the VF came back")
    rig.vf_remove_surprise()
    wait_pair(rig, state_is("held-down"), 30, "held down after the second departure")
    rig.vf_add()
    wait_pair(rig, state_is("active", "vf0"), 40, "active once the VF stayed through the hold-down")
    p = rig.hnxdp.pair()
    assert p["switches"] == 5
    assert [(e["reason"], e["direction"], e["switch"]) for e in p["switch_history"]] == [
        ("joined", "to-vf", 1), ("departed", "to-synthetic", 2), ("joined", "to-vf", 3),
        ("held-down", "to-synthetic", 4), ("hold-down-ended", "to-vf", 5)]
    assert d.stop() == 0
    d.assert_no_error()


def state_files(rig: Rig) -> list[str]:
    """The namespace's files under the state directory (records, histories, locks)."""
    root = Path(os.environ.get("HNXDP_STATE_DIR") or "/run/hnxdp")
    return sorted(str(p) for p in root.glob(f"*{rig.guest_ino}*"))


def test_detach_all_json_leaves_no_state_file(rig: Rig) -> None:
    d = start_run(rig)
    depart_and_return(rig)
    assert d.stop() == 0
    r = rig.hnxdp("detach", "--all", "--json")
    assert r.rc == 0, str(r)
    assert len(one_json_line(r.out)["pairs"]) == 1
    assert state_files(rig) == [], "no state file left for the namespace"
