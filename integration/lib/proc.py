"""Processes of a test: commands run to completion, and background jobs that
are always stopped (by pid, with their own process group) when the test ends.

    r = run(["ip", "-j", "link"], timeout=10)       # -> Result(rc, out, err)
    p = spawn(["tcpdump", ...], stdout=path)        # -> Proc, stopped at teardown
    p.wait(15)                                       # -> exit code

Every Proc spawned is registered; `stop_spawned_since(mark)` (called by the
conftest after each test) and `Proc.stop()` end a job and everything it started:
each job is the leader of a new session, so its process group is exactly its
own tree, and nothing else on the machine is signalled.
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Result:
    """What a finished command did."""

    argv: tuple[str, ...]
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"`{' '.join(self.argv)}` exited {self.rc}; stderr: {self.err.strip()[:400]!r}"


class CommandTimeout(AssertionError):
    """A command outlived its time bound (it was killed)."""


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def run(argv: Sequence[str], timeout: float = 60, env: Mapping[str, str] | None = None,
        check: bool = False, cwd: Path | None = None, stdin: str | None = None) -> Result:
    """Run argv to completion (bounded by timeout; the whole process group is
    killed when it is exceeded), in directory cwd when given, with `stdin` as
    its standard input (else none). check=True raises AssertionError unless rc 0."""
    argv = tuple(str(a) for a in argv)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                         env=_env(env), start_new_session=True, cwd=cwd)
    try:
        out, err = p.communicate(input=stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(p.pid, signal.SIGKILL)
        p.communicate()
        raise CommandTimeout(f"`{' '.join(argv)}` still running after {timeout}s: killed") from None
    except BaseException:
        _kill_group(p.pid, signal.SIGKILL)
        p.wait()
        raise
    r = Result(argv, p.returncode, out, err)
    if check and r.rc != 0:
        raise AssertionError(str(r))
    return r


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Proc:
    """A background job (leader of its own process group)."""

    argv: tuple[str, ...]
    popen: subprocess.Popen
    stdout: Path | None = None
    stderr: Path | None = None
    serial: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        """Exit code; a job still running after timeout is stopped and
        CommandTimeout raised."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise CommandTimeout(f"`{' '.join(self.argv)}` still running after {timeout}s: stopped") from None

    def result(self, timeout: float) -> Result:
        """Wait (as wait) and return what the job did, as run() would."""
        rc = self.wait(timeout)
        return Result(self.argv, rc, self.output(), self.errors())

    def stop(self, grace: float = 3, sig: int = signal.SIGTERM) -> None:
        """sig (SIGTERM unless told) to the job's process group, SIGKILL after grace seconds."""
        if self.popen.poll() is None:
            _kill_group(self.pid, sig)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _kill_group(self.pid, signal.SIGKILL)
                self.popen.wait()
        # Children that outlived the leader in its group.
        _kill_group(self.pid, signal.SIGKILL)

    def output(self) -> str:
        return self.stdout.read_text() if self.stdout and self.stdout.exists() else ""

    def errors(self) -> str:
        return self.stderr.read_text() if self.stderr and self.stderr.exists() else ""


_SPAWNED: list[Proc] = []


def spawn(argv: Sequence[str], stdout: Path | None = None, stderr: Path | None = None,
          env: Mapping[str, str] | None = None) -> Proc:
    """Start argv in the background; stdout/stderr to files (or discarded)."""
    argv = tuple(str(a) for a in argv)
    out = open(stdout, "w") if stdout else subprocess.DEVNULL
    err = open(stderr, "w") if stderr else subprocess.DEVNULL
    try:
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=_env(env), start_new_session=True)
    finally:
        for f in (out, err):
            if f is not subprocess.DEVNULL:
                f.close()
    proc = Proc(argv, popen, stdout, stderr, serial=len(_SPAWNED))
    _SPAWNED.append(proc)
    return proc


def spawn_mark() -> int:
    """A mark for stop_spawned_since: the number of jobs spawned so far."""
    return len(_SPAWNED)


def stop_spawned_since(mark: int) -> None:
    """Stop every job spawned after mark (newest first)."""
    for proc in reversed(_SPAWNED[mark:]):
        proc.stop()
    del _SPAWNED[mark:]


def alive(pid: int) -> bool:
    """A process with this pid exists (perhaps not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_netns_processes(ns: str) -> None:
    """SIGKILL to every process in network namespace ns (before deleting it: only
    ever a namespace the test harness made)."""
    for pid in run(["ip", "netns", "pids", ns], timeout=30).out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
