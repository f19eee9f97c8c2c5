/// A UDP frame (IPv4 or IPv6) built byte by byte for the generator, with
/// correct IP and UDP checksums. Pure.
public struct FrameTemplate: Equatable, Sendable {
    public var sourceMAC: [UInt8]
    public var destinationMAC: [UInt8]
    /// 4 bytes (IPv4) or 16 bytes (IPv6); both addresses of one family.
    public var sourceIP: [UInt8]
    public var destinationIP: [UInt8]
    public var sourcePort: UInt16 = 9
    public var destinationPort: UInt16 = 9
    /// Frame length without the FCS; 64 means a minimum-size frame on the wire (60 + FCS).
    public var frameSize: Int = 64

    public init(sourceMAC: [UInt8], destinationMAC: [UInt8], sourceIP: [UInt8], destinationIP: [UInt8],
                sourcePort: UInt16 = 9, destinationPort: UInt16 = 9, frameSize: Int = 64) {
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
        self.sourceIP = sourceIP
        self.destinationIP = destinationIP
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.frameSize = frameSize
    }

    public var isIPv6: Bool { sourceIP.count == 16 }

    /// The smallest frame this template can build (headers, no payload, FCS excluded).
    public var minimumSize: Int { 14 + (isIPv6 ? 40 : 20) + 8 }

    /// The frame's bytes: `frameSize - 4` bytes (the FCS is the NIC's), at least the headers.
    public func bytes() -> [UInt8] {
        precondition(sourceMAC.count == 6 && destinationMAC.count == 6)
        precondition(sourceIP.count == destinationIP.count && (sourceIP.count == 4 || sourceIP.count == 16))
        let total = max(frameSize - 4, minimumSize)
        let ipHeader = isIPv6 ? 40 : 20
        let udpLength = total - 14 - ipHeader
        var f = destinationMAC + sourceMAC + (isIPv6 ? [0x86, 0xdd] : [0x08, 0x00])
        if isIPv6 {
            f += [0x60, 0, 0, 0] + be16(UInt16(udpLength)) + [17, 64] + sourceIP + destinationIP
        } else {
            var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + udpLength)) + [0, 0, 0x40, 0, 64, 17, 0, 0] + sourceIP + destinationIP
            let sum = Self.checksum(ip)
            ip[10] = UInt8(sum >> 8)
            ip[11] = UInt8(sum & 0xff)
            f += ip
        }
        var udp = be16(sourcePort) + be16(destinationPort) + be16(UInt16(udpLength)) + [0, 0]
        udp += (0..<(udpLength - 8)).map { UInt8(truncatingIfNeeded: $0) }
        let pseudo = sourceIP + destinationIP + (isIPv6 ? be32(UInt32(udpLength)) + [0, 0, 0, 17] : [0, 17] + be16(UInt16(udpLength)))
        var sum = Self.checksum(pseudo + udp)
        if sum == 0 { sum = 0xffff }
        udp[6] = UInt8(sum >> 8)
        udp[7] = UInt8(sum & 0xff)
        return f + udp
    }

    /// The Internet checksum (RFC 1071) of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    private func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    /// Parses "198.18.0.1" or "fd00::1" into 4 or 16 bytes; nil when invalid.
    public static func parseIP(_ text: String) -> [UInt8]? {
        if text.contains(":") { return parseIPv6(text) }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard let b = UInt8(p), p.count <= 3 else { return nil }
            out.append(b)
        }
        return out
    }

    static func parseIPv6(_ text: String) -> [UInt8]? {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt16]? {
            if s.isEmpty { return [] }
            var g: [UInt16] = []
            for part in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard part.count >= 1, part.count <= 4, let v = UInt16(part, radix: 16) else { return nil }
                g.append(v)
            }
            return g
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }
}

extension String {
    fileprivate func components(separatedBy separator: String) -> [String] {
        var result: [String] = []
        var rest = Substring(self)
        while let r = rest.range(of: separator) {
            result.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        result.append(String(rest))
        return result
    }
}

extension Substring {
    fileprivate func range(of s: String) -> Range<Substring.Index>? {
        guard !s.isEmpty, count >= s.count else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(s) { return i..<index(i, offsetBy: s.count) }
            i = index(after: i)
        }
        return nil
    }
}
