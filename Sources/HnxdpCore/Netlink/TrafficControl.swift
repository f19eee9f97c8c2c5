// TrafficControl.swift - the egress traffic-control configuration of a device
// (qdiscs, classes, filters) as rtnetlink dumps it, and the requests that make
// it again on another device. The codec part is pure (unit-tested); the
// RTNetlink extension at the end moves the bytes.
//
// Wire format after the netlink header (host byte order):
//   struct tcmsg { u8 family; u8 pad1; u16 pad2; i32 ifindex; u32 handle; u32 parent; u32 info; }  20 bytes
//   then TCA_* attributes.

// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CHnxdpShim
import Glibc

/// One qdisc, class or filter of a device's egress configuration, as the
/// kernel dumps it, with its statistics taken out: what is needed to make it
/// again (`tc qdisc/class/filter add`). Codable for the write-ahead record.
public struct TCObject: Codable, Equatable, Sendable, CustomStringConvertible {
    public enum ObjectType: String, Codable, Sendable {
        case qdisc, `class`, filter
    }

    public var type: ObjectType
    /// tcm_handle: qdisc handle (major:0), class id, or filter handle.
    public var handle: UInt32
    /// tcm_parent: TC_H_ROOT, a class id, or (filters) the qdisc or class they hang on.
    public var parent: UInt32
    /// tcm_info: for filters, priority << 16 | protocol (network byte order).
    public var info: UInt32 = 0
    /// TCA_KIND: "tbf", "htb", "u32", ...
    public var kind: String
    /// The configuration attributes (TCA_KIND, TCA_OPTIONS, TCA_STAB, TCA_CHAIN,
    /// shared blocks) exactly as dumped, statistics removed; base64 in JSON.
    public var attributes: [UInt8]

    /// Made by the kernel itself (default qdiscs dump with handle 0).
    public var isDefault: Bool { type == .qdisc && handle == 0 }
    public var isRoot: Bool { parent == TrafficControlCodec.rootParent }
    /// A qdisc that holds one child qdisc per transmit queue (mq): the kernel's
    /// default root of a multi-queue device, whose children a user may replace.
    public var hasPerQueueChildren: Bool { type == .qdisc && kind == "mq" }

    /// "qdisc tbf 1: root", "class htb 1:10 parent 1:", "filter u32 parent 1: prio 1".
    public var description: String {
        let h = TrafficControlCodec.format(handle)
        let p = isRoot ? "root" : "parent \(TrafficControlCodec.format(parent))"
        switch type {
        case .qdisc: return "qdisc \(kind) \(h) \(p)"
        case .class: return "class \(kind) \(h) \(p)"
        case .filter: return "filter \(kind) \(p) prio \(info >> 16)\(handle != 0 ? " handle \(String(handle, radix: 16))" : "")"
        }
    }
}

// In an extension, so that the struct keeps its memberwise initializer.
extension TCObject {
    enum CodingKeys: String, CodingKey { case type, handle, parent, info, kind, attributes }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(ObjectType.self, forKey: .type)
        handle = try c.decode(UInt32.self, forKey: .handle)
        parent = try c.decode(UInt32.self, forKey: .parent)
        info = try c.decode(UInt32.self, forKey: .info)
        kind = try c.decode(String.self, forKey: .kind)
        let text = try c.decode(String.self, forKey: .attributes)
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorruptedError(forKey: .attributes, in: c, debugDescription: "not base64")
        }
        attributes = Array(data)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(handle, forKey: .handle)
        try c.encode(parent, forKey: .parent)
        try c.encode(info, forKey: .info)
        try c.encode(kind, forKey: .kind)
        try c.encode(Data(attributes).base64EncodedString(), forKey: .attributes)
    }
}

/// A device's egress configuration: its qdiscs (default ones included), the
/// classes of its qdiscs and the filters on them.
public struct TCConfig: Codable, Equatable, Sendable {
    public var qdiscs: [TCObject] = []
    public var classes: [TCObject] = []
    public var filters: [TCObject] = []

    public var root: TCObject? { qdiscs.first(where: \.isRoot) }

    /// Only what the kernel made by itself: nothing the user configured.
    public var isDefault: Bool { qdiscs.allSatisfy(\.isDefault) }
}

/// Builds tc requests and parses tc messages. Pure: no system calls.
public enum TrafficControlCodec {
    /// What is kept of a dump: configuration. Everything else (TCA_STATS, TCA_XSTATS,
    /// TCA_STATS2, TCA_FCNT, TCA_PAD, TCA_HW_OFFLOAD, TCA_DUMP_INVISIBLE, TCA_EXT_WARN_MSG)
    /// is state or counters.
    static let configAttributes = Set([TCA_KIND, TCA_OPTIONS, TCA_RATE, TCA_STAB, TCA_CHAIN, TCA_INGRESS_BLOCK,
                                       TCA_EGRESS_BLOCK].map { UInt16($0) })

    /// RTNLGRP_TC: qdisc, class and filter notifications.
    public static let notificationGroup = RTNLGRP_TC.rawValue
    /// TC_H_ROOT: the parent of a device's root qdisc.
    public static let rootParent = TC_H_ROOT
    /// TC_H_INGRESS (== TC_H_CLSACT): the parent of its ingress or clsact qdisc.
    public static let ingressParent = TC_H_INGRESS
    public static let tcmsgLength = MemoryLayout<tcmsg>.size

    /// "1:", "1:10", "0:" (tc's notation, hexadecimal).
    public static func format(_ handle: UInt32) -> String {
        let major = handle >> 16, minor = handle & 0xFFFF
        return minor == 0 ? "\(String(major, radix: 16)):" : "\(String(major, radix: 16)):\(String(minor, radix: 16))"
    }

    /// RTM_GET* dump for one device; `parent` for filters (the qdisc or class they hang on).
    public static func dumpRequest(type: UInt16, seq: UInt32, ifindex: Int32, parent: UInt32 = 0) -> [UInt8] {
        var w = RTNetlinkCodec.Writer(type: type, flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP), seq: seq)
        appendTcmsg(&w, ifindex: ifindex, handle: 0, parent: parent, info: 0)
        return w.finish()
    }

    /// RTM_GETQDISC of the qdisc hanging on `parent` of one device: TC_H_ROOT its
    /// egress root, TC_H_INGRESS its ingress-side qdisc (clsact or ingress). The
    /// answer is the qdisc, then the ack; nothing, or ENOENT/EINVAL, when there is
    /// none (the kernel's built-in noop qdisc is not reported). A dump would list
    /// every qdisc of the namespace (the kernel filters no qdisc dump by device).
    /// NLM_F_ECHO: the kernel sends a qdisc GET's answer as a notification, to the
    /// asking socket only when it asks for the echo; NLM_F_ACK: an answer even then.
    public static func getQdiscRequest(seq: UInt32, ifindex: Int32, parent: UInt32) -> [UInt8] {
        var w = RTNetlinkCodec.Writer(type: UInt16(RTM_GETQDISC), flags: UInt16(NLM_F_REQUEST | NLM_F_ECHO | NLM_F_ACK), seq: seq)
        appendTcmsg(&w, ifindex: ifindex, handle: 0, parent: parent, info: 0)
        return w.finish()
    }

    /// RTM_NEW* making `object` on `ifindex`, acknowledged. Qdiscs replace what
    /// hangs on their parent (`tc qdisc replace`); classes are created or changed;
    /// filters are created and must not exist yet.
    public static func newRequest(_ object: TCObject, seq: UInt32, ifindex: Int32) -> [UInt8] {
        let type: Int, flags: Int32
        switch object.type {
        case .qdisc: type = RTM_NEWQDISC; flags = NLM_F_CREATE | NLM_F_REPLACE
        case .class: type = RTM_NEWTCLASS; flags = NLM_F_CREATE
        case .filter: type = RTM_NEWTFILTER; flags = NLM_F_CREATE | NLM_F_EXCL
        }
        var w = RTNetlinkCodec.Writer(type: UInt16(type), flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | flags), seq: seq)
        appendTcmsg(&w, ifindex: ifindex, handle: object.handle, parent: object.parent, info: object.info)
        w.pad()
        var bytes = w.finish()
        bytes += requestAttributes(object)
        let length = UInt32(bytes.count)
        withUnsafeBytes(of: length) { raw in for k in 0..<4 { bytes[k] = raw[k] } }
        return bytes
    }

    /// RTM_DELQDISC of the qdisc on `parent` (TC_H_ROOT: the root; the kernel then
    /// attaches its default qdiscs again).
    public static func deleteQdiscRequest(seq: UInt32, ifindex: Int32, parent: UInt32, handle: UInt32 = 0) -> [UInt8] {
        var w = RTNetlinkCodec.Writer(type: UInt16(RTM_DELQDISC), flags: UInt16(NLM_F_REQUEST | NLM_F_ACK), seq: seq)
        appendTcmsg(&w, ifindex: ifindex, handle: handle, parent: parent, info: 0)
        return w.finish()
    }

    /// The attributes of a request that makes `object` again. Where a dump is not what
    /// the kernel takes back, it is turned into the request form: htb dumps its
    /// version as 0x30011 (HTB_VER) and takes only its major, 3; filters dump their
    /// flags with state bits (TCA_CLS_FLAGS_IN_HW, _NOT_IN_HW) and take only the
    /// requests (skip_hw, skip_sw, verbose).
    static func requestAttributes(_ object: TCObject) -> [UInt8] {
        switch (object.type, object.kind) {
        case (.qdisc, "htb"):
            return rewritingOptions(object) { option in
                if option.type == TCA_HTB_INIT, option.value.count >= 4 {
                    let version = RTNetlinkCodec.readU32(option.value, option.value.startIndex)
                    if version > 0xFFFF {
                        option.value = withUnsafeBytes(of: version >> 16) { ArraySlice($0) } + option.value.dropFirst(4)
                    }
                }
            }
        case (.filter, let kind):
            guard let flags = filterFlags[kind] else { return object.attributes }
            return rewritingOptions(object) { option in
                if option.type == flags { option.value = requestFlags(option.value) }
            }
        default:
            return object.attributes
        }
    }

    /// TCA_<KIND>_FLAGS of the filters that have them.
    static let filterFlags = ["u32": TCA_U32_FLAGS, "matchall": TCA_MATCHALL_FLAGS, "flower": TCA_FLOWER_FLAGS,
                              "bpf": TCA_BPF_FLAGS].mapValues { UInt16($0) }
    /// The flags a request may carry.
    static let requestFlagMask = UInt32(TCA_CLS_FLAGS_SKIP_HW | TCA_CLS_FLAGS_SKIP_SW | TCA_CLS_FLAGS_VERBOSE)

    static func requestFlags(_ value: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard value.count == 4 else { return value }
        let flags = RTNetlinkCodec.readU32(value, value.startIndex) & requestFlagMask
        return withUnsafeBytes(of: flags) { ArraySlice($0) }
    }

    /// The object's attributes with each attribute inside TCA_OPTIONS passed through `change`.
    static func rewritingOptions(_ object: TCObject, _ change: (inout RTNetlinkCodec.Attribute) -> Void) -> [UInt8] {
        guard let attrs = try? RTNetlinkCodec.parseAttributes(object.attributes[...]) else { return object.attributes }
        var out: [UInt8] = []
        for attr in attrs {
            guard attr.type == TCA_OPTIONS, let options = try? RTNetlinkCodec.parseAttributes(attr.value) else {
                out += encodeAttribute(attr)
                continue
            }
            var inner: [UInt8] = []
            for var option in options {
                change(&option)
                inner += encodeAttribute(option)
            }
            out += encodeAttribute(RTNetlinkCodec.Attribute(type: attr.type, value: inner[...]))
        }
        return out
    }

    static func appendTcmsg(_ w: inout RTNetlinkCodec.Writer, ifindex: Int32, handle: UInt32, parent: UInt32, info: UInt32) {
        w.append(u8: 0) // tcm_family AF_UNSPEC
        w.append(u8: 0)
        w.append(u16: 0)
        w.append(u32: UInt32(bitPattern: ifindex))
        w.append(u32: handle)
        w.append(u32: parent)
        w.append(u32: info)
    }

    /// A top-level class dumps with parent TC_H_ROOT, which a request reads as "the
    /// root qdisc": it is named by its own qdisc instead (`tc class add parent 1:`).
    public static func withQdiscParent(_ c: TCObject) -> TCObject {
        var c = c
        if c.type == .class && c.parent == rootParent { c.parent = c.handle & 0xFFFF_0000 }
        return c
    }

    /// The ifindex a tc message is about; nil for a message too short.
    public static func ifindex(of message: NetlinkMessage) -> Int32? {
        guard message.payload.count >= tcmsgLength else { return nil }
        return Int32(bitPattern: RTNetlinkCodec.readU32(message.payload, 4))
    }

    /// Parses RTM_NEWQDISC / RTM_NEWTCLASS / RTM_NEWTFILTER; nil for any other type.
    /// Statistics are removed; the configuration attributes are kept byte for byte.
    public static func parse(_ message: NetlinkMessage) throws -> (ifindex: Int32, object: TCObject)? {
        let type: TCObject.ObjectType
        switch Int(message.type) {
        case RTM_NEWQDISC: type = .qdisc
        case RTM_NEWTCLASS: type = .class
        case RTM_NEWTFILTER: type = .filter
        default: return nil
        }
        let p = message.payload
        guard p.count >= tcmsgLength else {
            throw RTNetlinkCodec.malformed("tc message payload is \(p.count) bytes, shorter than struct tcmsg")
        }
        var kind = ""
        var kept: [UInt8] = []
        for attr in try RTNetlinkCodec.parseAttributes(p[tcmsgLength...], context: "tc attribute") {
            if attr.type == TCA_KIND { kind = RTNetlinkCodec.decodeString(attr.value) }
            if configAttributes.contains(attr.type) { kept += encodeAttribute(attr) }
        }
        let object = TCObject(type: type, handle: RTNetlinkCodec.readU32(p, 8), parent: RTNetlinkCodec.readU32(p, 12),
                              info: RTNetlinkCodec.readU32(p, 16), kind: kind, attributes: kept)
        return (Int32(bitPattern: RTNetlinkCodec.readU32(p, 4)), object)
    }

    /// One attribute again, padded; the nested/byte-order flags of its type are kept.
    static func encodeAttribute(_ attr: RTNetlinkCodec.Attribute, rawType: UInt16? = nil) -> [UInt8] {
        var out: [UInt8] = []
        let length = UInt16(RTNetlinkCodec.attrHeaderLength + attr.value.count)
        withUnsafeBytes(of: length) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: rawType ?? attr.type) { out.append(contentsOf: $0) }
        out.append(contentsOf: attr.value)
        while out.count % 4 != 0 { out.append(0) }
        return out
    }

    // MARK: Comparison

    /// Attribute numbers, per filter kind, of the nested action list (TCA_<KIND>_ACT)
    /// and of counters kept inside the options (TCA_<KIND>_PCNT, _PAD, _IN_HW_COUNT).
    static let filterActions = ["u32": TCA_U32_ACT, "fw": TCA_FW_ACT, "basic": TCA_BASIC_ACT, "matchall": TCA_MATCHALL_ACT,
                                "flower": TCA_FLOWER_ACT, "cgroup": TCA_CGROUP_ACT, "route": TCA_ROUTE4_ACT,
                                "flow": TCA_FLOW_ACT, "bpf": TCA_BPF_ACT].mapValues { UInt16($0) }
    static let filterCounters = ["u32": [TCA_U32_PCNT, TCA_U32_PAD], "basic": [TCA_BASIC_PCNT, TCA_BASIC_PAD],
                                 "matchall": [TCA_MATCHALL_PCNT, TCA_MATCHALL_PAD],
                                 "flower": [TCA_FLOWER_IN_HW_COUNT]].mapValues { Set($0.map { UInt16($0) }) }

    /// What two objects are compared on: type, handle, parent, info and the
    /// configuration without what changes by itself. A filter's actions are
    /// compared by their kinds only (their options hold reference counts and
    /// timestamps); htb's direct_pkts counter is left out.
    public static func signature(_ o: TCObject) -> [UInt8] {
        var out: [UInt8] = Array(o.type.rawValue.utf8) + [0]
        // tcm_info is configuration only for a filter (priority, protocol); a qdisc's is
        // its reference count, a class's the handle of its leaf qdisc.
        for v in [o.handle, o.parent, o.type == .filter ? o.info : 0] { withUnsafeBytes(of: v) { out += $0 } }
        guard let attrs = try? RTNetlinkCodec.parseAttributes(o.attributes[...]) else { return out + o.attributes }
        for attr in attrs {
            if attr.type == TCA_OPTIONS {
                out += [0xFE] + normalizedOptions(o, attr.value)
            } else {
                out += encodeAttribute(attr)
            }
        }
        return out
    }

    static func normalizedOptions(_ o: TCObject, _ value: ArraySlice<UInt8>) -> [UInt8] {
        switch (o.type, o.kind) {
        case (.qdisc, "htb"):
            // TCA_HTB_INIT: struct tc_htb_glob, whose last u32 is the direct_pkts counter.
            guard let attrs = try? RTNetlinkCodec.parseAttributes(value) else { return Array(value) }
            return attrs.flatMap { a -> [UInt8] in
                var a = a
                if a.type == TCA_HTB_INIT, a.value.count == MemoryLayout<tc_htb_glob>.size { a.value = a.value.prefix(16) + [0, 0, 0, 0] }
                return encodeAttribute(a)
            }
        case (.filter, let kind):
            guard let actions = filterActions[kind] else { return Array(value) }
            let counters = filterCounters[kind] ?? []
            // Options that are not attributes (old filters) are compared as they are.
            guard let attrs = try? RTNetlinkCodec.parseAttributes(value) else { return Array(value) }
            var out: [UInt8] = []
            for var a in attrs where !counters.contains(a.type) {
                if a.type == filterFlags[kind] { a.value = requestFlags(a.value) }
                if a.type == actions {
                    out += [0xFD]
                    for action in (try? RTNetlinkCodec.parseAttributes(a.value)) ?? [] {
                        for field in (try? RTNetlinkCodec.parseAttributes(action.value)) ?? [] where field.type == TCA_ACT_KIND {
                            out += Array(field.value) + [0]
                        }
                    }
                } else {
                    out += encodeAttribute(a)
                }
            }
            return out
        default:
            return Array(value)
        }
    }

    /// The first difference between two lists of objects, as a sentence; nil when
    /// they are equal (order does not matter). An expected qdisc with handle 0 is one
    /// the kernel numbers when it is made: any handle matches it.
    public static func difference(expected: [TCObject], actual: [TCObject], device: String) -> String? {
        var unmatched = actual
        func numberedByKernel(_ o: TCObject) -> Bool { o.type == .qdisc && o.handle == 0 }
        for e in expected {
            let wanted = signature(e)
            if let i = unmatched.firstIndex(where: { a in
                var a = a
                if numberedByKernel(e) && a.type == .qdisc { a.handle = 0 }
                return signature(a) == wanted
            }) {
                unmatched.remove(at: i)
                continue
            }
            let same = actual.first { $0.type == e.type && ($0.handle == e.handle || numberedByKernel(e)) && $0.parent == e.parent
                && ($0.type != .filter || $0.info == e.info) }
            return same.map { "\(device) has \($0) with other options than expected" } ?? "\(device) lacks \(e)"
        }
        if let extra = unmatched.first { return "\(device) has \(extra), not expected" }
        return nil
    }
}

// MARK: - Exchanges

extension RTNetlink {
    /// The egress configuration of a device: its qdiscs other than ingress/clsact,
    /// the classes of the device, and the filters on each egress qdisc and class.
    public func trafficControl(of ifindex: Int32, name: String) throws -> TCConfig {
        let dev = RTNetlink.describe(name: name, index: ifindex)
        var config = TCConfig()
        config.qdiscs = try egressQdiscs(of: ifindex, name: name)
        config.classes = try tcDump("dump classes of \(dev)", type: UInt16(RTM_GETTCLASS), ifindex: ifindex)
            .filter { $0.ifindex == ifindex && $0.object.parent != TrafficControlCodec.ingressParent
                && $0.object.handle >> 16 != 0xFFFF }.map(\.object).map(TrafficControlCodec.withQdiscParent)
        var parents: [UInt32] = config.qdiscs.filter { $0.handle != 0 }.map(\.handle) + config.classes.map(\.handle)
        parents = Array(Set(parents)).sorted()
        for parent in parents {
            let filters = try tcDump("dump filters of \(dev) parent \(TrafficControlCodec.format(parent))",
                                     type: UInt16(RTM_GETTFILTER), ifindex: ifindex, parent: parent)
            config.filters += filters.filter { $0.ifindex == ifindex }.map(\.object).map {
                var f = $0
                f.parent = parent // the kernel reports the block's parent; requests name it the same way
                return f
            }
        }
        return config
    }

    /// The egress qdiscs of a device (ingress/clsact left out): the first part of
    /// `trafficControl(of:name:)`, enough to tell whether the device has only the
    /// kernel's defaults (`TCConfig.isDefault` looks at the qdiscs only).
    public func egressQdiscs(of ifindex: Int32, name: String) throws -> [TCObject] {
        // A root the kernel made (handle 0) other than mq (whose per-queue children a
        // user may replace) is the device's only egress qdisc: one request about this
        // device tells, instead of a dump of every qdisc of the namespace (with 512
        // devices, 513 qdiscs parsed away per dump, several dumps per attach).
        if qdiscSnapshot == nil, let root = try qdisc(of: ifindex, parent: TrafficControlCodec.rootParent, what: "root"),
           root.handle == 0, !root.hasPerQueueChildren {
            return [root]
        }
        let dev = RTNetlink.describe(name: name, index: ifindex)
        let qdiscs = try tcDump("dump qdiscs of \(dev)", type: UInt16(RTM_GETQDISC), ifindex: ifindex)
        // The qdisc dump covers every device of the namespace: keep this one's, egress only.
        return qdiscs.filter { $0.ifindex == ifindex && $0.object.parent != TrafficControlCodec.ingressParent
            && $0.object.handle != 0xFFFF_0000 /* ingress/clsact's ffff: */ }.map(\.object)
    }

    /// Makes one object on a device (RTM_NEWQDISC/NEWTCLASS/NEWTFILTER, acknowledged).
    public func tcCreate(_ object: TCObject, ifindex: Int32, name: String) throws {
        let what = "\(object) on \(RTNetlink.describe(name: name, index: ifindex))"
        qdiscSnapshot = nil // what is read after a change is read from the kernel
        _ = try exchange("add \(what)", expectAck: true) { seq in
            TrafficControlCodec.newRequest(object, seq: seq, ifindex: ifindex)
        }
    }

    /// Deletes the qdisc hanging on `parent` (TC_H_ROOT: the root qdisc, and with it
    /// every class and filter below; the kernel attaches its default qdiscs again).
    public func tcDeleteQdisc(parent: UInt32, ifindex: Int32, name: String) throws {
        let where_ = parent == TrafficControlCodec.rootParent ? "root" : "parent \(TrafficControlCodec.format(parent))"
        qdiscSnapshot = nil
        _ = try exchange("delete qdisc \(where_) of \(RTNetlink.describe(name: name, index: ifindex))", expectAck: true) { seq in
            TrafficControlCodec.deleteQdiscRequest(seq: seq, ifindex: ifindex, parent: parent)
        }
    }

    /// Whether the device has a clsact qdisc (the classic attachment's hook). One
    /// request about that device, not a dump of every qdisc of the namespace
    /// (O(devices): 1.5-3.5 ms with 512 devices, twice per classic hook).
    public func hasClsact(ifindex: Int32) throws -> Bool {
        try qdisc(of: ifindex, parent: TrafficControlCodec.ingressParent, what: "ingress")?.kind == "clsact"
    }

    /// The qdisc hanging on `parent` of one device, asked for alone (not a dump of the
    /// namespace's qdiscs); nil when there is none the kernel reports.
    func qdisc(of ifindex: Int32, parent: UInt32, what: String) throws -> TCObject? {
        do {
            let (messages, _) = try exchange("get the \(what) qdisc of ifindex \(ifindex)", expectAck: true) { seq in
                TrafficControlCodec.getQdiscRequest(seq: seq, ifindex: ifindex, parent: parent)
            }
            return try messages.compactMap { try TrafficControlCodec.parse($0) }.first { $0.ifindex == ifindex }?.object
        } catch let error as HnxdpError where error.errno == ENOENT || error.errno == EINVAL {
            return nil // none
        }
    }

    /// How many filters (anyone's) the clsact qdisc of a device holds, ingress and
    /// egress together: hnxdp removes a clsact it created only when this is 0.
    public func clsactFilterCount(ifindex: Int32) throws -> Int {
        var count = 0
        for minor in [TC_H_MIN_INGRESS, TC_H_MIN_EGRESS] {
            let parent = (TC_H_CLSACT & TC_H_MAJ_MASK) | minor // TC_H_MAKE(TC_H_CLSACT, minor)
            count += try tcDump("dump tc filters of ifindex \(ifindex)", type: UInt16(RTM_GETTFILTER),
                                ifindex: ifindex, parent: parent).filter { $0.ifindex == ifindex }.count
        }
        return count
    }

    /// Takes one qdisc dump of the namespace that every `trafficControl(of:)` reads
    /// until `endQdiscSnapshot()`: a reader of many devices (`status`, `dump`, `run`
    /// checking every joined pair) asks the kernel once instead of once per device
    /// (each dump lists every device's qdiscs). A change made through this RTNetlink
    /// (`tcCreate`, `tcDeleteQdisc`) ends the snapshot: later reads ask the kernel.
    /// Changes made by others meanwhile are not seen.
    public func beginQdiscSnapshot() throws {
        let (messages, interrupted) = try exchange("dump qdiscs", expectAck: false) { seq in
            TrafficControlCodec.dumpRequest(type: UInt16(RTM_GETQDISC), seq: seq, ifindex: 0)
        }
        qdiscSnapshot = interrupted ? nil : messages // interrupted: each device dumps its own
    }

    public func endQdiscSnapshot() { qdiscSnapshot = nil }

    private func tcDump(_ what: String, type: UInt16, ifindex: Int32, parent: UInt32 = 0) throws -> [(ifindex: Int32, object: TCObject)] {
        for _ in 0..<RTNetlink.dumpAttempts {
            let snapshot = type == RTM_GETQDISC ? qdiscSnapshot : nil
            let (messages, interrupted) = try snapshot.map { ($0, false) } ?? exchange(what, expectAck: false) { seq in
                TrafficControlCodec.dumpRequest(type: type, seq: seq, ifindex: ifindex, parent: parent)
            }
            if interrupted { continue }
            do {
                // A qdisc dump lists every device of the namespace (the kernel filters it by
                // none): only this device's messages are parsed (512 devices: 1 of 513).
                let mine = ifindex == 0 ? messages : messages.filter { TrafficControlCodec.ifindex(of: $0).map { $0 == ifindex } ?? true }
                return try mine.compactMap { try TrafficControlCodec.parse($0) }
            } catch let error as HnxdpError {
                throw HnxdpError(error.kind, "\(what): \(error.message)")
            }
        }
        throw HnxdpError.system("\(what) (interrupted \(RTNetlink.dumpAttempts) times by concurrent changes)", errno: EAGAIN)
    }
}
