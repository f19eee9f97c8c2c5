"""`hnxdp capture` (docs/behaviour.md, capturing a pair's frames): the
datapath's capture flag as `dump --json` shows it (`capture`, docs/json.md),
captures run in the background, and the frames of a pcapng file with their
paths (scripts/tools/pcapng_paths.py, which also checks the file's structure).

    job = CaptureJob.start(rig, "--synthetic", "hn0", "--seconds", "20", "-w", str(path))
    ... traffic ...
    job.signal(signal.SIGTERM); assert job.proc.wait(15) == 0
    frames = pcapng_frames(rig, path)       # [Frame("hn0:vf-rx", "in", "vf-rx vf0", "icmp echo-request ..."), ...]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from itertools import count as _counter
from typing import Any

from .proc import Proc, run
from .rig import Rig
from .wait import wait_until

_serial = _counter()


def capture_flag(rig: Rig) -> dict[str, Any] | None:
    """`capture` of the guest's `dump --json`: {"copying": bool, "pid", "synthetic_ifindex"}
    (None: the pinned datapath has no capture maps, or nothing is pinned)."""
    return rig.hnxdp.dump().get("capture")


def copying(rig: Rig) -> bool:
    flag = capture_flag(rig)
    assert flag is not None, "dump --json has no `capture` (no datapath with capture pinned)"
    return bool(flag["copying"])


@dataclass
class CaptureJob:
    """`hnxdp capture` in the guest, in the background (stopped after the test)."""

    proc: Proc
    pid: int  # the hnxdp process (the one the datapath's flag names)

    @classmethod
    def start(cls, rig: Rig, *args: str, shell_tail: str = "") -> "CaptureJob":
        """Start `hnxdp capture ARGS`; returns once the datapath copies frames
        for it (dump --json: capture.copying, with its pid). shell_tail: run
        it in bash with this pipeline after it (e.g. "| tcpdump -r -"), pipefail on."""
        name = f"capture-{next(_serial)}"
        argv = rig.hnxdp.argv("capture", *args)
        if shell_tail:
            quoted = " ".join(f"'{a}'" for a in argv)
            proc = rig.spawn(["bash", "-c", f"set -o pipefail; {quoted} 2>'{rig.tmp / name}.capture.err' {shell_tail}"],
                             name, env=dict(rig.hnxdp.env))
        else:
            proc = rig.spawn(argv, name, env=dict(rig.hnxdp.env))

        def armed() -> dict[str, Any] | None:
            assert proc.running(), f"capture exited {proc.popen.poll()} before copying: {proc.errors().strip()}"
            flag = capture_flag(rig)
            return flag if flag and flag["copying"] else None

        flag = wait_until(armed, 30, "the datapath copying frames for the capture (dump --json capture.copying)")
        assert flag["synthetic_ifindex"] == rig.ifindex(rig.guest, args[args.index("--synthetic") + 1])
        job = cls(proc, int(flag["pid"]))
        if not shell_tail:
            assert job.pid == proc.pid, f"the flag names pid {job.pid}, the capture is {proc.pid}"
        assert os.path.realpath(f"/proc/{job.pid}/exe") == os.path.realpath(rig.binary), \
            f"the pid the flag names ({job.pid}) is not hnxdp"
        return job

    @property
    def stderr(self) -> str:
        """The capture's stderr (in a pipeline, its own file)."""
        own = self.proc.stderr.with_suffix(".capture.err") if self.proc.stderr else None
        if own and own.exists():
            return own.read_text()
        return self.proc.errors()

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)


@dataclass(frozen=True)
class Frame:
    interface: str  # "hn0:vf-rx"
    direction: str  # "in", "out"
    comment: str  # "vf-rx vf0"
    summary: str  # "icmp echo-request 198.18.0.2>198.18.0.1"

    @property
    def path(self) -> str:
        return self.interface.split(":", 1)[1]


def pcapng_frames(rig: Rig, path: Path, partial: bool = False) -> list[Frame]:
    """The frames of a pcapng file in order; the file must be well formed
    (except, with partial, a block still being written at its end)."""
    r = run([*rig.tool("pcapng_paths.py"), str(path), *(("--partial",) if partial else ())], timeout=60)
    assert r.rc == 0 and r.err == "", f"{path.name} is not well-formed pcapng: {r.err.strip()}"
    return [Frame(*line.split("\t")) for line in r.out.splitlines() if line]

