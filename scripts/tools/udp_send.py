#!/usr/bin/env python3
"""udp_send.py - send a bounded number of UDP datagrams at a bounded rate.

  udp_send.py --dst 198.18.0.1 --port 5001 --count 200 [--rate 1000]
              [--size 64] [--dev eth0] [--seconds 30]

Prints one line: the number of datagrams handed to the kernel. Exits 0 when
all --count were sent, 1 when the time bound cut it short, 2 on a setup error.
Send errors such as ENOBUFS/ECONNREFUSED are retried after a short pause and
count against the time bound, never against --count.
"""
import argparse
import errno
import socket
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=1000.0, help="datagrams per second (<= 0: no pacing)")
    p.add_argument("--size", type=int, default=64, help="payload bytes")
    p.add_argument("--dev", default=None, help="bind to this device (SO_BINDTODEVICE)")
    p.add_argument("--seconds", type=float, default=30.0, help="hard time bound")
    a = p.parse_args()
    if a.count < 0 or a.count > 10_000_000:
        print("udp_send: --count must be in 0..10000000", file=sys.stderr)
        return 2

    fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    try:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if a.dev:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.dev.encode() + b"\0")
        s.connect((a.dst, a.port))
    except OSError as e:
        print(f"udp_send: cannot set up a socket to [{a.dst}]:{a.port}: {e}", file=sys.stderr)
        return 2

    payload = bytearray(max(a.size, 8))
    start = time.monotonic()
    deadline = start + a.seconds
    sent = 0
    while sent < a.count:
        now = time.monotonic()
        if now >= deadline:
            break
        if a.rate > 0:
            due = start + sent / a.rate
            if due > now:
                time.sleep(min(due - now, deadline - now))
                continue
        payload[0:8] = sent.to_bytes(8, "big")
        try:
            s.send(payload)
            sent += 1
        except OSError as e:
            if e.errno in (errno.ENOBUFS, errno.EAGAIN, errno.ECONNREFUSED, errno.EHOSTUNREACH,
                           errno.ENETUNREACH, errno.ENETDOWN):
                time.sleep(0.001)
                continue
            print(f"udp_send: send to [{a.dst}]:{a.port}: {e}", file=sys.stderr)
            print(sent, flush=True)
            return 2
    print(sent, flush=True)
    return 0 if sent == a.count else 1


if __name__ == "__main__":
    sys.exit(main())
