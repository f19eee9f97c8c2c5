"""Crash consistency (B21): what "the devices read as before" means, the
write-ahead records' files, hnxdp killed at chosen system calls, pins of
another hnxdp, and the namespace's lock.

    before = GuestState.read(rig)                 # before the first attach
    ... attach, kill -9, recover ...
    before.assert_again(rig, "after detach")      # equal again (bounded wait), else a diff

GuestState is built from structured reads only (`ip -j`, `tc -j`, `ethtool -k`,
bpftool -j, the tcx query tool, the pin and state directories): no command's
stderr is part of it, so a message printed by another rig's concurrent
namespace churn (iproute2 resolves link-netns names through /run/netns) can
never make two states differ. A read that fails fails the test.

The write-ahead records and the lock are the files docs/crash-safety.md
documents: `<state>/<netns inode>/pair-<ifindex>.json`, `<state>/<ino>.lock`,
`<state>/<ino>.run` (state: $HNXDP_STATE_DIR or /run/hnxdp).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .checks import assert_one_stderr_line, assert_unchanged
from .daemon import Daemon, NotifyListener
from .proc import Proc, Result, run, spawn
from .rig import Rig
from .wait import wait_until

SYSCALLS = ("bpf", "ioctl", "sendto")


def state_dir() -> Path:
    return Path(os.environ.get("HNXDP_STATE_DIR") or "/run/hnxdp")


def state_files(rig: Rig, locks: bool = True) -> list[str]:
    """Every file or directory of the state directory that belongs to the rig's
    guest namespace (records, switch histories, plans and, unless locks is
    False, the lock files <ino>.lock and <ino>.run), relative. Only the
    guest's own entries are walked: other rigs' come and go meanwhile."""
    root, ino = state_dir(), str(rig.guest_ino)
    lock_names = {f"{ino}.lock", f"{ino}.run"}
    try:
        top = [name for name in os.listdir(root) if ino in name]
    except FileNotFoundError:
        return []
    out = []
    for name in top:
        if not locks and name in lock_names:
            continue
        out.append(name)
        try:
            out += [f"{name}/{sub}" for sub in os.listdir(root / name)]
        except (NotADirectoryError, FileNotFoundError):
            pass
    return sorted(out)


def records(rig: Rig) -> list[Path]:
    """The write-ahead records of the guest's pairs (pair-<ifindex>.json)."""
    return sorted((state_dir() / str(rig.guest_ino)).glob("pair-*.json"))


def record_phases(rig: Rig) -> list[str]:
    """The phase of each record (docs/crash-safety.md: joining, joined,
    leaving, abandoning). A join is complete once its record says joined; a
    leave once its record is gone (the state in dump changes first)."""
    return [json.loads(p.read_text())["phase"] for p in records(rig)]


# ---------------------------------------------------------------- what must read as before

_TIMER = re.compile(r".*_timer$")


def _masked(value: Any) -> Any:
    """ip -j -d output without the bridge timers (they tick)."""
    if isinstance(value, dict):
        return {k: ("-" if _TIMER.match(k) else _masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _json(argv: Sequence[str]) -> Any:
    r = run(argv, timeout=30, check=True)
    return json.loads(r.out) if r.out.strip() else []


def _pinned_link(path: Path) -> Any:
    r = run(["bpftool", "-j", "link", "show", "pinned", str(path)], timeout=30)
    if r.rc != 0:
        return "not a link"  # a classic tc attachment's record is a map
    link = json.loads(r.out)
    return {k: link.get(k) for k in ("id", "type", "prog_id")}


@dataclass(frozen=True)
class GuestState:
    """Everything an hnxdp command could change in the guest, as data."""

    data: dict[str, Any]
    locks: bool = True

    @classmethod
    def read(cls, rig: Rig, devs: Sequence[str] = ("hn0", "vf0"), state: bool = True,
             locks: bool = True) -> "GuestState":
        """state: with the state files (locks: and the lock files)."""
        g = rig.guest
        d: dict[str, Any] = {
            "links": _masked(_json(["ip", "-n", g, "-j", "-d", "link", "show"])),
            "features": {dev: rig.features(dev) for dev in devs},
            "qdiscs": _json(["tc", "-n", g, "-j", "qdisc", "show"]),
            "filters": {f"{dev} {direction}": _json(["tc", "-n", g, "-j", "filter", "show", "dev", dev, direction])
                        for dev in devs for direction in ("ingress", "egress")},
            "tcx": rig.tcx(*devs),
            # Sorted: the kernel's list order is no setting of the user's.
            "multicast": {m["ifname"]: sorted(json.dumps(a, sort_keys=True) for a in m.get("maddr", []))
                          for m in _json(["ip", "-n", g, "-j", "maddr", "show"])},
            "ipv6": {dev: {k: rig.g("cat", f"/proc/sys/net/ipv6/conf/{dev}/{k}").out.strip()
                           for k in ("autoconf", "accept_ra", "disable_ipv6")}
                     for dev in devs},
            "pins": rig.pins() if rig.pin_dir.exists() else "absent",
            "pinned_links": {str(f.relative_to(rig.pin_dir)): _pinned_link(f)
                             for f in sorted(rig.pin_dir.rglob("link_*"))} if rig.pin_dir.is_dir() else {},
        }
        if state:
            d["state_files"] = state_files(rig, locks)
        return cls(d, locks)

    def text(self) -> str:
        return json.dumps(self.data, indent=1, sort_keys=True)

    def assert_again(self, rig: Rig, what: str, timeout: float = 15) -> None:
        """The guest reads like this state again (waited for: a device settles
        after a restore), else the difference."""
        devs = tuple(self.data["features"])
        state = "state_files" in self.data
        last: list[GuestState] = []

        def same() -> bool:
            last[:] = [GuestState.read(rig, devs, state, self.locks)]
            return last[0].data == self.data

        try:
            wait_until(same, timeout, f"{what}: the guest reads as before")
        except AssertionError:
            pass
        assert_unchanged(self.text(), (last[0] if last else GuestState.read(rig, devs, state, self.locks)).text(),
                         f"{what}: devices, tc, tcx, pins, records")


def assert_settings_again(rig: Rig, before: dict[str, Any], dev: str, what: str, timeout: float = 15,
                          as_dev: str | None = None) -> None:
    """dev's settings equal before (taken of as_dev, default dev) again, waited for."""
    seen: list[dict[str, Any]] = []

    def same() -> bool:
        seen[:] = [rig.dev_settings(dev)]
        return seen[0] == before

    try:
        wait_until(same, timeout, f"{what}: {dev} reads as {as_dev or dev} did before")
    except AssertionError:
        pass
    now = seen[0] if seen else rig.dev_settings(dev)
    assert_unchanged(json.dumps(before, indent=1, sort_keys=True), json.dumps(now, indent=1, sort_keys=True),
                     f"{what}: {dev}'s settings")


def link_field(rig: Rig, dev: str, key: str) -> Any:
    return rig.link(rig.guest, dev).get(key)


# ---------------------------------------------------------------- refusals

def assert_refused(r: Result, what: str, *words: str, rc: int = 1) -> None:
    """A refusal: exit rc and one line on stderr naming every word."""
    assert r.rc == rc, f"{what}: expected exit {rc}: {r}"
    assert_one_stderr_line(r, what)
    for w in words:
        assert w in r.err, f"{what}: stderr does not name {w!r}: {r.err!r}"


# ---------------------------------------------------------------- kill points (strace)

def require_strace() -> None:
    assert shutil.which("strace"), "strace is missing (scripts/install-deps.sh installs it)"


def syscall_count(trace: Path, syscall: str) -> int:
    """Calls of syscall in an `strace -f -o` file."""
    needle = f" {syscall}("
    return sum(1 for line in trace.read_text().splitlines() if needle in line)


def spread(n: int, m: int) -> list[int]:
    """Up to m distinct points evenly over 1..n, first and last included."""
    if n <= 0:
        return []
    m = min(m, n)
    if m == 1:
        return [1]
    return sorted({1 + i * (n - 1) // (m - 1) for i in range(m)})


def traced(rig: Rig, trace: Path, *args: str, syscalls: Sequence[str] = SYSCALLS) -> Result:
    """hnxdp ARGS in the guest under strace, every call of syscalls written to trace."""
    argv = ["nsenter", f"--net=/run/netns/{rig.guest}", "--", "strace", "-f", "-qq", "-o", str(trace),
            "-e", f"trace={','.join(syscalls)}", str(rig.binary), *args]
    return run(argv, timeout=rig.hnxdp.timeout + 30, env=rig.hnxdp.env)


def killed_at(rig: Rig, syscall: str, k: int, *args: str) -> bool:
    """hnxdp ARGS in the guest, SIGKILLed (by strace) at its k-th call of
    syscall. True when it was killed, False when it ran to its end first."""
    argv = ["nsenter", f"--net=/run/netns/{rig.guest}", "--", "strace", "-f", "-qq", "-o", "/dev/null",
            "-e", f"inject={syscall}:signal=KILL:when={k}", str(rig.binary), *args]
    r = run(argv, timeout=rig.hnxdp.timeout + 30, env=rig.hnxdp.env)
    return r.rc in (-9, 128 + 9)  # strace dies of the signal that killed hnxdp


def tracer_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    return 0


def strace_attach(rig: Rig, daemon: Daemon, name: str, trace: Path | None = None,
                  kill_at: tuple[str, int] | None = None) -> Proc:
    """strace attached to a running `hnxdp run`: every call of SYSCALLS written
    to trace, or SIGKILL at kill_at = (syscall, k). Returns once it traces, or
    (kill_at) once it killed run already: run's idle work (the multicast list
    compared once a second while joined) makes calls too. Stop it with
    stop_strace, which lets it write its trace out."""
    if kill_at is not None:
        how = ["-o", "/dev/null", "-e", f"inject={kill_at[0]}:signal=KILL:when={kill_at[1]}"]
    else:
        assert trace is not None
        how = ["-o", str(trace), "-e", f"trace={','.join(SYSCALLS)}"]
    proc = rig.spawn(["strace", "-f", "-qq", *how, "-p", str(daemon.pid)], name=name)
    wait_until(lambda: not proc.running() or tracer_of(daemon.pid) == proc.pid, 30,
               f"strace (pid {proc.pid}) tracing hnxdp run (pid {daemon.pid})")
    assert proc.running() or (kill_at is not None and not daemon.alive()), \
        f"strace -p {daemon.pid} ended (exit {proc.popen.poll()}): {proc.errors().strip()}"
    return proc


def stop_strace(proc: Proc) -> None:
    """SIGTERM: strace detaches and writes the rest of its trace (time given:
    a SIGKILL would lose what it buffered)."""
    proc.stop(grace=60)


# ---------------------------------------------------------------- the namespace's lock

def flock_holders(path: Path) -> set[int]:
    """Pids holding a flock on path (/proc/locks: the kernel's view)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return set()
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF" ("->" marks a waiter)
        if len(f) >= 6 and f[1] == "FLOCK" and f[2] != "->" and f[5] == dev:
            holders.add(int(f[4]))
    return holders


def lock_file(rig: Rig) -> Path:
    return state_dir() / f"{rig.guest_ino}.lock"


# ---------------------------------------------------------------- pins of another hnxdp

# struct hnxdp_meta (bpf/hnxdp_shared.h, "never changes"): u32 pin_layout at
# offset 0, u32 flags, char version[24] at offset 8, NUL-padded.
META_VERSION_OFFSET, META_VERSION_LEN = 8, 24


def meta_path(rig: Rig) -> Path:
    return rig.pin_dir / "hnxdp_meta"


def _meta_rewrite(rig: Rig, change: Callable[[list[int]], None]) -> None:
    """Rewrite the pinned hnxdp_meta as another hnxdp would have written it."""
    path = str(meta_path(rig))
    r = run(["bpftool", "-j", "map", "lookup", "pinned", path, "key", "0", "0", "0", "0"], timeout=30, check=True)
    value = [int(b, 16) for b in json.loads(r.out)["value"]]
    change(value)
    run(["bpftool", "map", "update", "pinned", path, "key", "0", "0", "0", "0",
         "value", *[str(b) for b in value]], timeout=30, check=True)


def meta_set_layout(rig: Rig, layout: int) -> None:
    """Pins as an hnxdp of pin layout `layout` made them."""
    def change(v: list[int]) -> None:
        v[0:4] = list(layout.to_bytes(4, sys.byteorder))
    _meta_rewrite(rig, change)


def meta_set_version(rig: Rig, version: str) -> None:
    """Pins as hnxdp `version` (of this pin layout) made them."""
    def change(v: list[int]) -> None:
        name = version.encode()[:META_VERSION_LEN - 1]
        v[META_VERSION_OFFSET:META_VERSION_OFFSET + META_VERSION_LEN] = \
            list(name) + [0] * (META_VERSION_LEN - len(name))
    _meta_rewrite(rig, change)


def wait_dead(proc_alive: Callable[[], bool], timeout: float, what: str) -> bool:
    """True once proc_alive() is false within timeout; False (no failure) otherwise."""
    try:
        wait_until(lambda: not proc_alive(), timeout, what)
        return True
    except AssertionError:
        return False


# ---------------------------------------------------------------- control planes started together

def spawn_run(rig: Rig, name: str, *args: str, argv_prefix: Sequence[str] = ()) -> Daemon:
    """`hnxdp run ARGS` in the guest with a NOTIFY_SOCKET of its own, not waited
    for (Daemon.start waits for READY=1). argv_prefix runs first and execs the
    rest (e.g. a start gate). Its stderr is Daemon.log()."""
    listener = NotifyListener(rig.tmp / f"notify-{name}.sock")
    env = {**rig.hnxdp.env, "NOTIFY_SOCKET": str(listener.path)}
    proc = spawn([*argv_prefix, *rig.hnxdp.argv("run", *args)], stdout=rig.tmp / f"{name}.out",
                 stderr=rig.tmp / f"{name}.err", env=env)
    return Daemon(proc, rig.tmp / f"{name}.err", listener, tuple(args))


def start_runs_at_once(rig: Rig, names: Sequence[str], *args: str) -> list[Daemon]:
    """One `hnxdp run ARGS` per name, released at the same instant: each says
    it is ready, spins (bounded) until a go-file appears, then becomes hnxdp."""
    go = rig.tmp / f"go-{'-'.join(names)}"
    gate = ["sh", "-c", 'touch "$0.$1"; i=0; while [ ! -e "$0" ] && [ $i -lt 2000000 ]; do i=$((i+1)); done; '
            'shift; exec "$@"']
    runs = [spawn_run(rig, name, *args, argv_prefix=[*gate, str(go), name]) for name in names]
    wait_until(lambda: all(Path(f"{go}.{n}").exists() for n in names), 10, "every racer at the start line")
    go.touch()
    return runs


# ---------------------------------------------------------------- a VF that arrives configured

def vf_arrives_less_capable(rig: Rig) -> None:
    """vf0 made in the host namespace with hn0's MAC, tso off and gso
    30000/40, then moved into the guest: a VF that arrives as it is."""
    assert not rig.exists(rig.guest, "vf0"), "vf0 already exists"
    h = rig.host
    rig.ip(h, "link", "add", "vf0", "type", "veth", "peer", "name", "vf0h")
    rig.ip(h, "link", "set", "vf0", "address", rig.mac)
    rig.h("ethtool", "-K", "vf0", "tso", "off")
    rig.ip(h, "link", "set", "vf0", "gso_max_size", "30000", "gso_max_segs", "40")
    rig.ip(h, "link", "set", "vf0h", "up")
    rig._host_forward("vf0h")
    rig.ip(h, "link", "set", "vf0", "netns", rig.guest)


# ---------------------------------------------------------------- what the pins hold

PROGRAMS = ("hnxdp_vf_ingress", "hnxdp_syn_ingress", "hnxdp_syn_egress")


def pinned_program_ids(rig: Rig) -> set[int]:
    ids = set()
    for name in PROGRAMS:
        pin = rig.pin_dir / name
        if pin.exists():
            r = run(["bpftool", "-j", "prog", "show", "pinned", str(pin)], timeout=30, check=True)
            ids.add(int(json.loads(r.out)["id"]))
    return ids


def links_of_pinned_programs(rig: Rig) -> list[int]:
    """Ids of every BPF link of the guest's pinned programs (machine-wide
    listing, but only this namespace's program ids)."""
    ids = pinned_program_ids(rig)
    # Other runs make and remove links meanwhile: a listing that failed is read again.
    links = wait_until(lambda: _json(["bpftool", "-j", "link", "show"]) or [{}], 30, "bpftool link show")
    return sorted(int(link["id"]) for link in links if link.get("prog_id") in ids)


def pinned_link_ids(rig: Rig) -> dict[str, Any]:
    """pin path (relative) -> pinned link's id, of every link_* pin."""
    return {k: (v["id"] if isinstance(v, dict) else v)
            for k, v in ({str(f.relative_to(rig.pin_dir)): _pinned_link(f)
                          for f in sorted(rig.pin_dir.rglob("link_*"))}).items()}
