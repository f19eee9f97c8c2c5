/// Turns a received frame into its reply in place: Ethernet source and
/// destination swapped, and for IPv4/IPv6 the addresses, for UDP the ports.
/// Swapping leaves the IPv4 header and UDP checksums valid (a one's
/// complement sum does not depend on order), so nothing is recomputed.
public enum FrameReflection {
    /// What was swapped.
    public struct Result: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let ethernet = Result(rawValue: 1)
        public static let ip = Result(rawValue: 2)
        public static let udp = Result(rawValue: 4)
    }

    /// Swaps in place; returns what it swapped (empty: frame shorter than an Ethernet header).
    @discardableResult
    public static func swap(_ frame: UnsafeMutableRawBufferPointer) -> Result {
        var done: Result = []
        let n = frame.count
        guard n >= 14 else { return done }
        swapBytes(frame, 0, 6, count: 6)
        done.insert(.ethernet)
        var l3 = 14
        var type = UInt16(frame[12]) << 8 | UInt16(frame[13])
        if type == 0x8100 || type == 0x88A8 { // one VLAN tag
            guard n >= 18 else { return done }
            type = UInt16(frame[16]) << 8 | UInt16(frame[17])
            l3 = 18
        }
        var l4 = 0
        var proto: UInt8 = 0
        switch type {
        case 0x0800:
            guard n >= l3 + 20 else { return done }
            let ihl = Int(frame[l3] & 0x0f) * 4
            guard frame[l3] >> 4 == 4, ihl >= 20, n >= l3 + ihl else { return done }
            swapBytes(frame, l3 + 12, l3 + 16, count: 4)
            done.insert(.ip)
            let fragOffset = (UInt16(frame[l3 + 6]) << 8 | UInt16(frame[l3 + 7])) & 0x1fff
            guard fragOffset == 0 else { return done }
            proto = frame[l3 + 9]
            l4 = l3 + ihl
        case 0x86DD:
            guard n >= l3 + 40, frame[l3] >> 4 == 6 else { return done }
            swapBytes(frame, l3 + 8, l3 + 24, count: 16)
            done.insert(.ip)
            proto = frame[l3 + 6]
            l4 = l3 + 40
        default:
            return done
        }
        if proto == 17, n >= l4 + 8 {
            swapBytes(frame, l4, l4 + 2, count: 2)
            done.insert(.udp)
        }
        return done
    }

    private static func swapBytes(_ b: UnsafeMutableRawBufferPointer, _ a: Int, _ c: Int, count: Int) {
        for i in 0..<count {
            let t = b[a + i]
            b[a + i] = b[c + i]
            b[c + i] = t
        }
    }
}
