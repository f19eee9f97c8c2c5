"""Synthetics are tracked by ifindex once found, and bad input is refused in
one line without changing anything; ported from
scripts/tests/38-rename-and-input.sh.

  - `run --synthetic hn0` joins vf0 (tso off, gso 30000/40) and is stopped;
    hn0 is renamed hnR; a new `run --synthetic hn0` adopts the pinned pair
    anyway (same links, no switch) and follows it: vf0 leaves, the pair goes
    idle and hnR reads exactly as hn0 did before the join; `detach
    --synthetic hnR` leaves no pin.
  - Config files 20 MB on one line, raw binary, not a file, or with control
    characters; `--settle-ms -1` (run, attach); a bridge port as the VF; a
    relative HNXDP_BPFFS: exit 2, one short stderr line with no raw bytes,
    nothing pinned, nothing changed.
  - A config file starting with a UTF-8 byte order mark is read like one
    without: its first line (`transparent = off`) takes effect.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
import pytest

from lib.crash import GuestState, assert_settings_again
from lib.daemon import Daemon, state_is, wait_pair
from lib.hnxdp import Hnxdp
from lib.proc import Result
from lib.rig import Rig

RUN = ("--synthetic", "hn0", "--settle-ms", "0")
RAW = re.compile(r"[^\x20-\x7e\t\n]")  # not printable ASCII, not whitespace


def test_a_renamed_synthetic_is_adopted_and_followed(rig: Rig) -> None:
    rig.vf_less_capable()
    hn0_before = rig.dev_settings("hn0")
    d = Daemon.start(rig, *RUN)
    wait_pair(rig, state_is("active", "vf0"), 30, "hn0 active")
    assert d.stop() == 0
    links = rig.tcx_summary("hn0", "vf0")
    rig.ip(rig.guest, "link", "set", "hn0", "down")
    rig.ip(rig.guest, "link", "set", "hn0", "name", "hnR")
    rig.ip(rig.guest, "link", "set", "hnR", "up")
    d = Daemon.start(rig, *RUN)
    p = wait_pair(rig, state_is("active", "vf0"), 30, "hnR active again", synthetic="hnR")
    assert p["switches"] == 1, f"adopted, not joined again: switches {p['switches']}"
    assert rig.tcx_summary("hnR", "vf0") == links.replace("hn0/", "hnR/"), "adopted with the same links"
    rig.ip(rig.guest, "link", "del", "vf0")
    p = wait_pair(rig, state_is("idle"), 30, "the new run lets vf0 go from hnR", synthetic="hnR")
    assert p["switch_history"][-1]["reason"] == "departed", p["switch_history"]
    assert d.stop() == 0
    d.assert_no_error()
    assert_settings_again(rig, hn0_before, "hnR", "after vf0 left", as_dev="hn0")
    r = rig.hnxdp("detach", "--synthetic", "hnR")
    assert r.rc == 0, f"detach hnR: {r}"
    assert not rig.pin_dir.exists(), f"pins left: {rig.pins()}"


# ---------------------------------------------------------------- bad input

def config(rig: Rig, name: str, body: bytes) -> str:
    path = rig.tmp / name
    path.write_bytes(body)
    return str(path)


CASES = ("config-20MB-line", "config-binary", "config-control-characters", "config-is-a-directory",
         "run-settle-ms-negative", "attach-settle-ms-negative", "bridge-port-as-vf", "relative-bpffs")


def bad_command(rig: Rig, case: str) -> tuple[Hnxdp, tuple[str, ...], str]:
    """Set the case up; (hnxdp, its arguments, what its line must name)."""
    if case == "config-20MB-line":
        return rig.hnxdp, ("run", "--config", config(rig, "huge.conf", b"synthetic = " + b"x" * 20_000_000 + b"\n")), ""
    if case == "config-binary":
        return rig.hnxdp, ("run", "--config", config(rig, "binary.conf", os.urandom(4096))), ""
    if case == "config-control-characters":
        return rig.hnxdp, ("run", "--config", config(rig, "control.conf", b"settle-ms = 1\x01\x1b[31m\n")), ""
    if case == "config-is-a-directory":
        return rig.hnxdp, ("run", "--config", str(rig.tmp)), ""
    if case == "run-settle-ms-negative":
        return rig.hnxdp, ("run", "--synthetic", "hn0", "--settle-ms", "-1"), ""
    if case == "attach-settle-ms-negative":
        return rig.hnxdp, ("attach", "--synthetic", "hn0", "--vf", "vf0", "--settle-ms", "-1"), ""
    if case == "bridge-port-as-vf":
        rig.ip(rig.guest, "link", "add", "br9", "type", "bridge")
        rig.ip(rig.guest, "link", "set", "vf0", "master", "br9")
        return rig.hnxdp, ("attach", "--synthetic", "hn0", "--vf", "vf0"), "port of br9"
    assert case == "relative-bpffs", case
    return Hnxdp(rig.binary, rig.guest, {"HNXDP_BPFFS": "relative/dir"}), ("status",), ""


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_in_one_short_line(rig: Rig, case: str) -> None:
    hnxdp, args, names = bad_command(rig, case)
    before = GuestState.read(rig, ("hn0", "vf0"))
    r: Result = hnxdp(*args)
    assert r.rc == 2, f"{case}: {r}"
    assert len(r.err_lines) == 1, f"{case}: one line on stderr: {r.err[:600]!r}"
    assert len(r.err) <= 300, f"{case}: stderr is short ({len(r.err)} characters): {r.err[:600]!r}"
    assert not RAW.search(r.err), f"{case}: raw bytes on stderr: {r.err!r}"
    assert names in r.err, f"{case}: the line names {names!r}: {r.err!r}"
    assert not rig.pin_dir.exists(), f"{case}: pinned: {rig.pins()}"
    before.assert_again(rig, case)


def test_a_config_with_a_byte_order_mark_is_read(rig: Rig) -> None:
    path = Path(config(rig, "bom.conf", b"\xef\xbb\xbftransparent = off\nsynthetic = hn0\n"))
    d = Daemon.start(rig, "--config", str(path))
    wait_pair(rig, state_is("disabled", "vf0"), 30, "hn0 disabled: the first line (transparent = off) was read")
    assert d.stop() == 0
    d.assert_no_error()
    assert rig.pin_dir.exists(), "the run installed the pair and left its pins"
    r = rig.hnxdp("detach", "--all")
    assert r.rc == 0, f"detach --all: {r}"
