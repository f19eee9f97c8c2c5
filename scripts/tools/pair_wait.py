#!/usr/bin/env python3
"""pair_wait.py - wait on a pair's pinned map entry and write-ahead record, many times, cheaply.

  nsenter --net=/run/netns/GUEST pair_wait.py --pins /sys/fs/bpf/hnxdp/INO \\
      --layout PAIR_MAP.json --records /run/hnxdp/INO --syn hn0 [--seconds 3600] [--interval 0.002]

PAIR_MAP.json is `hnxdp dump --json`'s pair_map: the pair map's name, value
layout and state numbers, as the hnxdp under test has them.

For soak tests that wait thousands of times: one process (started once, in
the guest's network namespace, e.g. as a bash coprocess) answers one request
per line on stdin with one line on stdout, instead of a python or hnxdp
process per wait. Requests:

  active VF TIMEOUT   until the pair of --syn is active with VF's
                      current ifindex as vf_ifindex, and its write-ahead
                      record (pair-<syn ifindex>.json) exists with phase
                      "joined": a join that finished
  idle TIMEOUT        until the pair is idle, vf_ifindex 0, and no
                      record exists: a leave that finished
  ifindex DEV         DEV's ifindex now ("none" when absent)

Answers: "ok MS ..." (ms waited) or "timeout MS state=S vf=V record=R". The
pinned map is opened again for every request (a re-pinned map is followed).
Stops at end of input or after --seconds. Exit 0; 2 on a setup error.
"""
import argparse
import ctypes
import ctypes.util
import errno
import json
import os
import platform
import socket
import struct
import sys
import time

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}.get(platform.machine(), 321)
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def bpf(cmd: int, attr) -> int:
    r = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), attr, ctypes.c_uint(len(attr)))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def obj_get(path: str) -> int:
    p = ctypes.create_string_buffer(path.encode())
    return bpf(7, ctypes.create_string_buffer(struct.pack("=QII", ctypes.addressof(p), 0, 0), 128))


def lookup(fd: int, key: int, size: int):
    k = ctypes.create_string_buffer(struct.pack("=I", key), 4)
    v = ctypes.create_string_buffer(size)
    attr = ctypes.create_string_buffer(struct.pack("=IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0), 128)
    try:
        bpf(1, attr)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return v.raw


def ifindex(dev: str):
    try:
        return socket.if_nametoindex(dev)
    except OSError:
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pins", required=True)
    ap.add_argument("--layout", required=True, help="`hnxdp dump --json`'s pair_map, in a file")
    ap.add_argument("--records", required=True)
    ap.add_argument("--syn", required=True)
    ap.add_argument("--seconds", type=float, default=3600.0, help="hard time bound of the whole process")
    ap.add_argument("--interval", type=float, default=0.002)
    a = ap.parse_args()
    with open(a.layout) as f:
        pair_map = json.load(f)
    states = pair_map["states"]
    names = {v: k for k, v in states.items()}

    def field(value, name):
        f = pair_map["fields"][name]
        return int.from_bytes(value[f["offset"]:f["offset"] + f["size"]], sys.byteorder)

    syn = ifindex(a.syn)
    if syn is None:
        print(f"pair_wait: no device {a.syn}", file=sys.stderr)
        return 2
    record_path = f"{a.records}/pair-{syn}.json"
    stop = time.monotonic() + a.seconds

    def observe(want_vf):
        """(state, vf_ifindex, record phase or 'absent'), from the map and the record."""
        st = vf = None
        try:
            fd = obj_get(f"{a.pins}/{pair_map['name']}")
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                v = lookup(fd, syn, pair_map["value_size"])
                if v is not None:
                    vf, st = field(v, "vf_ifindex"), field(v, "state")
            finally:
                os.close(fd)
        try:
            with open(record_path) as f:
                phase = json.load(f).get("phase", "?")
        except FileNotFoundError:
            phase = "absent"
        except (OSError, ValueError):
            phase = "unreadable"  # being replaced: look again
        return st, vf, phase

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        t0 = time.monotonic()
        if words[0] == "ifindex":
            print(ifindex(words[1]) or "none", flush=True)
            continue
        if words[0] == "active":
            dev, timeout = words[1], float(words[2])
        elif words[0] == "idle":
            dev, timeout = None, float(words[1])
        else:
            print(f"error unknown request {words[0]}", flush=True)
            continue
        deadline = min(stop, t0 + timeout)
        while True:
            want = ifindex(dev) if dev else 0
            st, vf, phase = observe(want)
            if dev:
                ok = want is not None and st == states["active"] and vf == want and phase == "joined"
            else:
                ok = st == states["idle"] and vf == 0 and phase == "absent"
            now = time.monotonic()
            if ok or now >= deadline:
                break
            time.sleep(a.interval)
        ms = (now - t0) * 1000.0
        desc = f"state={names.get(st, st)} vf={vf} record={phase}"
        print(f"{'ok' if ok else 'timeout'} {ms:.1f} {desc}", flush=True)
        if time.monotonic() >= stop:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
