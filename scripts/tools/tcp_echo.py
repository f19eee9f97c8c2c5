#!/usr/bin/env python3
"""tcp_echo.py - TCP echo server bound to one device, bounded in time and connections.

  tcp_echo.py --dev hn0 --port 5002 [--family 4|6] [--seconds 20]
              [--max-conns 1] [--ready-file PATH]

The listening socket is bound to the device with SO_BINDTODEVICE, so only
connections that arrive *on that device* are accepted. Connections are
served one at a time. Stops after --seconds, or after --max-conns
connections were served. Prints one line: "<connections> <bytes echoed>".
Exits 0 when at least one connection was served, 1 otherwise, 2 on a setup
error.
"""
import argparse
import os
import select
import socket
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dev", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--family", choices=("4", "6"), default="4")
    p.add_argument("--seconds", type=float, default=20.0, help="hard time bound")
    p.add_argument("--max-conns", type=int, default=1)
    p.add_argument("--ready-file", default=None, help="created once the socket listens")
    a = p.parse_args()

    fam = socket.AF_INET if a.family == "4" else socket.AF_INET6
    try:
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.dev.encode() + b"\0")
        if fam == socket.AF_INET6:
            ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        ls.bind(("0.0.0.0" if fam == socket.AF_INET else "::", a.port))
        ls.listen(8)
    except OSError as e:
        print(f"tcp_echo: cannot listen on TCP port {a.port} on {a.dev}: {e}", file=sys.stderr)
        return 2
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write(str(os.getpid()))

    deadline = time.monotonic() + a.seconds
    conns = 0
    echoed = 0
    while conns < a.max_conns and time.monotonic() < deadline:
        r, _, _ = select.select([ls], [], [], min(0.2, max(0.0, deadline - time.monotonic())))
        if not r:
            continue
        c, _ = ls.accept()
        conns += 1
        with c:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([c], [], [], min(0.2, left))
                if not r:
                    continue
                try:
                    data = c.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                try:
                    c.sendall(data)
                except OSError:
                    break
                echoed += len(data)
    print(conns, echoed, flush=True)
    return 0 if conns > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
