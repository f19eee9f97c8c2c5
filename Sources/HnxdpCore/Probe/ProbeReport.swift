import CHnxdpShim
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc

/// `hnxdp probe`: what this kernel and this namespace's devices offer hnxdp,
/// read without changing anything (in the manner of `bpftool feature probe`).
public struct ProbeReport: Encodable, Equatable, Sendable {
    public var version: String = HnxdpVersion.string
    public var schema_version: Int = HnxdpVersion.jsonSchema
    public var kernel: DumpReport.KernelReport
    /// The attachment new pairs get with `--tc-mode auto`.
    public var attachment: String
    /// Whether the kernel is at or above hnxdp's floor (BTF); else `unsupported` says why.
    public var supported: Bool
    public var unsupported: String?
    /// AF_XDP sockets can be made (the pair's fast path).
    public var af_xdp: Bool
    /// Multicast address notifications (RTNLGRP_IPV4/IPV6_MCADDR, Linux 6.13+); without
    /// them `run` compares multicast lists every 80 ms while a pair is joined.
    public var multicast_notifications: Bool
    public var devices: [Device]

    public struct Device: Encodable, Equatable, Sendable {
        public var name: String
        public var ifindex: Int32
        public var mac: String
        public var driver: String?
        public var bus_info: String?
        public var master: String?
        /// What `run` without --synthetic makes of it: "synthetic", "vf-candidate",
        /// "kernel-paired" (a VF the kernel already joined), or "other".
        public var role: String
        /// Why a device cannot be a VF, when it cannot.
        public var note: String?
        /// XDP in the driver: "native", "generic" (the kernel's generic XDP only), or
        /// "unknown" (kernels before 6.3 do not report it).
        public var xdp: String
        /// The driver transmits redirected XDP frames (what `hnxdp gen` needs); nil: unknown.
        public var xdp_transmit: Bool?
        /// AF_XDP zero-copy; nil: unknown. Otherwise AF_XDP runs in copy mode.
        public var af_xdp_zerocopy: Bool?
    }

    /// Probes the running kernel and the Ethernet devices of this namespace.
    public static func collect() throws -> ProbeReport {
        let kernel = KernelCapabilities.current()
        let netlink = try RTNetlink()
        let links = try netlink.links()
        let byIndex = Dictionary(links.map { ($0.ifindex, $0) }, uniquingKeysWith: { a, _ in a })
        // Per-device XDP features (generic netlink "netdev", 6.3+); unknown before.
        let xdp = try? RTNetlink.generic().xdpFeatures()
        var devices: [Device] = []
        for link in links where link.isEthernet && !link.isLoopback {
            let info = Ethtool.driverInfo(of: link.name)
            let device = PairingPolicy.Device(link: link, driver: info?.driver, busInfo: info?.busInfo)
            let master = link.masterIndex.flatMap { byIndex[$0] }
            var role = "other"
            var note: String? = nil
            if let master {
                role = PairingPolicy.kernelPairingDrivers.contains(Ethtool.driverInfo(of: master.name)?.driver ?? "") ? "kernel-paired" : "other"
                note = Eligibility.masterRefusal(vf: link, master: master, masterDriver: Ethtool.driverInfo(of: master.name)?.driver,
                                                 vfDriver: info?.driver)
            } else if PairingPolicy.isDefaultSynthetic(device) {
                role = "synthetic"
            } else if let reason = Eligibility.vfIneligibilityReason(link) {
                note = reason
            } else if PairingPolicy.kernelPairingDrivers.contains(info?.driver ?? "") {
                note = "\(info?.driver ?? "?") pairs its VF in the kernel"
            } else {
                role = "vf-candidate"
            }
            devices.append(Device(name: link.name, ifindex: link.ifindex, mac: link.macString, driver: info?.driver,
                                  bus_info: (info?.busInfo).flatMap { $0.isEmpty ? nil : $0 },
                                  master: master?.name, role: role, note: note,
                                  xdp: (xdp ?? nil).map { $0[link.ifindex]?.native == true ? "native" : "generic" } ?? "unknown",
                                  xdp_transmit: (xdp ?? nil).map { $0[link.ifindex]?.transmit == true },
                                  af_xdp_zerocopy: (xdp ?? nil).map { $0[link.ifindex]?.zeroCopy == true }))
        }
        var unsupported: String? = nil
        do { try kernel.requireSupported() } catch let e as HnxdpError { unsupported = e.message }
        let xsk = socket(AF_XDP, Int32(SOCK_RAW.rawValue), 0)
        if xsk >= 0 { close(xsk) }
        var groups: [UInt32] = [UInt32(HNXDP_RTNLGRP_IPV4_MCADDR), UInt32(HNXDP_RTNLGRP_IPV6_MCADDR)]
        let mfd = hnxdp_netlink_group_socket(&groups, UInt32(groups.count))
        if mfd >= 0 { close(mfd) }
        return ProbeReport(kernel: DumpReport.KernelReport(kernel),
                           attachment: ((try? kernel.mode(for: .auto)) ?? .classic).rawValue,
                           supported: unsupported == nil, unsupported: unsupported,
                           af_xdp: xsk >= 0, multicast_notifications: mfd >= 0, devices: devices)
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public func textLines() -> [String] {
        func yn(_ b: Bool) -> String { b ? "yes" : "no" }
        var lines = [
            "kernel \(kernel.release): \(supported ? "supported" : "NOT supported: \(unsupported ?? "?")")",
            "  BTF                          \(yn(kernel.btf))",
            "  tcx (6.6+)                   \(yn(kernel.tcx))",
            "  kfuncs (6.2+)                \(yn(kernel.kfuncs))",
            "  attachment (--tc-mode auto)  \(attachment)\(kernel.tcx ? "" : " (clsact + cls_bpf)")",
            "  datapath object              \(kernel.datapath_object)",
            "  AF_XDP sockets               \(yn(af_xdp))",
            "  multicast notifications      \(yn(multicast_notifications))\(multicast_notifications ? "" : " (run compares lists every 80 ms while joined)")",
            "devices:",
        ]
        if devices.isEmpty { lines.append("  no Ethernet devices in this network namespace") }
        for d in devices {
            var line = "  \(d.name)(\(d.ifindex)) \(d.mac) driver \(d.driver ?? "?")"
            if let bus = d.bus_info { line += " bus \(bus)" }
            line += ", XDP \(d.xdp)"
            if let tx = d.xdp_transmit { line += tx ? " (transmits XDP frames)" : " (no XDP transmit)" }
            if let zc = d.af_xdp_zerocopy { line += zc ? ", AF_XDP zero-copy" : ", AF_XDP copy mode" }
            line += ": \(d.role)"
            if let note = d.note { line += " (\(note))" }
            lines.append(line)
        }
        return lines
    }
}
