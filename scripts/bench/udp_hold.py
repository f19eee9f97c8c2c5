#!/usr/bin/env python3
"""udp_hold.py - hold a UDP socket bound to one device, never read it (bench sink).

The benchmark's receiver: a UDP socket bound to DEV (SO_BINDTODEVICE) and a
port, with the smallest receive buffer. It never reads, so the first two
datagrams stay queued and every further one is dropped at the socket, where
the kernel counts it as Udp RcvbufErrors in the namespace's /proc/net/snmp
(Udp InDatagrams counts datagrams when they are read, so here it stays 0; the
benchmark sums both anyway). Because the socket is bound to DEV, a datagram
that arrives on any other device finds no socket and is counted as Udp
NoPorts instead. Exits after --seconds (a hard bound) or on SIGTERM/SIGINT.

  udp_hold.py --dev hn0 --port 9 [--seconds 600] [--ready-file PATH]
"""
import argparse
import signal
import socket
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dev", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--ready-file", default=None)
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.dev.encode())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)  # kernel minimum
        s.bind(("0.0.0.0", a.port))
    except OSError as e:
        print(f"udp_hold: bind to {a.dev} port {a.port}: {e}", file=sys.stderr)
        return 2
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write("ready\n")
    try:
        time.sleep(a.seconds)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
