"""AF_XDP applications on the rig's pair (B17): `hnxdp xsk count|reflect` in
the background, their `--events` lines and `--json` report, the host's
delivery counters, a surprise departure whose host-side drops are counted, and
the remote's UDP echo client that `xsk reflect` answers. (The XDP programs and
pins of the guest's devices: lib/user_xdp.py, xdp_prog and xdp_pins.)

    app = XskApp.start(rig, "count", udp_port=6000)  # --json --events; returns once bound to hn0
    app.wait_bound_vf(rig.ifindex(rig.guest, "vf0"))  # the sockets follow the pair's VF
    ... traffic; rig.vf_remove_surprise(); app.wait_left(old); rejoin_vf(rig, app) ...
    wait_host_delivered(rig, "vf0h", base + sent)     # the guest took every frame sent
    report = app.stop()                               # SIGTERM: exit 0 and the --json report
    per_binding(report, "vf0", ifindex)               # frames counted through one binding
    echo = udp_echo(rig, G4, 6100, count=300)         # Echo(sent, back) from the remote

The application is hnxdp itself (nsenter execs it, so the job's pid is
hnxdp's): SIGTERM ends it cleanly (sockets closed, XDP removed when unused),
SIGKILL is the crash of B17/B19. Every application is a proc.spawn job, so it
is stopped by pid when the test ends whatever happens.

`--events` prints one stderr line per bind, departure and rebind
(`hnxdp xsk --help`): "hnxdp: xsk: queue Q: bound to synthetic NAME (ifindex
N), MODE mode", "... bound to VF NAME (ifindex N), MODE mode; ...", "...: VF
NAME (ifindex N) left (WHY); K TX frame(s) were in flight; ...". `xsk count
--json` prints {"mode", "total", "per_device", "per_binding" ("NAME@IFINDEX":
frames), "rebinds" (binds to a VF), "departures"}; `xsk reflect --json`
{"mode", "received", "sent", "tx_dropped", "tx_lost_at_switch", "rebinds",
"departures"}.
"""
from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import dataclass
from itertools import count as _counter
from typing import Any, Callable

from .proc import Proc
from .rig import Rig
from .wait import WaitTimeout, wait_until

EVENT_PREFIX = "hnxdp: xsk: "

_BOUND = re.compile(r"^queue (\d+): bound to (VF|synthetic) (\S+) \(ifindex (\d+)\), (\w+) mode")
_LEFT = re.compile(r"^queue (\d+): VF (\S+) \(ifindex (\d+)\) left \((.*)\); (\d+) TX frame")

_serial = _counter()


@dataclass(frozen=True)
class XskEvent:
    """One `--events` line: kind "bound-synthetic", "bound-vf" or "left"."""

    kind: str
    queue: int
    dev: str
    ifindex: int
    mode: str = ""  # bind mode ("copy", "zerocopy") of a bind
    reason: str = ""  # why a VF left

    @classmethod
    def parse(cls, line: str) -> "XskEvent | None":
        if not line.startswith(EVENT_PREFIX):
            return None
        text = line[len(EVENT_PREFIX):]
        m = _BOUND.match(text)
        if m:
            kind = "bound-vf" if m.group(2) == "VF" else "bound-synthetic"
            return cls(kind, int(m.group(1)), m.group(3), int(m.group(4)), mode=m.group(5))
        m = _LEFT.match(text)
        if m:
            return cls("left", int(m.group(1)), m.group(2), int(m.group(3)), reason=m.group(4))
        return None


@dataclass
class XskApp:
    """`hnxdp xsk count|reflect --synthetic SYN --json --events` in the guest."""

    rig: Rig
    proc: Proc
    command: str

    @classmethod
    def start(cls, rig: Rig, command: str = "count", synthetic: str = "hn0", udp_port: int | None = None,
              seconds: float = 120) -> "XskApp":
        """Start the application; --seconds bounds it (tests usually stop it
        earlier with stop()). Returns once it runs: its synthetic's socket is
        bound before it prints anything, so the first event is awaited."""
        assert command in ("count", "reflect"), command
        args = ["xsk", command, "--synthetic", synthetic, "--seconds", str(seconds), "--json", "--events"]
        if udp_port is not None:
            args += ["--udp-port", str(udp_port)]
        proc = rig.spawn(rig.hnxdp.argv(*args), f"xsk-{command}-{next(_serial)}", env=rig.hnxdp.env)
        app = cls(rig, proc, command)
        app.wait_event(lambda e: e.kind == "bound-synthetic" and e.dev == synthetic,
                       f"xsk {command} bound to the synthetic {synthetic}")
        return app

    # ------------------------------------------------------------ events

    def events(self) -> list[XskEvent]:
        return [e for e in map(XskEvent.parse, self.proc.errors().splitlines()) if e]

    def wait_event(self, match: Callable[[XskEvent], bool], what: str, timeout: float = 30) -> XskEvent:
        """The first event match(event) accepts; fails at once when the
        application exited without it."""
        exited = object()

        def found() -> XskEvent | object | None:
            running = self.proc.running()  # read before the events: a last line is not missed
            for e in self.events():
                if match(e):
                    return e
            return None if running else exited

        event = wait_until(found, timeout, f"{what} (xsk --events)")
        assert event is not exited, (f"xsk {self.command} exited ({self.proc.popen.poll()}) before: {what}; "
                                     f"stderr: {self.proc.errors().strip()[-600:]!r}")
        return event  # type: ignore[return-value]

    def wait_bound_vf(self, ifindex: int, dev: str = "vf0", timeout: float = 30) -> XskEvent:
        """The sockets bound to this VF (by ifindex: a returned VF has a new one)."""
        return self.wait_event(lambda e: e.kind == "bound-vf" and e.ifindex == ifindex and e.dev == dev,
                               f"xsk {self.command} bound to VF {dev} (ifindex {ifindex})", timeout)

    def wait_left(self, ifindex: int, timeout: float = 30) -> XskEvent:
        """The sockets noticed the departure of the VF with this ifindex."""
        return self.wait_event(lambda e: e.kind == "left" and e.ifindex == ifindex,
                               f"xsk {self.command}: VF ifindex {ifindex} left", timeout)

    # ------------------------------------------------------------ ending

    def report(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for the application to end by itself (--seconds); it must exit
        0 and print its --json report."""
        rc = self.proc.wait(timeout)
        return self._report(rc)

    def stop(self, timeout: float = 30) -> dict[str, Any]:
        """SIGTERM (to hnxdp's pid only), then as report()."""
        if self.proc.running():
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.report(timeout)

    def kill(self, timeout: float = 30) -> int:
        """SIGKILL: the application dies with no clean-up of its own. Returns
        the exit status (-SIGKILL)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(timeout)

    def _report(self, rc: int) -> dict[str, Any]:
        out, err = self.proc.output(), self.proc.errors()
        assert rc == 0, f"xsk {self.command} exited {rc}; stderr: {err.strip()[-800:]!r}"
        lines = [line for line in out.splitlines() if line.strip()]
        assert len(lines) == 1, f"xsk {self.command} --json: expected one line on stdout, got {out!r}"
        return json.loads(lines[0])


def rejoin_vf(rig: Rig, app: XskApp) -> int:
    """The VF returns while the application runs: vf0 made again (new
    ifindex), attached again with `hnxdp attach`, the sockets bound to it,
    then the host switched to it. Returns its ifindex."""
    rig.vf_add()
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"attach of the returned vf0: {r}"
    vf = rig.ifindex(rig.guest, "vf0")
    app.wait_bound_vf(vf)
    rig.host_switch("vf")
    return vf


def per_binding(report: dict[str, Any], dev: str, ifindex: int) -> int:
    """Frames `xsk count` received through one binding (device NAME at IFINDEX)."""
    return int(report["per_binding"].get(f"{dev}@{ifindex}", 0))


# ---------------------------------------------------------------- frames the host handed to the guest


def host_tx(rig: Rig, port: str) -> int:
    """Frames the host's port (hn0h, vf0h) sent to the guest. With hnxdp's XDP
    program on the guest's veth, the kernel counts a frame here once the
    guest device's receive path (XDP included) took it."""
    return rig.link_packets(rig.host, port, "tx")


def wait_host_delivered(rig: Rig, port: str, target: int, tolerated: int | None = None,
                        timeout: float = 20) -> int:
    """Wait until host_tx(port) reaches target (frames the remote sent, all
    taken by the guest); returns host_tx. When it does not within timeout,
    a count of at least `tolerated` is accepted (the test's in-flight
    tolerance: its own assertions then judge the shortfall); below that the
    wait fails."""

    def delivered() -> int | None:
        n = host_tx(rig, port)
        return n if n >= target else None

    try:
        return wait_until(delivered, timeout, f"the host's {port} handed {target} frames to the guest")
    except WaitTimeout:
        n = host_tx(rig, port)
        if tolerated is not None and n >= tolerated:
            return n
        raise


def _redirect_drops(rig: Rig, pref: int) -> int:
    """Frames the host's remote->guest redirect at this tc pref could not
    deliver (its target gone or down): the mirred action's overlimits."""
    filters = json.loads(rig.tc(rig.host, "-s", "-j", "filter", "show", "dev", "remh", "ingress", "pref",
                                str(pref)).out)
    actions = [a for f in filters for a in f.get("options", {}).get("actions", []) if a.get("kind") == "mirred"]
    assert len(actions) == 1, f"expected one redirect at pref {pref} of remh: {filters}"
    return int(actions[0]["stats"]["overlimits"])


def vf_remove_surprise_counted(rig: Rig) -> int:
    """The surprise departure of Rig.vf_remove_surprise (vf0 deleted while the
    host still sends to it, then the host switches to the synthetic), with
    the frames the host dropped in between counted, so that a test's loss
    budget does not depend on how fast this machine runs the host's commands.
    The host switches with a redirect to hn0h in front of the old one (pref
    5), the old one's drops are read, then the rig's own switch is restored
    (Rig.host_switch("syn"), the front redirect removed: both point at hn0h,
    so nothing is lost there). Returns the frames dropped."""
    rig.ip(rig.guest, "link", "del", "vf0")  # takes vf0h with it
    rig.tc(rig.host, "filter", "add", "dev", "remh", "ingress", "pref", "5", "protocol", "all",
           "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "hn0h")
    assert not rig.exists(rig.host, "vf0h"), "vf0h still there after deleting vf0"
    dropped = _redirect_drops(rig, 10)
    rig.host_switch("syn")
    rig.tc(rig.host, "filter", "del", "dev", "remh", "ingress", "pref", "5")
    return dropped


# ---------------------------------------------------------------- the remote's side of `xsk reflect`


@dataclass(frozen=True)
class Echo:
    """tools/udp_echo_client.py: datagrams sent, and how many came back (once each)."""

    sent: int
    back: int

    @classmethod
    def parse(cls, out: str) -> "Echo":
        fields = out.split()
        assert len(fields) == 2, f"udp_echo_client: expected 'SENT RECEIVED', got {out!r}"
        return cls(int(fields[0]), int(fields[1]))


def _echo_argv(rig: Rig, dst: str, port: int, count: int, rate: float, seconds: float) -> list[str]:
    return [*rig.tool("udp_echo_client.py"), "--dst", dst, "--port", str(port), "--count", str(count),
            "--rate", str(rate), "--seconds", str(seconds)]


def udp_echo(rig: Rig, dst: str, port: int, count: int, rate: float = 500, seconds: float = 20) -> Echo:
    """From the remote: count numbered datagrams to dst, the replies counted."""
    r = rig.r(*_echo_argv(rig, dst, port, count, rate, seconds), timeout=seconds + 30, check=False)
    assert r.rc == 0, f"udp_echo_client: {r}"
    return Echo.parse(r.out)


def udp_echo_bg(rig: Rig, dst: str, port: int, count: int, rate: float = 500, seconds: float = 20) -> Proc:
    """udp_echo in the background; Echo.parse(proc.output()) once it ended."""
    return rig.bg(rig.remote, *_echo_argv(rig, dst, port, count, rate, seconds), name=f"udp-echo-{next(_serial)}")
