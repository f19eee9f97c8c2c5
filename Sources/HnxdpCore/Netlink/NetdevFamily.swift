// NetdevFamily.swift - the XDP features each device reports through the generic
// netlink family "netdev" (Linux 6.3+), for `hnxdp probe`.

import CHnxdpShim
import Glibc

/// What a device's driver offers XDP (NETDEV_A_DEV_XDP_FEATURES).
public struct XDPFeatures: Sendable, Equatable {
    public var bits: UInt64
    public var zeroCopyMaxSegments: UInt32?

    /// NETDEV_XDP_ACT_* (include/uapi/linux/netdev.h).
    public static let basic: UInt64 = 1 << 0        // native XDP (pass, drop, tx)
    public static let redirect: UInt64 = 1 << 1
    public static let ndoXmit: UInt64 = 1 << 2      // takes redirected XDP frames to transmit
    public static let xskZeroCopy: UInt64 = 1 << 3  // AF_XDP zero-copy

    public var native: Bool { bits & XDPFeatures.basic != 0 }
    public var transmit: Bool { bits & XDPFeatures.ndoXmit != 0 }
    public var zeroCopy: Bool { bits & XDPFeatures.xskZeroCopy != 0 }
}

enum NetdevFamilyCodec {
    // The generic netlink controller's numbers come from <linux/genetlink.h>
    // (GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_*); the netdev family's
    // (<linux/netdev.h>, kernel 6.3) are newer than the build machine's headers.
    static let netdevCmdDevGet: UInt8 = 1        // NETDEV_CMD_DEV_GET
    static let devAttrIfindex: UInt16 = 1        // NETDEV_A_DEV_IFINDEX
    static let devAttrXDPFeatures: UInt16 = 3    // NETDEV_A_DEV_XDP_FEATURES (u64)
    static let devAttrXDPZCMaxSegs: UInt16 = 4   // NETDEV_A_DEV_XDP_ZC_MAX_SEGS (u32)

    /// A generic netlink request: nlmsghdr, genlmsghdr (cmd, version 1), attributes.
    static func request(family: UInt16, command: UInt8, seq: UInt32, dump: Bool,
                        attributes: (inout RTNetlinkCodec.Writer) -> Void = { _ in }) -> [UInt8] {
        var w = RTNetlinkCodec.Writer(type: family, flags: UInt16(NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0)), seq: seq)
        w.append(u8: command)
        w.append(u8: 1)
        w.append(u16: 0)
        attributes(&w)
        return w.finish()
    }

    static func attributes(_ message: NetlinkMessage) throws -> [RTNetlinkCodec.Attribute] {
        guard message.payload.count >= 4 else { throw RTNetlinkCodec.malformed("generic netlink message of \(message.payload.count) bytes") }
        return try RTNetlinkCodec.parseAttributes(message.payload[4...], context: "generic netlink attribute")
    }

    static func le<T: FixedWidthInteger>(_ v: ArraySlice<UInt8>, _: T.Type) -> T? {
        guard v.count >= MemoryLayout<T>.size else { return nil }
        return (0..<MemoryLayout<T>.size).reduce(T(0)) { $0 | T(v[v.startIndex + $1]) << (8 * $1) }
    }
}

extension RTNetlink {
    /// XDP features by ifindex of every device of the namespace; nil when the kernel
    /// has no "netdev" family (before 6.3: the features are not reported there).
    /// `self` must be a generic netlink client (`RTNetlink.generic()`).
    public func xdpFeatures() throws -> [Int32: XDPFeatures]? {
        let family: UInt16
        do {
            let (messages, _) = try exchange("resolve the generic netlink family netdev", expectAck: false) { seq in
                NetdevFamilyCodec.request(family: UInt16(GENL_ID_CTRL), command: UInt8(CTRL_CMD_GETFAMILY), seq: seq, dump: false) {
                    $0.appendAttribute(type: UInt16(CTRL_ATTR_FAMILY_NAME), cString: "netdev")
                }
            }
            guard let id = try messages.lazy.compactMap({ try NetdevFamilyCodec.attributes($0).first { $0.type == CTRL_ATTR_FAMILY_ID } })
                .first.flatMap({ NetdevFamilyCodec.le($0.value, UInt16.self) }) else { return nil }
            family = id
        } catch let e as HnxdpError where e.errno == ENOENT {
            return nil
        }
        let (messages, _) = try exchange("dump the netdev family's devices", expectAck: false) { seq in
            NetdevFamilyCodec.request(family: family, command: NetdevFamilyCodec.netdevCmdDevGet, seq: seq, dump: true)
        }
        var result: [Int32: XDPFeatures] = [:]
        for message in messages where message.type == family {
            let attrs = try NetdevFamilyCodec.attributes(message)
            guard let ifindex = attrs.first(where: { $0.type == NetdevFamilyCodec.devAttrIfindex }).flatMap({ NetdevFamilyCodec.le($0.value, UInt32.self) }) else { continue }
            let bits = attrs.first { $0.type == NetdevFamilyCodec.devAttrXDPFeatures }.flatMap { NetdevFamilyCodec.le($0.value, UInt64.self) } ?? 0
            let zc = attrs.first { $0.type == NetdevFamilyCodec.devAttrXDPZCMaxSegs }.flatMap { NetdevFamilyCodec.le($0.value, UInt32.self) }
            result[Int32(bitPattern: ifindex)] = XDPFeatures(bits: bits, zeroCopyMaxSegments: zc)
        }
        return result
    }
}
