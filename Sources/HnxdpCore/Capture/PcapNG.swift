/// pcapng blocks (the IETF draft "PCAP Next Generation Dump File Format"),
/// little-endian, as `hnxdp capture` writes them: one Section Header Block,
/// one Interface Description Block per path of the pair, then one Enhanced
/// Packet Block per frame. Pure: bytes in, bytes out (unit-tested byte by byte).
public enum PcapNG {
    public static let sectionHeaderType: UInt32 = 0x0A0D_0D0A
    public static let interfaceDescriptionType: UInt32 = 0x0000_0001
    public static let enhancedPacketType: UInt32 = 0x0000_0006
    public static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    public static let linktypeEthernet: UInt16 = 1

    // Option codes.
    static let optEnd: UInt16 = 0
    static let optComment: UInt16 = 1
    static let shbUserApplication: UInt16 = 4
    static let ifName: UInt16 = 2
    static let ifDescription: UInt16 = 3
    static let ifTsresol: UInt16 = 9
    static let epbFlags: UInt16 = 2

    /// Direction bits of `epb_flags`.
    public enum Direction: UInt32, Sendable {
        case unknown = 0, inbound = 1, outbound = 2
    }

    /// Section Header Block (section length unknown: -1, so it can be streamed).
    public static func sectionHeader(application: String) -> [UInt8] {
        var body: [UInt8] = []
        body.appendLE(byteOrderMagic)
        body.appendLE(UInt16(1)) // major
        body.appendLE(UInt16(0)) // minor
        body.appendLE(UInt64.max) // section length: not given
        var options: [(UInt16, [UInt8])] = []
        if !application.isEmpty { options.append((shbUserApplication, Array(application.utf8))) }
        body += encodeOptions(options)
        return block(sectionHeaderType, body)
    }

    /// Interface Description Block of an Ethernet interface with nanosecond timestamps.
    public static func interfaceDescription(name: String, description: String, snaplen: UInt32) -> [UInt8] {
        var body: [UInt8] = []
        body.appendLE(linktypeEthernet)
        body.appendLE(UInt16(0)) // reserved
        body.appendLE(snaplen)
        var options: [(UInt16, [UInt8])] = [(ifName, Array(name.utf8))]
        if !description.isEmpty { options.append((ifDescription, Array(description.utf8))) }
        options.append((ifTsresol, [9])) // 10^-9 s
        body += encodeOptions(options)
        return block(interfaceDescriptionType, body)
    }

    /// Enhanced Packet Block. `timestampNs` counts from the epoch in the
    /// interface's resolution (nanoseconds, as declared by `interfaceDescription`).
    public static func enhancedPacket(interface: UInt32, timestampNs: UInt64, data: UnsafeRawBufferPointer,
                                      originalLength: UInt32, direction: Direction = .unknown,
                                      comment: String = "") -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(20 + data.count + 32 + comment.utf8.count)
        body.appendLE(interface)
        body.appendLE(UInt32(truncatingIfNeeded: timestampNs >> 32))
        body.appendLE(UInt32(truncatingIfNeeded: timestampNs))
        body.appendLE(UInt32(data.count))
        body.appendLE(max(originalLength, UInt32(data.count)))
        body += data
        body.padTo4()
        var options: [(UInt16, [UInt8])] = []
        if direction != .unknown {
            var flags: [UInt8] = []
            flags.appendLE(direction.rawValue)
            options.append((epbFlags, flags))
        }
        if !comment.isEmpty { options.append((optComment, Array(comment.utf8))) }
        body += encodeOptions(options)
        return block(enhancedPacketType, body)
    }

    /// Convenience for tests and small frames.
    public static func enhancedPacket(interface: UInt32, timestampNs: UInt64, data: [UInt8], originalLength: UInt32,
                                      direction: Direction = .unknown, comment: String = "") -> [UInt8] {
        data.withUnsafeBytes {
            enhancedPacket(interface: interface, timestampNs: timestampNs, data: $0, originalLength: originalLength,
                           direction: direction, comment: comment)
        }
    }

    /// Options, each padded to 32 bits, ended by opt_endofopt; nothing when there are none.
    static func encodeOptions(_ options: [(UInt16, [UInt8])]) -> [UInt8] {
        if options.isEmpty { return [] }
        var out: [UInt8] = []
        for (code, value) in options {
            out.appendLE(code)
            out.appendLE(UInt16(value.count))
            out += value
            out.padTo4()
        }
        out.appendLE(optEnd)
        out.appendLE(UInt16(0))
        return out
    }

    /// Type, total length, body, total length again.
    static func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        let total = UInt32(12 + body.count)
        var out: [UInt8] = []
        out.reserveCapacity(Int(total))
        out.appendLE(type)
        out.appendLE(total)
        out += body
        out.appendLE(total)
        return out
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }

    mutating func padTo4() {
        while count % 4 != 0 { append(0) }
    }
}
