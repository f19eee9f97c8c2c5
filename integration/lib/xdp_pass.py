"""A native XDP program (XDP_PASS, without XDP frags) on a veth end, attached
by rtnetlink: the kernel then caps the veth's peer at an MTU of about 3500
and turns its TSO off (veth_xdp_set), which makes the peer a real "VF that
refuses some MTUs and lacks some offloads". Run in the device's namespace:

    ip netns exec HOST python3 integration/lib/xdp_pass.py vf0h

No object file and no
compiler are needed: the two instructions are assembled here. The program stays
attached after this process exits, until the device goes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import socket
import struct
import sys

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}.get(platform.machine(), 321)


def attach(dev: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ifindex = socket.if_nametoindex(dev)
    insns = struct.pack("=BBhi", 0xb7, 0, 0, 2) + struct.pack("=BBhi", 0x95, 0, 0, 0)  # r0 = XDP_PASS; exit
    ibuf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    logbuf = ctypes.create_string_buffer(4096)
    attr = struct.pack("=IIQQIIQI", 6, 2, ctypes.addressof(ibuf), ctypes.addressof(lic), 1, 4096,
                       ctypes.addressof(logbuf), 0)  # BPF_PROG_TYPE_XDP, 2 insns, log level 1
    attr += struct.pack("=I", 0) + b"hnxrig_xdp_pass".ljust(16, b"\0")  # prog_flags (no frags), prog_name
    a = ctypes.create_string_buffer(attr, 128)
    fd = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(5), a, ctypes.c_uint(128))  # BPF_PROG_LOAD
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"BPF_PROG_LOAD: {os.strerror(e)}: {logbuf.value.decode(errors='replace')}")
    try:
        # RTM_SETLINK, ifinfomsg, IFLA_XDP { IFLA_XDP_FD, IFLA_XDP_FLAGS = XDP_FLAGS_DRV_MODE }
        inner = struct.pack("=HHi", 8, 1, fd) + struct.pack("=HHI", 8, 3, 1 << 2)
        xdp = struct.pack("=HH", 4 + len(inner), 43 | 0x8000) + inner
        body = struct.pack("=BxHiII", 0, 0, ifindex, 0, 0) + xdp
        msg = struct.pack("=IHHII", 16 + len(body), 19, 0x1 | 0x4, 1, 0) + body
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as nl:
            nl.bind((0, 0))
            nl.send(msg)
            resp = nl.recv(65536)
    finally:
        os.close(fd)
    _, typ, _, _, _ = struct.unpack_from("=IHHII", resp, 0)
    if typ == 2:  # NLMSG_ERROR
        err = struct.unpack_from("=i", resp, 16)[0]
        if err != 0:
            raise OSError(-err, f"attach XDP on {dev}: {os.strerror(-err)}")


if __name__ == "__main__":
    try:
        attach(sys.argv[1])
    except OSError as e:
        print(f"xdp_pass: {e}", file=sys.stderr)
        sys.exit(1)
