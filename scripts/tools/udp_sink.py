#!/usr/bin/env python3
"""udp_sink.py - count UDP datagrams received on one device for a bounded time.

The socket is bound to the device with SO_BINDTODEVICE before bind(), so only
datagrams the stack delivers *on that device* are counted (this is how the
tests tell "arrived on hn0" from "arrived on vf0"). Several sinks on the same
port but different devices may coexist.

Prints one line: the number of datagrams counted. Exits 0 unless the socket
could not be set up (exit 2). Stops after --seconds, or earlier once --expect
datagrams were counted and --linger seconds passed without a new one.

  udp_sink.py --dev hn0 --port 5001 [--family 4|6] [--seconds 10]
              [--expect N] [--linger 0.5] [--ready-file PATH]
"""
import argparse
import os
import select
import socket
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dev", required=True, help="device to bind to (SO_BINDTODEVICE)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--family", choices=("4", "6"), default="4")
    p.add_argument("--addr", default=None, help="local address to bind (default: any)")
    p.add_argument("--seconds", type=float, default=10.0, help="hard time bound")
    p.add_argument("--expect", type=int, default=0, help="stop early once this many arrived ...")
    p.add_argument("--linger", type=float, default=0.5, help="... and nothing more came for this long")
    p.add_argument("--ready-file", default=None, help="created once the socket is bound")
    a = p.parse_args()

    fam = socket.AF_INET if a.family == "4" else socket.AF_INET6
    try:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.dev.encode() + b"\0")
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((a.addr or ("0.0.0.0" if fam == socket.AF_INET else "::"), a.port))
    except OSError as e:
        print(f"udp_sink: cannot bind UDP port {a.port} on {a.dev}: {e}", file=sys.stderr)
        return 2
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write(str(os.getpid()))

    count = 0
    deadline = time.monotonic() + a.seconds
    last = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if a.expect and count >= a.expect and now - last >= a.linger:
            break
        r, _, _ = select.select([s], [], [], min(0.1, deadline - now))
        if not r:
            continue
        while True:
            try:
                s.recv(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            count += 1
            last = time.monotonic()
    print(count, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
