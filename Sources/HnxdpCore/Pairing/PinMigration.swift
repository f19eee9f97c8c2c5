// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import Logging

/// The pairs a migration attaches again, written before it changes anything
/// (`<state dir>/<netns inode>/migrate.json`) and removed when it is done. A
/// migration cut short is finished by running `hnxdp migrate` again (it reads
/// this plan, not the records, which the first run may already have used up);
/// `hnxdp detach --all` removes the plan instead.
public struct MigrationPlan: NamespaceStateFile, Equatable, Sendable {
    public struct Device: Codable, Equatable, Sendable {
        public var ifindex: Int32
        public var name: String
        public var mac: String
    }
    public struct Pair: Codable, Equatable, Sendable {
        public var synthetic: Device
        public var vf: Device
    }

    public static let currentVersion = 1
    public var version = MigrationPlan.currentVersion
    /// SO_NETNS_COOKIE of the namespace: a later namespace with the same inode never inherits a plan.
    public var netnsCookie: UInt64
    /// Who made the pins being replaced (for the log), e.g. "hnxdp 0.1.0 (pin layout 1)".
    public var from: String
    public var pairs: [Pair]

    public init(netnsCookie: UInt64, from: String, pairs: [Pair]) {
        self.netnsCookie = netnsCookie
        self.from = from
        self.pairs = pairs
    }
}

extension StateDirectory {
    /// Where a migration in progress keeps its plan.
    public var migrationPlanPath: String { "\(namespaceDirectory)/migrate.json" }

    /// The plan of a migration cut short; nil when there is none (or it is another namespace's).
    public func loadMigrationPlan() throws -> MigrationPlan? {
        try StateFile.load(MigrationPlan.self, at: migrationPlanPath,
                           unreadable: HnxdpError(.runtime, "migration plan \(migrationPlanPath) is unreadable: remove it, then run `hnxdp migrate` again (the write-ahead records are untouched)"),
                           removeStale: true)
    }

    func saveMigrationPlan(_ plan: MigrationPlan) throws {
        try StateFile.save(plan, at: migrationPlanPath)
    }

    func removeMigrationPlan() throws {
        try FileSystem.remove(migrationPlanPath)
        FileSystem.removeDirectoryIfEmpty(namespaceDirectory)
    }
}

/// `hnxdp migrate`: replaces pins another pin layout made (or pins made before
/// versioning) by this hnxdp's. For every pair it puts the devices back from the
/// write-ahead records (`detach --all`'s machinery, which removes a record only
/// once both devices read as recorded), removes the old pins, and attaches the
/// same synthetic/VF pairs again with this hnxdp (which writes new records).
///
/// Crash safety: the plan (which pairs to attach again) is durable before the
/// first change. A kill before the old pins are gone leaves records and pins
/// that `detach --all` or a second `migrate` finishes; a kill later leaves the
/// devices at their originals (no record needed) and the plan, which a second
/// `migrate` completes.
public struct PinMigration {
    /// Attaches the pairs again (its layout, logger and tc mode are the migration's).
    public var lifecycle: PairLifecycle
    var layout: PinLayout { lifecycle.layout }
    var logger: Logger { lifecycle.logger }

    public init(lifecycle: PairLifecycle) {
        self.lifecycle = lifecycle
    }

    public struct Outcome: Sendable {
        /// Who made the pins that were replaced; nil when there was nothing to migrate.
        public var from: String?
        /// Pairs attached again, as "synthetic <- vf".
        public var attached: [String] = []
        /// Pairs that could not be attached again, with why (their devices have their originals).
        public var failed: [String] = []
    }

    /// Migrates the calling namespace. The caller holds the invocation lock;
    /// `hnxdp run` must not run (its instance lock is taken here, for the whole migration).
    public func migrate() throws -> Outcome {
        let state = StateDirectory.of(layout)
        let instance = try state.acquireInstance(what: "migrate") {
            HnxdpError(.runtime, "hnxdp run (pid \($0)) manages this network namespace: stop it first (e.g. `systemctl stop hnxdp`), run `hnxdp migrate`, then start it again")
        }
        defer { instance.release(removeFile: true) }

        let compatibility = try Datapath.pinCompatibility(layout)
        var plan = try state.loadMigrationPlan()
        if plan == nil {
            let from: String
            switch compatibility {
            case .nothingPinned, .current, .otherVersion:
                return Outcome(from: nil)
            case .otherLayout(let meta): from = "hnxdp \(meta.version) (pin layout \(meta.layout))"
            case .unversioned: from = "an hnxdp from before pin versioning"
            }
            let p = MigrationPlan(netnsCookie: NetworkNamespace.currentCookie(), from: from, pairs: try pairsToAttachAgain(compatibility))
            try state.saveMigrationPlan(p)
            plan = p
        } else {
            logger.warning("finishing a migration that was cut short (\(state.migrationPlanPath))")
        }
        guard let plan else { return Outcome(from: nil) }
        var outcome = Outcome(from: plan.from)

        // 1. Devices back from their records, old pins gone. Pins of this layout
        //    (a migration cut short after it attached some pairs) are left: attach
        //    finds those pairs attached and changes nothing.
        if !(try Datapath.pinCompatibility(layout)).usable {
            let n = try PairDetach(layout: layout, logger: logger).detachAll(keepMigrationPlan: true)
            logger.info("migrate: \(n) pair(s) of \(plan.from) detached, devices back from their write-ahead records, old pins removed")
        }
        // 2. The same pairs again, with this hnxdp.
        let netlink = try RTNetlink()
        for pair in plan.pairs {
            let label = "\(pair.synthetic.name) <- \(pair.vf.name)"
            guard let syn = try netlink.link(index: pair.synthetic.ifindex), isSame(syn, pair.synthetic),
                  let vf = try netlink.link(index: pair.vf.ifindex), isSame(vf, pair.vf) else {
                outcome.failed.append("\(label): a device is gone")
                continue
            }
            do {
                // The pair was attached before (perhaps with --force): the MAC check is not repeated.
                _ = try lifecycle.attach(synthetic: syn.name, vf: vf.name, force: true)
                outcome.attached.append("\(syn.name) <- \(vf.name)")
            } catch {
                outcome.failed.append("\(label): \(error)")
            }
        }
        try state.removeMigrationPlan()
        return outcome
    }

    func isSame(_ link: LinkInfo, _ device: MigrationPlan.Device) -> Bool {
        link.ifindex == device.ifindex && (LinkInfo.formatMAC(Eligibility.matchAddress(link)) == device.mac || link.name == device.name)
    }

    /// The pairs joined now: from their write-ahead records (a completed join whose
    /// devices are both still there), and, from pins made before versioning, joined
    /// pairs whose record is missing. Pairs whose join or leave was cut short are only
    /// put back; idle pairs that `hnxdp run` installed are installed again by `run`.
    func pairsToAttachAgain(_ compatibility: PinCompatibility) throws -> [MigrationPlan.Pair] {
        let netlink = try RTNetlink()
        let records = PairRecordStore(layout: layout)
        var pairs: [Int32: MigrationPlan.Pair] = [:]
        func device(_ link: LinkInfo) -> MigrationPlan.Device {
            MigrationPlan.Device(ifindex: link.ifindex, name: link.name, mac: LinkInfo.formatMAC(Eligibility.matchAddress(link)))
        }
        for ifindex in records.state.recordedSynthetics() {
            guard let record = try records.load(synthetic: ifindex), record.phase == .joined,
                  let syn = try netlink.link(index: ifindex), record.synthetic.isSameDevice(syn),
                  let vf = try netlink.link(index: record.vf.ifindex), record.vf.isSameDevice(vf) else { continue }
            pairs[ifindex] = MigrationPlan.Pair(synthetic: device(syn), vf: device(vf))
        }
        if compatibility.readableForUndo, let old = try Datapath.openPinned(layout, purpose: .undo) {
            for (key, entry) in try old.pairs.entries() {
                let ifindex = Int32(bitPattern: key)
                guard pairs[ifindex] == nil, entry.vf_ifindex != 0,
                      entry.pairState == .active,
                      let syn = try netlink.link(index: ifindex),
                      let vf = try netlink.link(index: Int32(bitPattern: entry.vf_ifindex)) else { continue }
                pairs[ifindex] = MigrationPlan.Pair(synthetic: device(syn), vf: device(vf))
            }
        } else {
            for ifindex in layout.pairDirectories() where !FileSystem.exists(records.state.recordPath(synthetic: ifindex)) {
                logger.warning("pair of ifindex \(ifindex): pinned but no write-ahead record, and the old pins cannot be read: nothing to put back; not attached again")
            }
        }
        return pairs.keys.sorted().map { pairs[$0]! }
    }
}
