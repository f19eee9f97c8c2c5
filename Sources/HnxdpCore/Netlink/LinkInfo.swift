// LinkInfo.swift - the parsed rtnetlink link model (RTM_NEWLINK/RTM_DELLINK),
// link notifications, and the changes RTM_NEWLINK (set) can carry.

import Glibc

// <linux/if.h> and <linux/if_arp.h> cannot be imported (they include glibc's
// <sys/socket.h>: see hnxdp_netlink.h), so the few numbers only they give are
// spelled out here: IFF_LOWER_UP, IF_OPER_*, ARPHRD_*.
extension LinkInfo {
    /// The `ifi_flags` bits hnxdp reads or sets: IFF_* of glibc's <net/if.h>.
    public enum Flag {
        public static let up = UInt32(IFF_UP)
        public static let loopback = UInt32(IFF_LOOPBACK)
        public static let promisc = UInt32(IFF_PROMISC)
        public static let allmulti = UInt32(IFF_ALLMULTI)
        public static let slave = UInt32(IFF_SLAVE)
        /// IFF_LOWER_UP (<linux/if.h> only; glibc lacks it).
        public static let lowerUp: UInt32 = 1 << 16
    }

    /// The `ifi_type` values hnxdp tells apart (ARPHRD_ETHER, ARPHRD_LOOPBACK).
    public enum ARPType {
        public static let ether: UInt16 = 1
        public static let loopback: UInt16 = 772
    }

    /// RFC 2863 operational states carried in IFLA_OPERSTATE (IF_OPER_*).
    public enum OperState {
        /// The names `ip link` prints, by state: IF_OPER_UNKNOWN (0) to IF_OPER_UP (6).
        static let names = ["UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"]
        public static let unknown: UInt8 = 0
        public static let down: UInt8 = 2
        public static let up: UInt8 = 6

        /// The name `ip link` prints for an operational state ("UP", "DOWN", ...).
        public static func name(_ state: UInt8) -> String {
            Int(state) < names.count ? names[Int(state)] : "state \(state)"
        }
    }
}

/// One network interface as rtnetlink reports it (RTM_NEWLINK / RTM_DELLINK).
///
/// Attributes the kernel did not send are `nil` (or `[]` / `false` / `0` for
/// the non-optional fields), so a model parsed from an older kernel or from a
/// notification that carries fewer attributes is still well formed.
public struct LinkInfo: Sendable, Equatable {
    /// `ifi_index`.
    public var ifindex: Int32
    /// IFLA_IFNAME (`""` when absent).
    public var name: String
    /// IFLA_ADDRESS: the current hardware address (`[]` if none).
    public var mac: [UInt8] = []
    /// IFLA_PERM_ADDRESS when present and not all-zero.
    public var permanentMAC: [UInt8]?
    /// `ifi_type` (ARPHRD_ETHER = 1, ARPHRD_LOOPBACK = 772).
    public var arpType: UInt16 = ARPType.ether
    /// `ifi_flags` (see `Flag`).
    public var flags: UInt32 = 0
    /// IFLA_MTU (0 when absent).
    public var mtu: UInt32 = 0
    /// IFLA_MIN_MTU.
    public var minMTU: UInt32?
    /// IFLA_MAX_MTU.
    public var maxMTU: UInt32?
    /// IFLA_LINKINFO / IFLA_INFO_KIND ("veth", "bridge", "bond", "vlan", ...); nil for plain devices.
    public var kind: String?
    /// IFLA_LINKINFO / IFLA_INFO_SLAVE_KIND ("bridge", "bond", ...) when the link is enslaved.
    public var slaveKind: String?
    /// IFLA_MASTER: ifindex of the master device (bridge, bond, ...).
    public var masterIndex: Int32?
    /// IFLA_LINK: the veth peer's ifindex, a vlan's parent, ... (may be in another namespace).
    public var linkIndex: Int32?
    /// IFLA_CARRIER != 0.
    public var carrier: Bool = false
    /// IFLA_OPERSTATE (see `OperState`; 0 = unknown/absent).
    public var operState: UInt8 = OperState.unknown
    /// IFLA_GSO_MAX_SIZE.
    public var gsoMaxSize: UInt32?
    /// IFLA_GSO_MAX_SEGS.
    public var gsoMaxSegs: UInt32?
    /// IFLA_GSO_IPV4_MAX_SIZE (kernel 6.3+).
    public var gsoIPv4MaxSize: UInt32?
    /// IFLA_GRO_MAX_SIZE.
    public var groMaxSize: UInt32?
    /// IFLA_TSO_MAX_SIZE: the upper bound the device accepts for gso_max_size.
    public var tsoMaxSize: UInt32?
    /// IFLA_TSO_MAX_SEGS: the upper bound the device accepts for gso_max_segs.
    public var tsoMaxSegs: UInt32?
    /// IFLA_PROMISCUITY: the promiscuity reference count (> 0 means promiscuous).
    public var promiscuity: UInt32?
    /// IFLA_ALLMULTI: the allmulti reference count (kernel 6.0+).
    public var allmulti: UInt32?

    /// Administratively up (`IFF_UP`).
    public var isUp: Bool { flags & Flag.up != 0 }
    /// A loopback device (`IFF_LOOPBACK` or ARPHRD_LOOPBACK).
    public var isLoopback: Bool { flags & Flag.loopback != 0 || arpType == ARPType.loopback }
    /// `IFF_PROMISC` requested by user space (the `promiscuity` count may be > 0 without it).
    public var isPromiscuous: Bool { flags & Flag.promisc != 0 }
    /// `IFF_LOWER_UP`: the driver reports the physical layer up.
    public var isLowerUp: Bool { flags & Flag.lowerUp != 0 }
    /// An Ethernet-like device (ARPHRD_ETHER with a 6-byte address).
    public var isEthernet: Bool { arpType == ARPType.ether && mac.count == 6 }
    /// The hardware address as lower-case colon-separated hex ("02:00:00:00:00:01"; `""` if none).
    public var macString: String { LinkInfo.formatMAC(mac) }

    /// Formats a hardware address as lower-case colon-separated hex.
    /// ASCII bytes, not Characters: it runs for every device of a link dump.
    public static func formatMAC(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        for (i, b) in bytes.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ":")) }
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses "02:00:00:00:00:01" (also "-" separated, case-insensitive) into 6 bytes; nil if malformed.
    public static func parseMAC(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...2).contains(part.count), let b = UInt8(part, radix: 16) else { return nil }
            bytes.append(b)
        }
        return bytes
    }
}

/// A link notification from the RTNLGRP_LINK multicast group.
public enum LinkEvent: Sendable, Equatable {
    /// RTM_NEWLINK: a link appeared or changed (flags, carrier, MTU, master, name, ...).
    case newLink(LinkInfo)
    /// RTM_DELLINK: a link went away (or left this network namespace).
    case delLink(LinkInfo)

    /// The link the event is about.
    public var link: LinkInfo {
        switch self {
        case .newLink(let l), .delLink(let l): return l
        }
    }
}

/// What one RTM_NEWLINK (set) request changes on an existing link; `nil` leaves a property alone.
///
/// The kernel applies the parts of one request in its own fixed order and stops at
/// the first failure, leaving earlier parts applied: when one part may be refused
/// (an MTU the device does not support), send it in a request of its own.
public struct LinkChange: Sendable, Equatable, CustomStringConvertible {
    /// IFLA_MTU.
    public var mtu: UInt32? = nil
    /// Administrative state (`ifi_change` IFF_UP).
    public var up: Bool? = nil
    /// User-requested promiscuous mode (`ifi_change` IFF_PROMISC).
    public var promisc: Bool? = nil
    /// User-requested all-multicast mode (`ifi_change` IFF_ALLMULTI).
    public var allmulti: Bool? = nil
    /// IFLA_GSO_MAX_SIZE (must not exceed the device's tso_max_size).
    public var gsoMaxSize: UInt32? = nil
    /// IFLA_GSO_MAX_SEGS (must not exceed the device's tso_max_segs).
    public var gsoMaxSegs: UInt32? = nil
    /// IFLA_GSO_IPV4_MAX_SIZE (kernel 6.3+; must not exceed tso_max_size).
    public var gsoIPv4MaxSize: UInt32? = nil

    /// True when the change changes nothing.
    public var isEmpty: Bool { self == LinkChange() }

    /// `ifi_change`: the flag bits this change sets or clears.
    public var flagMask: UInt32 {
        var mask: UInt32 = 0
        if up != nil { mask |= LinkInfo.Flag.up }
        if promisc != nil { mask |= LinkInfo.Flag.promisc }
        if allmulti != nil { mask |= LinkInfo.Flag.allmulti }
        return mask
    }

    /// `ifi_flags`: the values of the bits in `flagMask`.
    public var flagValues: UInt32 {
        var flags: UInt32 = 0
        if up == true { flags |= LinkInfo.Flag.up }
        if promisc == true { flags |= LinkInfo.Flag.promisc }
        if allmulti == true { flags |= LinkInfo.Flag.allmulti }
        return flags
    }

    /// In `ip link set` words: "mtu 9000 up promisc off gso_max_size 65536".
    public var description: String {
        var parts: [String] = []
        if let mtu { parts.append("mtu \(mtu)") }
        if let up { parts.append(up ? "up" : "down") }
        if let promisc { parts.append("promisc \(promisc ? "on" : "off")") }
        if let allmulti { parts.append("allmulticast \(allmulti ? "on" : "off")") }
        if let gsoMaxSize { parts.append("gso_max_size \(gsoMaxSize)") }
        if let gsoMaxSegs { parts.append("gso_max_segs \(gsoMaxSegs)") }
        if let gsoIPv4MaxSize { parts.append("gso_ipv4_max_size \(gsoIPv4MaxSize)") }
        return parts.isEmpty ? "no change" : parts.joined(separator: " ")
    }
}
