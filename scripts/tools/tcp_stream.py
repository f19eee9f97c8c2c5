#!/usr/bin/env python3
"""tcp_stream.py - keep ONE TCP connection echoing numbered requests; count resets, time stalls.

  tcp_stream.py --dst 198.18.0.1 --port 5770 --stop-file PATH [--after 50]
                [--size 64] [--interval 0.01] [--seconds 300]
                [--status-file PATH] [--stall-timeout 10] [--reconnects 3]
                [--gap-log-ms 250]

Talks to tcp_echo.py. Each round sends one request of --size bytes that
starts with its sequence number (8 bytes, big-endian) and reads the same
bytes back: a reply with another number or other bytes is a mismatch. Runs
until --stop-file exists, then does --after more rounds.

A connection that breaks (reset, closed by the peer, no reply within
--stall-timeout) counts as a reset; the client connects again (at most
--reconnects times) and goes on, so a test learns how many times it broke,
not only that it did.

The longest stall is the largest time between two consecutive echo replies
(from the connection's first reply on). --status-file is replaced after
every reply with "rounds R resets N max_gap_ms G" (for a test that waits for
progress); gaps above --gap-log-ms go to stderr as they happen.

Prints one line at the end:
  rounds R after A resets N mismatches M max_gap_ms G max_gap_round K connections C
Exits 0 when the stop file was seen, every reply matched and there was no
reset; 1 otherwise (time bound hit too); 2 when the first connect failed.
"""
import argparse
import os
import socket
import struct
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--after", type=int, default=50, help="rounds after the stop file appeared")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--interval", type=float, default=0.01, help="pause between rounds (s)")
    p.add_argument("--seconds", type=float, default=300.0, help="hard time bound")
    p.add_argument("--status-file", default=None)
    p.add_argument("--stall-timeout", type=float, default=10.0, help="no reply for this long: broken")
    p.add_argument("--reconnects", type=int, default=3)
    p.add_argument("--gap-log-ms", type=float, default=250.0)
    a = p.parse_args()
    if a.size < 8:
        p.error("--size must be >= 8")

    fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    deadline = time.monotonic() + a.seconds
    rounds = after = resets = mismatches = conns = 0
    max_gap = 0.0
    max_gap_round = -1
    last_reply = None
    stopped = False

    def connect():
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(min(10.0, max(0.1, deadline - time.monotonic())))
        s.connect((a.dst, a.port))
        return s

    def status():
        if not a.status_file:
            return
        tmp = a.status_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"rounds {rounds} resets {resets} max_gap_ms {max_gap * 1000:.0f}\n")
        os.replace(tmp, a.status_file)

    try:
        s = connect()
    except OSError as e:
        print(f"tcp_stream: connect to [{a.dst}]:{a.port}: {e}", file=sys.stderr)
        print("rounds 0 after 0 resets 0 mismatches 0 max_gap_ms 0 max_gap_round -1 connections 0", flush=True)
        return 2
    conns = 1
    status()
    pad = bytes(range(256))
    while True:
        now = time.monotonic()
        if now >= deadline:
            print(f"tcp_stream: time bound hit after {rounds} rounds", file=sys.stderr)
            break
        if os.path.exists(a.stop_file):
            if after >= a.after:
                stopped = True
                break
        msg = struct.pack(">Q", rounds) + (pad * (a.size // 256 + 1))[: a.size - 8]
        try:
            s.settimeout(max(0.1, min(a.stall_timeout, deadline - now)))
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise ConnectionError("connection closed by the peer")
                got += chunk
        except (OSError, ConnectionError) as e:
            resets += 1
            print(f"tcp_stream: round {rounds}: connection broken: {e!r}", file=sys.stderr)
            s.close()
            last_reply = None
            if resets > a.reconnects:
                break
            try:
                s = connect()
                conns += 1
            except OSError as e2:
                print(f"tcp_stream: reconnect: {e2}", file=sys.stderr)
                break
            status()
            continue
        t = time.monotonic()
        if got != msg:
            mismatches += 1
            print(f"tcp_stream: round {rounds}: reply differs (seq {struct.unpack('>Q', got[:8])[0]})", file=sys.stderr)
        if last_reply is not None:
            gap = t - last_reply
            if gap > max_gap:
                max_gap, max_gap_round = gap, rounds
            if gap * 1000 > a.gap_log_ms:
                print(f"tcp_stream: round {rounds}: {gap * 1000:.0f} ms since the previous reply", file=sys.stderr)
        last_reply = t
        rounds += 1
        if os.path.exists(a.stop_file):
            after += 1
        status()
        if a.interval > 0:
            time.sleep(a.interval)
    s.close()
    status()
    print(f"rounds {rounds} after {after} resets {resets} mismatches {mismatches} "
          f"max_gap_ms {max_gap * 1000:.0f} max_gap_round {max_gap_round} connections {conns}", flush=True)
    return 0 if stopped and resets == 0 and mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
