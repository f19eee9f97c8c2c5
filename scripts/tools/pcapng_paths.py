#!/usr/bin/env python3
"""pcapng_paths.py FILE|- [--partial]: one line per packet of a pcapng file,
"IFNAME<TAB>DIRECTION<TAB>COMMENT<TAB>SUMMARY", e.g.
    hn0:vf-tx	out	vf-tx vf0	icmp echo-request 198.18.0.1>198.18.0.2

Used by the tests to see the path of each frame `hnxdp capture` recorded
(tcpdump 4.99 reads such a file but does not print the interface). Checks the
structure as it goes: byte-order magic, block lengths (leading = trailing),
if_tsresol of every interface, interface ids of packets, caplen <= original
length. Any violation: a message on stderr and exit 1. --partial: a file still
being written may end in the middle of a block (ignored).
"""
import struct
import sys


def options(buf):
    out = []
    i = 0
    while i + 4 <= len(buf):
        code, length = struct.unpack_from("<HH", buf, i)
        if code == 0:
            break
        out.append((code, bytes(buf[i + 4:i + 4 + length])))
        i += 4 + ((length + 3) & ~3)
    return out


def summary(frame):
    if len(frame) < 14:
        return "runt"
    etype = struct.unpack_from(">H", frame, 12)[0]
    if etype == 0x0806:
        return "arp"
    if etype == 0x0800 and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        proto = frame[23]
        src = ".".join(str(b) for b in frame[26:30])
        dst = ".".join(str(b) for b in frame[30:34])
        if proto == 1 and len(frame) > 14 + ihl:
            t = frame[14 + ihl]
            kind = {8: "echo-request", 0: "echo-reply"}.get(t, "type-%d" % t)
            return "icmp %s %s>%s" % (kind, src, dst)
        return "ipv4 proto-%d %s>%s" % (proto, src, dst)
    if etype == 0x86DD and len(frame) >= 55:
        import ipaddress
        nxt = frame[20]
        src = str(ipaddress.IPv6Address(bytes(frame[22:38])))
        dst = str(ipaddress.IPv6Address(bytes(frame[38:54])))
        if nxt == 58:
            t = frame[54]
            kind = {128: "echo-request", 129: "echo-reply"}.get(t, "type-%d" % t)
            return "icmp6 %s %s>%s" % (kind, src, dst)
        return "ipv6 next-%d %s>%s" % (nxt, src, dst)
    return "ethertype-0x%04x" % etype


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    partial = "--partial" in sys.argv
    if len(args) != 1:
        sys.exit("usage: pcapng_paths.py FILE|- [--partial]")
    data = sys.stdin.buffer.read() if args[0] == "-" else open(args[0], "rb").read()
    ifaces = []
    i = 0
    seen_shb = False
    while i < len(data):
        if i + 12 > len(data):
            if partial:
                break
            sys.exit("pcapng: truncated block header at %d" % i)
        btype, blen = struct.unpack_from("<II", data, i)
        if blen < 12 or blen % 4:
            sys.exit("pcapng: bad block length %d at %d" % (blen, i))
        if i + blen > len(data):
            if partial:
                break
            sys.exit("pcapng: truncated block at %d" % i)
        if struct.unpack_from("<I", data, i + blen - 4)[0] != blen:
            sys.exit("pcapng: trailing length differs at %d" % i)
        body = data[i + 8:i + blen - 4]
        if btype == 0x0A0D0D0A:
            if struct.unpack_from("<I", body, 0)[0] != 0x1A2B3C4D:
                sys.exit("pcapng: bad byte-order magic")
            seen_shb = True
        elif not seen_shb:
            sys.exit("pcapng: first block is not a section header")
        elif btype == 1:
            linktype, _, snaplen = struct.unpack_from("<HHI", body, 0)
            opts = dict(options(body[8:]))
            if opts.get(9) != b"\x09":
                sys.exit("pcapng: interface %d lacks if_tsresol 9 (ns)" % len(ifaces))
            ifaces.append(opts.get(2, b"?").decode())
        elif btype == 6:
            ifid, _, _, caplen, origlen = struct.unpack_from("<IIIII", body, 0)
            if ifid >= len(ifaces):
                sys.exit("pcapng: packet names interface %d of %d" % (ifid, len(ifaces)))
            if caplen > origlen:
                sys.exit("pcapng: caplen %d > original length %d" % (caplen, origlen))
            frame = body[20:20 + caplen]
            opts = options(body[20 + ((caplen + 3) & ~3):])
            comment = ""
            direction = "-"
            for code, value in opts:
                if code == 1:
                    comment = value.decode()
                elif code == 2 and len(value) == 4:
                    direction = {1: "in", 2: "out"}.get(struct.unpack("<I", value)[0] & 3, "-")
            print("%s\t%s\t%s\t%s" % (ifaces[ifid], direction, comment, summary(frame)))
        i += blen
    if not seen_shb:
        sys.exit("pcapng: no section header")


if __name__ == "__main__":
    main()
