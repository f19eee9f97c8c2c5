#!/usr/bin/env python3
"""udp_echo_client.py - send numbered UDP datagrams and count the replies.

  udp_echo_client.py --dst 198.18.0.1 --port 6100 --count 500 [--rate 500]
                     [--size 64] [--linger 1.0] [--seconds 30]

Each datagram carries its sequence number; a reply counts once per sequence
number. Prints one line "SENT RECEIVED" and exits 0 (2 on a setup error).
The sender is paced (--rate per second) and bounded in count and time.
"""
import argparse
import select
import socket
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--linger", type=float, default=1.0, help="wait this long for replies after the last send")
    p.add_argument("--seconds", type=float, default=30.0)
    a = p.parse_args()
    if not 0 <= a.count <= 1_000_000:
        print("udp_echo_client: --count must be in 0..1000000", file=sys.stderr)
        return 2
    fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    try:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.connect((a.dst, a.port))
        s.setblocking(False)
    except OSError as e:
        print(f"udp_echo_client: cannot set up a socket to [{a.dst}]:{a.port}: {e}", file=sys.stderr)
        return 2
    payload = bytearray(max(a.size, 8))
    seen = set()
    start = time.monotonic()
    deadline = start + a.seconds
    sent = 0
    last_send = start

    def drain():
        while True:
            try:
                data = s.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                return
            except OSError:
                return
            if len(data) >= 8:
                seen.add(int.from_bytes(data[:8], "big"))

    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if sent < a.count:
            due = start + sent / a.rate if a.rate > 0 else now
            if due <= now:
                payload[0:8] = sent.to_bytes(8, "big")
                try:
                    s.send(payload)
                    sent += 1
                    last_send = now
                except (BlockingIOError, ConnectionRefusedError, OSError):
                    time.sleep(0.001)
                continue
            wait = min(due - now, 0.05)
        else:
            if now - last_send >= a.linger or len(seen) >= a.count:
                break
            wait = 0.05
        r, _, _ = select.select([s], [], [], max(wait, 0))
        if r:
            drain()
    drain()
    print(sent, len(seen), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
