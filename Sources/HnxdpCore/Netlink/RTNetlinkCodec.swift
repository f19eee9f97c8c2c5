// RTNetlinkCodec.swift - pure rtnetlink encoding/decoding (no system calls).
//
// Wire format (host byte order, every message and attribute 4-byte aligned):
//   struct nlmsghdr  { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }   16 bytes
//   struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change; } 16 bytes
//   struct nlattr    { u16 len; u16 type; } + value, padded to 4 bytes
// `len` of a message / attribute counts its header and value but not the trailing padding.

import CHnxdpShim
import Glibc

/// One netlink message split out of a datagram.
public struct NetlinkMessage: Sendable, Equatable {
    /// `nlmsg_type` (RTM_NEWLINK, NLMSG_ERROR, NLMSG_DONE, ...).
    public var type: UInt16
    /// `nlmsg_flags` (NLM_F_MULTI, NLM_F_DUMP_INTR, ...).
    public var flags: UInt16
    /// `nlmsg_seq`: the sequence number of the request this answers (0 for notifications).
    public var seq: UInt32
    /// `nlmsg_pid`: the port id of the socket that caused the message (0 for the kernel's own events).
    public var pid: UInt32
    /// Everything after the 16-byte header, up to `nlmsg_len` (no trailing padding).
    public var payload: [UInt8]
}

/// Builds rtnetlink requests and parses replies and notifications. Pure: no system calls.
///
/// Parsers never trap on malformed input: every length is bounds-checked and a
/// message that does not fit throws `HnxdpError` (`.runtime`, "malformed netlink ...").
public enum RTNetlinkCodec {
    // MARK: Constants
    //
    // Message types, flags and attribute numbers are the kernel's own (RTM_NEWLINK,
    // NLM_F_DUMP, IFLA_MTU, ...: <linux/netlink.h>, <linux/rtnetlink.h>,
    // <linux/if_link.h>, through CHnxdpShim's hnxdp_netlink.h), used where they are
    // needed. Here only what the build machine's headers (6.1) do not have yet.

    /// IFLA_GSO_IPV4_MAX_SIZE (kernel 6.3, newer than the build machine's <linux/if_link.h>).
    static let IFLA_GSO_IPV4_MAX_SIZE = 63

    /// sizeof(struct nlmsghdr).
    public static let headerLength = MemoryLayout<nlmsghdr>.size
    /// sizeof(struct ifinfomsg).
    public static let ifinfomsgLength = MemoryLayout<ifinfomsg>.size
    /// Attribute header length (struct nlattr).
    static let attrHeaderLength = MemoryLayout<nlattr>.size
    /// NLA_TYPE_MASK: nla_type without its flag bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
    static let attrTypeMask = ~UInt16(NLA_F_NESTED | NLA_F_NET_BYTEORDER)

    /// NLMSG_ALIGN / NLA_ALIGN: round up to a multiple of 4.
    @inlinable
    public static func align4(_ n: Int) -> Int { (n + 3) & ~3 }

    // MARK: Building requests

    /// RTM_GETLINK for one link (by `ifindex`, or by `name` when `ifindex` is nil or 0),
    /// or a dump of every link in the namespace (NLM_F_DUMP) when both are nil.
    ///
    /// `skipStats`: ask the kernel to leave out the statistics it can skip (IFLA_EXT_MASK
    /// RTEXT_FILTER_SKIP_STATS: the IPv6 and VF statistics; IFLA_STATS64 stays), which
    /// `LinkInfo` does not hold: a fifth of each answer (1504 -> 1200 bytes for a veth).
    public static func getLinkRequest(seq: UInt32, ifindex: Int32?, name: String?, skipStats: Bool = false) -> [UInt8] {
        let dump = ifindex == nil && name == nil
        var w = Writer(type: UInt16(RTM_GETLINK), flags: UInt16(NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0)), seq: seq)
        w.appendIfinfomsg(index: ifindex ?? 0, flags: 0, change: 0)
        if let name {
            w.appendAttribute(type: UInt16(IFLA_IFNAME), cString: name)
        }
        if skipStats {
            w.appendAttribute(type: UInt16(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
        }
        return w.finish()
    }

    /// RTM_NEWLINK (set) with NLM_F_REQUEST|NLM_F_ACK for an existing link.
    ///
    /// Flag changes go in `ifi_flags`/`ifi_change` (only the bits the change names are
    /// touched); MTU and GSO limits as u32 attributes.
    public static func setLinkRequest(seq: UInt32, ifindex: Int32, change: LinkChange) -> [UInt8] {
        var w = Writer(type: UInt16(RTM_NEWLINK), flags: UInt16(NLM_F_REQUEST | NLM_F_ACK), seq: seq)
        w.appendIfinfomsg(index: ifindex, flags: change.flagValues, change: change.flagMask)
        if let mtu = change.mtu { w.appendAttribute(type: UInt16(IFLA_MTU), u32: mtu) }
        if let v = change.gsoMaxSize { w.appendAttribute(type: UInt16(IFLA_GSO_MAX_SIZE), u32: v) }
        if let v = change.gsoMaxSegs { w.appendAttribute(type: UInt16(IFLA_GSO_MAX_SEGS), u32: v) }
        if let v = change.gsoIPv4MaxSize { w.appendAttribute(type: UInt16(IFLA_GSO_IPV4_MAX_SIZE), u32: v) }
        return w.finish()
    }

    /// RTM_GETADDR dump of every address of every family.
    public static func getAddressesRequest(seq: UInt32) -> [UInt8] {
        dumpRequest(type: RTM_GETADDR, seq: seq, familyHeader: ifaddrmsg.self)
    }

    /// A dump request for every object of every family: `type` and an all-zero
    /// family header (AF_UNSPEC, no filter).
    static func dumpRequest<Header>(type: Int, seq: UInt32, familyHeader: Header.Type) -> [UInt8] {
        var w = Writer(type: UInt16(type), flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP), seq: seq)
        for _ in 0..<MemoryLayout<Header>.size { w.append(u8: 0) }
        return w.finish()
    }

    /// The payload of `message` when it is of `type`, nil when it is not; throws when the
    /// payload is too short for its family header (`name`).
    static func payload<Header>(of message: NetlinkMessage, type: Int, familyHeader: Header.Type,
                                _ name: String) throws -> [UInt8]? {
        guard message.type == type else { return nil }
        guard message.payload.count >= MemoryLayout<Header>.size else { throw malformed(name) }
        return message.payload
    }

    /// One RTM_NEWADDR: the address on its interface (IFA_LOCAL where present, as for
    /// point-to-point links, else IFA_ADDRESS); nil for another message type.
    public static func parseAddress(_ message: NetlinkMessage) throws -> InterfaceAddress? {
        guard let p = try payload(of: message, type: RTM_NEWADDR, familyHeader: ifaddrmsg.self, "ifaddrmsg") else { return nil }
        let b = p.startIndex
        let family = p[b], prefix = p[b + 1], scope = p[b + 3]
        let index = Int32(bitPattern: readU32(p, b + 4))
        var address: [UInt8]? = nil, local: [UInt8]? = nil
        for attr in try parseAttributes(p[(b + MemoryLayout<ifaddrmsg>.size)...], context: "address attribute") {
            switch Int(attr.type) {
            case IFA_ADDRESS: address = Array(attr.value)
            case IFA_LOCAL: local = Array(attr.value)
            default: break
            }
        }
        guard let bytes = local ?? address else { return nil }
        return InterfaceAddress(ifindex: index, family: family, prefixLength: prefix, scope: scope, bytes: bytes)
    }

    /// RTM_GETROUTE dump of every route of every family.
    public static func getRoutesRequest(seq: UInt32) -> [UInt8] {
        dumpRequest(type: RTM_GETROUTE, seq: seq, familyHeader: rtmsg.self)
    }

    /// One RTM_NEWROUTE with an output interface (RTA_OIF); nil for another message
    /// type or a route without one (multipath, blackhole).
    public static func parseRoute(_ message: NetlinkMessage) throws -> InterfaceRoute? {
        guard let p = try payload(of: message, type: RTM_NEWROUTE, familyHeader: rtmsg.self, "rtmsg") else { return nil }
        let b = p.startIndex
        var route = InterfaceRoute(oif: 0, family: p[b], destinationLength: p[b + 1], destination: [],
                                   table: UInt32(p[b + 4]), protocol: p[b + 5], type: p[b + 7])
        for attr in try parseAttributes(p[(b + MemoryLayout<rtmsg>.size)...], context: "route attribute") {
            switch rtattr_type_t(UInt32(attr.type)) {
            case RTA_DST: route.destination = Array(attr.value)
            case RTA_OIF: route.oif = Int32(bitPattern: try u32(attr.value, "RTA_OIF"))
            case RTA_TABLE: route.table = try u32(attr.value, "RTA_TABLE") // beyond 255
            default: break
            }
        }
        return route.oif == 0 ? nil : route
    }

    // MARK: Parsing

    /// Splits one received datagram into its netlink messages.
    /// Throws when a message header is cut off or claims more bytes than the datagram holds.
    public static func parseMessages(_ bytes: [UInt8]) throws -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        var offset = 0
        while offset < bytes.count {
            let remaining = bytes.count - offset
            guard remaining >= headerLength else {
                throw malformed("netlink datagram has \(remaining) trailing bytes, less than a message header")
            }
            let length = Int(readU32(bytes, offset))
            guard length >= headerLength else {
                throw malformed("netlink message at offset \(offset) has length \(length) < \(headerLength)")
            }
            guard length <= remaining else {
                throw malformed("netlink message at offset \(offset) has length \(length) but only \(remaining) bytes remain")
            }
            messages.append(NetlinkMessage(
                type: readU16(bytes, offset + 4),
                flags: readU16(bytes, offset + 6),
                seq: readU32(bytes, offset + 8),
                pid: readU32(bytes, offset + 12),
                payload: Array(bytes[(offset + headerLength)..<(offset + length)])
            ))
            // The last message of a datagram need not be padded.
            offset = min(offset + align4(length), bytes.count)
        }
        return messages
    }

    /// Parses RTM_NEWLINK / RTM_DELLINK into a `LinkInfo`; nil for any other message type.
    /// Throws when the message is malformed (short ifinfomsg, attribute overrunning its message,
    /// an attribute value too short for its type).
    public static func parseLink(_ message: NetlinkMessage) throws -> LinkInfo? {
        guard message.type == RTM_NEWLINK || message.type == RTM_DELLINK else { return nil }
        let p = message.payload
        guard p.count >= ifinfomsgLength else {
            throw malformed("link message payload is \(p.count) bytes, shorter than struct ifinfomsg")
        }
        var link = LinkInfo(
            ifindex: Int32(bitPattern: readU32(p, 4)),
            name: "",
            arpType: readU16(p, 2),
            flags: readU32(p, 8)
        )
        for attr in try parseAttributes(p[ifinfomsgLength...], context: "link attribute") {
            let v = attr.value
            switch Int(attr.type) {
            case IFLA_ADDRESS: link.mac = Array(v)
            case IFLA_IFNAME: link.name = decodeString(v)
            case IFLA_MTU: link.mtu = try u32(v, "IFLA_MTU")
            case IFLA_LINK: link.linkIndex = Int32(bitPattern: try u32(v, "IFLA_LINK"))
            case IFLA_MASTER: link.masterIndex = Int32(bitPattern: try u32(v, "IFLA_MASTER"))
            case IFLA_OPERSTATE: link.operState = try u8(v, "IFLA_OPERSTATE")
            case IFLA_CARRIER: link.carrier = try u8(v, "IFLA_CARRIER") != 0
            case IFLA_PROMISCUITY: link.promiscuity = try u32(v, "IFLA_PROMISCUITY")
            case IFLA_ALLMULTI: link.allmulti = try u32(v, "IFLA_ALLMULTI")
            case IFLA_MIN_MTU: link.minMTU = try u32(v, "IFLA_MIN_MTU")
            case IFLA_MAX_MTU: link.maxMTU = try u32(v, "IFLA_MAX_MTU")
            case IFLA_GSO_MAX_SIZE: link.gsoMaxSize = try u32(v, "IFLA_GSO_MAX_SIZE")
            case IFLA_GSO_MAX_SEGS: link.gsoMaxSegs = try u32(v, "IFLA_GSO_MAX_SEGS")
            case IFLA_GSO_IPV4_MAX_SIZE: link.gsoIPv4MaxSize = try u32(v, "IFLA_GSO_IPV4_MAX_SIZE")
            case IFLA_GRO_MAX_SIZE: link.groMaxSize = try u32(v, "IFLA_GRO_MAX_SIZE")
            case IFLA_TSO_MAX_SIZE: link.tsoMaxSize = try u32(v, "IFLA_TSO_MAX_SIZE")
            case IFLA_TSO_MAX_SEGS: link.tsoMaxSegs = try u32(v, "IFLA_TSO_MAX_SEGS")
            case IFLA_PERM_ADDRESS:
                link.permanentMAC = v.contains(where: { $0 != 0 }) ? Array(v) : nil
            case IFLA_LINKINFO:
                for info in try parseAttributes(v, context: "IFLA_LINKINFO attribute") {
                    switch Int(info.type) {
                    case IFLA_INFO_KIND: link.kind = decodeString(info.value)
                    case IFLA_INFO_SLAVE_KIND: link.slaveKind = decodeString(info.value)
                    default: break
                    }
                }
            default:
                break
            }
        }
        return link
    }

    /// tx_packets of IFLA_STATS64 in an RTM_NEWLINK (kept out of `LinkInfo`, whose
    /// equality means "the same configuration"); nil when absent.
    public static func parseTxPackets(_ message: NetlinkMessage) throws -> UInt64? {
        guard message.type == RTM_NEWLINK, message.payload.count >= ifinfomsgLength else { return nil }
        for attr in try parseAttributes(message.payload[ifinfomsgLength...], context: "link attribute")
        where attr.type == IFLA_STATS64 && attr.value.count >= 16 {
            // rx_packets, tx_packets, ... (u64 each, host order, possibly unaligned here)
            let v = attr.value
            return (0..<8).reduce(UInt64(0)) { $0 | UInt64(v[v.startIndex + 8 + $1]) << (8 * UInt64($1)) }
        }
        return nil
    }

    /// For NLMSG_ERROR: the positive errno it reports, 0 for an acknowledgement.
    /// nil for any other message type; EPROTO for an NLMSG_ERROR too short to hold its code.
    public static func parseError(_ message: NetlinkMessage) -> Int32? {
        guard message.type == NLMSG_ERROR else { return nil }
        guard message.payload.count >= 4 else { return EPROTO }
        let code = Int32(bitPattern: readU32(message.payload, 0))
        // The kernel sends -errno; guard against Int32.min, which has no positive.
        return code == Int32.min ? EPROTO : (code < 0 ? -code : code)
    }

    /// For NLMSG_ERROR with extended ack TLVs (NETLINK_EXT_ACK): the kernel's message,
    /// e.g. "MTU greater than device maximum". nil when there is none or it cannot be found.
    public static func parseExtendedAckMessage(_ message: NetlinkMessage) -> String? {
        guard message.type == NLMSG_ERROR, message.flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return nil }
        let p = message.payload
        // int error; struct nlmsghdr msg (+ the request's payload unless capped); TLVs.
        guard p.count >= 4 + headerLength else { return nil }
        var offset = 4 + headerLength
        if message.flags & UInt16(NLM_F_CAPPED) == 0 {
            let echoed = Int(readU32(p, 4))
            guard echoed >= headerLength else { return nil }
            offset = 4 + align4(echoed)
        }
        guard offset <= p.count,
              let tlvs = try? parseAttributes(p[offset...], context: "extended ack attribute")
        else { return nil }
        for tlv in tlvs where tlv.type == NLMSGERR_ATTR_MSG.rawValue {
            let text = decodeString(tlv.value)
            return text.isEmpty ? nil : text
        }
        return nil
    }

    /// For NLMSG_DONE: the error the kernel put in it (positive errno; 0 = dump complete).
    /// nil for any other type; an empty payload (old kernels) counts as 0.
    public static func parseDone(_ message: NetlinkMessage) -> Int32? {
        guard message.type == NLMSG_DONE else { return nil }
        guard message.payload.count >= 4 else { return 0 }
        let code = Int32(bitPattern: readU32(message.payload, 0))
        return code == Int32.min ? EPROTO : (code < 0 ? -code : code)
    }

    /// One netlink attribute: its type (NLA_F_NESTED / NLA_F_NET_BYTEORDER stripped) and value.
    public struct Attribute: Sendable, Equatable {
        public var type: UInt16
        public var value: ArraySlice<UInt8>
    }

    /// Splits a run of netlink attributes. Each attribute must fit in `bytes`; up to 3 bytes of
    /// trailing padding are tolerated. `context` names the run in error messages.
    public static func parseAttributes(_ bytes: ArraySlice<UInt8>, context: String = "attribute") throws -> [Attribute] {
        var attrs: [Attribute] = []
        var offset = bytes.startIndex
        while bytes.endIndex - offset >= attrHeaderLength {
            let length = Int(readU16(bytes, offset))
            let type = readU16(bytes, offset + 2) & attrTypeMask
            guard length >= attrHeaderLength else {
                throw malformed("\(context) type \(type) has length \(length) < \(attrHeaderLength)")
            }
            guard length <= bytes.endIndex - offset else {
                throw malformed("\(context) type \(type) has length \(length) but only \(bytes.endIndex - offset) bytes remain")
            }
            attrs.append(Attribute(type: type, value: bytes[(offset + attrHeaderLength)..<(offset + length)]))
            offset = min(offset + align4(length), bytes.endIndex)
        }
        return attrs
    }

    // MARK: Helpers

    static func malformed(_ what: String) -> HnxdpError {
        HnxdpError(.runtime, "malformed netlink message: \(what)")
    }

    private static func u32(_ v: ArraySlice<UInt8>, _ name: String) throws -> UInt32 {
        guard v.count >= 4 else { throw malformed("\(name) is \(v.count) bytes, expected 4") }
        return readU32(v, v.startIndex)
    }

    private static func u8(_ v: ArraySlice<UInt8>, _ name: String) throws -> UInt8 {
        guard let b = v.first else { throw malformed("\(name) is empty, expected 1 byte") }
        return b
    }

    /// A NUL-terminated (or unterminated) string attribute; invalid UTF-8 is replaced, not rejected.
    static func decodeString(_ v: ArraySlice<UInt8>) -> String {
        let end = v.firstIndex(of: 0) ?? v.endIndex
        return String(decoding: v[v.startIndex..<end], as: UTF8.self)
    }

    /// Reads a host-byte-order integer (netlink uses the machine's byte order).
    /// The caller has checked that the bytes are there.
    static func readU16<C: RandomAccessCollection>(_ b: C, _ i: C.Index) -> UInt16 where C.Element == UInt8, C.Index == Int {
        var v: UInt16 = 0
        withUnsafeMutableBytes(of: &v) { raw in
            raw[0] = b[i]
            raw[1] = b[i + 1]
        }
        return v
    }

    static func readU32<C: RandomAccessCollection>(_ b: C, _ i: C.Index) -> UInt32 where C.Element == UInt8, C.Index == Int {
        var v: UInt32 = 0
        withUnsafeMutableBytes(of: &v) { raw in
            for k in 0..<4 { raw[k] = b[i + k] }
        }
        return v
    }
}

extension RTNetlinkCodec {
    /// Appends one netlink message: header, fixed family header, attributes (each padded to 4).
    struct Writer {
        private(set) var bytes: [UInt8]

        init(type: UInt16, flags: UInt16, seq: UInt32, pid: UInt32 = 0) {
            bytes = []
            bytes.reserveCapacity(64)
            append(u32: 0) // nlmsg_len, patched by finish()
            append(u16: type)
            append(u16: flags)
            append(u32: seq)
            append(u32: pid)
        }

        mutating func append(u8 v: UInt8) { bytes.append(v) }
        mutating func append(u16 v: UInt16) { withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) } }
        mutating func append(u32 v: UInt32) { withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) } }

        mutating func pad() {
            while bytes.count % 4 != 0 { bytes.append(0) }
        }

        /// struct ifinfomsg with family AF_UNSPEC and type 0.
        mutating func appendIfinfomsg(index: Int32, flags: UInt32, change: UInt32) {
            append(u8: 0)   // ifi_family
            append(u8: 0)   // __ifi_pad
            append(u16: 0)  // ifi_type
            append(u32: UInt32(bitPattern: index))
            append(u32: flags)
            append(u32: change)
        }

        mutating func appendAttribute(type: UInt16, value: [UInt8]) {
            precondition(value.count <= Int(UInt16.max) - RTNetlinkCodec.attrHeaderLength,
                         "netlink attribute value of \(value.count) bytes does not fit nla_len")
            pad()
            append(u16: UInt16(RTNetlinkCodec.attrHeaderLength + value.count))
            append(u16: type)
            bytes.append(contentsOf: value)
            pad()
        }

        mutating func appendAttribute(type: UInt16, u32 v: UInt32) {
            appendAttribute(type: type, value: withUnsafeBytes(of: v) { Array($0) })
        }

        mutating func appendAttribute(type: UInt16, cString s: String) {
            appendAttribute(type: type, value: Array(s.utf8) + [0])
        }

        /// Pads, patches nlmsg_len and returns the message.
        mutating func finish() -> [UInt8] {
            pad()
            let length = UInt32(bytes.count)
            withUnsafeBytes(of: length) { raw in
                for k in 0..<4 { bytes[k] = raw[k] }
            }
            return bytes
        }
    }
}

/// A route through an interface (`ip route`, `ip -6 route`).
public struct InterfaceRoute: Sendable, Equatable, CustomStringConvertible {
    public var oif: Int32
    public var family: UInt8
    public var destinationLength: UInt8
    /// Empty for a default route.
    public var destination: [UInt8]
    /// RT_TABLE_*: 254 main, 255 local.
    public var table: UInt32
    /// RTPROT_*: 2 kernel (made for an address or link-local), others set by a user or daemon.
    public var `protocol`: UInt8
    /// RTN_*: 1 unicast.
    public var type: UInt8

    /// A unicast route of the main table that a user or a daemon (DHCP, RA, static
    /// configuration) added, not one the kernel made for an address.
    public var isConfigured: Bool { table == 254 && type == 1 && `protocol` != 2 }

    public var description: String {
        guard !destination.isEmpty else { return family == 10 ? "default (IPv6)" : "default" }
        let address = InterfaceAddress(ifindex: oif, family: family, prefixLength: destinationLength, scope: 0,
                                       bytes: destination)
        return address.description
    }
}

/// An address configured on an interface (`ip addr`).
public struct InterfaceAddress: Sendable, Equatable, CustomStringConvertible {
    public var ifindex: Int32
    public var family: UInt8
    public var prefixLength: UInt8
    /// RT_SCOPE_*: 0 universe, 253 link, 254 host.
    public var scope: UInt8
    public var bytes: [UInt8]

    /// A link-local address (fe80::/10 and the like): every IPv6 device has one.
    public var isLinkLocal: Bool { scope == 253 }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        let af = Int32(family)
        _ = bytes.withUnsafeBytes { inet_ntop(af, $0.baseAddress, &text, socklen_t(text.count)) }
        return "\(String(cString: text))/\(prefixLength)"
    }
}
