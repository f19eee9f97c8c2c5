"""`hnxdp run` (the control plane) as a background daemon of a test.

    d = Daemon.start(rig, "--synthetic", "hn0", "--settle-ms", "0")   # returns once READY=1
    wait_pair(rig, lambda p: p and p["state"] == "active", 30, "hn0 active")
    d.hup()                                   # SIGHUP; returns once reloaded (READY=1 again)
    assert d.stop() == 0                      # SIGTERM; its exit code
    d.assert_no_error()                       # no log line at error or critical level

Readiness is the service manager's protocol, not log text: the daemon gets a
NOTIFY_SOCKET (a datagram socket of this process, in the rig's directory) and
the test waits for READY=1, exactly as systemd does with hnxdp.service
(Type=notify). Every datagram is kept in `messages` with the CLOCK_MONOTONIC
time it arrived. The daemon is a `spawn`ed job (its own process group), so it
is stopped when the test ends, whatever happens; `--max-seconds`-like bounds
come from the conftest's per-test timeout.

hnxdp is entered with `nsenter --net` (it execs hnxdp: the job's pid is
hnxdp's). Its stdout and stderr go to <rig.tmp>/run-N.log: the journal's
view. The log is read only for what a service's log is for: no line at error
or critical level where none is expected.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .proc import Proc, spawn
from .wait import wait_until

# One log line: "<timestamp> <level> <message>" (hnxdp run's log format).
_LEVEL = re.compile(r"^\S+ (trace|debug|info|notice|warning|error|critical) ")


@dataclass
class Notification:
    """One sd_notify datagram: when it arrived (CLOCK_MONOTONIC, us) and its fields."""

    at_us: int
    fields: dict[str, str]

    def has(self, key: str, value: str = "1") -> bool:
        return self.fields.get(key) == value


class NotifyListener:
    """The service manager's NOTIFY_SOCKET: a path datagram socket read by a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[Notification] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path.unlink(missing_ok=True)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"notify {path.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self._keep(data)
        # Stopped: what the daemon sent before it exited is still queued (STOPPING=1).
        self._sock.setblocking(False)
        while True:
            try:
                self._keep(self._sock.recv(65536))
            except OSError:
                return

    def _keep(self, data: bytes) -> None:
        at = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = {}
        for line in data.decode(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value
        with self._lock:
            self.messages.append(Notification(at, fields))

    def snapshot(self) -> list[Notification]:
        with self._lock:
            return list(self.messages)

    def count(self, key: str, value: str = "1") -> int:
        return sum(1 for m in self.snapshot() if m.has(key, value))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        self.path.unlink(missing_ok=True)


_SERIAL = [0]


@dataclass
class Daemon:
    proc: Proc
    log_path: Path
    notify: NotifyListener | None
    args: tuple[str, ...]
    stopped_rc: int | None = field(default=None)

    @classmethod
    def start(cls, rig: Any, *args: str, env: Mapping[str, str] | None = None, ready_timeout: float = 60,
              notify: bool = True, watchdog_usec: int | None = None, journal: bool = False) -> "Daemon":
        """Start `hnxdp run ARGS` in the rig's guest and wait for READY=1.
        notify=False: no NOTIFY_SOCKET (the test brings its own through env, or
        checks a run that must fail at start); then only "the process runs" is waited for.
        journal=True: JOURNAL_STREAM names the log file's device:inode, as systemd
        sets it for a service whose stderr is the journal."""
        _SERIAL[0] += 1
        log = rig.tmp / f"run-{_SERIAL[0]}.log"
        environment = dict(rig.hnxdp.env)
        environment.update(env or {})
        if journal:
            log.touch()  # spawn opens it again without a new inode
            st = log.stat()
            environment["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        listener = None
        if notify:
            listener = NotifyListener(rig.tmp / f"notify-{_SERIAL[0]}.sock")
            environment["NOTIFY_SOCKET"] = str(listener.path)
            if watchdog_usec:
                environment["WATCHDOG_USEC"] = str(watchdog_usec)
        argv = rig.hnxdp.argv("run", *args)
        proc = spawn(argv, stdout=log, stderr=log, env=environment)
        d = cls(proc, log, listener, tuple(args))
        if listener is not None:
            wait_until(lambda: d._ready_or_dead(), ready_timeout, f"READY=1 from `hnxdp run {' '.join(args)}`")
            if not d.alive():
                d.close()
                raise AssertionError(f"`hnxdp run {' '.join(args)}` exited {proc.popen.returncode} at start: "
                                     f"{d.log()[-600:]!r}")
        return d

    def _ready_or_dead(self) -> bool:
        return not self.alive() or (self.notify is not None and self.notify.count("READY") > 0)

    # ------------------------------------------------------------ the process

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.running()

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to hnxdp only; its exit code."""
        self.signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.close()
        self.stopped_rc = rc
        return rc

    def kill9(self, timeout: float = 30) -> None:
        """SIGKILL to hnxdp; returns once it is gone (nothing of its clean-up ran)."""
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout)
        self.close()

    def wait_exit(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self.close()
        return rc

    def hup(self, timeout: float = 60) -> None:
        """SIGHUP (re-read the configuration); returns once READY=1 came again."""
        assert self.notify is not None, "hup() needs the daemon's NOTIFY_SOCKET"
        readies = self.notify.count("READY")
        self.signal(signal.SIGHUP)
        wait_until(lambda: self.notify.count("READY") > readies or not self.alive(), timeout,
                   "READY=1 after SIGHUP")
        assert self.alive(), f"hnxdp run exited after SIGHUP: {self.log()[-600:]!r}"

    def close(self) -> None:
        if self.notify is not None:
            self.notify.close()

    # ------------------------------------------------------------ what it says

    def status(self) -> str | None:
        """The last STATUS= it sent its service manager."""
        for m in reversed(self.notify.snapshot() if self.notify else []):
            if "STATUS" in m.fields:
                return m.fields["STATUS"]
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines_at(self, *levels: str) -> list[str]:
        out = []
        for line in self.log().splitlines():
            m = _LEVEL.match(line)
            if m and m.group(1) in levels:
                out.append(line)
        return out

    def assert_no_error(self) -> None:
        bad = self.lines_at("error", "critical")
        assert not bad, f"hnxdp run logged errors: {bad[:5]}"

    def bpf_fds(self) -> dict[str, int]:
        """BPF objects the process holds open: progs, maps, links."""
        counts = {"progs": 0, "maps": 0, "links": 0}
        kinds = {"anon_inode:bpf-prog": "progs", "anon_inode:bpf-map": "maps",
                 "anon_inode:bpf_link": "links", "anon_inode:bpf-link": "links"}
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                kind = kinds.get(os.readlink(fd))
            except OSError:
                continue
            if kind:
                counts[kind] += 1
        return counts


# ---------------------------------------------------------------- waiting on pairs

def wait_pair(rig: Any, condition: Callable[[dict[str, Any] | None], Any], timeout: float, what: str,
              synthetic: str = "hn0", interval: float = 0.05,
              seen: list[str] | None = None) -> dict[str, Any] | None:
    """Poll `dump --json` until condition(pair of synthetic, None when absent) is
    true; returns that pair. On timeout the failure names the states seen, in order.
    seen: a list the distinct states seen are appended to, in order ("absent": no pair)."""
    if seen is None:
        seen = []

    def check() -> tuple[bool, dict[str, Any] | None]:
        p = rig.hnxdp.pair(synthetic)
        state = p["state"] if p else "absent"
        if not seen or seen[-1] != state:
            seen.append(state)
        return bool(condition(p)), p

    result: list[Any] = []

    def cond() -> bool:
        ok, p = check()
        if ok:
            result.append(p)
        return ok

    try:
        wait_until(cond, timeout, what, interval=interval)
    except AssertionError as e:
        raise AssertionError(f"{e} (states of {synthetic} seen: {' -> '.join(seen) or 'none'})") from None
    return result[0]


def state_is(state: str, vf: str | None = None) -> Callable[[dict[str, Any] | None], bool]:
    """A wait_pair condition: the pair exists in state (and its VF is named vf)."""
    def cond(p: dict[str, Any] | None) -> bool:
        if p is None or p.get("state") != state:
            return False
        return vf is None or (p.get("vf") or {}).get("name") == vf
    return cond
