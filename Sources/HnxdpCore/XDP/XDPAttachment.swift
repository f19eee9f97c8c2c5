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

/// The device of a pair an XDP program or AF_XDP socket is on.
public enum PairDevice: Int, Sendable, CaseIterable {
    case synthetic = 0 // HNXDP_XSK_ROLE_SYN
    case vf = 1        // HNXDP_XSK_ROLE_VF

    /// Pin name of the XDP link on this device.
    var linkPin: String { self == .synthetic ? HNXDP_XDP_LINK_SYN : HNXDP_XDP_LINK_VF }

    /// XSKMAP key of this device's socket for `queue`.
    public func xskKey(queue: UInt32) -> UInt32 { UInt32(rawValue) * UInt32(HNXDP_XSK_MAX_QUEUES) + queue }
}

/// The XDP objects of one pair (one load of `bpf/hnxdp_xsk.bpf.c`), pinned
/// in the pair's directory: the steering program, the XSKMAP, the
/// configuration, the counters and the one-slot program array holding the
/// user's XDP program.
public final class XDPPairObjects {
    public let layout: PinLayout
    public let synthetic: Int32
    public let program: BPFDescriptor
    /// XSKMAP: `PairDevice.xskKey(queue:)` -> AF_XDP socket fd.
    public let xsks: BPFMap<UInt32, UInt32>
    public let config: BPFMap<UInt32, hnxdp_xsk_config>
    public let stats: BPFMap<UInt32, hnxdp_xsk_stats>
    /// PROG_ARRAY: HNXDP_XDP_USER_SLOT -> the user's program.
    public let userPrograms: BPFMap<UInt32, UInt32>

    /// Pin names of the objects (links and the user program come on top).
    static let objectPins = [HNXDP_XDP_PIN_PROG, HNXDP_XDP_PIN_XSKS, HNXDP_XDP_PIN_CONFIG,
                             HNXDP_XDP_PIN_STATS, HNXDP_XDP_PIN_USER_ARRAY]
    /// Every pin this feature may make in a pair directory.
    public static let allPins = objectPins + [HNXDP_XDP_PIN_USER_PROG, HNXDP_XDP_LINK_SYN, HNXDP_XDP_LINK_VF]

    private init(layout: PinLayout, synthetic: Int32, descriptors d: [String: BPFDescriptor]) throws {
        self.layout = layout
        self.synthetic = synthetic
        program = d[HNXDP_XDP_PIN_PROG]!
        xsks = try BPFMap(name: HNXDP_XSK_MAP_XSKS, descriptor: d[HNXDP_XDP_PIN_XSKS]!)
        config = try BPFMap(name: HNXDP_XSK_MAP_CONFIG, descriptor: d[HNXDP_XDP_PIN_CONFIG]!)
        stats = try BPFMap(name: HNXDP_XSK_MAP_STATS, descriptor: d[HNXDP_XDP_PIN_STATS]!)
        userPrograms = try BPFMap(name: HNXDP_XDP_MAP_USER, descriptor: d[HNXDP_XDP_PIN_USER_ARRAY]!)
    }

    func pinPath(_ name: String) -> String { layout.linkPath(synthetic: synthetic, name) }

    /// The pinned objects of the pair; nil when none are pinned. Throws when only some are.
    public static func openPinned(layout: PinLayout, synthetic: Int32) throws -> XDPPairObjects? {
        var found: [String: BPFDescriptor] = [:]
        for name in objectPins {
            if let d = try BPFDescriptor.openPinned(layout.linkPath(synthetic: synthetic, name)) { found[name] = d }
        }
        if found.isEmpty { return nil }
        if found.count != objectPins.count {
            let missing = objectPins.filter { found[$0] == nil }.joined(separator: ", ")
            throw HnxdpError(.runtime, "incomplete XDP pins in \(layout.pairDirectory(synthetic: synthetic)) (missing \(missing)); run `hnxdp xdp detach` to clean up")
        }
        return try XDPPairObjects(layout: layout, synthetic: synthetic, descriptors: found)
    }

    /// Loads the embedded hnxdp_xsk object for the pair and pins it.
    static func create(layout: PinLayout, synthetic: Int32, verbose: Bool) throws -> XDPPairObjects {
        let object = try EmbeddedObject(HNXDP_OBJ_XSK, verbose: verbose)
        var d: [String: BPFDescriptor] = [:]
        let maps = [(HNXDP_XSK_MAP_XSKS, HNXDP_XDP_PIN_XSKS), (HNXDP_XSK_MAP_CONFIG, HNXDP_XDP_PIN_CONFIG),
                    (HNXDP_XSK_MAP_STATS, HNXDP_XDP_PIN_STATS), (HNXDP_XDP_MAP_USER, HNXDP_XDP_PIN_USER_ARRAY)]
        for (mapName, pin) in maps { d[pin] = try object.map(mapName) }
        d[HNXDP_XDP_PIN_PROG] = try object.program(HNXDP_XSK_PROG_STEER)

        let objects = try XDPPairObjects(layout: layout, synthetic: synthetic, descriptors: d)
        var cfg = hnxdp_xsk_config()
        cfg.syn_ifindex = UInt32(bitPattern: synthetic)
        cfg.match = UInt32(HNXDP_XSK_MATCH_ALL)
        try objects.config.update(0, cfg)
        var pinned: [String] = []
        do {
            for name in objectPins {
                try d[name]!.pin(at: objects.pinPath(name))
                pinned.append(name)
            }
        } catch {
            for name in pinned { _ = try? FileSystem.remove(objects.pinPath(name)) }
            throw error
        }
        return objects
    }

    /// Whether a user program is attached (HNXDP_XDP_F_USER_PROG).
    public func hasUserProgram() throws -> Bool {
        guard let cfg = try config.lookup(0) else { return false }
        return cfg.flags & UInt32(HNXDP_XDP_F_USER_PROG) != 0
    }

    /// Which frames go to sockets: nil for all of the queue, or the UDP port.
    public func steering() throws -> UInt16? {
        guard let cfg = try config.lookup(0), cfg.match == UInt32(HNXDP_XSK_MATCH_UDP_PORT) else { return nil }
        return cfg.udp_port
    }

    /// Sets which frames go to sockets: all of the queue, or UDP to one port.
    public func setSteering(udpPort: UInt16?) throws {
        var cfg = try config.lookup(0) ?? hnxdp_xsk_config()
        cfg.syn_ifindex = UInt32(bitPattern: synthetic)
        cfg.match = UInt32(udpPort == nil ? HNXDP_XSK_MATCH_ALL : HNXDP_XSK_MATCH_UDP_PORT)
        cfg.udp_port = udpPort ?? 0
        try config.update(0, cfg)
    }

    /// Counters summed over CPUs.
    public func counters() throws -> hnxdp_xsk_stats {
        var t = hnxdp_xsk_stats()
        for s in try stats.lookupPerCPU(0) ?? [] {
            t.rx_packets.0 &+= s.rx_packets.0; t.rx_packets.1 &+= s.rx_packets.1
            t.xsk_packets.0 &+= s.xsk_packets.0; t.xsk_packets.1 &+= s.xsk_packets.1
            t.user_packets.0 &+= s.user_packets.0; t.user_packets.1 &+= s.user_packets.1
            t.pass_packets.0 &+= s.pass_packets.0; t.pass_packets.1 &+= s.pass_packets.1
        }
        return t
    }

    /// Attaches the steering program to `ifindex` as `device` and pins the
    /// link; nothing to do when the pinned link already attaches it there.
    /// Returns whether it made a new link (a stale pinned link, of a device
    /// that went or an older load, is replaced and not restored by undo).
    @discardableResult
    func attach(device: PairDevice, ifindex: Int32, ifname: String) throws -> Bool {
        let pin = pinPath(device.linkPin)
        let ourID = (try? program.programID()) ?? 0
        if let link = try BPFDescriptor.openPinned(pin) {
            if let info = try? link.info(bpf_link_info.self, what: pin), info.type == BPF_LINK_TYPE_XDP.rawValue,
               Int32(bitPattern: info.xdp.ifindex) == ifindex, info.prog_id == ourID {
                return false
            }
            _ = bpf_link_detach(link.fd)
            try FileSystem.remove(pin)
        }
        let fd = hnxdp_xdp_link_create(program.fd, ifindex)
        if fd < 0 {
            if -fd == EBUSY || -fd == EEXIST {
                throw HnxdpError(.runtime, "attach XDP on \(ifname) (ifindex \(ifindex)): \(errnoName(-fd)): the device already has an XDP program hnxdp does not manage; remove it first (ip link set dev \(ifname) xdp off)", errno: -fd)
            }
            throw HnxdpError.system("attach XDP on \(ifname) (ifindex \(ifindex))", errno: -fd)
        }
        let link = BPFDescriptor(fd)
        do { try link.pin(at: pin) } catch {
            _ = bpf_link_detach(link.fd)
            throw error
        }
        return true
    }

    /// Puts `program` in the user slot, pins it and sets the flag that makes
    /// the steering program tail-call it, replacing a user program attached
    /// before. Each step goes on `undo`; rolling back puts the previous user
    /// program (or none) back exactly.
    func setUserProgram(_ program: BPFDescriptor, undo: UndoStack) throws {
        let slot = UInt32(HNXDP_XDP_USER_SLOT)
        let pin = pinPath(HNXDP_XDP_PIN_USER_PROG)
        let previous = try BPFDescriptor.openPinned(pin)
        let previousConfig = try config.lookup(0) ?? hnxdp_xsk_config()

        try userPrograms.update(slot, UInt32(bitPattern: program.fd))
        undo.push("user program in \(HNXDP_XDP_MAP_USER)") { [userPrograms] in
            if let previous {
                try userPrograms.update(slot, UInt32(bitPattern: previous.fd))
            } else {
                try userPrograms.delete(slot)
            }
        }
        if let previous, try FileSystem.remove(pin) {
            undo.push("unpin the previous user program") { try previous.pin(at: pin) }
        }
        try program.pin(at: pin)
        undo.push("pin \(pin)") { try FileSystem.remove(pin) }
        var cfg = previousConfig
        cfg.flags |= UInt32(HNXDP_XDP_F_USER_PROG)
        try config.update(0, cfg)
        undo.push("user program flag") { [config] in try config.update(0, previousConfig) }
    }

    /// Detaches and unpins the link of `device`; false when there was none.
    @discardableResult
    func detach(device: PairDevice) throws -> Bool {
        try XDPAttachment.detachLink(pinPath(device.linkPin))
    }
}

/// XDP on a pair (B17, B18): the steering program on whichever devices the
/// pair has, the user's program behind it, and the hooks the pair life cycle
/// calls so both follow the VF.
///
/// Hooks for `PairLifecycle` (they take no lock: the caller holds it):
///   - `vfJoined(layout:synthetic:vf:)` at the end of `joinVF`,
///   - `vfLeft(layout:synthetic:)` in `leaveVF`,
///   - `remove(layout:synthetic:)` in `uninstall`, before the pair directory goes.
public enum XDPAttachment {
    /// Whether the pair has XDP in use (the steering program is pinned).
    public static func inUse(layout: PinLayout, synthetic: Int32) -> Bool {
        FileSystem.exists(layout.linkPath(synthetic: synthetic, HNXDP_XDP_PIN_PROG))
    }

    /// Hook for `PairLifecycle.joinVF`: when the pair has XDP in use, the
    /// steering program (and so the user's program behind it) is attached to
    /// the newly joined VF. No-op otherwise. Throws when the VF refuses the
    /// program (e.g. it already has a foreign XDP program); the pair itself
    /// works without it, so the caller may log the error and go on.
    public static func vfJoined(layout: PinLayout, synthetic: LinkInfo, vf: LinkInfo) throws {
        guard let objects = try XDPPairObjects.openPinned(layout: layout, synthetic: synthetic.ifindex) else { return }
        try objects.attach(device: .vf, ifindex: vf.ifindex, ifname: vf.name)
    }

    /// Hook for `PairLifecycle.leaveVF`: detaches the steering program from
    /// the VF (a no-op when the VF is already gone: the kernel detached it).
    /// The synthetic keeps its program; AF_XDP sockets go on there.
    public static func vfLeft(layout: PinLayout, synthetic: Int32) throws {
        try detachLink(layout.linkPath(synthetic: synthetic, HNXDP_XDP_LINK_VF))
    }

    /// Hook for `PairLifecycle.uninstall` (and `detach --all`): detaches the
    /// XDP links of the pair and removes every XDP pin in its directory (the
    /// user's program, the steering program and maps). Leaves the directory
    /// itself to the caller. Open AF_XDP sockets stop receiving.
    public static func remove(layout: PinLayout, synthetic: Int32) throws {
        for link in [HNXDP_XDP_LINK_VF, HNXDP_XDP_LINK_SYN] {
            try detachLink(layout.linkPath(synthetic: synthetic, link))
        }
        for name in [HNXDP_XDP_PIN_USER_PROG] + XDPPairObjects.objectPins {
            try FileSystem.remove(layout.linkPath(synthetic: synthetic, name))
        }
    }

    /// The pair record of `synthetic`; throws (bad input) when the pair is not installed.
    static func installedPair(layout: PinLayout, synthetic: LinkInfo) throws -> hnxdp_pair {
        guard let datapath = try Datapath.openPinned(layout),
              let pair = try datapath.pairs.lookup(UInt32(bitPattern: synthetic.ifindex)),
              FileSystem.isDirectory(layout.pairDirectory(synthetic: synthetic.ifindex)) else {
            throw HnxdpError(.badInput, "\(synthetic.name) is not attached (see `hnxdp status`); run `hnxdp attach --synthetic \(synthetic.name) --vf VF` or `hnxdp run` first")
        }
        return pair
    }

    /// The pair's XDP objects, loaded, pinned and attached to the synthetic
    /// and to the current VF (an hnxdp pair active on it, or the VF the kernel
    /// enslaved) when they are not yet. An hnxdp pair must be installed; a
    /// kernel pair's devices are not changed otherwise. Caller holds the
    /// invocation lock. Whatever it creates goes on `undo` (the objects, or the
    /// links it adds to objects that were there), so a caller can take it all back.
    static func ensure(pair: XDPPair, netlink: RTNetlink, verbose: Bool, undo: UndoStack) throws -> XDPPairObjects {
        let synthetic = pair.synthetic
        let vf = try pair.currentVF(netlink: netlink)
        let objects: XDPPairObjects
        if let existing = try XDPPairObjects.openPinned(layout: pair.layout, synthetic: synthetic.ifindex) {
            objects = existing
        } else {
            if case .kernel = pair.source {
                try FileSystem.makeDirectories(pair.layout.pairDirectory(synthetic: synthetic.ifindex))
                undo.push("XDP directory of \(synthetic.name)") { pair.removeEmptyDirectories() }
            }
            objects = try XDPPairObjects.create(layout: pair.layout, synthetic: synthetic.ifindex, verbose: verbose)
            undo.push("XDP objects of \(synthetic.name)") { try remove(layout: pair.layout, synthetic: synthetic.ifindex) }
        }
        if try objects.attach(device: .synthetic, ifindex: synthetic.ifindex, ifname: synthetic.name) {
            undo.push("XDP on \(synthetic.name)") { try objects.detach(device: .synthetic) }
        }
        if let vf, !pair.kernelPropagatesXDP, try objects.attach(device: .vf, ifindex: vf.ifindex, ifname: vf.name) {
            undo.push("XDP on \(vf.name)") { try objects.detach(device: .vf) }
        }
        return objects
    }

    /// Attaches the steering program to `vf` if the pair's XDP is in use: used by
    /// AF_XDP sockets following the VF a kernel pair enslaved again (on an hnxdp
    /// pair, `vfJoined` does it as part of the join). Caller holds the invocation lock.
    static func ensureVF(pair: XDPPair, vfIndex: Int32, vfName: String) throws {
        // hv_netvsc gives its program to the VF itself.
        if pair.kernelPropagatesXDP { return }
        guard let objects = try XDPPairObjects.openPinned(layout: pair.layout, synthetic: pair.synthetic.ifindex) else {
            throw HnxdpError(.runtime, "XDP objects of \(pair.description) were removed (hnxdp detach or xdp detach?)")
        }
        try objects.attach(device: .vf, ifindex: vfIndex, ifname: vfName)
    }

    /// Result of `attachUser`.
    public struct UserProgram: Sendable {
        public var name: String
        public var id: UInt32
    }

    /// B18: loads the XDP program `name` (or the first XDP program) of the
    /// object file at `path` and runs it on frames from whichever device
    /// carries the pair, behind the AF_XDP steering. Replaces a user program
    /// already attached. All or nothing: the object is loaded before anything
    /// changes, and a later failure undoes every step, so the pair's XDP state
    /// (steering program, links, pins, a user program attached before) is as
    /// it was. Caller holds the invocation lock.
    public static func attachUser(pair: XDPPair, objectPath: String, programName: String?,
                                  netlink: RTNetlink, logger: Logger, verbose: Bool) throws -> UserProgram {
        let user = try UserXDPProgram(path: objectPath, programName: programName, verbose: verbose)
        let undo = UndoStack(logger: logger)
        do {
            let objects = try ensure(pair: pair, netlink: netlink, verbose: verbose, undo: undo)
            try objects.setUserProgram(user.program, undo: undo)
        } catch {
            undo.rollback()
            throw error
        }
        undo.commit()
        return UserProgram(name: user.name, id: (try? user.program.programID()) ?? 0)
    }

    /// Removes the user's program. When no AF_XDP application holds the pair
    /// (`applicationRunning` false), the steering program goes too, so the
    /// devices are back to no XDP at all. Returns false when no user program
    /// was attached. Caller holds the invocation lock.
    @discardableResult
    public static func detachUser(pair: XDPPair, applicationRunning: Bool) throws -> Bool {
        let layout = pair.layout, synthetic = pair.synthetic.ifindex
        guard let objects = try XDPPairObjects.openPinned(layout: layout, synthetic: synthetic) else { return false }
        let had = try objects.hasUserProgram()
        var cfg = try objects.config.lookup(0) ?? hnxdp_xsk_config()
        cfg.flags &= ~UInt32(HNXDP_XDP_F_USER_PROG)
        try objects.config.update(0, cfg)
        try objects.userPrograms.delete(UInt32(HNXDP_XDP_USER_SLOT))
        try FileSystem.remove(objects.pinPath(HNXDP_XDP_PIN_USER_PROG))
        if !applicationRunning {
            try remove(layout: layout, synthetic: synthetic)
            pair.removeEmptyDirectories()
        }
        return had
    }

    @discardableResult
    static func detachLink(_ pin: String) throws -> Bool {
        guard let link = try BPFDescriptor.openPinned(pin) else { return false }
        _ = bpf_link_detach(link.fd) // already detached when its device went: fine
        try FileSystem.remove(pin)
        return true
    }
}

/// One AF_XDP application per pair at a time: an exclusive lock (`PidLock`) on a
/// file in the state directory, released by the kernel however the process ends
/// and removed by its holder on a normal end.
public final class XSKPairLock {
    private let lock: PidLock
    public var path: String { lock.path }

    public static func path(layout: PinLayout, synthetic: Int32) -> String {
        StateDirectory.of(layout).xskLockPath(synthetic: synthetic)
    }

    /// Takes the lock; throws when another application holds it.
    public init(layout: PinLayout, synthetic: LinkInfo) throws {
        do {
            lock = try PidLock.acquire(XSKPairLock.path(layout: layout, synthetic: synthetic.ifindex), timeoutMs: nil,
                                       what: "AF_XDP application")
        } catch let held as LockHeld {
            throw HnxdpError(.runtime, "another AF_XDP application (pid \(held.pid)) has the sockets of \(synthetic.name); stop it first")
        }
    }

    /// Whether an application holds the lock of the pair now.
    public static func isHeld(layout: PinLayout, synthetic: Int32) -> Bool {
        let path = path(layout: layout, synthetic: synthetic)
        guard FileSystem.exists(path) else { return false }
        do {
            try PidLock.acquire(path, timeoutMs: nil, what: "check").release(removeFile: true)
            return false
        } catch {
            return error is LockHeld
        }
    }

    deinit { lock.release(removeFile: true) }
}
