#!/usr/bin/env python3
"""tcx_query.py - list the BPF programs attached with tcx, or as classic tc
(clsact + cls_bpf) filters, to devices of THIS netns.

bpftool 7.1 cannot show tcx attachments per device (it lists tcx links only
as "type 11", with no device), so the tests ask the kernel directly with
BPF_PROG_QUERY (BPF_TCX_INGRESS = 46, BPF_TCX_EGRESS = 47). Run it inside the
namespace of the devices (ifindexes are per network namespace):

  nsenter --net=/run/netns/G python3 tcx_query.py hn0 vf0

Prints one JSON object: {"hn0": {"ifindex": 5, "ingress": [{"prog_id": 12,
"link_id": 3, "name": "hnxdp_syn_ingre"}], "egress": [...]}, ...}. Classic
filters (from `tc -j filter show`) are listed after the tcx programs of the
same hook, with "link_id": "tc-<pref>-<handle>" and "classic": true. Names are
the kernel's (truncated to 15 characters). A device that does not exist maps
to null. Needs CAP_BPF/CAP_SYS_ADMIN; exit 3 without it, 1 on other errors.
"""
import ctypes
import ctypes.util
import errno
import json
import os
import platform
import socket
import struct
import subprocess
import sys

BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47
SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}[platform.machine()]
MAX_PROGS = 64

libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def bpf(cmd: int, attr: ctypes.Array) -> int:
    r = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), attr, ctypes.c_uint(len(attr)))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def prog_name(prog_id: int) -> str:
    attr = ctypes.create_string_buffer(struct.pack("=III", prog_id, 0, 0), 128)
    try:
        fd = bpf(BPF_PROG_GET_FD_BY_ID, attr)
    except OSError:
        return ""  # gone meanwhile
    try:
        info = ctypes.create_string_buffer(256)  # struct bpf_prog_info prefix; name at offset 64
        attr = ctypes.create_string_buffer(
            struct.pack("=IIQ", fd, len(info), ctypes.addressof(info)), 128)
        bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
        return info.raw[64:80].split(b"\0", 1)[0].decode(errors="replace")
    finally:
        os.close(fd)


def query(ifindex: int, attach_type: int):
    prog_ids = (ctypes.c_uint32 * MAX_PROGS)()
    link_ids = (ctypes.c_uint32 * MAX_PROGS)()
    # union bpf_attr, query variant: target_ifindex, attach_type, query_flags,
    # attach_flags, prog_ids, count, pad, prog_attach_flags, link_ids,
    # link_attach_flags, revision.
    raw = struct.pack("=IIIIQIIQQQQ", ifindex, attach_type, 0, 0,
                      ctypes.addressof(prog_ids), MAX_PROGS, 0, 0,
                      ctypes.addressof(link_ids), 0, 0)
    attr = ctypes.create_string_buffer(raw, 128)
    try:
        bpf(BPF_PROG_QUERY, attr)
    except OSError as e:
        if e.errno == errno.EINVAL:
            return []  # a kernel without tcx (before 6.6)
        raise
    count = struct.unpack_from("=I", attr.raw, 24)[0]
    out = []
    for i in range(min(count, MAX_PROGS)):
        out.append({"prog_id": prog_ids[i], "link_id": link_ids[i], "name": prog_name(prog_ids[i])})
    return out


def classic(dev: str, direction: str):
    """cls_bpf filters on the clsact hook of dev (none without a clsact qdisc)."""
    r = subprocess.run(["tc", "-j", "filter", "show", "dev", dev, direction],
                       capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        return []
    out = []
    for f in json.loads(r.stdout):
        prog = (f.get("options") or {}).get("prog")
        if f.get("kind") == "bpf" and prog:
            out.append({"prog_id": prog["id"], "name": prog.get("name", ""), "classic": True,
                        "link_id": f"tc-{f.get('pref')}-{f['options'].get('handle')}"})
    return out


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    result = {}
    for dev in sys.argv[1:]:
        try:
            ifindex = socket.if_nametoindex(dev)
        except OSError:
            result[dev] = None
            continue
        try:
            result[dev] = {
                "ifindex": ifindex,
                "ingress": query(ifindex, BPF_TCX_INGRESS) + classic(dev, "ingress"),
                "egress": query(ifindex, BPF_TCX_EGRESS) + classic(dev, "egress"),
            }
        except OSError as e:
            print(f"tcx_query: BPF_PROG_QUERY on {dev} (ifindex {ifindex}): {e.strerror}",
                  file=sys.stderr)
            return 3 if e.errno in (errno.EPERM, errno.EACCES) else 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
