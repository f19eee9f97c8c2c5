// RTNetlinkCodec.swift - pure rtnetlink encoding/decoding (no system calls).
//
// Wire format (host byte order, every message and attribute 4-byte aligned):
//   struct nlmsghdr  { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }   16 bytes
//   struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change; } 16 bytes
//   struct nlattr    { u16 len; u16 type; } + value, padded to 4 bytes
// `len` of a message / attribute counts its header and value but not the trailing padding.

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
    // MARK: Constants (include/uapi/linux/netlink.h, rtnetlink.h, if_link.h)

    /// Netlink message types and flags.
    public enum Message {
        public static let noop: UInt16 = 1          // NLMSG_NOOP
        public static let error: UInt16 = 2         // NLMSG_ERROR
        public static let done: UInt16 = 3          // NLMSG_DONE
        public static let overrun: UInt16 = 4       // NLMSG_OVERRUN
        public static let newLink: UInt16 = 16      // RTM_NEWLINK
        public static let delLink: UInt16 = 17      // RTM_DELLINK
        public static let getLink: UInt16 = 18      // RTM_GETLINK
        public static let setLink: UInt16 = 19      // RTM_SETLINK
        public static let newAddr: UInt16 = 20      // RTM_NEWADDR
        public static let getAddr: UInt16 = 22      // RTM_GETADDR
        public static let newRoute: UInt16 = 24     // RTM_NEWROUTE
        public static let getRoute: UInt16 = 26     // RTM_GETROUTE
    }


    /// `nlmsg_flags` bits.
    public enum Flag {
        public static let request: UInt16 = 0x01    // NLM_F_REQUEST
        public static let multi: UInt16 = 0x02      // NLM_F_MULTI
        public static let ack: UInt16 = 0x04        // NLM_F_ACK
        public static let echo: UInt16 = 0x08       // NLM_F_ECHO
        public static let dumpInterrupted: UInt16 = 0x10 // NLM_F_DUMP_INTR
        public static let dumpFiltered: UInt16 = 0x20    // NLM_F_DUMP_FILTERED
        public static let root: UInt16 = 0x100      // NLM_F_ROOT
        public static let match: UInt16 = 0x200     // NLM_F_MATCH
        public static let dump: UInt16 = 0x300      // NLM_F_DUMP = ROOT | MATCH
        /// On NLMSG_ERROR: the echoed request was cut to its header (NETLINK_CAP_ACK).
        public static let capped: UInt16 = 0x100    // NLM_F_CAPPED
        /// On NLMSG_ERROR: extended ack TLVs follow the echoed request (NETLINK_EXT_ACK).
        public static let ackTLVs: UInt16 = 0x200   // NLM_F_ACK_TLVS
    }

    /// IFLA_* link attribute types. Numbers from include/uapi/linux/if_link.h (kernel 6.18);
    /// the ones newer than the build machine's headers are spelled out here.
    public enum Attr {
        public static let address: UInt16 = 1       // IFLA_ADDRESS
        public static let broadcast: UInt16 = 2     // IFLA_BROADCAST
        public static let ifname: UInt16 = 3        // IFLA_IFNAME
        public static let mtu: UInt16 = 4           // IFLA_MTU
        public static let link: UInt16 = 5          // IFLA_LINK
        public static let master: UInt16 = 10       // IFLA_MASTER
        public static let txQueueLen: UInt16 = 13   // IFLA_TXQLEN
        public static let stats64: UInt16 = 23      // IFLA_STATS64 (struct rtnl_link_stats64)
        public static let operState: UInt16 = 16    // IFLA_OPERSTATE
        public static let linkMode: UInt16 = 17     // IFLA_LINKMODE
        public static let linkInfo: UInt16 = 18     // IFLA_LINKINFO (nested)
        public static let extMask: UInt16 = 29      // IFLA_EXT_MASK
        public static let promiscuity: UInt16 = 30  // IFLA_PROMISCUITY
        public static let carrier: UInt16 = 33      // IFLA_CARRIER
        public static let gsoMaxSegs: UInt16 = 40   // IFLA_GSO_MAX_SEGS
        public static let gsoMaxSize: UInt16 = 41   // IFLA_GSO_MAX_SIZE
        public static let minMTU: UInt16 = 50       // IFLA_MIN_MTU
        public static let maxMTU: UInt16 = 51       // IFLA_MAX_MTU
        public static let permAddress: UInt16 = 54  // IFLA_PERM_ADDRESS
        public static let groMaxSize: UInt16 = 58   // IFLA_GRO_MAX_SIZE
        public static let tsoMaxSize: UInt16 = 59   // IFLA_TSO_MAX_SIZE
        public static let tsoMaxSegs: UInt16 = 60   // IFLA_TSO_MAX_SEGS
        public static let allmulti: UInt16 = 61     // IFLA_ALLMULTI
        public static let gsoIPv4MaxSize: UInt16 = 63 // IFLA_GSO_IPV4_MAX_SIZE (6.3)
        public static let groIPv4MaxSize: UInt16 = 64 // IFLA_GRO_IPV4_MAX_SIZE (6.3)
    }

    /// IFLA_INFO_* attributes nested in IFLA_LINKINFO.
    public enum LinkInfoAttr {
        public static let kind: UInt16 = 1          // IFLA_INFO_KIND
        public static let data: UInt16 = 2          // IFLA_INFO_DATA
        public static let xstats: UInt16 = 3        // IFLA_INFO_XSTATS
        public static let slaveKind: UInt16 = 4     // IFLA_INFO_SLAVE_KIND
        public static let slaveData: UInt16 = 5     // IFLA_INFO_SLAVE_DATA
    }

    /// NLMSGERR_ATTR_* extended-ack TLVs after an NLMSG_ERROR's echoed request.
    public enum ErrorAttr {
        public static let message: UInt16 = 1       // NLMSGERR_ATTR_MSG (string)
        public static let offset: UInt16 = 2        // NLMSGERR_ATTR_OFFS (u32)
    }

    /// sizeof(struct nlmsghdr).
    public static let headerLength = 16
    /// sizeof(struct ifinfomsg).
    public static let ifinfomsgLength = 16
    /// Attribute header length (struct nlattr).
    static let attrHeaderLength = 4
    /// NLA_F_NESTED | NLA_F_NET_BYTEORDER: flag bits in nla_type that are not part of the type.
    static let attrTypeMask: UInt16 = 0x3FFF

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
        var w = Writer(type: Message.getLink,
                              flags: Flag.request | (dump ? Flag.dump : 0), seq: seq)
        w.appendIfinfomsg(index: ifindex ?? 0, flags: 0, change: 0)
        if let name {
            w.appendAttribute(type: Attr.ifname, cString: name)
        }
        if skipStats {
            w.appendAttribute(type: Attr.extMask, u32: ExtFilter.skipStats)
        }
        return w.finish()
    }

    /// RTEXT_FILTER_* bits of IFLA_EXT_MASK.
    public enum ExtFilter {
        public static let skipStats: UInt32 = 1 << 3 // RTEXT_FILTER_SKIP_STATS
    }

    /// RTM_NEWLINK (set) with NLM_F_REQUEST|NLM_F_ACK for an existing link.
    ///
    /// Flag changes go in `ifi_flags`/`ifi_change` (only the bits the change names are
    /// touched); MTU and GSO limits as u32 attributes.
    public static func setLinkRequest(seq: UInt32, ifindex: Int32, change: LinkChange) -> [UInt8] {
        var w = Writer(type: Message.newLink, flags: Flag.request | Flag.ack, seq: seq)
        w.appendIfinfomsg(index: ifindex, flags: change.flagValues, change: change.flagMask)
        if let mtu = change.mtu { w.appendAttribute(type: Attr.mtu, u32: mtu) }
        if let v = change.gsoMaxSize { w.appendAttribute(type: Attr.gsoMaxSize, u32: v) }
        if let v = change.gsoMaxSegs { w.appendAttribute(type: Attr.gsoMaxSegs, u32: v) }
        if let v = change.gsoIPv4MaxSize { w.appendAttribute(type: Attr.gsoIPv4MaxSize, u32: v) }
        return w.finish()
    }

    /// RTM_GETADDR dump of every address of every family (struct ifaddrmsg, AF_UNSPEC).
    public static func getAddressesRequest(seq: UInt32) -> [UInt8] {
        var w = Writer(type: Message.getAddr, flags: Flag.request | Flag.dump, seq: seq)
        for _ in 0..<8 { w.append(u8: 0) } // ifa_family, ifa_prefixlen, ifa_flags, ifa_scope, ifa_index
        return w.finish()
    }

    /// One RTM_NEWADDR: the address on its interface (IFA_LOCAL where present, as for
    /// point-to-point links, else IFA_ADDRESS); nil for another message type.
    public static func parseAddress(_ message: NetlinkMessage) throws -> InterfaceAddress? {
        guard message.type == Message.newAddr else { return nil }
        let p = message.payload
        guard p.count >= 8 else { throw malformed("ifaddrmsg") }
        let b = p.startIndex
        let family = p[b], prefix = p[b + 1], scope = p[b + 3]
        let index = Int32(bitPattern: readU32(p, b + 4))
        var address: [UInt8]? = nil, local: [UInt8]? = nil
        for attr in try parseAttributes(p[(b + 8)...], context: "address attribute") {
            switch attr.type {
            case 1: address = Array(attr.value)  // IFA_ADDRESS
            case 2: local = Array(attr.value)    // IFA_LOCAL
            default: break
            }
        }
        guard let bytes = local ?? address else { return nil }
        return InterfaceAddress(ifindex: index, family: family, prefixLength: prefix, scope: scope, bytes: bytes)
    }

    /// RTM_GETROUTE dump of every route of every family (struct rtmsg, AF_UNSPEC).
    public static func getRoutesRequest(seq: UInt32) -> [UInt8] {
        var w = Writer(type: Message.getRoute, flags: Flag.request | Flag.dump, seq: seq)
        for _ in 0..<12 { w.append(u8: 0) } // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
        return w.finish()
    }

    /// One RTM_NEWROUTE with an output interface (RTA_OIF); nil for another message
    /// type or a route without one (multipath, blackhole).
    public static func parseRoute(_ message: NetlinkMessage) throws -> InterfaceRoute? {
        guard message.type == Message.newRoute else { return nil }
        let p = message.payload
        guard p.count >= 12 else { throw malformed("rtmsg") }
        let b = p.startIndex
        var route = InterfaceRoute(oif: 0, family: p[b], destinationLength: p[b + 1], destination: [],
                                   table: UInt32(p[b + 4]), protocol: p[b + 5], type: p[b + 7])
        for attr in try parseAttributes(p[(b + 12)...], context: "route attribute") {
            switch attr.type {
            case 1: route.destination = Array(attr.value)             // RTA_DST
            case 4: route.oif = Int32(bitPattern: try u32(attr.value, "RTA_OIF"))
            case 15: route.table = try u32(attr.value, "RTA_TABLE")   // beyond 255
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
        guard message.type == Message.newLink || message.type == Message.delLink else { return nil }
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
            switch attr.type {
            case Attr.address: link.mac = Array(v)
            case Attr.ifname: link.name = decodeString(v)
            case Attr.mtu: link.mtu = try u32(v, "IFLA_MTU")
            case Attr.link: link.linkIndex = Int32(bitPattern: try u32(v, "IFLA_LINK"))
            case Attr.master: link.masterIndex = Int32(bitPattern: try u32(v, "IFLA_MASTER"))
            case Attr.operState: link.operState = try u8(v, "IFLA_OPERSTATE")
            case Attr.carrier: link.carrier = try u8(v, "IFLA_CARRIER") != 0
            case Attr.promiscuity: link.promiscuity = try u32(v, "IFLA_PROMISCUITY")
            case Attr.allmulti: link.allmulti = try u32(v, "IFLA_ALLMULTI")
            case Attr.minMTU: link.minMTU = try u32(v, "IFLA_MIN_MTU")
            case Attr.maxMTU: link.maxMTU = try u32(v, "IFLA_MAX_MTU")
            case Attr.gsoMaxSize: link.gsoMaxSize = try u32(v, "IFLA_GSO_MAX_SIZE")
            case Attr.gsoMaxSegs: link.gsoMaxSegs = try u32(v, "IFLA_GSO_MAX_SEGS")
            case Attr.gsoIPv4MaxSize: link.gsoIPv4MaxSize = try u32(v, "IFLA_GSO_IPV4_MAX_SIZE")
            case Attr.groMaxSize: link.groMaxSize = try u32(v, "IFLA_GRO_MAX_SIZE")
            case Attr.tsoMaxSize: link.tsoMaxSize = try u32(v, "IFLA_TSO_MAX_SIZE")
            case Attr.tsoMaxSegs: link.tsoMaxSegs = try u32(v, "IFLA_TSO_MAX_SEGS")
            case Attr.permAddress:
                link.permanentMAC = v.contains(where: { $0 != 0 }) ? Array(v) : nil
            case Attr.linkInfo:
                for info in try parseAttributes(v, context: "IFLA_LINKINFO attribute") {
                    switch info.type {
                    case LinkInfoAttr.kind: link.kind = decodeString(info.value)
                    case LinkInfoAttr.slaveKind: link.slaveKind = decodeString(info.value)
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
        guard message.type == Message.newLink, message.payload.count >= ifinfomsgLength else { return nil }
        for attr in try parseAttributes(message.payload[ifinfomsgLength...], context: "link attribute")
        where attr.type == Attr.stats64 && attr.value.count >= 16 {
            // rx_packets, tx_packets, ... (u64 each, host order, possibly unaligned here)
            let v = attr.value
            return (0..<8).reduce(UInt64(0)) { $0 | UInt64(v[v.startIndex + 8 + $1]) << (8 * UInt64($1)) }
        }
        return nil
    }

    /// For NLMSG_ERROR: the positive errno it reports, 0 for an acknowledgement.
    /// nil for any other message type; EPROTO for an NLMSG_ERROR too short to hold its code.
    public static func parseError(_ message: NetlinkMessage) -> Int32? {
        guard message.type == Message.error else { return nil }
        guard message.payload.count >= 4 else { return EPROTO }
        let code = Int32(bitPattern: readU32(message.payload, 0))
        // The kernel sends -errno; guard against Int32.min, which has no positive.
        return code == Int32.min ? EPROTO : (code < 0 ? -code : code)
    }

    /// For NLMSG_ERROR with extended ack TLVs (NETLINK_EXT_ACK): the kernel's message,
    /// e.g. "MTU greater than device maximum". nil when there is none or it cannot be found.
    public static func parseExtendedAckMessage(_ message: NetlinkMessage) -> String? {
        guard message.type == Message.error, message.flags & Flag.ackTLVs != 0 else { return nil }
        let p = message.payload
        // int error; struct nlmsghdr msg (+ the request's payload unless capped); TLVs.
        guard p.count >= 4 + headerLength else { return nil }
        var offset = 4 + headerLength
        if message.flags & Flag.capped == 0 {
            let echoed = Int(readU32(p, 4))
            guard echoed >= headerLength else { return nil }
            offset = 4 + align4(echoed)
        }
        guard offset <= p.count,
              let tlvs = try? parseAttributes(p[offset...], context: "extended ack attribute")
        else { return nil }
        for tlv in tlvs where tlv.type == ErrorAttr.message {
            let text = decodeString(tlv.value)
            return text.isEmpty ? nil : text
        }
        return nil
    }

    /// For NLMSG_DONE: the error the kernel put in it (positive errno; 0 = dump complete).
    /// nil for any other type; an empty payload (old kernels) counts as 0.
    public static func parseDone(_ message: NetlinkMessage) -> Int32? {
        guard message.type == Message.done else { return nil }
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
