import CHnxdpShim
import Glibc
import Logging
@testable import HnxdpCore

// Fakes of the control plane's seams (Sources/HnxdpCore/Control/Seams.swift),
// in the manner of swift-system's mockable syscalls: every fake writes what it
// was asked into one shared `OperationLog`, so a test asserts on the sequence
// of operations the reconciler and the joined-pair policy carried out.

/// What the control plane asked of the world, in order.
final class OperationLog {
    var entries: [String] = []
    func add(_ entry: String) { entries.append(entry) }
    /// Entries starting with one of the prefixes (the operations a test is about).
    func filtered(_ prefixes: String...) -> [String] {
        entries.filter { e in prefixes.contains { e.hasPrefix($0) } }
    }
}

/// The namespace's links: a table the test edits, and MTUs or multicast
/// addresses a device refuses.
final class FakeLinks: LinkTable {
    let log: OperationLog
    var table: [Int32: LinkInfo] = [:]
    /// MTUs each device (by name) refuses with EINVAL.
    var refusedMTU: [String: Set<UInt32>] = [:]
    /// Devices (by name) that take no multicast address (ENOSPC).
    var refusesMulticast: Set<String> = []
    var multicast: [Int32: Set<[UInt8]>] = [:]

    init(log: OperationLog) { self.log = log }

    func add(_ link: LinkInfo) { table[link.ifindex] = link }

    func links() throws -> [LinkInfo] { table.values.sorted { $0.ifindex < $1.ifindex } }
    func link(index: Int32) throws -> LinkInfo? { table[index] }

    func setLink(index: Int32, name: String, _ change: LinkChange) throws {
        guard var link = table[index] else { throw HnxdpError.system("set link \(name)", errno: ENODEV) }
        if let mtu = change.mtu, refusedMTU[name]?.contains(mtu) == true {
            log.add("setLink \(name) \(change) refused")
            throw HnxdpError.system("set MTU \(mtu) on \(name)", errno: EINVAL)
        }
        if let mtu = change.mtu { link.mtu = mtu }
        func set(_ bit: UInt32, _ on: Bool?) {
            guard let on else { return }
            link.flags = on ? link.flags | bit : link.flags & ~bit
        }
        set(LinkInfo.Flag.up, change.up)
        set(LinkInfo.Flag.promisc, change.promisc)
        set(LinkInfo.Flag.allmulti, change.allmulti)
        table[index] = link
        log.add("setLink \(name) \(change)")
    }

    func multicastLists() -> [Int32: Set<[UInt8]>] { multicast }

    func setMulticast(_ mac: [UInt8], on ifname: String, add: Bool) throws {
        guard let link = table.values.first(where: { $0.name == ifname }) else {
            throw HnxdpError.system("multicast on \(ifname)", errno: ENODEV)
        }
        if add && refusesMulticast.contains(ifname) {
            log.add("multicast \(ifname) +\(LinkInfo.formatMAC(mac)) refused")
            throw HnxdpError.system("add multicast \(LinkInfo.formatMAC(mac)) on \(ifname)", errno: ENOSPC)
        }
        if add { multicast[link.ifindex, default: []].insert(mac) } else { multicast[link.ifindex]?.remove(mac) }
        log.add("multicast \(ifname) \(add ? "+" : "-")\(LinkInfo.formatMAC(mac))")
    }
}

/// Drivers by device name; no offload ever changes.
final class FakeFeatures: DeviceFeatures {
    var drivers: [String: (driver: String, busInfo: String)] = [:]
    func driverInfo(of ifname: String) -> (driver: String, busInfo: String)? { drivers[ifname] }
    func features(of ifname: String) throws -> FeatureSet {
        FeatureSet(names: [], available: [], requested: [], active: [], neverChanged: [])
    }
    func setFeatures(of ifname: String, requested: [UInt64], mask: [UInt64]) throws -> FeatureSet {
        try features(of: ifname)
    }
}

/// The pinned pair map as a dictionary; records only counted.
final class FakePairStore: PairStore {
    let log: OperationLog
    var pairs: [Int32: hnxdp_pair] = [:]
    var records: Set<Int32> = []
    var recordUpdates = 0

    init(log: OperationLog) { self.log = log }

    func pair(_ synthetic: Int32) throws -> hnxdp_pair? { pairs[synthetic] }
    func pairedSynthetics() throws -> [Int32] { pairs.keys.sorted() }
    func store(_ pair: hnxdp_pair) throws { pairs[Int32(bitPattern: pair.syn_ifindex)] = pair }
    func remove(_ synthetic: Int32) throws { pairs[synthetic] = nil }
    func freeSlot() throws -> UInt32 {
        let used = Set(pairs.values.map(\.slot))
        return (0..<UInt32(HNXDP_MAX_PAIRS)).first { !used.contains($0) }!
    }
    func recordedSynthetics() -> [Int32] { records.sorted() }
    func updateRecord(_ synthetic: Int32, _ body: (inout PairRecord) -> Void) throws { recordUpdates += 1 }

    /// A pinned pair as an earlier run leaves it.
    func pin(synthetic: Int32, vf: Int32 = 0, state: PairState, mtu: UInt32 = 1500, flags: PairFlags = .transparent) {
        var pair = hnxdp_pair()
        pair.syn_ifindex = UInt32(bitPattern: synthetic)
        pair.vf_ifindex = UInt32(bitPattern: vf)
        pair.pairState = state
        pair.pairFlags = flags
        pair.mtu = mtu
        pair.slot = try! freeSlot()
        pairs[synthetic] = pair
    }

    func state(_ synthetic: Int32) -> PairState? { pairs[synthetic]?.pairState }
}

/// `PairLifecycle` as the pair map sees it: install, join and leave write the
/// entry as the real ones do; the devices are the `FakeLinks` table.
final class FakeLifecycle: DeviceChanges {
    let log: OperationLog
    let links: FakeLinks
    let store: FakePairStore
    /// Joins of these VFs (by name) fail.
    var failingJoins: Set<String> = []

    init(log: OperationLog, links: FakeLinks, store: FakePairStore) {
        self.log = log
        self.links = links
        self.store = store
    }

    func name(_ ifindex: Int32) -> String { links.table[ifindex]?.name ?? "ifindex \(ifindex)" }

    func install(synthetic: LinkInfo, flags: PairFlags) throws {
        log.add("install \(synthetic.name)")
        if store.pairs[synthetic.ifindex] == nil {
            store.pin(synthetic: synthetic.ifindex, state: .idle, mtu: synthetic.mtu, flags: flags)
        }
    }
    func reattachLinks(synthetic: LinkInfo, vf: LinkInfo?) throws -> [String] {
        log.add("reattach \(synthetic.name)\(vf.map { " " + $0.name } ?? "")")
        return []
    }
    func uninstall(synthetic: Int32) throws {
        log.add("uninstall \(name(synthetic))")
        store.pairs[synthetic] = nil
    }
    func join(synthetic: LinkInfo, vf: LinkInfo, switchReason: SwitchReason) throws -> JoinResult {
        log.add("join \(synthetic.name) \(vf.name) \(switchReason.rawValue)")
        if failingJoins.contains(vf.name) { throw HnxdpError(.runtime, "join of \(vf.name) failed (fake)") }
        guard var pair = store.pairs[synthetic.ifindex] else { throw HnxdpError(.runtime, "not installed") }
        pair.vf_ifindex = UInt32(bitPattern: vf.ifindex)
        pair.pairState = .active
        pair.mtu = synthetic.mtu
        store.pairs[synthetic.ifindex] = pair
        // As the real join: the VF takes the synthetic's MTU and admin state (B7, B8).
        links.table[vf.ifindex]?.mtu = synthetic.mtu
        if synthetic.isUp { links.table[vf.ifindex]?.flags |= LinkInfo.Flag.up }
        return JoinResult(synthetic: synthetic, vf: vf, alreadyAttached: false, featuresTurnedOff: [],
                          gsoMaxSize: nil, gsoMaxSegs: nil, mtu: synthetic.mtu, mtuFallback: false)
    }
    func leave(synthetic: Int32, reason: String, switchReason: SwitchReason, onSwitched: (() -> Void)?) throws {
        guard var pair = store.pairs[synthetic], pair.vf_ifindex != 0, pair.pairState != .disabled else {
            log.add("leave \(name(synthetic)) \(switchReason.rawValue) (nothing joined)")
            return
        }
        log.add("leave \(name(synthetic)) \(switchReason.rawValue)")
        pair.vf_ifindex = 0
        pair.pairState = .idle
        store.pairs[synthetic] = pair
        onSwitched?()
    }
    func finishInterrupted(synthetic: Int32) throws {
        log.add("finish \(name(synthetic))")
        store.records.remove(synthetic)
    }
    func followQdisc(synthetic: LinkInfo, vf: LinkInfo, logger: Logger,
                     unchangedSince: QdiscMirror.Outcome?) throws -> QdiscMirror.Outcome? {
        log.add("followQdisc \(synthetic.name) \(vf.name)")
        return unchangedSince
    }
}

/// A monotonic clock the test moves.
final class ManualClock: ControlClock {
    var milliseconds: UInt64 = 1_000_000
    var nanoseconds: UInt64 { milliseconds * 1_000_000 }
    func advance(_ ms: UInt64) { milliseconds += ms }
}

/// Log lines, kept for assertions.
final class LogLines: @unchecked Sendable {
    var lines: [String] = []
    func contains(_ text: String) -> Bool { lines.contains { $0.contains(text) } }
}

struct CapturingLogHandler: LogHandler {
    let sink: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        sink.lines.append("\(level): \(message)")
    }
}

/// One control plane's reconciler wired to fakes: a virtio_net synthetic hn0
/// (ifindex 2) and, when asked, PCI VFs with its MAC.
final class FakeWorld {
    let log = OperationLog()
    let lines = LogLines()
    let links: FakeLinks
    let features = FakeFeatures()
    let store: FakePairStore
    let lifecycle: FakeLifecycle
    let clock = ManualClock()
    var settings = RunSettings()
    lazy var reconciler = PairReconciler(settings: settings, logger: Logger(label: "test") { _ in CapturingLogHandler(sink: self.lines) },
                                         netlink: links, features: features, store: store, devices: lifecycle, clock: clock)

    static let mac: [UInt8] = [0x02, 0, 0, 0, 0, 0x10]
    static let up = LinkInfo.Flag.up

    init(timing: PairTiming = PairTiming(settleMs: 500, flapThreshold: 3, holdDownMs: 5000)) {
        links = FakeLinks(log: log)
        store = FakePairStore(log: log)
        lifecycle = FakeLifecycle(log: log, links: links, store: store)
        settings.timing = timing
    }

    @discardableResult
    func addSynthetic(_ ifindex: Int32 = 2, name: String = "hn0", mtu: UInt32 = 1500) -> LinkInfo {
        let link = LinkInfo(ifindex: ifindex, name: name, mac: Self.mac, flags: Self.up, mtu: mtu)
        links.add(link)
        features.drivers[name] = ("virtio_net", "virtio1")
        return link
    }

    @discardableResult
    func addVF(_ ifindex: Int32, name: String, mtu: UInt32 = 1500) -> LinkInfo {
        let link = LinkInfo(ifindex: ifindex, name: name, mac: Self.mac, flags: 0, mtu: mtu)
        links.add(link)
        features.drivers[name] = ("mlx5_core", "0000:00:0\(ifindex).0")
        return link
    }

    /// A link notification as the loop hands it over.
    func notify(new ifindex: Int32) throws {
        try reconciler.handle(.newLink(links.table[ifindex]!))
    }
    func notify(deleted ifindex: Int32) throws {
        let link = links.table.removeValue(forKey: ifindex)!
        links.multicast[ifindex] = nil
        try reconciler.handle(.delLink(link))
    }
    /// Time passes in steps, the machines' deadlines handled as the loop does.
    func advance(_ ms: UInt64, step: UInt64 = 50) throws {
        var left = ms
        while left > 0 {
            let d = min(step, left)
            clock.advance(d)
            left -= d
            try reconciler.tickMachines()
        }
    }
    func phase(_ ifindex: Int32 = 2) -> PairPhase? { reconciler.machines[ifindex]?.phase }
}
