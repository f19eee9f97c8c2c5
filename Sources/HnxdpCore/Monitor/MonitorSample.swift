import CHnxdpShim
import Glibc

/// One pair as `hnxdp monitor` sees it at one moment: `PairCounters` (state
/// and counters from the pinned maps, the snapshot `run`'s metrics read too),
/// plus which path frames take now (transmit devmap and the VF's carrier) and
/// the last switch from the pair's switch history.
public struct MonitorPair: Equatable, Sendable {
    public var synthetic: Int32
    public var syntheticName: String?
    /// The VF the pair entry names; nil: none.
    public var vf: Int32?
    /// The VF's name now; nil when there is none or it no longer exists.
    public var vfName: String?
    public var vfCarrier: Bool?
    /// The pair's slot in `hnxdp_stats`: a pair made again may get another.
    public var slot: UInt32
    public var state: PairState
    /// "vf" or "synthetic", as in `dump`.
    public var datapath: String
    public var switches: UInt32
    /// CLOCK_REALTIME (ns) of the last switch; 0: none yet.
    public var lastSwitchNs: UInt64
    /// The history entry of the last switch, when the history has it.
    public var lastSwitch: SwitchEvent?
    /// The datapath's counters, summed over CPUs.
    public var stats: PairReport.Stats
    /// CLOCK_MONOTONIC (ns) right after the counters were read: rates divide by
    /// the real time between two reads, not by the nominal interval.
    public var readNs: UInt64

    public init(synthetic: Int32, syntheticName: String? = nil, vf: Int32? = nil, vfName: String? = nil, vfCarrier: Bool? = nil,
                slot: UInt32 = 0, state: PairState = .idle, datapath: String = "synthetic", switches: UInt32 = 0,
                lastSwitchNs: UInt64 = 0, lastSwitch: SwitchEvent? = nil, stats: PairReport.Stats = PairReport.Stats(), readNs: UInt64 = 0) {
        self.synthetic = synthetic
        self.syntheticName = syntheticName
        self.vf = vf
        self.vfName = vfName
        self.vfCarrier = vfCarrier
        self.slot = slot
        self.state = state
        self.datapath = datapath
        self.switches = switches
        self.lastSwitchNs = lastSwitchNs
        self.lastSwitch = lastSwitch
        self.stats = stats
        self.readNs = readNs
    }
}

/// Every pair of the namespace at one moment.
public struct MonitorSample: Equatable, Sendable {
    /// CLOCK_REALTIME (ns) of the read, for the frame's clock and the JSON `time`.
    public var realtimeNs: UInt64
    public var pairs: [MonitorPair]
    /// Why the pins could not be read this time (shown; the next read tries again).
    public var error: String?

    public init(realtimeNs: UInt64, pairs: [MonitorPair], error: String? = nil) {
        self.realtimeNs = realtimeNs
        self.pairs = pairs
        self.error = error
    }

    /// Reads the pins of `layout`'s namespace now. A reader only: no lock, no
    /// change. The pins are opened again on every read, so pairs attached,
    /// detached or made again meanwhile (a new `attach`, `detach --all`) show.
    public static func read(layout: PinLayout, netlink: RTNetlink, histories: SwitchHistoryStore) throws -> MonitorSample {
        let now = realtimeNanoseconds()
        guard let datapath = try Datapath.openPinned(layout) else { return MonitorSample(realtimeNs: now, pairs: []) }
        let links = Dictionary(try netlink.links().map { ($0.ifindex, $0) }, uniquingKeysWith: { $1 })
        let counters = try PairCounters.read(datapath, names: links.mapValues(\.name))
        // The counters of every pair were just read: their time, for the rates.
        let readNs = monotonicNanoseconds()
        var pairs: [MonitorPair] = []
        for c in counters {
            let vfLink = c.vf.flatMap { links[$0] }
            let tx = try datapath.transmitDevice(slot: c.slot)
            let active = c.state == .active
            let usable = active && tx != nil && tx == c.vf.map(UInt32.init(bitPattern:)) && (vfLink?.carrier ?? false)
            pairs.append(MonitorPair(
                synthetic: c.synthetic, syntheticName: c.syntheticName, vf: c.vf, vfName: c.vfName, vfCarrier: vfLink?.carrier,
                slot: c.slot, state: c.state, datapath: usable ? "vf" : "synthetic",
                switches: c.switches, lastSwitchNs: c.lastSwitchNs,
                lastSwitch: c.switches == 0 ? nil : histories.load(synthetic: c.synthetic).last(switches: c.switches),
                stats: c.stats, readNs: readNs))
        }
        return MonitorSample(realtimeNs: now, pairs: pairs)
    }
}
