// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc

/// Which way the datapath of a pair switched.
public enum SwitchDirection: String, Codable, Sendable {
    /// A VF was joined: frames leave through it.
    case toVF = "to-vf"
    /// The VF left (or was taken away): frames take the synthetic's own path.
    case toSynthetic = "to-synthetic"
}

/// Why the datapath of a pair switched (docs/json.md, "Switch history").
public enum SwitchReason: String, Codable, Sendable, CaseIterable {
    /// to-vf: `hnxdp attach` joined the VF.
    case attach
    /// to-vf: `hnxdp run` joined a VF after the settle delay.
    case joined
    /// to-vf: `hnxdp run` joined a VF that stayed through the hold-down of a flapping pair.
    case holdDownEnded = "hold-down-ended"
    /// to-synthetic: the VF went away (deleted, moved to another namespace, MAC changed) under `run`.
    case departed
    /// to-synthetic: as `departed`, and it was one departure too many: the pair is held down.
    case heldDown = "held-down"
    /// to-synthetic: the VF had left while no hnxdp process ran; noticed by the next `run` or `attach`.
    case departedWhileStopped = "departed-while-stopped"
    /// to-synthetic: `hnxdp detach`.
    case detach
    /// to-synthetic: the synthetic interface itself was removed.
    case syntheticRemoved = "synthetic-removed"
    /// to-synthetic: hnxdp's pins were removed under `run` and could not be made again.
    case pinsLost = "pins-lost"
    /// to-synthetic: a join or leave cut short (crash, kill) was finished from its write-ahead record.
    case recovery
}

/// One switch of a pair's datapath, as kept in its history and shown by `dump`.
public struct SwitchEvent: Codable, Equatable, Sendable {
    /// Wall-clock time, ISO 8601 UTC with milliseconds (as `last_switch`).
    public var time: String
    /// The same time in nanoseconds since the epoch (CLOCK_REALTIME, as the pair entry's `last_switch_ns`).
    public var time_ns: UInt64
    /// "to-vf" or "to-synthetic" (`SwitchDirection`); a string so a newer file stays readable.
    public var direction: String
    /// `SwitchReason`'s raw value; a string so a newer file stays readable.
    public var reason: String
    /// The VF joined or left: its name and ifindex at that moment.
    public var vf: String
    public var vf_ifindex: Int32
    /// The pair's `switches` counter after this switch: the entry with the pair's
    /// current `switches` is the last switch.
    public var `switch`: UInt32

    public init(timeNs: UInt64, direction: SwitchDirection, reason: SwitchReason, vf: String, vfIfindex: Int32, switchNumber: UInt32) {
        self.time = iso8601UTC(nanosecondsSinceEpoch: timeNs)
        self.time_ns = timeNs
        self.direction = direction.rawValue
        self.reason = reason.rawValue
        self.vf = vf
        self.vf_ifindex = vfIfindex
        self.switch = switchNumber
    }
}

/// The last switches of one pair: what `dump` shows and `monitor` uses for
/// "last switch". Pure; `SwitchHistoryStore` keeps it on disk.
public struct SwitchHistory: NamespaceStateFile, Equatable, Sendable {
    /// How many switches a pair keeps (the oldest go first).
    public static let capacity = 16
    public static let currentVersion = 1

    public var version = SwitchHistory.currentVersion
    /// SO_NETNS_COOKIE of the namespace (never reused, unlike its inode); 0 where unknown.
    public var netnsCookie: UInt64
    public var synthetic: Int32
    /// Oldest first, at most `capacity`.
    public var switches: [SwitchEvent]

    public init(netnsCookie: UInt64, synthetic: Int32, switches: [SwitchEvent] = []) {
        self.netnsCookie = netnsCookie
        self.synthetic = synthetic
        self.switches = switches
    }

    /// The history with `event` added, the oldest dropped beyond `capacity`.
    public func appending(_ event: SwitchEvent, capacity: Int = SwitchHistory.capacity) -> SwitchHistory {
        var copy = self
        copy.switches.append(event)
        if copy.switches.count > capacity { copy.switches.removeFirst(copy.switches.count - capacity) }
        return copy
    }

    /// The entry of the pair's last switch, if the history has it (its `switch`
    /// number is the pair's `switches` counter now).
    public func last(switches: UInt32) -> SwitchEvent? {
        guard let e = self.switches.last, e.switch == switches else { return nil }
        return e
    }
}

extension StateDirectory {
    /// The switch history of a pair (`SwitchHistoryStore`).
    public func historyPath(synthetic ifindex: Int32) -> String { "\(namespaceDirectory)/switches-\(ifindex).json" }

    /// Every switch-history file of the namespace (removed with the namespace's last pins).
    public func historyFiles() -> [String] {
        FileSystem.list(namespaceDirectory).filter { $0.hasPrefix("switches-") && $0.hasSuffix(".json") }
            .map { "\(namespaceDirectory)/\($0)" }
    }
}

/// Where the pairs' switch histories live: a small JSON file per pair beside its
/// write-ahead record (`/run/hnxdp/<netns inode>/switches-<synthetic ifindex>.json`),
/// written atomically by whoever switches the pair (under the namespace's
/// invocation lock), read without a lock by `dump` and `monitor`. It survives
/// restarts of `run`, and goes with the pair (`uninstall`) or with the
/// namespace's pins.
public struct SwitchHistoryStore: Sendable {
    public let state: StateDirectory

    public init(_ state: StateDirectory) { self.state = state }
    public init(layout: PinLayout) { self.state = StateDirectory.of(layout) }

    /// The history of a synthetic; empty when there is none, when it is not
    /// readable, or when it belongs to another namespace that had the same inode.
    public func load(synthetic ifindex: Int32) -> SwitchHistory {
        load(synthetic: ifindex, cookie: NetworkNamespace.currentCookie())
    }

    /// `load(synthetic:)` with the namespace's cookie (`NetworkNamespace.currentCookie()`)
    /// read once by a caller that loads many histories.
    public func load(synthetic ifindex: Int32, cookie: UInt64) -> SwitchHistory {
        let history = try? StateFile.load(SwitchHistory.self, at: state.historyPath(synthetic: ifindex), cookie: cookie,
                                          belongs: { $0.synthetic == ifindex }, unreadable: nil, removeStale: false)
        return history ?? SwitchHistory(netnsCookie: cookie, synthetic: ifindex)
    }

    /// Adds one switch to a pair's history (durably, atomically).
    public func append(_ event: SwitchEvent, synthetic ifindex: Int32) throws {
        try StateFile.save(load(synthetic: ifindex).appending(event), at: state.historyPath(synthetic: ifindex))
    }

    /// Forgets a pair's history (the pair was removed, or a new pair starts with this synthetic).
    public func remove(synthetic ifindex: Int32) {
        _ = try? FileSystem.remove(state.historyPath(synthetic: ifindex))
        FileSystem.removeDirectoryIfEmpty(state.namespaceDirectory)
    }
}
