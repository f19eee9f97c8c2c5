"""What the benchmark runs: the hnxdp build it measures, and its helpers.

The benchmark measures a release build as the package ships it
(scripts/package.sh: the Swift runtime linked in, which also starts faster),
built in .build-bench, its own scratch directory, unless $HNXDP names a binary.
The helpers are the C programs of scripts/bench/ and the BPF baselines of
bpf/bench/, compiled into the run's directory (lib/toolchain.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.proc import run
from lib.toolchain import bpf_object, c_program

SCRATCH = ".build-bench"
SWIFT_BUILD = ["swift", "build", "-c", "release", "--static-swift-stdlib", "--scratch-path", SCRATCH]


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class Build:
    """The hnxdp binary a run measured, and what it is."""

    path: Path
    configuration: str     # "release", "debug" or "unknown" (a given binary outside a SwiftPM tree)
    version: str           # `hnxdp --version`, without the name
    commit: str | None     # `git describe --always --dirty` of the tree it was built from (None: given)
    built_here: bool

    def line(self) -> str:
        if self.built_here:
            return f"{self.configuration} build of {self.commit} ({self.path}), hnxdp {self.version}"
        return f"HNXDP={self.path} (given; {self.configuration} build by its path), hnxdp {self.version}"

    def json(self) -> dict[str, Any]:
        return {"configuration": self.configuration, "version": self.version, "commit": self.commit,
                "path": str(self.path), "built_here": self.built_here}


def hnxdp_build(repo: Path, log: Any) -> Build:
    """$HNXDP, else `swift build -c release --static-swift-stdlib` in .build-bench."""
    given = os.environ.get("HNXDP")
    if given:
        path = Path(given).resolve()
        if not os.access(path, os.X_OK):
            raise BuildError(f"missing hnxdp binary: {path}")
        parts = path.parts
        configuration = "release" if "release" in parts else "debug" if "debug" in parts else "unknown"
        return Build(path, configuration, _version(path), None, False)
    log(f"{' '.join(SWIFT_BUILD)}")
    # The build's own output goes to stderr, as everything but the report.
    if subprocess.run(SWIFT_BUILD, cwd=repo, stdout=sys.stderr).returncode != 0:
        raise BuildError("the release build failed")
    path = repo / SCRATCH / "release" / "hnxdp"
    r = run(["git", "-C", str(repo), "describe", "--always", "--dirty"], timeout=30)
    commit = r.out.strip() if r.rc == 0 and r.out.strip() else "this tree"
    return Build(path, "release", _version(path), commit, True)


def _version(path: Path) -> str:
    r = run([str(path), "--version"], timeout=30)
    if r.rc != 0:
        raise BuildError(f"{path} --version exited {r.rc}: {r.err.strip()[:200]}")
    return r.out.strip().removeprefix("hnxdp ").strip()


@dataclass(frozen=True)
class Helpers:
    """Paths of the compiled helpers."""

    dir: Path

    def obj(self, name: str) -> Path:
        """A BPF object of bpf/bench/: empty, redirect_only, redirect_egress_only, xdp_drop."""
        return self.dir / f"{name}.bpf.o"

    def exe(self, name: str) -> Path:
        """A program of scripts/bench/: testrun, tcxattach, xdpdrop, tpacket_v3, pace."""
        return self.dir / name


BPF_OBJECTS = ("empty", "redirect_only", "redirect_egress_only", "xdp_drop")
C_PROGRAMS = {"testrun": ("bpf",), "tcxattach": ("bpf",), "xdpdrop": ("bpf",), "tpacket_v3": (), "pace": (), "walltime": ()}


def build_helpers(repo: Path, into: Path) -> Helpers:
    for name in BPF_OBJECTS:
        bpf_object(repo / "bpf" / "bench" / f"{name}.bpf.c", into / f"{name}.bpf.o")
    for name, libs in C_PROGRAMS.items():
        c_program(repo / "scripts" / "bench" / f"{name}.c", into / name, libs)
    return Helpers(into)
