import CHnxdpShim
import Glibc
import Logging

// The seams of the control plane: what the reconciler (Reconciler.swift) and
// the joined-pair policy (JoinedPairPolicy.swift) need from the world, as small
// protocols. `hnxdp run` wires the kernel implementations below (netlink,
// ethtool, the pinned pair map and records, `PairLifecycle`, CLOCK_MONOTONIC);
// the unprivileged tests wire fakes (Tests/HnxdpCoreTests/ControlFakes.swift)
// and assert on what the control plane asked of them.

/// The namespace's links: read them, change them, and their multicast lists.
protocol LinkTable: AnyObject {
    /// Every link of the namespace (a dump).
    func links() throws -> [LinkInfo]
    /// One link as it is now; nil when it does not exist.
    func link(index: Int32) throws -> LinkInfo?
    /// Changes MTU or flags of a link.
    func setLink(index: Int32, name: String, _ change: LinkChange) throws
    /// The link-layer multicast lists of the namespace, by ifindex.
    func multicastLists() -> [Int32: Set<[UInt8]>]
    /// Adds or deletes one multicast address on a link.
    func setMulticast(_ mac: [UInt8], on ifname: String, add: Bool) throws
}

/// Drivers and offload features of devices (ethtool).
protocol DeviceFeatures: AnyObject {
    /// Driver and bus (`ethtool -i`); nil: none.
    func driverInfo(of ifname: String) -> (driver: String, busInfo: String)?
    func features(of ifname: String) throws -> FeatureSet
    func setFeatures(of ifname: String, requested: [UInt64], mask: [UInt64]) throws -> FeatureSet
}

/// The pair store: the pinned pair map (what the datapath reads) and the
/// write-ahead records of the namespace (B21).
protocol PairStore: AnyObject {
    /// The pair entry of a synthetic, if any.
    func pair(_ synthetic: Int32) throws -> hnxdp_pair?
    /// The synthetics that have a pair entry.
    func pairedSynthetics() throws -> [Int32]
    func store(_ pair: hnxdp_pair) throws
    func remove(_ synthetic: Int32) throws
    /// A statistics slot no pair uses.
    func freeSlot() throws -> UInt32
    /// Synthetics that have a write-ahead record, sorted.
    func recordedSynthetics() -> [Int32]
    /// Updates a record in place; nothing when there is none.
    func updateRecord(_ synthetic: Int32, _ body: (inout PairRecord) -> Void) throws
}

/// What changes the devices of a pair: `PairLifecycle`'s operations, with the
/// datapath and netlink they need already bound.
protocol DeviceChanges: AnyObject {
    /// Makes `synthetic` a managed synthetic (pair entry, tcx links).
    func install(synthetic: LinkInfo, flags: PairFlags) throws
    /// Attaches again whichever of the pair's links is missing; returns what it attached.
    func reattachLinks(synthetic: LinkInfo, vf: LinkInfo?) throws -> [String]
    /// Removes a pair entry with its links and pins (the VF has left).
    func uninstall(synthetic: Int32) throws
    /// Joins `vf` (B4..B9) and switches the datapath to it.
    func join(synthetic: LinkInfo, vf: LinkInfo, switchReason: SwitchReason) throws -> JoinResult
    /// Undoes a join (B13); `onSwitched` runs once the datapath carries the synthetic.
    func leave(synthetic: Int32, reason: String, switchReason: SwitchReason, onSwitched: (() -> Void)?) throws
    /// Finishes a join or leave that a crash cut short (B21).
    func finishInterrupted(synthetic: Int32) throws
    /// The joined VF follows the synthetic's egress configuration.
    func followQdisc(synthetic: LinkInfo, vf: LinkInfo, logger: Logger,
                     unchangedSince: QdiscMirror.Outcome?) throws -> QdiscMirror.Outcome?
    /// Brackets `followQdisc` of every pair: the kernel implementation reads the
    /// namespace's qdiscs once for all of them instead of once per pair.
    func beginQdiscBatch()
    func endQdiscBatch()
}

extension DeviceChanges {
    func beginQdiscBatch() {}
    func endQdiscBatch() {}
}

/// The monotonic clock of deadlines and reaction times.
protocol ControlClock: AnyObject {
    var milliseconds: UInt64 { get }
    var nanoseconds: UInt64 { get }
}

// MARK: - The kernel

extension RTNetlink: LinkTable {
    func multicastLists() -> [Int32: Set<[UInt8]>] { MulticastList.current() }
    func setMulticast(_ mac: [UInt8], on ifname: String, add: Bool) throws {
        try MulticastList.set(mac, on: ifname, add: add)
    }
}

final class EthtoolFeatures: DeviceFeatures {
    func driverInfo(of ifname: String) -> (driver: String, busInfo: String)? { Ethtool.driverInfo(of: ifname) }
    func features(of ifname: String) throws -> FeatureSet { try Ethtool.features(of: ifname) }
    func setFeatures(of ifname: String, requested: [UInt64], mask: [UInt64]) throws -> FeatureSet {
        try Ethtool.setFeatures(of: ifname, requested: requested, mask: mask)
    }
}

/// The pinned pair map and the records of the namespace.
final class PinnedPairStore: PairStore {
    let datapath: Datapath
    let lifecycle: PairLifecycle

    init(datapath: Datapath, lifecycle: PairLifecycle) {
        self.datapath = datapath
        self.lifecycle = lifecycle
    }

    func pair(_ synthetic: Int32) throws -> hnxdp_pair? { try datapath.pairs.lookup(UInt32(bitPattern: synthetic)) }
    func pairedSynthetics() throws -> [Int32] { try datapath.pairs.keys().map { Int32(bitPattern: $0) } }
    func store(_ pair: hnxdp_pair) throws { try datapath.storePair(pair) }
    func remove(_ synthetic: Int32) throws { try datapath.removePair(synthetic: UInt32(bitPattern: synthetic)) }
    func freeSlot() throws -> UInt32 { try lifecycle.freeSlot(datapath) }
    func recordedSynthetics() -> [Int32] { lifecycle.records.state.recordedSynthetics() }
    func updateRecord(_ synthetic: Int32, _ body: (inout PairRecord) -> Void) throws {
        try lifecycle.records.update(synthetic: synthetic, body)
    }
}

/// `PairLifecycle` on the real devices, datapath and netlink.
final class KernelDeviceChanges: DeviceChanges {
    let lifecycle: PairLifecycle
    let netlink: RTNetlink
    let datapath: Datapath

    init(lifecycle: PairLifecycle, netlink: RTNetlink, datapath: Datapath) {
        self.lifecycle = lifecycle
        self.netlink = netlink
        self.datapath = datapath
    }

    func install(synthetic: LinkInfo, flags: PairFlags) throws {
        try lifecycle.install(synthetic: synthetic, flags: flags, datapath: datapath)
    }
    func reattachLinks(synthetic: LinkInfo, vf: LinkInfo?) throws -> [String] {
        try lifecycle.reattachLinks(synthetic: synthetic, vf: vf, datapath: datapath)
    }
    func uninstall(synthetic: Int32) throws {
        try lifecycle.uninstall(synthetic: synthetic, datapath: datapath)
    }
    func join(synthetic: LinkInfo, vf: LinkInfo, switchReason: SwitchReason) throws -> JoinResult {
        try lifecycle.joinVF(synthetic: synthetic, vf: vf, netlink: netlink, datapath: datapath, switchReason: switchReason)
    }
    func leave(synthetic: Int32, reason: String, switchReason: SwitchReason, onSwitched: (() -> Void)?) throws {
        try lifecycle.leaveVF(synthetic: synthetic, datapath: datapath, netlink: netlink, reason: reason,
                              switchReason: switchReason, onSwitched: onSwitched)
    }
    func finishInterrupted(synthetic: Int32) throws {
        try lifecycle.reconcile(synthetic: synthetic, datapath: datapath, netlink: netlink)
    }
    func followQdisc(synthetic: LinkInfo, vf: LinkInfo, logger: Logger,
                     unchangedSince: QdiscMirror.Outcome?) throws -> QdiscMirror.Outcome? {
        var lifecycle = self.lifecycle
        lifecycle.logger = logger
        return try lifecycle.followQdisc(synthetic: synthetic, vf: vf, netlink: netlink, unchangedSince: unchangedSince)
    }
    // One qdisc dump for all pairs (256 pairs: 1 instead of about 1000 dumps of every
    // qdisc of the namespace); a change is notified again and followed by the next call.
    func beginQdiscBatch() { try? netlink.beginQdiscSnapshot() }
    func endQdiscBatch() { netlink.endQdiscSnapshot() }
}

/// CLOCK_MONOTONIC.
final class MonotonicClock: ControlClock {
    var milliseconds: UInt64 { monotonicMilliseconds() }
    var nanoseconds: UInt64 { monotonicNanoseconds() }
}
