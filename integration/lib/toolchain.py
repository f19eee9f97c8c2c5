"""Building the small C and BPF programs a test or the benchmark runs, the way
the bash scripts do.

    obj = bpf_object(repo_root() / "bpf/bench/empty.bpf.c", tmp / "empty.bpf.o")
    exe = c_program(repo_root() / "scripts/bench/pace.c", tmp / "pace")
    exe = c_program(src, tmp / "testrun", libs=("bpf",))

clang is $CLANG, else `clang` on PATH, else the clang next to `swift` in the
Swift toolchain (which ships one); the multiarch include directory of
<asm/types.h> comes from `gcc -print-multiarch`. No path of one machine is
written down here.
"""
from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path
from typing import Sequence

from .proc import run


class ToolchainError(AssertionError):
    """A compiler is missing or a build failed (a failure, never a skip)."""


@cache
def clang() -> str:
    """$CLANG, else clang on PATH, else the Swift toolchain's clang."""
    given = os.environ.get("CLANG")
    if given:
        return given
    found = shutil.which("clang")
    if found:
        return found
    swift = shutil.which("swift")
    if swift:
        candidate = Path(os.path.realpath(swift)).parent / "clang"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise ToolchainError("no clang for BPF: none on PATH and no swift on PATH to find the toolchain's (set CLANG)")


@cache
def multiarch_include() -> list[str]:
    """-I of the multiarch include directory (asm/types.h for BPF targets), if gcc names one."""
    if not shutil.which("gcc"):
        return []
    arch = run(["gcc", "-print-multiarch"], timeout=30).out.strip()
    return [f"-I/usr/include/{arch}"] if arch else []


def bpf_object(src: Path, out: Path, defines: Sequence[str] = ()) -> Path:
    """clang -O2 -g -target bpf SRC -o OUT (defines: NAME=VALUE)."""
    argv = [clang(), "-O2", "-g", "-target", "bpf", *multiarch_include(), *(f"-D{d}" for d in defines),
            "-c", str(src), "-o", str(out)]
    r = run(argv, timeout=300)
    if r.rc != 0:
        raise ToolchainError(f"compiling {src.name} failed: {r.err.strip()[-800:]}")
    return out


def c_program(src: Path, out: Path, libs: Sequence[str] = ()) -> Path:
    """gcc -O2 -Wall -o OUT SRC -l<libs> (libbpf programs need libbpf-dev)."""
    r = run(["gcc", "-O2", "-Wall", "-o", str(out), str(src), *(f"-l{lib}" for lib in libs)], timeout=300)
    if r.rc != 0:
        hint = " (is libbpf-dev installed? scripts/install-deps.sh)" if "bpf" in libs else ""
        raise ToolchainError(f"compiling {src.name} failed{hint}: {r.err.strip()[-800:]}")
    return out
