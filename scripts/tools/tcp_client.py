#!/usr/bin/env python3
"""tcp_client.py - talk to tcp_echo.py over ONE connection, bounded in rounds and time.

  tcp_client.py --dst 198.18.0.1 --port 5002 [--rounds 20] [--interval 0]
                [--size 1000] [--seconds 30] [--dev eth0]

Each round sends --size bytes and reads the same bytes back, all over one
TCP connection, so a test can check that the connection survives whatever
happens between rounds (VF removal, return). Prints one line:
"<rounds done> <bytes verified>". Exits 0 when every round was echoed
intact, 1 otherwise (connection lost, mismatch, time bound), 2 on a setup
error.
"""
import argparse
import socket
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.0, help="pause between rounds (s)")
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=30.0, help="hard time bound")
    p.add_argument("--dev", default=None)
    a = p.parse_args()

    fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    deadline = time.monotonic() + a.seconds
    done = 0
    verified = 0
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        if a.dev:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.dev.encode() + b"\0")
        s.settimeout(max(0.1, min(10.0, a.seconds)))
        s.connect((a.dst, a.port))
    except OSError as e:
        print(f"tcp_client: connect to [{a.dst}]:{a.port}: {e}", file=sys.stderr)
        print(done, verified, flush=True)
        return 2
    rc = 0
    try:
        for i in range(a.rounds):
            if time.monotonic() >= deadline:
                print(f"tcp_client: time bound hit after {done} rounds", file=sys.stderr)
                rc = 1
                break
            msg = bytes((i + j) & 0xFF for j in range(a.size))
            s.settimeout(max(0.1, deadline - time.monotonic()))
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise ConnectionError("connection closed by peer")
                got += chunk
            if got != msg:
                print(f"tcp_client: round {i}: echo differs", file=sys.stderr)
                rc = 1
                break
            done += 1
            verified += len(got)
            if a.interval > 0 and i + 1 < a.rounds:
                time.sleep(min(a.interval, max(0.0, deadline - time.monotonic())))
    except (OSError, ConnectionError) as e:
        print(f"tcp_client: round {done}: {e}", file=sys.stderr)
        rc = 1
    finally:
        s.close()
    print(done, verified, flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
