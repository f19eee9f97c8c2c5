"""Joins and leaves that finished, and one TCP connection kept open across them
(the `hnxdp run` soak and continuity tests).

A join finished: `dump --json` shows the pair active with the VF's current
ifindex, and the pair's switch history ends with that join (the history is
written after the pair entry and the write-ahead record, the join's last
datapath step). A leave finished: the pair is idle with no VF and its
write-ahead record is gone (docs/crash-safety.md: it goes only once both
devices read as recorded). Both read state hnxdp documents, never map bytes.

    wait_joined(rig, "vf0", 30)          # -> the pair, as dump shows it
    wait_left(rig, 30)
    s = TcpStream.start(rig, rig.remote, G4, port=5770, size=64, interval=0.01, seconds=300)
    s.wait_rounds(s.rounds() + 10, 10, "replies over the synthetic path")
    summary = s.finish()                 # stop file, then --after rounds; {"rounds": .., "resets": .., ...}
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .daemon import wait_pair
from .proc import Proc
from .wait import wait_until


def state_dir() -> Path:
    return Path(os.environ.get("HNXDP_STATE_DIR") or "/run/hnxdp")


def record_path(rig: Any, synthetic: str = "hn0") -> Path:
    """The pair's write-ahead record (docs/crash-safety.md)."""
    return state_dir() / str(rig.guest_ino) / f"pair-{rig.ifindex(rig.guest, synthetic)}.json"


def wait_joined(rig: Any, vf: str, timeout: float, synthetic: str = "hn0") -> dict[str, Any]:
    """Until the pair is active on vf's current ifindex, with that join the
    last entry of its switch history; the pair."""
    ifindex = rig.ifindex(rig.guest, vf)

    def joined(p: dict[str, Any] | None) -> bool:
        if p is None or p["state"] != "active" or (p["vf"] or {}).get("ifindex") != ifindex:
            return False
        last = (p["switch_history"] or [{}])[-1]
        return last.get("switch") == p["switches"] and last.get("direction") == "to-vf" \
            and last.get("vf_ifindex") == ifindex
    return wait_pair(rig, joined, timeout, f"{synthetic} joined {vf} (ifindex {ifindex})", synthetic=synthetic)


def wait_left(rig: Any, timeout: float, synthetic: str = "hn0") -> dict[str, Any]:
    """Until the pair is idle with no VF and its write-ahead record is gone; the pair."""
    record = record_path(rig, synthetic)
    return wait_pair(rig, lambda p: p and p["state"] == "idle" and p["vf"] is None and not record.exists(),
                     timeout, f"{synthetic} idle, no VF, its write-ahead record gone", synthetic=synthetic)


@dataclass
class TcpStream:
    """scripts/tools/tcp_stream.py: ONE connection echoing numbered requests
    (resets counted, every reply's number checked, the longest stall timed)."""

    proc: Proc
    status_file: Path
    stop_file: Path

    @classmethod
    def start(cls, rig: Any, ns: str, dst: str, port: int, size: int, interval: float, seconds: float,
              after: int = 50, name: str = "tcp-stream") -> "TcpStream":
        status, stop = rig.tmp / f"{name}.status", rig.tmp / f"{name}.stop"
        proc = rig.bg(ns, *rig.tool("tcp_stream.py"), "--dst", dst, "--port", str(port), "--stop-file", str(stop),
                      "--after", str(after), "--size", str(size), "--interval", str(interval),
                      "--seconds", str(seconds), "--status-file", str(status), "--stall-timeout", "10",
                      "--reconnects", "3", "--gap-log-ms", "100", name=name)
        s = cls(proc, status, stop)
        s.wait_rounds(20, 15, "the connection echoes")
        return s

    def status(self) -> dict[str, int]:
        words = self.status_file.read_text().split() if self.status_file.exists() else []
        return {k: int(v) for k, v in zip(words[::2], words[1::2])}

    def rounds(self) -> int:
        return self.status().get("rounds", 0)

    def wait_rounds(self, n: int, timeout: float, what: str) -> None:
        try:
            wait_until(lambda: self.rounds() >= n or not self.proc.running(), timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; client: {self.proc.errors()[-400:]!r}") from None
        assert self.proc.running(), f"{what}: the TCP client ended: {self.proc.output()} {self.proc.errors()[-400:]!r}"

    def finish(self, timeout: float = 60) -> tuple[int, dict[str, int]]:
        """Stop (then --after more rounds); (exit code, the summary line's numbers)."""
        self.stop_file.touch()
        rc = self.proc.wait(timeout)
        words = next((line for line in self.proc.output().splitlines() if line.startswith("rounds")), "").split()
        return rc, {k: int(v) for k, v in zip(words[::2], words[1::2])}
