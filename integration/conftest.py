"""Fixtures of hnxdp's integration tests (see README.md).

- hnxdp_binary (session): $HNXDP or the `swift build` debug binary; checks root,
  the tools, bpffs (mounted when missing) and reaps rigs of dead runs first.
  Anything missing is a failure, never a skip.
- rig (function): a fresh rig (lib/rig.py), deleted when the test ends,
  passed or failed; its pairs attach as tc_mode says (hnxdp's default unless
  a module parametrizes tc_mode). Wider rigs: `with open_rig(hnxdp_binary) as
  rig: yield rig` in a module's own fixture.
- joined (function): the rig with hn0/vf0 attached and the host on the VF;
  detached (exit 0 required) at the end.
- every background job a test starts is stopped when the test ends.
SIGTERM and SIGHUP interrupt the run like Ctrl-C, so finalizers still clean
up; a test call longer than $TEST_TIMEOUT (default 900 s) fails.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Iterator

sys.dont_write_bytecode = True  # no __pycache__ in the work tree (before lib is imported)

import pytest  # noqa: E402

from lib.hnxdp import binary_from_env
from lib.proc import run, spawn_mark, stop_spawned_since
from lib.rig import TOOLS_NEEDED, Rig, open_rig, reap_stale, repo_root


class CallTimeout(AssertionError):
    pass


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    seconds = int(os.environ.get("TEST_TIMEOUT", "900"))

    def expired(_signum: int, _frame: object) -> None:
        raise CallTimeout(f"{item.nodeid}: still running after {seconds}s (TEST_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def hnxdp_binary() -> Path:
    if os.geteuid() != 0:
        pytest.fail("must run as root (scripts/test.sh runs itself through sudo)")
    missing = [t for t in TOOLS_NEEDED if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools: {' '.join(missing)} (run scripts/install-deps.sh as root)")
    if run(["mountpoint", "-q", "/sys/fs/bpf"]).rc != 0 and run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]).rc != 0:
        pytest.fail("bpffs is not mounted at /sys/fs/bpf and mounting it failed")
    binary = binary_from_env(repo_root())
    if not os.access(binary, os.X_OK):
        pytest.fail(f"hnxdp binary not found or not executable at {binary} (run 'swift build' or set HNXDP)")
    for name in reap_stale(binary):
        print(f"rig: removed stale namespace {name}", file=sys.stderr)
    return binary


@pytest.fixture
def tc_mode() -> str | None:
    """The attachment new pairs get (HNXDP_TC_MODE): None = hnxdp's default.
    A module runs its tests under both with
    `pytestmark = pytest.mark.parametrize("tc_mode", TC_MODES, ids=tc_mode_id)`."""
    return None


@pytest.fixture
def rig(hnxdp_binary: Path, tc_mode: str | None) -> Iterator[Rig]:
    with open_rig(hnxdp_binary, tc_mode) as r:
        yield r


@pytest.fixture
def joined(rig: Rig) -> Iterator[Rig]:
    """The rig with hn0/vf0 attached and the host switched to the VF; the test
    ends with `detach --synthetic hn0`, which must exit 0."""
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach hn0/vf0: {r}"
    rig.host_switch("vf")
    yield rig
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"detach hn0: {r}"


@pytest.fixture(autouse=True)
def _stop_jobs_of_the_test() -> Iterator[None]:
    mark = spawn_mark()
    yield
    stop_spawned_since(mark)
