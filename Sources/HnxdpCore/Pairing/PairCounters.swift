import CHnxdpShim

/// One pair's counters and state as the pinned maps hold them at one moment:
/// the snapshot that `run`'s metrics (and `monitor`) read. Nothing is cached:
/// every call reads `hnxdp_pairs` and sums `hnxdp_stats` over CPUs again, so a
/// value never drifts from what the datapath counted, and it survives a
/// restart of `run` (the maps are pinned).
public struct PairCounters: Equatable, Sendable {
    /// The synthetic's ifindex (the key of `hnxdp_pairs`).
    public var synthetic: Int32
    /// The synthetic's name now; nil when it was not looked up or no longer exists.
    public var syntheticName: String?
    /// The VF the pair entry names (joined, or reported with transparent mode off); nil: none.
    public var vf: Int32?
    /// The VF's name now; nil when there is no VF, it was not looked up or no longer exists.
    public var vfName: String?
    /// The pair's slot in `hnxdp_stats` (and `hnxdp_txdev`).
    public var slot: UInt32
    /// The state the pair entry holds.
    public var state: PairState
    /// Datapath switches (VF <-> synthetic) since the pair was installed.
    public var switches: UInt32
    /// CLOCK_REALTIME (ns) of the last switch; 0: none yet.
    public var lastSwitchNs: UInt64
    /// The datapath's counters, summed over CPUs.
    public var stats: PairReport.Stats

    public init(synthetic: Int32, syntheticName: String? = nil, vf: Int32? = nil, vfName: String? = nil,
                slot: UInt32 = 0, state: PairState = .idle, switches: UInt32 = 0, lastSwitchNs: UInt64 = 0,
                stats: PairReport.Stats = PairReport.Stats()) {
        self.synthetic = synthetic
        self.syntheticName = syntheticName
        self.vf = vf
        self.vfName = vfName
        self.slot = slot
        self.state = state
        self.switches = switches
        self.lastSwitchNs = lastSwitchNs
        self.stats = stats
    }

    /// Every pair of the namespace, sorted by the synthetic's ifindex, read from
    /// the maps now. `names` gives a device's name by ifindex (e.g. from
    /// `RTNetlink.links()`); without it names stay nil.
    public static func read(_ datapath: Datapath, names: [Int32: String] = [:]) throws -> [PairCounters] {
        var result: [PairCounters] = []
        for (key, pair) in try datapath.pairs.entries().sorted(by: { $0.key < $1.key }) {
            let syn = Int32(bitPattern: key)
            let vf: Int32? = pair.vf_ifindex == 0 ? nil : Int32(bitPattern: pair.vf_ifindex)
            result.append(PairCounters(
                synthetic: syn, syntheticName: names[syn], vf: vf, vfName: vf.flatMap { names[$0] },
                slot: pair.slot, state: pair.pairState, switches: pair.switches, lastSwitchNs: pair.last_switch_ns,
                stats: try stats(datapath, slot: pair.slot)))
        }
        return result
    }

    /// The counters of one stats slot, summed over CPUs, as the datapath holds
    /// them now: the one reader of `hnxdp_stats` (dump, status, monitor, metrics).
    public static func stats(_ datapath: Datapath, slot: UInt32) throws -> PairReport.Stats {
        PairReport.Stats(summing: try datapath.stats.lookupPerCPU(slot) ?? [])
    }

    /// The counters of every stats slot, summed over CPUs, in one batch read
    /// (`status` and `dump` with many pairs); nil where the kernel cannot read the
    /// map in batches (then `stats(_:slot:)` per slot).
    public static func allStats(_ datapath: Datapath) throws -> [UInt32: PairReport.Stats]? {
        guard let entries = try datapath.stats.batchEntries() else { return nil }
        return Dictionary(entries.map { ($0.key, PairReport.Stats(summing: $0.values)) }, uniquingKeysWith: { _, new in new })
    }

    /// The namespace's pairs with device names, opening the pinned datapath of
    /// `layout`; empty when nothing is pinned there.
    public static func read(layout: PinLayout, netlink: RTNetlink) throws -> [PairCounters] {
        guard let datapath = try Datapath.openPinned(layout) else { return [] }
        let names = Dictionary(try netlink.links().map { ($0.ifindex, $0.name) }, uniquingKeysWith: { $1 })
        return try read(datapath, names: names)
    }
}
