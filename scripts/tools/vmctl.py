#!/usr/bin/env python3
"""vmctl.py - talk to a QEMU guest of integration/lib/vm.py
(standard library only).

  vmctl.py qga SOCK ping [--timeout S]
      exit 0 as soon as the guest agent answers (guest-sync), 1 after S s.
  vmctl.py qga SOCK exec [--timeout S] -- ARGV...
      run ARGV in the guest (guest-exec, output captured); its stdout and
      stderr are copied to ours and its exit code is ours (128+N for a signal,
      124 when it did not end within S s, 125 when the agent did not answer).
  vmctl.py qmp SOCK device_del ID [--timeout S]
      unplug device ID and wait for its DEVICE_DELETED event (exit 1 if not).
  vmctl.py qmp SOCK device_add ID DRIVER [KEY=VALUE...] [--timeout S]
      plug a device in (returns when QEMU has added it; the guest sees it
      a little later).
  vmctl.py qmp SOCK quit
      stop QEMU.

Each call opens its own connection (QEMU's sockets take one client at a time)
and prints the wall time of QMP operations on stderr ("vmctl: ... in N ms").
"""
import argparse
import base64
import json
import os
import random
import socket
import sys
import time


class Conn:
    def __init__(self, path, timeout):
        self.deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(max(0.1, timeout))
        self.sock.connect(path)
        self.buf = b""

    def left(self):
        return self.deadline - time.monotonic()

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self, until=None):
        """Next JSON object (None when `until` (monotonic) passes first)."""
        end = self.deadline if until is None else min(until, self.deadline)
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                # guest-sync-delimited and stale partial replies: skip noise.
                line = line.replace(b"\xff", b"").strip()
                if not line:
                    continue
                try:
                    return json.loads(line)
                except ValueError:
                    continue
            wait = end - time.monotonic()
            if wait <= 0:
                return None
            self.sock.settimeout(wait)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise ConnectionError("socket closed")
            self.buf += chunk

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- guest agent

def qga_sync(path, timeout):
    """A connection to the agent on which a guest-sync was answered, or None."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            c = Conn(path, max(0.5, end - time.monotonic()))
        except OSError:
            time.sleep(0.2)
            continue
        try:
            # The agent may be down or slow: retry guest-sync every 2 s on
            # the same connection; replies to older ids are skipped.
            while time.monotonic() < end:
                sid = random.randrange(1, 2**31)
                c.sock.sendall(b"\xff")
                c.send({"execute": "guest-sync-delimited", "arguments": {"id": sid}})
                until = min(end, time.monotonic() + 2.0)
                while True:
                    r = c.recv(until)
                    if r is None:
                        break
                    if r.get("return") == sid:
                        return c
        except (OSError, ConnectionError):
            pass
        c.close()
        time.sleep(0.2)
    return None


def qga_call(c, cmd, args=None):
    c.send({"execute": cmd, "arguments": args or {}})
    while True:
        r = c.recv()
        if r is None:
            raise TimeoutError(cmd)
        if "return" in r:
            return r["return"]
        if "error" in r:
            raise RuntimeError(f"{cmd}: {r['error'].get('desc')}")


def qga_exec(sock, argv, timeout):
    """Run argv in the guest (guest-exec, output captured): (exit code, stdout
    bytes, stderr bytes), the exit code as `qga exec` gives it (128+N for a
    signal, 124 when it did not end within timeout s, 125 when the agent did
    not answer). Importable: integration/lib/vm.py calls it in-process."""
    c = qga_sync(sock, min(timeout, 30))
    if c is None:
        return 125, b"", b"vmctl: the guest agent does not answer\n"
    c.deadline = time.monotonic() + timeout + 10
    try:
        pid = qga_call(c, "guest-exec", {
            "path": argv[0], "arg": list(argv[1:]), "capture-output": True,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME=/root", "LANG=C.UTF-8"],
        })["pid"]
        end = time.monotonic() + timeout
        delay = 0.02
        while True:
            st = qga_call(c, "guest-exec-status", {"pid": pid})
            if st.get("exited"):
                break
            if time.monotonic() > end:
                return 124, b"", f"vmctl: timed out after {timeout} s: {' '.join(argv)}\n".encode()
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    except (TimeoutError, RuntimeError, OSError, ConnectionError) as e:
        return 125, b"", f"vmctl: guest-exec failed: {e}\n".encode()
    finally:
        c.close()
    rc = 128 + st["signal"] if "signal" in st else st.get("exitcode", 1)
    return rc, base64.b64decode(st.get("out-data", "")), base64.b64decode(st.get("err-data", ""))


def cmd_qga(a):
    if a.op == "ping":
        c = qga_sync(a.sock, a.timeout)
        if c is None:
            return 1
        c.close()
        return 0
    argv = a.argv
    if not argv:
        print("vmctl: exec needs a command", file=sys.stderr)
        return 2
    rc, out, err = qga_exec(a.sock, argv, a.timeout)
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    sys.stderr.buffer.write(err)
    return rc


# ---------------------------------------------------------------- QMP

def qmp_open(path, timeout):
    c = Conn(path, timeout)
    greeting = c.recv()
    if not greeting or "QMP" not in greeting:
        raise RuntimeError("no QMP greeting")
    qmp_call(c, "qmp_capabilities")
    return c


def qmp_call(c, cmd, args=None, events=None):
    c.send({"execute": cmd, "arguments": args or {}})
    while True:
        r = c.recv()
        if r is None:
            raise TimeoutError(cmd)
        if "event" in r:
            if events is not None:
                events.append(r)
            continue
        if "error" in r:
            raise RuntimeError(f"{cmd}: {r['error'].get('desc')}")
        return r.get("return")


def cmd_qmp(a):
    t0 = time.monotonic()
    try:
        c = qmp_open(a.sock, a.timeout)
        events = []
        if a.op == "device_del":
            dev = a.args[0]
            qmp_call(c, "device_del", {"id": dev}, events)
            while not any(e["event"] == "DEVICE_DELETED" and e.get("data", {}).get("device") == dev
                          for e in events):
                e = c.recv()
                if e is None:
                    print(f"vmctl: no DEVICE_DELETED for {dev} within {a.timeout} s", file=sys.stderr)
                    return 1
                if "event" in e:
                    events.append(e)
        elif a.op == "device_add":
            args = {"id": a.args[0], "driver": a.args[1]}
            for kv in a.args[2:]:
                k, _, v = kv.partition("=")
                args[k] = v
            qmp_call(c, "device_add", args, events)
        elif a.op == "quit":
            qmp_call(c, "quit")
        else:
            print(f"vmctl: unknown qmp op {a.op}", file=sys.stderr)
            return 2
        c.close()
    except (OSError, RuntimeError, TimeoutError, ConnectionError) as e:
        print(f"vmctl: qmp {a.op}: {e}", file=sys.stderr)
        return 1
    print(f"vmctl: qmp {a.op} {' '.join(a.args)} in {(time.monotonic() - t0) * 1000:.0f} ms",
          file=sys.stderr)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    g = sub.add_parser("qga")
    g.add_argument("sock")
    g.add_argument("op", choices=["ping", "exec"])
    g.add_argument("--timeout", type=float, default=60)

    q = sub.add_parser("qmp")
    q.add_argument("sock")
    q.add_argument("op")
    q.add_argument("--timeout", type=float, default=20)
    q.add_argument("args", nargs="*")
    args = sys.argv[1:]
    rest = []
    if "--" in args:
        i = args.index("--")
        args, rest = args[:i], args[i + 1:]
    a = p.parse_args(args)
    a.argv = rest
    return cmd_qga(a) if a.what == "qga" else cmd_qmp(a)


if __name__ == "__main__":
    sys.exit(main())
