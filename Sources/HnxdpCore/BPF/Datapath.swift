import CHnxdpShim
import CLibBPF
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import Logging

/// The datapath programs of `bpf/hnxdp.bpf.c`; raw values are the names in
/// `hnxdp_shared.h` (program names and pin names).
public enum DatapathProgram: String, CaseIterable, Sendable {
    case vfIngress
    case synEgress
    case synIngress

    public var name: String {
        switch self {
        case .vfIngress: return HNXDP_PROG_VF_INGRESS
        case .synEgress: return HNXDP_PROG_SYN_EGRESS
        case .synIngress: return HNXDP_PROG_SYN_INGRESS
        }
    }

    /// Pin name of the tcx link that attaches this program for one pair.
    public var linkName: String {
        switch self {
        case .vfIngress: return HNXDP_LINK_VF_INGRESS
        case .synEgress: return HNXDP_LINK_SYN_EGRESS
        case .synIngress: return HNXDP_LINK_SYN_INGRESS
        }
    }

    /// tcx hook: ingress or egress.
    public var ingress: Bool { self != .synEgress }

    /// The device of the pair the program is attached to.
    public var onVF: Bool { self == .vfIngress }
}

/// The BPF objects hnxdp keeps per network namespace: the maps shared by all
/// pairs and the loaded programs, all pinned under `PinLayout.namespaceDirectory`.
public final class Datapath {
    public let layout: PinLayout
    /// synthetic ifindex -> pair configuration and saved state.
    public let pairs: BPFMap<UInt32, hnxdp_pair>
    /// VF ifindex -> synthetic ifindex and stats slot.
    public let vfs: BPFMap<UInt32, hnxdp_vf_entry>
    /// ifindex -> the per-frame view of pairs and VFs (small ifindexes only).
    public let devs: BPFMap<UInt32, hnxdp_dev>
    /// pair slot -> VF device (the kernel drops the entry when the VF goes).
    public let txdev: BPFMap<UInt32, bpf_devmap_val>
    /// stats slot -> per-CPU counters.
    public let stats: BPFMap<UInt32, hnxdp_stats>
    private let programs: [DatapathProgram: BPFDescriptor]
    /// Capture maps by pin name (`CaptureMaps`); empty for a datapath pinned by a
    /// build without capture.
    public let captureMaps: [String: BPFDescriptor]
    /// The pinned `hnxdp_meta` map (who made the pins); nil for pins made before
    /// versioning, opened only to put devices back (`Purpose.undo`).
    let metaMap: BPFDescriptor?
    /// Who made the pins: this hnxdp, or another version of the same pin layout.
    public let pinnedBy: PinMeta?

    static let mapNames = [HNXDP_MAP_PAIRS, HNXDP_MAP_VFS, HNXDP_MAP_DEVS, HNXDP_MAP_TXDEV, HNXDP_MAP_STATS]

    /// Every pin file at the namespace level.
    static var pinNames: [String] { mapNames + DatapathProgram.allCases.map(\.name) }

    private init(layout: PinLayout, maps: [String: BPFDescriptor], programs: [DatapathProgram: BPFDescriptor],
                 pinnedBy: PinMeta?) throws {
        self.layout = layout
        self.metaMap = maps[HNXDP_MAP_META]
        self.pinnedBy = pinnedBy
        captureMaps = maps.filter { CaptureMaps.objectNames[$0.key] != nil }
        pairs = try BPFMap(name: HNXDP_MAP_PAIRS, descriptor: maps[HNXDP_MAP_PAIRS]!)
        vfs = try BPFMap(name: HNXDP_MAP_VFS, descriptor: maps[HNXDP_MAP_VFS]!)
        devs = try BPFMap(name: HNXDP_MAP_DEVS, descriptor: maps[HNXDP_MAP_DEVS]!)
        txdev = try BPFMap(name: HNXDP_MAP_TXDEV, descriptor: maps[HNXDP_MAP_TXDEV]!)
        stats = try BPFMap(name: HNXDP_MAP_STATS, descriptor: maps[HNXDP_MAP_STATS]!)
        self.programs = programs
    }

    public func program(_ program: DatapathProgram) -> BPFDescriptor { programs[program]! }

    /// What a caller does with the pins it opens.
    public enum Purpose: Sendable {
        /// Use them (attach, run, xsk, ...): only pins of this hnxdp's layout.
        case use
        /// Only put devices back and remove them (`detach --all`, `migrate`): pins made
        /// before versioning are read too (their maps are pin layout 1's).
        case undo
    }

    /// Who made the pins of this namespace, as far as that decides what this hnxdp may
    /// do with them (`PinCompatibility`). Opens no more than the meta pin.
    public static func pinCompatibility(_ layout: PinLayout) throws -> PinCompatibility {
        let metaPath = layout.objectPath(HNXDP_MAP_META)
        let meta = try BPFDescriptor.openPinned(metaPath).map { try PinMeta.read($0, path: metaPath) }
        let others = pinNames.contains { FileSystem.exists(layout.objectPath($0)) }
        return PinCompatibility.decide(meta: meta, datapathPinsPresent: others)
    }

    nonisolated(unsafe) private static var loggedOtherVersion = false

    /// Opens the pinned datapath of this namespace; nil when nothing is pinned.
    /// Throws when only part of it is pinned (someone removed pins by hand), and
    /// when another pin layout made them (one line naming `hnxdp migrate`).
    public static func openPinned(_ layout: PinLayout, purpose: Purpose = .use) throws -> Datapath? {
        var maps: [String: BPFDescriptor] = [:]
        var progs: [DatapathProgram: BPFDescriptor] = [:]
        var missing: [String] = []
        // Who made the pins, before anything else about them is believed: another
        // layout may name, type and size its maps differently.
        let metaPath = layout.objectPath(HNXDP_MAP_META)
        let metaMap = try BPFDescriptor.openPinned(metaPath)
        let meta = try metaMap.map { try PinMeta.read($0, path: metaPath) }
        let others = pinNames.contains { FileSystem.exists(layout.objectPath($0)) }
        let compatibility = PinCompatibility.decide(meta: meta, datapathPinsPresent: others)
        if case .otherLayout = compatibility {
            throw HnxdpError(.runtime, compatibility.refusal(directory: layout.namespaceDirectory)!)
        }
        for name in mapNames {
            if let d = try BPFDescriptor.openPinned(layout.objectPath(name)) { maps[name] = d } else { missing.append(name) }
        }
        for p in DatapathProgram.allCases {
            if let d = try BPFDescriptor.openPinned(layout.objectPath(p.name)) { progs[p] = d } else { missing.append(p.name) }
        }
        if missing.count == pinNames.count && metaMap == nil { return nil }
        if !missing.isEmpty {
            throw HnxdpError(.runtime, "incomplete hnxdp pins in \(layout.namespaceDirectory) (missing \(missing.joined(separator: ", "))); run `hnxdp detach --all` to clean up")
        }
        switch compatibility {
        case .unversioned where purpose == .use:
            throw HnxdpError(.runtime, compatibility.refusal(directory: layout.namespaceDirectory)!)
        case .otherVersion(let meta) where !loggedOtherVersion:
            loggedOtherVersion = true
            Logger(label: "hnxdp.pins").info("the pins in \(layout.namespaceDirectory) were made by hnxdp \(meta.version) with the same pin layout (\(meta.layout)): using them")
        default: break
        }
        if let metaMap { maps[HNXDP_MAP_META] = metaMap }
        // Trust nothing pinned: every pin must be the object this build would have made.
        let mapTypes = try EmbeddedObject.declaredMapTypes(HNXDP_OBJ_DATAPATH)
        for (name, d) in maps {
            try d.requireIdentity(path: layout.objectPath(name), program: false, expectedName: name,
                                  expectedType: mapTypes[name] ?? UInt32.max)
        }
        for (p, d) in progs {
            try d.requireIdentity(path: layout.objectPath(p.name), program: true, expectedName: p.name,
                                  expectedType: BPF_PROG_TYPE_SCHED_CLS.rawValue)
        }
        // Optional: a datapath pinned by a build without capture has none.
        maps.merge(try CaptureMaps.openPinned(layout), uniquingKeysWith: { a, _ in a })
        return try Datapath(layout: layout, maps: maps, programs: progs, pinnedBy: meta)
    }

    /// Opens the pinned datapath, or loads the embedded BPF object and pins
    /// it. `created` tells whether this call made the pins (so a failed join
    /// can remove them again).
    ///
    /// The namespace's pins appear all at once or not at all: they are made in a
    /// staging directory that is renamed into place, so a process killed half-way
    /// leaves a staging directory (swept by the next call), never half a datapath.
    public static func openOrCreate(_ layout: PinLayout, verbose: Bool = false) throws -> (Datapath, created: Bool) {
        if let existing = try openPinned(layout) { return (existing, false) }
        let (maps, progs) = try loadEmbedded(netnsInode: layout.netnsInode, verbose: verbose)
        try pinAtomically(layout, maps: maps, programs: progs)
        return (try Datapath(layout: layout, maps: maps, programs: progs, pinnedBy: .current), true)
    }

    /// Pins this datapath's maps and programs again (they live on in this process
    /// while their pins were removed, e.g. by an unmount of bpffs or `rm -r`).
    ///
    /// When the namespace directory is gone, everything is pinned at once (staging
    /// directory renamed into place); when it is still there (some pins removed, or
    /// a `rm -r` still under way), the missing pins are made in place.
    public func pinAgain() throws {
        let maps = [pairs.descriptor, vfs.descriptor, devs.descriptor, txdev.descriptor, stats.descriptor]
        var all = Dictionary(uniqueKeysWithValues: zip(Datapath.mapNames, maps)).merging(captureMaps, uniquingKeysWith: { a, _ in a })
        if let metaMap { all[HNXDP_MAP_META] = metaMap }
        if FileSystem.exists(layout.namespaceDirectory) {
            let pins = all.map { (layout.objectPath($0.key), $0.value) } + programs.map { (layout.objectPath($0.key.name), $0.value) }
            for (path, d) in pins where !FileSystem.exists(path) { try d.pin(at: path) }
        } else {
            try Datapath.pinAtomically(layout, maps: all, programs: programs)
        }
    }

    /// Pins the namespace's objects in a staging directory renamed into place.
    static func pinAtomically(_ layout: PinLayout, maps: [String: BPFDescriptor], programs: [DatapathProgram: BPFDescriptor]) throws {
        sweepStaleDirectories(layout)
        let createdDirs = try FileSystem.makeDirectories(layout.root)
        let stagingDir = "\(layout.root)/staging-\(layout.netnsInode)-\(getpid())"
        do {
            try FileSystem.makeDirectories(stagingDir)
            for (name, d) in maps { try d.pin(at: "\(stagingDir)/\(name)") }
            for (p, d) in programs { try d.pin(at: "\(stagingDir)/\(p.name)") }
            if rename(stagingDir, layout.namespaceDirectory) != 0 {
                throw HnxdpError.system("rename \(stagingDir) to \(layout.namespaceDirectory)", errno: errno)
            }
        } catch {
            FileSystem.removeTree(stagingDir)
            for dir in createdDirs.reversed() { FileSystem.removeDirectoryIfEmpty(dir) }
            throw error
        }
    }

    /// Removes staging and trash directories of processes that no longer exist.
    static func sweepStaleDirectories(_ layout: PinLayout) {
        for name in FileSystem.list(layout.root) where name.hasPrefix("staging-\(layout.netnsInode)-") || name.hasPrefix("trash-\(layout.netnsInode)-") {
            guard let pid = Int32(name.split(separator: "-").last ?? ""), kill(pid, 0) != 0, errno == ESRCH else { continue }
            FileSystem.removeTree("\(layout.root)/\(name)")
        }
    }

    /// Loads `bpf/hnxdp.bpf.c` (embedded at build time) into the kernel: the main
    /// object, or on a kernel without its kfuncs the same source built without them
    /// (`bpf/hnxdp_compat.bpf.c`).
    static func loadEmbedded(netnsInode: UInt64, verbose: Bool) throws -> ([String: BPFDescriptor], [DatapathProgram: BPFDescriptor]) {
        let kernel = KernelCapabilities.current()
        try kernel.requireSupported()
        let object = try EmbeddedObject(kernel.datapathObject, verbose: verbose) { object in
            // The namespace this copy serves (hnxdp_netns_inum in bpf/hnxdp.bpf.c).
            try EmbeddedObject.setConstant(in: object, section: HNXDP_NETNS_SECTION, UInt32(truncatingIfNeeded: netnsInode))
        }
        var maps: [String: BPFDescriptor] = [:]
        for name in mapNames { maps[name] = try object.map(name) }
        for (pin, name) in CaptureMaps.objectNames { maps[pin] = try object.map(name) }
        // Who makes these pins; written before they are pinned, so it appears with them.
        let meta = try object.map(HNXDP_MAP_META)
        let metaValues = try BPFMap<UInt32, hnxdp_meta>(name: HNXDP_MAP_META, descriptor: meta)
        try metaValues.update(0, PinMeta.current.value)
        maps[HNXDP_MAP_META] = meta
        var progs: [DatapathProgram: BPFDescriptor] = [:]
        for p in DatapathProgram.allCases { progs[p] = try object.program(p.name) }
        return (maps, progs)
    }

    /// Removes the namespace-level pins and directory when no pair uses them.
    /// Returns true when it removed them.
    @discardableResult
    public func removePinsIfUnused() throws -> Bool {
        if try !pairs.keys().isEmpty { return false }
        if !layout.pairDirectories().isEmpty { return false }
        try Datapath.removePins(layout)
        return true
    }

    /// Removes the namespace-level pins and directories (and the root when empty).
    /// All at once: the directory is renamed away first, so a process killed while
    /// removing leaves a trash directory (swept later), never half a datapath.
    static func removePins(_ layout: PinLayout) throws {
        sweepStaleDirectories(layout)
        if FileSystem.exists(layout.namespaceDirectory) {
            let trash = "\(layout.root)/trash-\(layout.netnsInode)-\(getpid())"
            if rename(layout.namespaceDirectory, trash) != 0 {
                throw HnxdpError.system("rename \(layout.namespaceDirectory) to \(trash)", errno: errno)
            }
            FileSystem.removeTree(trash)
        }
        FileSystem.removeDirectoryIfEmpty(layout.root)
    }

    // MARK: - Writing pairs (the only way the control plane changes what the datapath sees)

    /// Stores a pair entry and its per-frame view.
    public func storePair(_ pair: hnxdp_pair) throws {
        try pairs.update(pair.syn_ifindex, pair)
        if pair.syn_ifindex < UInt32(HNXDP_FAST_IFINDEXES) {
            try devs.update(pair.syn_ifindex, hnxdp_dev(role: UInt32(HNXDP_ROLE_SYNTHETIC), peer_ifindex: pair.vf_ifindex,
                                                        slot: pair.slot, state: pair.state))
        }
    }

    /// Removes a pair entry and its per-frame view; its VF entry and devmap slot too.
    public func removePair(synthetic ifindex: UInt32) throws {
        if let pair = try pairs.lookup(ifindex) {
            if pair.vf_ifindex != 0 { try removeVF(pair.vf_ifindex) }
            try clearTransmitDevice(slot: pair.slot)
        }
        try pairs.delete(ifindex)
        try clearView(ifindex, role: UInt32(HNXDP_ROLE_SYNTHETIC))
    }

    /// Stores a joined VF: frames it receives go to `synthetic`.
    public func storeVF(_ vf: UInt32, synthetic: UInt32, slot: UInt32) throws {
        try vfs.update(vf, hnxdp_vf_entry(syn_ifindex: synthetic, slot: slot))
        if vf < UInt32(HNXDP_FAST_IFINDEXES) {
            try devs.update(vf, hnxdp_dev(role: UInt32(HNXDP_ROLE_VF), peer_ifindex: synthetic, slot: slot,
                                          state: PairState.active.rawValue))
        }
    }

    /// Forgets a VF (its frames are no longer redirected).
    public func removeVF(_ vf: UInt32) throws {
        try vfs.delete(vf)
        try clearView(vf, role: UInt32(HNXDP_ROLE_VF))
    }

    /// The VF device a pair transmits through (slot = the pair's slot).
    public func setTransmitDevice(slot: UInt32, vf: UInt32, name: String) throws {
        let rc = hnxdp_devmap_set(txdev.fd, slot, vf)
        if rc < 0 { throw HnxdpError.system("put \(name) in the transmit devmap", errno: -rc) }
    }

    public func clearTransmitDevice(slot: UInt32) throws {
        try txdev.delete(slot)
    }

    /// The VF ifindex in a pair's devmap slot, if the device is still there.
    public func transmitDevice(slot: UInt32) throws -> UInt32? {
        try txdev.lookup(slot)?.ifindex
    }

    private func clearView(_ ifindex: UInt32, role: UInt32) throws {
        guard ifindex < UInt32(HNXDP_FAST_IFINDEXES), let view = try devs.lookup(ifindex), view.role == role else { return }
        try devs.update(ifindex, hnxdp_dev())
    }

    // Reading the counters (summed over CPUs): PairCounters.stats(_:slot:).

    /// Zeroes the counters of a slot (on every CPU).
    public func resetCounters(slot: UInt32) throws {
        try stats.update(slot, hnxdp_stats())
    }
}
