"""Assertions shared by the tests (each says what was expected and what was seen)."""
from __future__ import annotations

import difflib
import warnings

from .proc import Result
from .rig import strict_global


def assert_one_stderr_line(r: Result, what: str) -> None:
    """A refusal is exactly one line on stderr."""
    assert len(r.err_lines) == 1, f"{what}: expected one line on stderr, got {len(r.err_lines)}: {r.err!r}"


def assert_unchanged(before: str, after: str, what: str) -> None:
    """Two snapshots (Rig.snapshot) are the same; the diff otherwise."""
    if before != after:
        diff = "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after",
                                              lineterm="", n=1))
        raise AssertionError(f"{what}: changed:\n{diff[:6000]}")


def assert_global_eq(actual: object, expected: object, what: str) -> None:
    """Machine-wide BPF state: counted under strict_global() (CI=1, where nothing
    else uses BPF); otherwise a mismatch is only a warning (other runs may
    load hnxdp programs at the same time)."""
    if actual == expected:
        return
    message = f"{what}: got {actual!r}, expected {expected!r}"
    if strict_global():
        raise AssertionError(message)
    warnings.warn(f"{message} (not counted: RIG_STRICT_GLOBAL=0, other BPF users may be running)")


def require_tools(*names: str) -> None:
    """Tools a test needs beyond the rig's (TOOLS_NEEDED): a missing one fails
    the test, naming scripts/install-deps.sh (never a skip)."""
    import shutil

    missing = [n for n in names if shutil.which(n) is None]
    assert not missing, f"missing tools: {' '.join(missing)} (run scripts/install-deps.sh as root)"
