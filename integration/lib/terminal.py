"""A real terminal for full-screen programs (`hnxdp monitor`): a detached tmux
session of a fixed size on a socket of the rig, running a clean bash.

    with TmuxSession.open(rig, width=100, height=30) as tm:
        tm.type("stty -g >before; hnxdp-command; echo $? >rc")
        tm.wait_for(lambda screen: "rx pkt/s" in screen, 15, "the view")
        tm.keys("q")

The tmux server daemonizes (it is not a job of proc.spawn): closing the
session kills that server, by its own socket, and its pid if it lingers.
"""
from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .proc import Result, run
from .wait import wait_until


@dataclass
class TmuxSession:
    socket: Path
    name: str
    server_pid: int

    @classmethod
    @contextmanager
    def open(cls, rig: Any, width: int, height: int, name: str = "term") -> Iterator["TmuxSession"]:
        sock = rig.tmp / f"tmux-{name}.sock"
        shell = f"env -i PATH={os.environ.get('PATH', '/usr/bin:/bin')} TERM=screen HOME={rig.tmp} bash --norc --noprofile"
        run(["tmux", "-S", str(sock), "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), shell],
            timeout=30, check=True)
        pid = int(run(["tmux", "-S", str(sock), "display-message", "-p", "#{pid}"], timeout=30, check=True).out.strip())
        tm = cls(sock, name, pid)
        try:
            yield tm
        finally:
            tm.close()

    def tmux(self, *args: str, check: bool = True) -> Result:
        return run(["tmux", "-S", str(self.socket), *args], timeout=30, check=check)

    def type(self, line: str) -> None:
        """A command line, typed and entered."""
        self.tmux("send-keys", "-t", self.name, line, "Enter")

    def keys(self, *keys: str) -> None:
        """Keys as tmux names them ("q", "C-c")."""
        self.tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        """The pane as it shows now."""
        return self.tmux("capture-pane", "-p", "-t", self.name).out

    def wait_for(self, cond: Callable[[str], Any], timeout: float, what: str) -> str:
        """Wait until cond(screen) holds; that screen."""
        seen: list[str] = []

        def check() -> bool:
            s = self.screen()
            seen[:] = [s]
            return bool(cond(s))
        try:
            wait_until(check, timeout, what, interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}; the screen:\n{seen[0] if seen else ''}") from None
        return seen[0]

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", self.name, "-x", str(width), "-y", str(height))

    def close(self) -> None:
        self.tmux("kill-server", check=False)
        try:
            comm = Path(f"/proc/{self.server_pid}/comm").read_text().strip()
            if comm.startswith("tmux"):  # still our server, not a reused pid
                os.kill(self.server_pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass
        self.socket.unlink(missing_ok=True)
