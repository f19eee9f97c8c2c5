#!/usr/bin/env python3
"""notify_listen.py - play systemd's side of the sd_notify protocol for a test.

Binds an AF_UNIX SOCK_DGRAM socket at ADDRESS (a path, or @name for an
abstract address, as NOTIFY_SOCKET spells them) and appends one line per
datagram received to LOG, flushed at once:

    <CLOCK_MONOTONIC us when received> <fields joined by '|'>
    e.g. 1234567890 READY=1|STATUS=managing 1 synthetic(s), 0 pair(s) joined

Creates READY_FILE (if given) once bound. Runs until SIGTERM/SIGINT or
--seconds; removes a path socket it made on exit. Exit 2 when the socket
cannot be bound.

  notify_listen.py --address PATH|@NAME --log LOG [--ready-file F] [--seconds 300]
"""
import argparse
import os
import select
import signal
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--seconds", type=float, default=300)
    a = ap.parse_args()

    abstract = a.address.startswith("@")
    address = "\0" + a.address[1:] if abstract else a.address
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        if not abstract and os.path.exists(address):
            os.unlink(address)
        s.bind(address)
    except OSError as e:
        print(f"notify_listen.py: cannot bind {a.address}: {e}", file=sys.stderr)
        return 2

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    if a.ready_file:
        open(a.ready_file, "w").close()
    end = time.monotonic() + a.seconds
    try:
        with open(a.log, "a", buffering=1) as log:
            while not stop and time.monotonic() < end:
                try:
                    r, _, _ = select.select([s], [], [], 0.2)
                except InterruptedError:
                    continue
                if not r:
                    continue
                data = s.recv(65536)
                now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
                text = data.decode("utf-8", "replace").replace("\n", "|")
                log.write(f"{now_us} {text}\n")
    finally:
        s.close()
        if not abstract:
            try:
                os.unlink(address)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
