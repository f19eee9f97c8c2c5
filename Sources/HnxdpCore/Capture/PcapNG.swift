/// pcapng blocks (the IETF draft "PCAP Next Generation Dump File Format"),
/// little-endian, as `hnxdp capture` writes them: one Section Header Block,
/// one Interface Description Block per path of the pair, then one Enhanced
/// Packet Block per frame. Pure: bytes in, bytes out (unit-tested byte by byte).
public enum PcapNG {
    enum BlockType: UInt32 {
        case sectionHeader = 0x0A0D_0D0A, interfaceDescription = 0x0000_0001, enhancedPacket = 0x0000_0006
    }

    /// One option of a block: its code (each block type numbers its own; 1 is a
    /// comment in any) and value.
    struct Option {
        var code: UInt16
        var value: [UInt8]

        static func comment(_ text: String) -> Option { Option(code: 1, value: Array(text.utf8)) }
        /// Section Header Block: shb_userappl.
        static func application(_ name: String) -> Option { Option(code: 4, value: Array(name.utf8)) }
        /// Interface Description Block: if_name, if_description, if_tsresol (10^-exponent s).
        static func interfaceName(_ name: String) -> Option { Option(code: 2, value: Array(name.utf8)) }
        static func interfaceDescription(_ text: String) -> Option { Option(code: 3, value: Array(text.utf8)) }
        static func timestampResolution(exponent: UInt8) -> Option { Option(code: 9, value: [exponent]) }
        /// Enhanced Packet Block: epb_flags (its direction bits).
        static func flags(_ direction: Direction) -> Option {
            var value: [UInt8] = []
            value.appendLE(direction.rawValue)
            return Option(code: 2, value: value)
        }
    }

    /// Direction bits of `epb_flags`.
    public enum Direction: UInt32, Sendable {
        case unknown = 0, inbound = 1, outbound = 2
    }

    /// Section Header Block (section length unknown: -1, so it can be streamed).
    public static func sectionHeader(application: String) -> [UInt8] {
        var body: [UInt8] = []
        body.appendLE(UInt32(0x1A2B_3C4D)) // byte-order magic
        body.appendLE(UInt16(1)) // major
        body.appendLE(UInt16(0)) // minor
        body.appendLE(UInt64.max) // section length: not given
        body += encodeOptions(application.isEmpty ? [] : [.application(application)])
        return block(.sectionHeader, body)
    }

    /// Interface Description Block of an Ethernet interface with nanosecond timestamps.
    public static func interfaceDescription(name: String, description: String, snaplen: UInt32) -> [UInt8] {
        var body: [UInt8] = []
        body.appendLE(UInt16(1)) // LINKTYPE_ETHERNET
        body.appendLE(UInt16(0)) // reserved
        body.appendLE(snaplen)
        var options: [Option] = [.interfaceName(name)]
        if !description.isEmpty { options.append(.interfaceDescription(description)) }
        options.append(.timestampResolution(exponent: 9)) // ns
        body += encodeOptions(options)
        return block(.interfaceDescription, body)
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
        var options: [Option] = []
        if direction != .unknown { options.append(.flags(direction)) }
        if !comment.isEmpty { options.append(.comment(comment)) }
        body += encodeOptions(options)
        return block(.enhancedPacket, body)
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
    static func encodeOptions(_ options: [Option]) -> [UInt8] {
        if options.isEmpty { return [] }
        var out: [UInt8] = []
        for option in options {
            out.appendLE(option.code)
            out.appendLE(UInt16(option.value.count))
            out += option.value
            out.padTo4()
        }
        out.appendLE(UInt16(0)) // opt_endofopt
        out.appendLE(UInt16(0))
        return out
    }

    /// Type, total length, body, total length again.
    static func block(_ type: BlockType, _ body: [UInt8]) -> [UInt8] {
        let total = UInt32(12 + body.count)
        var out: [UInt8] = []
        out.reserveCapacity(Int(total))
        out.appendLE(type.rawValue)
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
