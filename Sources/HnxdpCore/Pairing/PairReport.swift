import CHnxdpShim
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A device in JSON output: `{"name": ..., "ifindex": ...}`; no name when the
/// device is gone (or the caller does not know it).
public struct DeviceName: Encodable, Equatable, Sendable {
    public var name: String?
    public var ifindex: Int32

    public init(name: String?, ifindex: Int32) {
        self.name = name
        self.ifindex = ifindex
    }

    /// "NAME(IFINDEX)", "?(IFINDEX)" without a name: how text output names a device.
    public var label: String { "\(name ?? "?")(\(ifindex))" }
}

/// One pair as `dump` shows it (docs/json.md).
public struct PairReport: Encodable, Equatable, Sendable {
    public struct Device: Encodable, Equatable, Sendable {
        public var name: String?
        public var ifindex: Int32
        public var mac: String?
        public var carrier: Bool?
        /// VF only: addresses it has of its own (link-local ones aside); a joined VF
        /// should have none (B24), traffic routed by them bypasses the pair.
        public var addresses: [String]?
        /// VF only: routes a user or daemon configured through it (the kernel's own
        /// routes for its addresses aside); same warning.
        public var routes: [String]?
    }

    public struct Features: Encodable, Equatable, Sendable {
        public var saved: [String]
        public var vf: [String]
        public var effective: [String]
    }

    public struct GSO: Encodable, Equatable, Sendable {
        public var saved_max_size: UInt32
        public var max_size: UInt32
        public var saved_max_segs: UInt32
        public var max_segs: UInt32
    }

    public struct Stats: Encodable, Equatable, Sendable {
        public var vf_rx_packets: UInt64 = 0
        public var vf_rx_bytes: UInt64 = 0
        public var vf_tx_packets: UInt64 = 0
        public var vf_tx_bytes: UInt64 = 0
        public var syn_rx_packets: UInt64 = 0
        public var syn_rx_bytes: UInt64 = 0
        public var syn_tx_packets: UInt64 = 0
        public var syn_tx_bytes: UInt64 = 0
        public var tx_fallback_packets: UInt64 = 0
        public var drops: UInt64 = 0

        public init() {}

        /// The sum of the per-CPU values of one slot of `hnxdp_stats`
        /// (`PairCounters.stats` reads them).
        public init(summing perCPU: [hnxdp_stats]) {
            for s in perCPU { add(s) }
        }

        /// Adds one CPU's counters: the one place that knows `struct hnxdp_stats`'s fields.
        mutating func add(_ s: hnxdp_stats) {
            vf_rx_packets &+= s.vf_rx_packets; vf_rx_bytes &+= s.vf_rx_bytes
            vf_tx_packets &+= s.vf_tx_packets; vf_tx_bytes &+= s.vf_tx_bytes
            syn_rx_packets &+= s.syn_rx_packets; syn_rx_bytes &+= s.syn_rx_bytes
            syn_tx_packets &+= s.syn_tx_packets; syn_tx_bytes &+= s.syn_tx_bytes
            tx_fallback_packets &+= s.tx_fallback_packets; drops &+= s.drops
        }
    }

    public var synthetic: Device
    /// nil (JSON null) when no VF is joined or the joined VF no longer exists.
    @ExplicitNull public var vf: Device?
    public var state: String
    public var datapath: String
    public var mtu: UInt32
    public var features: Features
    public var gso: GSO
    public var stats: Stats
    public var switches: UInt32
    @ExplicitNull public var last_switch: String?
    /// The pair's last switches (at most `SwitchHistory.capacity`), oldest first.
    public var switch_history: [SwitchEvent] = []
    public var transparent: Bool
    public var explicit: Bool
    public var slot: UInt32
    public var pins: String
    /// How the pair's programs are attached: "tcx", "classic" (clsact + cls_bpf), or
    /// "none" when none of its attachments is in place.
    public var attachment: String = "none"
    /// The synthetic's egress shaping on the VF: "none" (nothing to copy: no VF joined,
    /// or the synthetic has only the kernel's default qdiscs), "mirrored", or
    /// "not-faithful: <why>".
    public var qdisc: String = "none"


    /// The report of one pair from its map entry, counters and the devices as they are now.
    /// Pure: the caller looks up the devices and features.
    static func make(pair: hnxdp_pair, counters: Stats, synthetic: LinkInfo?, vf: LinkInfo?,
                     txdevPresent: Bool, featureNames: [String], layout: PinLayout, vfAddresses: [String] = [], vfRoutes: [String] = [],
                     qdisc: QdiscState = .none, history: [SwitchEvent] = []) -> PairReport {
        let active = pair.pairState == .active
        let vfUsable = active && txdevPresent && (vf?.carrier ?? false)
        func names(_ t: (UInt64, UInt64)) -> [String] {
            let words = FeatureWords.array(t)
            if featureNames.isEmpty {
                return (0..<Int(pair.feature_count)).filter { words[$0 / 64] & (UInt64(1) << UInt64($0 % 64)) != 0 }.map { "bit-\($0)" }
            }
            return FeatureSet.names(of: words, in: featureNames)
        }
        var lastSwitch: String? = nil
        if pair.last_switch_ns != 0 {
            lastSwitch = iso8601UTC(nanosecondsSinceEpoch: pair.last_switch_ns)
        }
        let synIndex = Int32(bitPattern: pair.syn_ifindex)
        return PairReport(
            synthetic: Device(name: synthetic?.name, ifindex: synIndex, mac: synthetic?.macString, carrier: nil),
            vf: vf.map { Device(name: $0.name, ifindex: $0.ifindex, mac: nil, carrier: $0.carrier, addresses: vfAddresses, routes: vfRoutes) },
            state: pair.pairState.name,
            datapath: vfUsable ? "vf" : "synthetic",
            mtu: synthetic?.mtu ?? pair.mtu,
            features: Features(saved: names(pair.saved_active), vf: names(pair.vf_features), effective: names(pair.effective_features)),
            gso: GSO(saved_max_size: pair.saved_gso_max_size, max_size: synthetic?.gsoMaxSize ?? pair.gso_max_size,
                     saved_max_segs: pair.saved_gso_max_segs, max_segs: synthetic?.gsoMaxSegs ?? pair.gso_max_segs),
            stats: counters,
            switches: pair.switches,
            last_switch: lastSwitch,
            switch_history: history,
            transparent: pair.pairFlags.contains(.transparent),
            explicit: pair.pairFlags.contains(.explicit),
            slot: pair.slot,
            pins: layout.pairDirectory(synthetic: synIndex),
            qdisc: qdisc.description)
    }
}

/// The whole `dump`.
public struct DumpReport: Encodable, Equatable, Sendable {
    /// The version of the hnxdp binary that wrote this object.
    public var version: String = HnxdpVersion.string
    /// The version of this object's layout (`HnxdpVersion.jsonSchema`): scripts check it.
    public var schema_version: Int = HnxdpVersion.jsonSchema
    public var netns_inode: UInt64
    public var bpffs: String
    /// What the running kernel offers (decides the attachment and the datapath object).
    public var kernel: KernelReport?
    public var pairs: [PairReport]
    /// The pinned pair map's value layout and state numbers, for tools that read it directly.
    public var pair_map: PairMapLayout = .current
    /// Pairs the kernel made itself (net_failover, hv_netvsc): never steered by hnxdp;
    /// AF_XDP and XDP programs may run on them (coexistence).
    public var kernel_pairs: [KernelPairReport] = []
    /// This hnxdp's pin layout number (`HNXDP_PIN_LAYOUT`).
    public var pin_layout: UInt32 = PinMeta.thisLayout
    /// Who made the namespace's pins; nil when nothing is pinned.
    public var pinned_by: PinnedBy?
    /// The datapath's packet capture flag (`hnxdp capture`); nil when nothing usable is
    /// pinned or the pinned datapath has no capture maps.
    public var capture: CaptureFlagReport?

    public struct PinnedBy: Encodable, Equatable, Sendable {
        /// The version of the hnxdp that made the pins; null for pins made before versioning.
        @ExplicitNull public var version: String?
        /// Its pin layout; null for pins made before versioning.
        @ExplicitNull public var pin_layout: UInt32?
        /// This hnxdp uses the pins (same pin layout); false: `hnxdp migrate`.
        public var usable: Bool

        public init?(_ compatibility: PinCompatibility) {
            switch compatibility {
            case .nothingPinned: return nil
            case .current: self.init(version: HnxdpVersion.string, pin_layout: PinMeta.thisLayout, usable: true)
            case .otherVersion(let m): self.init(version: m.version, pin_layout: m.layout, usable: true)
            case .otherLayout(let m): self.init(version: m.version, pin_layout: m.layout, usable: false)
            case .unversioned: self.init(version: nil, pin_layout: nil, usable: false)
            }
        }

        init(version: String?, pin_layout: UInt32?, usable: Bool) {
            self.version = version
            self.pin_layout = pin_layout
            self.usable = usable
        }
    }

    public struct KernelPairReport: Encodable, Equatable, Sendable {
        public typealias Device = DeviceName
        /// "net_failover" or "hv_netvsc".
        public var driver: String
        /// The device the stack uses (the failover master, the netvsc device).
        public var master: Device
        /// The path that is always there (the failover standby; the netvsc device itself).
        public var synthetic: Device
        /// The VF the kernel has joined now.
        public var vf: Device?
        /// Always false: the kernel steers these.
        public var steered: Bool = false
        /// hnxdp's XDP program on the pair's devices (for `hnxdp xsk`), and a user's behind it (`hnxdp xdp`).
        public var xdp_steering: Bool
        public var xdp_user_program: Bool

        init(_ p: KernelPair, layout: PinLayout) {
            driver = p.kind.rawValue
            master = Device(name: p.master.name, ifindex: p.master.ifindex)
            synthetic = Device(name: p.synthetic.name, ifindex: p.synthetic.ifindex)
            vf = p.vf.map { Device(name: $0.name, ifindex: $0.ifindex) }
            let objects = try? XDPPairObjects.openPinned(layout: layout.kernelPairs, synthetic: p.synthetic.ifindex)
            xdp_steering = objects != nil
            xdp_user_program = (try? objects?.hasUserProgram()) == true
        }
    }

    public struct KernelReport: Encodable, Equatable, Sendable {
        public var release: String
        public var tcx: Bool
        public var kfuncs: Bool
        public var btf: Bool
        /// The embedded datapath object this kernel loads ("hnxdp" or "hnxdp_compat").
        public var datapath_object: String

        public init(_ k: KernelCapabilities) {
            release = k.release
            tcx = k.tcx
            kfuncs = k.kfuncs
            btf = k.btf
            datapath_object = k.datapathObject
        }
    }

    public init(netns_inode: UInt64, bpffs: String, pairs: [PairReport], kernel: KernelReport? = nil) {
        self.netns_inode = netns_inode
        self.bpffs = bpffs
        self.pairs = pairs
        self.kernel = kernel
    }

    /// JSON as printed by `dump --json` (stable key order, pretty).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads the pinned maps of this namespace and the devices as they are now.
    /// `kernel`: false leaves out the kernel's capabilities (their probe parses the
    /// kernel's BTF, 10-20 ms), for the text `status`, which does not print them.
    /// `history`: false leaves every pair's `switch_history` empty (one file read and
    /// JSON decode per pair), for the text `status`, which does not print it either.
    ///
    /// The cost is kept flat per pair (`status` with 256 pairs, docs/benchmarks.md P11):
    /// the namespace's links are one RTM_GETLINK dump without counters and its qdiscs one
    /// dump, not requests per device; the tc classes and filters are read only for a
    /// synthetic that has qdiscs of its own.
    public static func collect(layout: PinLayout, synthetic: String? = nil, kernel: Bool = true,
                               history: Bool = true) throws -> DumpReport {
        var report = DumpReport(netns_inode: layout.netnsInode, bpffs: layout.root, pairs: [],
                                kernel: kernel ? KernelReport(KernelCapabilities.current()) : nil)
        let netlink = try RTNetlink()
        var only: Int32? = nil
        if let synthetic {
            let link = try netlink.requireLink(named: synthetic, option: "--synthetic")
            only = link.ifindex
        }
        // Every device of the namespace at once, unless one pair was asked for
        // (then its two devices, each by its own request); the same dump shows the kernel's pairs.
        let linkList = only != nil ? nil : try netlink.links()
        if let linkList {
            report.kernel_pairs = KernelPair.find(in: KernelPair.devices(links: linkList))
                .map { KernelPairReport($0, layout: layout) }
        }
        // Pins another pin layout made are not read: what they are is all there is to say.
        let compatibility = try Datapath.pinCompatibility(layout)
        report.pinned_by = DumpReport.PinnedBy(compatibility)
        guard compatibility.usable, let datapath = try Datapath.openPinned(layout) else { return report }
        report.capture = try CaptureFlagReport.read(datapath)
        let allLinks: [Int32: LinkInfo]? = linkList.map { Dictionary($0.map { ($0.ifindex, $0) }, uniquingKeysWith: { _, new in new }) }
        func link(_ ifindex: UInt32) throws -> LinkInfo? {
            let index = Int32(bitPattern: ifindex)
            guard index > 0 else { return nil }
            if let allLinks { return allLinks[index] }
            return try netlink.link(index: index)
        }
        // ethtool's feature names (ETH_SS_FEATURES) are the kernel's, the same for
        // every device: read them once, from the first synthetic that exists.
        var featureNames: [String]? = nil
        var addresses: [InterfaceAddress]? = nil
        var routes: [InterfaceRoute]? = nil
        let histories = SwitchHistoryStore(layout: layout)
        let cookie = history ? NetworkNamespace.currentCookie() : 0
        // One qdisc dump for all pairs (each dump lists every device of the namespace).
        try netlink.beginQdiscSnapshot()
        defer { netlink.endQdiscSnapshot() }
        // The pair entries and the counters of all pairs in a few batch reads, not two
        // or three system calls per pair (entry by entry where the kernel cannot).
        var pairs: [(key: UInt32, pair: hnxdp_pair)]
        if let only {
            pairs = try datapath.pairs.lookup(UInt32(bitPattern: only)).map { [(UInt32(bitPattern: only), $0)] } ?? []
        } else {
            pairs = try datapath.pairs.entries().map { ($0.key, $0.value) }.sorted { $0.key < $1.key }
        }
        let counters = only == nil ? try PairCounters.allStats(datapath) : nil
        for (key, pair) in pairs {
            let syn = try link(key)
            let vf = pair.vf_ifindex == 0 ? nil : try link(pair.vf_ifindex)
            if featureNames == nil, let syn { featureNames = try? Ethtool.features(of: syn.name).names }
            if vf != nil && addresses == nil { addresses = try netlink.addresses() }
            if vf != nil && routes == nil { routes = try netlink.routes() }
            let own = (addresses ?? []).filter { $0.ifindex == vf?.ifindex && !$0.isLinkLocal }.map(\.description)
            let ownRoutes = (routes ?? []).filter { $0.oif == vf?.ifindex && $0.isConfigured }.map(\.description)
            let tx = try datapath.transmitDevice(slot: pair.slot)
            // The egress shaping of a joined pair, as the devices read now.
            var qdisc = QdiscState.none
            if pair.pairState == .active, let syn, let vf {
                do { qdisc = try QdiscMirror.observe(netlink: netlink, syn: syn, vf: vf) } catch {
                    qdisc = .notFaithful("cannot read the qdiscs: \(error)")
                }
            }
            var entry = PairReport.make(
                pair: pair, counters: try counters?[pair.slot] ?? PairCounters.stats(datapath, slot: pair.slot), synthetic: syn, vf: vf,
                txdevPresent: tx != nil && tx == pair.vf_ifindex,
                featureNames: featureNames ?? [], layout: layout, vfAddresses: own, vfRoutes: ownRoutes, qdisc: qdisc,
                history: history ? histories.load(synthetic: Int32(bitPattern: key), cookie: cookie).switches : [])
            entry.attachment = "none"
            for program in DatapathProgram.allCases {
                if let mode = TcHook.mode(pinPath: layout.linkPath(synthetic: Int32(bitPattern: key), program.linkName)) {
                    entry.attachment = mode.rawValue
                    break
                }
            }
            report.pairs.append(entry)
        }
        return report
    }

    /// `status`: one line per pair.
    public func statusLines() -> [String] {
        let kernel = kernel_pairs.map { k in
            let vf = k.vf.map { "VF \($0.label)" } ?? "no VF"
            let standby = k.driver == "net_failover" ? "standby \(k.synthetic.label), " : ""
            let xdp = k.xdp_user_program ? "hnxdp XDP + your XDP program" : k.xdp_steering ? "hnxdp XDP (AF_XDP)" : "no XDP"
            return "\(k.master.label): the kernel's pair (\(k.driver)): \(standby)\(vf); hnxdp steers nothing (coexistence), \(xdp)"
        }
        if pairs.isEmpty { return ["no pairs attached in this network namespace"] + kernel }
        return pairs.map { p in
            let syn = "\(p.synthetic.name ?? "?")(\(p.synthetic.ifindex))"
            let vf = p.vf.map { "\($0.name ?? "?")(\($0.ifindex)) carrier \($0.carrier == true ? "up" : "down")" } ?? "no VF"
            var warning = (p.vf?.addresses ?? []).isEmpty ? "" : "; warning: the VF has addresses of its own (\(p.vf!.addresses!.joined(separator: ", "))): traffic routed by them bypasses the pair"
            if let r = p.vf?.routes, !r.isEmpty {
                warning += "; warning: routes go through the VF (\(r.joined(separator: ", "))): traffic they carry bypasses the pair"
            }
            let qdisc = p.qdisc == "none" ? "" : ", qdisc \(p.qdisc)"
            return "\(syn) <- \(vf): \(p.state), datapath \(p.datapath), mtu \(p.mtu), rx vf/syn \(p.stats.vf_rx_packets)/\(p.stats.syn_rx_packets), tx vf/syn \(p.stats.vf_tx_packets)/\(p.stats.syn_tx_packets), fallback \(p.stats.tx_fallback_packets), switches \(p.switches), attachment \(p.attachment)\(qdisc)\(warning)"
        } + kernel
    }
}
