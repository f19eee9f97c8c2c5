import Glibc

/// Where `hnxdp capture` writes: pcapng to a file or to stdout (`-w -`, one
/// write per block, so `| tcpdump -r -` sees each frame as it comes), or one
/// line of text per frame.
public final class CaptureOutput {
    public enum Format: Sendable { case pcapng, text }

    public let format: Format
    private let fd: Int32
    private let owned: Bool

    /// `path` "-" is stdout; nil is text on stdout. A file is created or truncated.
    public init(path: String?) throws {
        guard let path else {
            format = .text; fd = STDOUT_FILENO; owned = false
            return
        }
        format = .pcapng
        if path == "-" {
            fd = STDOUT_FILENO; owned = false
            return
        }
        let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if f < 0 {
            let e = errno
            throw HnxdpError(.badInput, "cannot write \(path): \(errnoName(e)) (\(errnoText(e)))")
        }
        fd = f; owned = true
    }

    deinit { if owned { close(fd) } }

    /// The pcapng section header and one interface per path ("hn0:vf-rx", ...).
    public func begin(synthetic: String, snaplen: UInt32) throws {
        guard format == .pcapng else { return }
        var bytes = PcapNG.sectionHeader(application: "hnxdp \(HnxdpVersion.string) capture")
        for path in CapturePath.allCases.sorted(by: { $0.id < $1.id }) {
            bytes += PcapNG.interfaceDescription(name: "\(synthetic):\(path.name)",
                                                 description: path.describe(synthetic: synthetic), snaplen: snaplen)
        }
        try write(bytes)
    }

    public func frame(_ f: CapturedFrame) throws {
        switch format {
        case .pcapng:
            try write(PcapNG.enhancedPacket(interface: f.path.id, timestampNs: f.timestampNs, data: f.bytes,
                                            originalLength: f.length, direction: f.path.inbound ? .inbound : .outbound,
                                            comment: "\(f.path.name) \(f.device)"))
        case .text:
            try write(Array((CaptureOutput.line(f) + "\n").utf8))
        }
    }

    /// "12:00:01.123456789 vf-rx vf0 98: 198.18.0.2 > 198.18.0.1 ICMP echo request"
    public static func line(_ f: CapturedFrame) -> String {
        var t = time_t(Int(f.timestampNs / 1_000_000_000))
        var tm = tm()
        localtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var frac = String(f.timestampNs % 1_000_000_000)
        frac = String(repeating: "0", count: 9 - frac.count) + frac
        let time = "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)).\(frac)"
        return "\(time) \(f.path.name) \(f.device) \(f.length): \(FrameSummary.describe(f.bytes))"
    }

    private func write(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EPIPE { throw CaptureReaderGone() }
                throw HnxdpError.system("write the capture", errno: e)
            }
            done += n
        }
    }
}

/// One-line description of an Ethernet frame: addresses and protocol, no more.
public enum FrameSummary {
    public static func describe(_ b: UnsafeRawBufferPointer) -> String {
        guard b.count >= 14 else { return "runt frame (\(b.count) bytes)" }
        func u8(_ i: Int) -> Int { i < b.count ? Int(b[i]) : 0 }
        func u16(_ i: Int) -> Int { u8(i) << 8 | u8(i + 1) }
        func mac(_ i: Int) -> String { (0..<6).map { hex(u8(i + $0)) }.joined(separator: ":") }
        var type = u16(12), off = 14
        if type == 0x8100 || type == 0x88a8 { type = u16(16); off = 18 }
        let macs = "\(mac(6)) > \(mac(0))"
        switch type {
        case 0x0800:
            guard b.count >= off + 20 else { return "\(macs) IPv4, truncated" }
            let ihl = (u8(off) & 0x0f) * 4
            let src = (0..<4).map { String(u8(off + 12 + $0)) }.joined(separator: ".")
            let dst = (0..<4).map { String(u8(off + 16 + $0)) }.joined(separator: ".")
            return "\(src) > \(dst) " + l4(proto: u8(off + 9), at: off + ihl, icmpEcho: (8, 0), u8, u16)
        case 0x86dd:
            guard b.count >= off + 40 else { return "\(macs) IPv6, truncated" }
            let src = ipv6((0..<16).map { UInt8(u8(off + 8 + $0)) })
            let dst = ipv6((0..<16).map { UInt8(u8(off + 24 + $0)) })
            return "\(src) > \(dst) " + l4(proto: u8(off + 6), at: off + 40, icmpEcho: (128, 129), u8, u16)
        case 0x0806:
            return "\(macs) ARP " + (u16(off + 6) == 1 ? "request" : u16(off + 6) == 2 ? "reply" : "op \(u16(off + 6))")
        default:
            return "\(macs) ethertype 0x\(hex(type >> 8))\(hex(type & 0xff))"
        }
    }

    private static func l4(proto: Int, at o: Int, icmpEcho: (Int, Int), _ u8: (Int) -> Int, _ u16: (Int) -> Int) -> String {
        switch proto {
        case 6: return "TCP \(u16(o)) > \(u16(o + 2))"
        case 17: return "UDP \(u16(o)) > \(u16(o + 2))"
        case 1, 58:
            let name = proto == 1 ? "ICMP" : "ICMP6"
            let t = u8(o)
            if t == icmpEcho.0 { return "\(name) echo request" }
            if t == icmpEcho.1 { return "\(name) echo reply" }
            return "\(name) type \(t)"
        case 0: return "hop-by-hop options"
        default: return "protocol \(proto)"
        }
    }

    private static func hex(_ v: Int) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[(v >> 4) & 0xf], digits[v & 0xf]])
    }

    /// RFC 5952 text of an IPv6 address.
    static func ipv6(_ a: [UInt8]) -> String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var addr = in6_addr()
        withUnsafeMutableBytes(of: &addr) { for i in 0..<16 { $0[i] = a[i] } }
        return inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count)) != nil ? String(cString: buf) : "?"
    }
}
