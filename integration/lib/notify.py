"""sd_notify datagrams of `hnxdp run` (systemd's notify protocol, hnxdp.service
is Type=notify with WatchdogSec), as the service manager receives them.

lib/daemon.py's Daemon already plays the manager on a path NOTIFY_SOCKET in
the test process. An *abstract* NOTIFY_SOCKET (@name) belongs to a network
namespace, so its listener must live in the guest's: AbstractNotifyListener
runs scripts/tools/notify_listen.py there and reads its log.

    listener = AbstractNotifyListener.start(rig)
    d = Daemon.start(rig, ..., notify=False, env={"NOTIFY_SOCKET": listener.address})
    listener.wait_for("READY")
    listener.messages()          # -> [Notification], in arrival order
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterable

from .daemon import Notification
from .proc import Proc
from .wait import wait_until


def without_watchdog(messages: Iterable[Notification]) -> list[Notification]:
    """The datagrams that are not bare watchdog pings."""
    return [m for m in messages if m.fields != {"WATCHDOG": "1"}]


def first_key(m: Notification) -> str:
    """"READY=1"-like name of a datagram: its first field."""
    key, value = next(iter(m.fields.items()))
    return f"{key}={value}"


def watchdog_times_us(messages: Iterable[Notification]) -> list[int]:
    return [m.at_us for m in messages if m.has("WATCHDOG")]


@dataclass
class AbstractNotifyListener:
    """notify_listen.py bound to an abstract address in the rig's guest namespace."""

    address: str
    proc: Proc
    log_path: Any

    @classmethod
    def start(cls, rig: Any) -> "AbstractNotifyListener":
        address = f"@hnxdp-notify-{rig.id}-{random.randrange(1 << 30)}"
        log = rig.tmp / f"notify-{address[1:]}.log"
        ready = rig.tmp / f"notify-{address[1:]}.ready"
        proc = rig.bg(rig.guest, *rig.tool("notify_listen.py"), "--address", address, "--log", str(log),
                      "--ready-file", str(ready), "--seconds", "300", name=f"notify-{address[1:]}")
        wait_until(lambda: ready.exists() or not proc.running(), 10, f"notify_listen.py bound to {address}")
        assert ready.exists(), f"notify_listen.py could not bind {address}: {proc.errors().strip()}"
        return cls(address, proc, log)

    def messages(self) -> list[Notification]:
        """Every datagram so far: "<CLOCK_MONOTONIC us> <fields joined by |>" per line."""
        out = []
        text = self.log_path.read_text() if self.log_path.exists() else ""
        for line in text.splitlines():
            at, _, rest = line.partition(" ")
            fields = {}
            for item in rest.split("|"):
                key, sep, value = item.partition("=")
                if sep:
                    fields[key] = value
            out.append(Notification(int(at), fields))
        return out

    def count(self, key: str, value: str = "1") -> int:
        return sum(1 for m in self.messages() if m.has(key, value))

    def wait_for(self, key: str, value: str = "1", n: int = 1, timeout: float = 30) -> None:
        wait_until(lambda: self.count(key, value) >= n, timeout, f"{n} x {key}={value} on {self.address}")

    def stop(self) -> None:
        self.proc.stop()
