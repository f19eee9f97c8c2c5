// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc

/// What one device looked like before hnxdp changed anything on it (B21).
public struct DeviceOriginals: Codable, Equatable, Sendable {
    public var ifindex: Int32
    public var name: String
    /// Match address (permanent MAC where the device has one): the device's identity with the ifindex.
    public var mac: String
    public var mtu: UInt32
    public var up: Bool
    public var promisc: Bool
    public var allmulti: Bool
    public var gsoMaxSize: UInt32?
    public var gsoMaxSegs: UInt32?
    public var gsoIPv4MaxSize: UInt32?
    /// ethtool features the user asked for (wanted bits), as `FeatureSet.wordCount` words; synthetic only.
    public var features: [UInt64]?
    /// IPv6 settings hnxdp switches off on a joined VF (B24: autoconf, accept_ra); VF only.
    public var ipv6: [String: String]?

    public init(_ link: LinkInfo, features: [UInt64]? = nil, ipv6: [String: String]? = nil) {
        ifindex = link.ifindex
        name = link.name
        mac = LinkInfo.formatMAC(Eligibility.matchAddress(link))
        mtu = link.mtu
        up = link.isUp
        promisc = link.isPromiscuous
        allmulti = link.isAllMulticast
        gsoMaxSize = link.gsoMaxSize
        gsoMaxSegs = link.gsoMaxSegs
        gsoIPv4MaxSize = link.gsoIPv4MaxSize
        self.features = features
        self.ipv6 = ipv6
    }

    /// Whether `link` is this device: same ifindex, and the same match address or name
    /// (a device that took a freed ifindex is never "restored").
    public func isSameDevice(_ link: LinkInfo) -> Bool {
        link.ifindex == ifindex && (LinkInfo.formatMAC(Eligibility.matchAddress(link)) == mac || link.name == name)
    }
}

/// The write-ahead record of one pair (B21): the originals of both devices,
/// written and made durable before the first change to either, and removed
/// only after both are back. Invariant: while a pair's devices differ from
/// their originals because of hnxdp, its record exists; nothing ever records
/// a value hnxdp changed as an original, because a record is only ever made
/// when none exists (an existing one is finished first, see
/// `PairLifecycle.reconcile`).
public struct PairRecord: NamespaceStateFile, Equatable, Sendable {
    public enum Phase: String, Codable, Sendable {
        /// Changes are being made. Recovery undoes everything.
        case joining
        /// The join completed. The datapath carries the pair through the VF.
        case joined
        /// A completed join is being undone. Recovery finishes it.
        case leaving
        /// An incomplete join is being undone: everything goes back, the synthetic's MTU too.
        case abandoning
    }

    public static let currentVersion = 1

    public var version = PairRecord.currentVersion
    /// SO_NETNS_COOKIE of the namespace (never reused, unlike its inode); 0 where unknown.
    public var netnsCookie: UInt64
    public var phase: Phase
    public var synthetic: DeviceOriginals
    public var vf: DeviceOriginals
    /// The VF refused the MTU and the synthetic fell back to 1500 (B6): its MTU goes back on leave.
    public var mtuFallback = false
    /// Multicast addresses hnxdp added to the VF (`run`, B11): deleted from it on leave.
    public var multicastAdded: [String] = []
    /// The VF's own egress configuration (qdiscs, classes, filters) before the join:
    /// the synthetic's is copied onto it while joined, and this goes back on leave.
    /// nil in a record of an older hnxdp, or rebuilt from the pinned entry: left as it is.
    public var vfTrafficControl: TCConfig?

    public init(phase: Phase, netnsCookie: UInt64, synthetic: DeviceOriginals, vf: DeviceOriginals) {
        self.phase = phase
        self.netnsCookie = netnsCookie
        self.synthetic = synthetic
        self.vf = vf
    }

    /// Whether undoing puts back everything (an incomplete join) or what a completed
    /// join changed (the user's own changes to the synthetic while joined are kept).
    public var restoresEverything: Bool { phase == .joining || phase == .abandoning }

    /// The phase an undo of this record is recorded in.
    public var undoPhase: Phase { restoresEverything ? .abandoning : .leaving }

    /// What must change on the synthetic, as it is now, to give back its originals. Pure.
    public func syntheticChange(now syn: LinkInfo) -> LinkChange {
        var change = LinkChange()
        let o = synthetic
        if let v = o.gsoMaxSize, v != 0, syn.gsoMaxSize != v { change.gsoMaxSize = v }
        if let v = o.gsoMaxSegs, v != 0, syn.gsoMaxSegs != v { change.gsoMaxSegs = v }
        if let v = o.gsoIPv4MaxSize, v != 0, syn.gsoIPv4MaxSize != nil, syn.gsoIPv4MaxSize != v { change.gsoIPv4MaxSize = v }
        if (restoresEverything || mtuFallback), syn.mtu != o.mtu { change.mtu = o.mtu }
        return change
    }

    /// What must change on the VF, as it is now, to give back its originals. Pure.
    public func vfChange(now vfLink: LinkInfo) -> LinkChange {
        var change = LinkChange()
        if vfLink.mtu != vf.mtu { change.mtu = vf.mtu }
        if vfLink.isUp != vf.up { change.up = vf.up }
        if vfLink.isPromiscuous != vf.promisc { change.promisc = vf.promisc }
        if vfLink.isAllMulticast != vf.allmulti { change.allmulti = vf.allmulti }
        return change
    }
}

/// Where a namespace's records live (`StateDirectory`), read and written atomically.
public struct PairRecordStore: Sendable {
    public let state: StateDirectory

    public init(_ state: StateDirectory) { self.state = state }
    public init(layout: PinLayout) { self.state = StateDirectory.of(layout) }

    /// The record of a synthetic; nil when there is none. A record of another
    /// namespace that had the same inode (its cookie differs) is stale: it is
    /// removed and nil returned. An unreadable record is an error naming the file.
    public func load(synthetic ifindex: Int32) throws -> PairRecord? {
        let path = state.recordPath(synthetic: ifindex)
        return try StateFile.load(PairRecord.self, at: path, belongs: { $0.synthetic.ifindex == ifindex },
                                  unreadable: HnxdpError(.runtime, "write-ahead record \(path) is unreadable or not hnxdp's: compare the devices with it, put back what differs, then remove it"),
                                  removeStale: true)
    }

    /// Writes the record durably (a new file renamed over the old one: a reader
    /// sees the old or the new record, never part of one).
    public func save(_ record: PairRecord) throws {
        try StateFile.save(record, at: state.recordPath(synthetic: record.synthetic.ifindex))
    }

    /// Removes the record (the originals are back).
    public func remove(synthetic ifindex: Int32) throws {
        try FileSystem.remove(state.recordPath(synthetic: ifindex))
        FileSystem.removeDirectoryIfEmpty(state.namespaceDirectory)
    }

    /// Updates a record in place; nothing when there is none.
    public func update(synthetic ifindex: Int32, _ body: (inout PairRecord) -> Void) throws {
        guard var record = try load(synthetic: ifindex) else { return }
        body(&record)
        try save(record)
    }
}

extension NetworkNamespace {
    /// SO_NETNS_COOKIE of the current network namespace (Linux 5.14+); 0 where unknown.
    public static func currentCookie() -> UInt64 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { return 0 }
        defer { close(fd) }
        var cookie: UInt64 = 0
        var len = socklen_t(MemoryLayout<UInt64>.size)
        let soNetnsCookie: Int32 = 71
        return getsockopt(fd, SOL_SOCKET, soNetnsCookie, &cookie, &len) == 0 ? cookie : 0
    }
}
