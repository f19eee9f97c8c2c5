"""Operations basics of `hnxdp run` (issue 12): versions, SIGHUP reloads
--config without touching joined pairs, log lines for a terminal and for
journald. Ported from scripts/tests/78-run-reload.sh.

What a reload did is proven by what it changes (the settle delay a returning
VF waits for; transparent mode still on) and by the service manager's protocol
(RELOADING=1 then READY=1 per SIGHUP), not by its log line. The refused and
the broken reload are documented as a warning and an error: their log *level*
is checked. The log format itself (millisecond timestamps; sd-daemon
priorities under journald) is the behaviour of the last two tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lib.control import REACT, assert_joined_no_earlier, now_ns, vf_arrive, vf_depart, wait_joined
from lib.daemon import Daemon
from lib.rig import Rig

NEW_SETTLE = 3000  # ms: not hnxdp's default (2000), long enough for dump to see `settling`
LEVELS = "trace|debug|info|notice|warning|error|critical"
PRIORITY = {"debug": 7, "trace": 7, "info": 6, "notice": 5, "warning": 4, "error": 3, "critical": 2}


def write_conf(conf: Path, *lines: str) -> None:
    """The --config file, replaced atomically (as an editor or a package would)."""
    tmp = conf.with_suffix(".tmp")
    tmp.write_text("".join(f"{line}\n" for line in ("# written by test_78", *lines)))
    tmp.rename(conf)


@dataclass
class Configured:
    """`run --config FILE` (synthetic hn0, settle-ms 0) with vf0 joined."""

    rig: Rig
    conf: Path
    run: Daemon
    links: str

    def write(self, *lines: str) -> None:
        write_conf(self.conf, *lines)

    def hup(self) -> None:
        """SIGHUP; returns once READY=1 came again. One RELOADING=1 and one more
        READY=1 per SIGHUP, and the same process keeps running."""
        notify = self.run.notify
        reloading, ready = notify.count("RELOADING"), notify.count("READY")
        self.run.hup()
        assert (notify.count("RELOADING"), notify.count("READY")) == (reloading + 1, ready + 1)
        assert self.run.alive(), "run still running after SIGHUP"

    def assert_pair_untouched(self) -> None:
        p = self.rig.hnxdp.pair("hn0")
        assert p is not None and (p["state"], p["vf"]["name"]) == ("active", "vf0"), f"pair hn0: {p}"
        assert self.rig.tcx_summary("hn0", "vf0") == self.links, "the same tcx links"

    def vf_leaves_and_returns(self) -> tuple[dict, list[str], int]:
        vf_depart(self.rig)
        self.rig.host_switch("syn")
        since = now_ns()
        vf_arrive(self.rig)
        p, seen = wait_joined(self.rig, "vf0", REACT)
        self.links = self.rig.tcx_summary("hn0", "vf0")
        return p, seen, since


@pytest.fixture
def configured(rig: Rig) -> Iterator[Configured]:
    conf = rig.tmp / "run.conf"
    write_conf(conf, "synthetic = hn0", "settle-ms = 0")
    d = Daemon.start(rig, "--config", str(conf))
    wait_joined(rig, "vf0", REACT)
    c = Configured(rig, conf, d, rig.tcx_summary("hn0", "vf0"))
    assert len(c.links.split()) == 3, f"three hnxdp links (hn0 ingress+egress, vf0 ingress): {c.links}"
    yield c
    if c.run.alive():
        assert c.run.stop() == 0, "run exits 0 on SIGTERM"


def test_version_is_the_same_everywhere(rig: Rig) -> None:
    r = rig.hnxdp("--version")
    assert r.rc == 0, str(r)
    m = re.fullmatch(r"hnxdp (\d+\.\d+\.\d+)", r.out.strip())
    assert m, f"--version prints 'hnxdp X.Y.Z': {r.out!r}"
    rig.hnxdp.ok("attach", "--synthetic", "hn0", "--vf", "vf0")
    for report in (rig.hnxdp.dump(), rig.hnxdp.status()):
        assert (report["version"], report["schema_version"]) == (m.group(1), 1)
    rig.hnxdp.ok("detach", "--synthetic", "hn0")


def test_log_lines_have_millisecond_timestamps(configured: Configured) -> None:
    lines = configured.run.log().splitlines()
    assert lines, "run logged nothing"
    stamp = re.compile(rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}[+-]\d{{4}} ({LEVELS}) ")
    assert [line for line in lines if not stamp.match(line)] == []


def test_sighup_applies_a_new_settle_delay_and_leaves_the_pair(configured: Configured) -> None:
    c = configured
    c.write("synthetic = hn0", f"settle-ms = {NEW_SETTLE}")
    c.hup()
    c.assert_pair_untouched()
    p, seen, since = c.vf_leaves_and_returns()
    assert seen[-2:] == ["settling", "active"], f"dump should show settling, then active: {seen}"
    assert_joined_no_earlier(p, since, NEW_SETTLE, "the returning VF waited for the new settle delay")
    c.run.assert_no_error()


def test_transparent_off_is_not_applied_at_run_time(configured: Configured) -> None:
    c = configured
    c.write("synthetic = hn0", "settle-ms = 0", "transparent = off")
    warnings = len(c.run.lines_at("warning"))
    c.hup()
    assert len(c.run.lines_at("warning")) == warnings + 1, "the refused change is a warning"
    c.assert_pair_untouched()
    p, _, _ = c.vf_leaves_and_returns()  # transparent still on: a VF that returns is joined
    assert p["state"] == "active"
    c.run.assert_no_error()


def test_a_broken_config_keeps_the_settings_in_use(configured: Configured) -> None:
    c = configured
    c.write("synthetic = hn0", f"settle-ms = {NEW_SETTLE}")
    c.hup()
    c.write("synthetic = hn0", "settle-ms = banana")
    c.hup()
    assert len(c.run.lines_at("error", "critical")) == 1, f"one error line: {c.run.lines_at('error', 'critical')}"
    c.assert_pair_untouched()
    p, seen, since = c.vf_leaves_and_returns()
    assert seen[-2:] == ["settling", "active"], f"dump should show settling, then active: {seen}"
    assert_joined_no_earlier(p, since, NEW_SETTLE, "the settle delay in use was kept")
    c.write("synthetic = hn0", f"settle-ms = {NEW_SETTLE}")
    c.hup()
    c.assert_pair_untouched()
    assert c.run.stop() == 0
    assert len(c.run.lines_at("error", "critical")) == 1, "no error line but the broken config's"


def test_journald_lines_carry_a_priority_and_no_timestamp(rig: Rig) -> None:
    """With JOURNAL_STREAM naming stderr (as systemd sets it), every line starts
    with the sd-daemon priority of its level (<6> info, <4> warning)."""
    conf = rig.tmp / "run.conf"
    write_conf(conf, "synthetic = hn0", "settle-ms = 0")
    d = Daemon.start(rig, "--config", str(conf), journal=True)
    wait_joined(rig, "vf0", REACT)
    write_conf(conf, "synthetic = hn0", "settle-ms = 0", "transparent = off")
    d.hup()  # refused: a warning line
    assert d.stop() == 0
    lines = d.log().splitlines()
    line = re.compile(rf"^<([0-7])>({LEVELS}) hnxdp\.")
    bad = [x for x in lines if not (m := line.match(x)) or int(m.group(1)) != PRIORITY[m.group(2)]]
    assert bad == [], f"lines without the priority of their level: {bad[:5]}"
    levels = {line.match(x).group(2) for x in lines}
    assert {"info", "warning"} <= levels, f"an info and a warning line: {lines}"
