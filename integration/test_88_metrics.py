"""Prometheus metrics of `hnxdp run` (docs/metrics.md); ported from
scripts/tests/88-metrics.sh.

Bad values are refused before anything changes; with two pairs (hn0/vf0,
hn1/vf1) the endpoint and the textfile pass `promtool check metrics` and
show states, VFs, joins, counters that follow real traffic and agree with
`dump --json`, a departure, and counters that outlive a restart of run.
The endpoint lives in the guest's namespace: its port space is the rig's.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lib.checks import assert_one_stderr_line, assert_unchanged, require_tools
from lib.daemon import Daemon, state_is, wait_pair
from lib.metrics import Exposition, assert_promtool_ok, http, listening, scrape
from lib.rig import G4, Rig, python
from lib.traffic import UdpSink, udp_send
from lib.wait import wait_until

PORT = 9469
N = 200  # UDP datagrams remote -> guest through vf0
DEVS = ("hn0", "vf0", "hn1", "vf1")
RUN = ("--synthetic", "hn0", "--synthetic", "hn1", "--settle-ms", "0")


@pytest.fixture
def rig2(rig: Rig) -> Rig:
    """The rig with a second pair hn1/vf1 and an empty textfile directory."""
    require_tools("promtool", "ss", "chattr")
    rig.pair_add(1)
    (rig.tmp / "prom").mkdir()
    return rig


def textfile(rig: Rig) -> Path:
    return rig.tmp / "prom" / "hnxdp.prom"


# ---------------------------------------------------------------- refusals

def _bad_config(rig: Rig) -> list[str]:
    conf = rig.tmp / "bad.conf"
    conf.write_text(f"synthetic = hn0\nmetrics-listen = 198.18.0.1:{PORT}\n")
    return ["--config", str(conf)]


REFUSED = {
    # id: (arguments, exit code, words of the one stderr line)
    "listen-0.0.0.0": (lambda rig: ["--metrics-listen", f"0.0.0.0:{PORT}"], 2, "not a loopback address"),
    "listen-fd00::1": (lambda rig: ["--metrics-listen", f"[fd00::1]:{PORT}"], 2, ""),
    "listen-port-0": (lambda rig: ["--metrics-listen", "127.0.0.1:0"], 2, ""),
    "textfile-relative": (lambda rig: ["--metrics-textfile", "relative.prom"], 2, ""),
    "textfile-not-prom": (lambda rig: ["--metrics-textfile", str(rig.tmp / "prom" / "hnxdp.txt")], 2, ""),
    "textfile-missing-dir": (lambda rig: ["--metrics-textfile", str(rig.tmp / "nodir" / "hnxdp.prom")], 2, ""),
    "config-not-loopback": (_bad_config, 2, "line 2"),
}


def assert_refused(rig: Rig, args: list[str], code: int, words: str, before: str, what: str) -> None:
    run_args = args if args[0] == "--config" else ["--synthetic", "hn0", "--settle-ms", "0", *args]
    r = rig.hnxdp("run", *run_args, timeout=30)
    assert r.rc == code, f"{what}: {r}"
    assert_one_stderr_line(r, what)
    assert words in r.err, f"{what}: stderr should say {words!r}: {r.err!r}"
    assert_unchanged(before, rig.snapshot(DEVS), f"{what}: devices, pins and links")
    assert list((rig.tmp / "prom").iterdir()) == [], f"{what}: a textfile was written"


@pytest.mark.parametrize("case", REFUSED, ids=str)
def test_bad_value_refused_before_anything_changes(rig2: Rig, case: str) -> None:
    args, code, words = REFUSED[case]
    before = rig2.snapshot(DEVS)
    assert_refused(rig2, args(rig2), code, words, before, case)


def test_port_in_use_refused(rig2: Rig) -> None:
    rig = rig2
    ready = rig.tmp / "holder-ready"
    holder = ("import socket, sys, time\n"
              f"s = socket.socket(); s.bind(('127.0.0.1', {PORT})); s.listen(1)\n"
              "open(sys.argv[1], 'w').close()\ntime.sleep(60)\n")
    proc = rig.bg(rig.guest, python(), "-c", holder, str(ready), name="port-holder")
    wait_until(lambda: ready.exists() or not proc.running(), 10, "the port holder listens")
    assert ready.exists(), f"port holder did not start: {proc.errors()}"
    before = rig.snapshot(DEVS)
    assert_refused(rig, ["--metrics-listen", f"127.0.0.1:{PORT}"], 1, "in use", before, "a port in use")


def test_unwritable_textfile_directory_refused(rig2: Rig) -> None:
    """A directory that takes no file (immutable: root is refused too)."""
    rig = rig2
    ro = rig.tmp / "ro"
    ro.mkdir()
    before = rig.snapshot(DEVS)
    subprocess.run(["chattr", "+i", str(ro)], check=True)
    try:
        r = rig.hnxdp("run", "--synthetic", "hn0", "--settle-ms", "0", "--metrics-textfile", str(ro / "hnxdp.prom"),
                      timeout=30)
    finally:
        subprocess.run(["chattr", "-i", str(ro)], check=True)
    assert r.rc == 1, f"unwritable textfile directory: {r}"
    assert_one_stderr_line(r, "unwritable textfile directory")
    assert_unchanged(before, rig.snapshot(DEVS), "unwritable textfile directory: devices, pins and links")
    assert list(ro.iterdir()) == [], "nothing left in the directory"


# ---------------------------------------------------------------- two pairs, metrics on

@dataclass
class MetricsRun:
    rig: Rig
    daemon: Daemon
    host: str = "127.0.0.1"

    def scrape(self) -> str:
        return scrape(self.rig, self.host, PORT)

    def metrics(self) -> Exposition:
        return Exposition.parse(self.scrape())


def both_active(rig: Rig) -> None:
    def cond() -> bool:
        pairs = rig.hnxdp.dump()["pairs"]
        return len(pairs) == 2 and all(p["state"] == "active" and p["vf"] for p in pairs)
    wait_until(cond, 30, "both pairs active")


@pytest.fixture
def metrics_run(rig2: Rig) -> Iterator[MetricsRun]:
    d = Daemon.start(rig2, *RUN, "--metrics-listen", f"127.0.0.1:{PORT}", "--metrics-textfile", str(textfile(rig2)))
    both_active(rig2)
    mr = MetricsRun(rig2, d)
    yield mr
    if mr.daemon.alive():
        assert mr.daemon.stop() == 0, "run exits 0 on SIGTERM"
    mr.daemon.assert_no_error()


def test_exposition_with_two_pairs(metrics_run: MetricsRun) -> None:
    rig = metrics_run.rig
    text = metrics_run.scrape()
    assert_promtool_ok(rig, text, "HTTP /metrics with two pairs")
    m = Exposition.parse(text)
    version = subprocess.run([str(rig.binary), "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert m.value("hnxdp_build_info", version=version) == 1.0, "build info carries the version"
    assert m.value("hnxdp_pairs") == 2.0
    for k in (0, 1):
        ones = [labels["state"] for labels, v in m.series("hnxdp_pair_state", synthetic=f"hn{k}") if v == 1.0]
        assert ones == ["active"], f"hn{k}'s one-hot state: {ones}"
        info = m.series("hnxdp_pair_info", synthetic=f"hn{k}")
        assert [(labels["vf"], labels["ifindex"], v) for labels, v in info] == \
            [(f"vf{k}", str(rig.ifindex(rig.guest, f"hn{k}")), 1.0)], f"hn{k}'s pair info: {info}"
        joins = m.value("hnxdp_join_duration_seconds_count", synthetic=f"hn{k}")
        assert joins is not None and joins >= 1, f"hn{k}: one join observed ({joins})"


def test_textfile_passes_promtool(metrics_run: MetricsRun) -> None:
    path = textfile(metrics_run.rig)
    wait_until(lambda: path.exists() and path.stat().st_size > 0, 30, "textfile written")
    assert_promtool_ok(metrics_run.rig, path.read_text(), "textfile with two pairs")


def test_other_paths_and_methods(metrics_run: MetricsRun) -> None:
    assert http(metrics_run.rig, "127.0.0.1", PORT, "/")[0] == 404, "/ is 404"
    assert http(metrics_run.rig, "127.0.0.1", PORT, "/metrics", "POST")[0] == 405, "POST /metrics is 405"


def test_listens_on_loopback_only(metrics_run: MetricsRun) -> None:
    assert listening(metrics_run.rig, PORT) == [f"127.0.0.1:{PORT}"]


def send_through_vf0(rig: Rig, port: int) -> None:
    """N datagrams from the remote to hn0 with the host on vf0; a socket on hn0 gets them all."""
    rig.host_switch("vf")
    sink = UdpSink.start(rig, rig.guest, "hn0", port, seconds=15, expect=N)
    assert udp_send(rig, rig.remote, G4, port, N) == N
    assert sink.count() == N, "the socket on hn0 received every datagram"


def test_counters_follow_traffic_through_vf(metrics_run: MetricsRun) -> None:
    """hn0's VF receive counters take the datagrams, its synthetic receive
    counter does not, hn1's do not move."""
    m1 = metrics_run.metrics()
    send_through_vf0(metrics_run.rig, 9100)
    text = metrics_run.scrape()
    assert_promtool_ok(metrics_run.rig, text, "HTTP /metrics after traffic")
    m2 = Exposition.parse(text)

    def delta(name: str, syn: str) -> int:
        return m2.counter(name, syn) - m1.counter(name, syn)

    assert delta("hnxdp_vf_rx_packets_total", "hn0") >= N
    assert delta("hnxdp_vf_rx_bytes_total", "hn0") >= N * 28
    assert delta("hnxdp_synthetic_rx_packets_total", "hn0") <= N // 10, "hn0's synthetic path did not take them"
    for name in ("hnxdp_vf_rx_packets_total", "hnxdp_vf_rx_bytes_total", "hnxdp_synthetic_rx_packets_total",
                 "hnxdp_synthetic_rx_bytes_total"):
        assert delta(name, "hn1") == 0, f"hn1 {name} moved"


def test_counters_agree_with_dump(metrics_run: MetricsRun) -> None:
    """The scrape reads the map dump reads: bracketed by two dumps (a frame of
    the neighbours' own traffic may come between any two reads), it lies
    between them."""
    rig = metrics_run.rig
    send_through_vf0(rig, 9101)
    before = rig.hnxdp.stats("hn0")["vf_rx_packets"]
    scraped = metrics_run.metrics().counter("hnxdp_vf_rx_packets_total", "hn0")
    after = rig.hnxdp.stats("hn0")["vf_rx_packets"]
    assert before >= N
    assert before <= scraped <= after, f"dump {before}, scrape {scraped}, dump {after}"


def test_textfile_catches_up(metrics_run: MetricsRun) -> None:
    """The textfile is rewritten every 5 s: it comes to show the datagrams."""
    rig = metrics_run.rig
    send_through_vf0(rig, 9102)
    target = metrics_run.metrics().counter("hnxdp_vf_rx_packets_total", "hn0")
    assert target >= N

    def caught_up() -> bool:
        v = Exposition.parse(textfile(rig).read_text()).value("hnxdp_vf_rx_packets_total", synthetic="hn0")
        return v is not None and v >= target
    wait_until(caught_up, 30, f"textfile shows hn0 vf rx >= {target}")


def test_departure_observed(metrics_run: MetricsRun) -> None:
    rig = metrics_run.rig
    switches = metrics_run.metrics().counter("hnxdp_switches_total", "hn1")
    rig.vfk_del(1)
    wait_pair(rig, state_is("idle"), 30, "hn1 idle", synthetic="hn1")
    text = metrics_run.scrape()
    assert_promtool_ok(rig, text, "HTTP /metrics after a departure")
    m = Exposition.parse(text)
    assert m.value("hnxdp_pair_state", synthetic="hn1", state="idle") == 1.0
    assert m.value("hnxdp_pair_state", synthetic="hn1", state="active") == 0.0
    assert m.counter("hnxdp_switches_total", "hn1") == switches + 1
    assert m.value("hnxdp_departure_reaction_seconds_count", synthetic="hn1") == 1.0, "one departure observed"
    assert m.value("hnxdp_departure_reaction_seconds_count", synthetic="hn0") is None, "hn0: no departure"
    assert [labels["vf"] for labels, _ in m.series("hnxdp_pair_info", synthetic="hn1")] == [""], "hn1 has no VF"


def test_textfile_removed_on_exit(metrics_run: MetricsRun) -> None:
    path = textfile(metrics_run.rig)
    wait_until(path.exists, 30, "textfile written")
    assert metrics_run.daemon.stop() == 0, "run exits 0 on SIGTERM"
    assert not path.exists(), "textfile removed on exit"


def test_counters_carry_on_across_a_restart(metrics_run: MetricsRun) -> None:
    """A new run (on [::1] this time) serves hn0's counters where they were:
    they live in the pinned maps."""
    rig = metrics_run.rig
    send_through_vf0(rig, 9103)
    rig.vfk_del(1)
    wait_pair(rig, state_is("idle"), 30, "hn1 idle", synthetic="hn1")
    m1 = metrics_run.metrics()
    assert metrics_run.daemon.stop() == 0, "run exits 0 on SIGTERM"
    metrics_run.daemon.assert_no_error()
    d = Daemon.start(rig, *RUN, "--metrics-listen", f"[::1]:{PORT}")
    metrics_run.daemon = d
    assert listening(rig, PORT) == [f"[::1]:{PORT}"], "the second run listens on [::1] only"
    text = scrape(rig, "[::1]", PORT)
    assert_promtool_ok(rig, text, "HTTP /metrics after a restart")
    m2 = Exposition.parse(text)
    before = m1.counter("hnxdp_vf_rx_packets_total", "hn0")
    assert before >= N
    assert m2.counter("hnxdp_vf_rx_packets_total", "hn0") >= before
    assert m2.counter("hnxdp_switches_total", "hn1") == m1.counter("hnxdp_switches_total", "hn1")
    assert d.stop() == 0, "the second run exits 0 on SIGTERM"
    rig.hnxdp.ok("detach", "--all")
