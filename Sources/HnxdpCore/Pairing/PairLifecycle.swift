import CHnxdpShim
import Glibc
import Logging

/// What a successful join did, for the CLI to report.
public struct JoinResult: Sendable {
    public var synthetic: LinkInfo
    public var vf: LinkInfo
    public var alreadyAttached: Bool
    public var featuresTurnedOff: [String]
    public var gsoMaxSize: UInt32?
    public var gsoMaxSegs: UInt32?
    public var mtu: UInt32
    public var mtuFallback: Bool
}

/// The life of a pair: `install` a synthetic interface (pair entry and its
/// tcx links), `joinVF` (B4..B9: save and intersect features, take the
/// smaller GSO limits, push the MTU, make the VF's admin state follow, then
/// switch the datapath), `leaveVF` (B13: undo exactly), `uninstall`. Every
/// multi-step change is undone if a later step fails.
public struct PairLifecycle {
    public var layout: PinLayout
    public var logger: Logger
    public var verbose: Bool
    /// The write-ahead records of the namespace (B21).
    public var records: PairRecordStore
    /// The pairs' switch histories (shown by `dump`, used by `monitor`).
    public var history: SwitchHistoryStore

    /// How new pairs attach (`--tc-mode`); a pair keeps the attachment it has.
    public var tcMode: TcModeRequest

    public init(layout: PinLayout, logger: Logger, verbose: Bool = false, tcMode: TcModeRequest = .auto) {
        self.layout = layout
        self.logger = logger
        self.verbose = verbose
        self.records = PairRecordStore(layout: layout)
        self.history = SwitchHistoryStore(layout: layout)
        self.tcMode = tcMode
    }

    /// The attachment of the pair of `synthetic`: that of the programs it already
    /// has attached (a pair never mixes the two), else `tcMode` on this kernel.
    public func attachMode(synthetic ifindex: Int32) throws -> TcAttachMode {
        for program in [DatapathProgram.synEgress, .synIngress, .vfIngress] {
            if let mode = TcHook.mode(pinPath: layout.linkPath(synthetic: ifindex, program.linkName)) { return mode }
        }
        return try KernelCapabilities.attachMode(for: tcMode)
    }

    /// Checks an explicit pair by name and joins it. Bad input throws before anything changes.
    public func attach(synthetic synName: String, vf vfName: String, force: Bool, flags: PairFlags = []) throws -> JoinResult {
        let netlink = try RTNetlink()
        var syn = try netlink.requireLink(named: synName, option: "--synthetic")
        var vf = try netlink.requireLink(named: vfName, option: "--vf")
        let existing = try Datapath.openPinned(layout)
        // B21: what a crash or a lost datapath left of this pair is put back first,
        // then the devices are read again as they are now.
        if try reconcile(synthetic: syn.ifindex, datapath: existing, netlink: netlink) {
            syn = try netlink.requireLink(named: synName, option: "--synthetic")
            vf = try netlink.requireLink(named: vfName, option: "--vf")
        }
        var attached: [Int32: Int32] = [:]
        if let existing {
            // An installed pair without a VF (idle) may be joined.
            for (key, pair) in try existing.pairs.entries() where pair.vf_ifindex != 0 {
                attached[Int32(bitPattern: key)] = Int32(bitPattern: pair.vf_ifindex)
            }
        }
        // The synthetic's joined VF is gone (it left while no control plane ran):
        // B15, the returning VF is joined again. Checked first, undone only once
        // the new pair is known to be acceptable.
        var departed: Int32? = nil
        if let current = attached[syn.ifindex], current != vf.ifindex, try netlink.link(index: current) == nil {
            departed = current
            attached[syn.ifindex] = nil
        }

        // B22: a synthetic the kernel pairs itself (or a port of another device) is never steered.
        let synMaster = try syn.masterIndex.flatMap { $0 == 0 ? nil : try netlink.link(index: $0) }
        if let refusal = PairingPolicy.syntheticRefusal(
            PairingPolicy.Device(link: syn, driver: Ethtool.driverInfo(of: syn.name)?.driver),
            master: synMaster.map { PairingPolicy.Device(link: $0, driver: Ethtool.driverInfo(of: $0.name)?.driver) }) {
            throw HnxdpError(.badInput, refusal)
        }
        if let masterIndex = vf.masterIndex, masterIndex != 0, Eligibility.ineligibilityReason(vf) == nil {
            // B22: name the master and what it is, so the user knows whose pair this is.
            let master = try netlink.link(index: masterIndex)
            throw HnxdpError(.badInput, Eligibility.masterRefusal(vf: vf, master: master,
                                                                  masterDriver: master.flatMap { Ethtool.driverInfo(of: $0.name)?.driver },
                                                                  vfDriver: Ethtool.driverInfo(of: vf.name)?.driver))
        }
        let verdict = try Eligibility.checkExplicitPair(synthetic: syn, vf: vf, force: force, attached: attached)
        if let departed, let existing, verdict == .join {
            try leaveVF(synthetic: syn.ifindex, datapath: existing, netlink: netlink,
                        reason: "VF ifindex \(departed) no longer exists; joining \(vf.name)", switchReason: .departedWhileStopped)
        }
        switch verdict {
        case .alreadyAttached:
            return JoinResult(synthetic: syn, vf: vf, alreadyAttached: true, featuresTurnedOff: [],
                              gsoMaxSize: syn.gsoMaxSize, gsoMaxSegs: syn.gsoMaxSegs, mtu: syn.mtu, mtuFallback: false)
        case .join:
            return try join(synthetic: syn, vf: vf, netlink: netlink, flags: flags.union(.explicit))
        }
    }

    /// Joins an eligible, checked pair: installs the pair if needed, then joins the VF.
    /// On failure nothing is left: a pair installed by this call is removed again.
    public func join(synthetic syn: LinkInfo, vf: LinkInfo, netlink: RTNetlink, flags: PairFlags,
                     switchReason: SwitchReason = .attach) throws -> JoinResult {
        let undo = UndoStack(logger: logger)
        do {
            let (datapath, created) = try Datapath.openOrCreate(layout, verbose: verbose)
            if created { undo.push("remove namespace pins") { try datapath.removePinsIfUnused() } }
            let installed = try install(synthetic: syn, flags: flags, datapath: datapath)
            if installed {
                undo.push("uninstall pair \(syn.name)") { try self.uninstall(synthetic: syn.ifindex, datapath: datapath) }
            }
            let result = try joinVF(synthetic: syn, vf: vf, netlink: netlink, datapath: datapath, switchReason: switchReason)
            undo.commit()
            return result
        } catch {
            undo.rollback()
            throw error
        }
    }

    /// Makes `syn` a managed synthetic interface: a pair entry (state idle,
    /// no VF, its own stats slot) and the synthetic's two tcx links. Returns
    /// false when it already was one (nothing changed).
    @discardableResult
    public func install(synthetic syn: LinkInfo, flags: PairFlags, datapath: Datapath) throws -> Bool {
        let synKey = UInt32(bitPattern: syn.ifindex)
        let linksPresent = [DatapathProgram.synIngress, .synEgress].allSatisfy {
            TcHook.isAttached(pinPath: layout.linkPath(synthetic: syn.ifindex, $0.linkName))
        }
        if try datapath.pairs.lookup(synKey) != nil {
            // An installed pair whose links were lost keeps its entry (it may be active).
            if !linksPresent { try reattachLinks(synthetic: syn, vf: nil, datapath: datapath) }
            return false
        }
        let undo = UndoStack(logger: logger)
        do {
            var pair = hnxdp_pair()
            pair.syn_ifindex = synKey
            pair.pairState = .idle
            pair.pairFlags = flags
            pair.slot = try freeSlot(datapath)
            pair.mtu = syn.mtu
            try datapath.resetCounters(slot: pair.slot)
            history.remove(synthetic: syn.ifindex) // a new pair: its switches start at 0
            try datapath.storePair(pair)
            undo.push("delete pair entry") { try datapath.removePair(synthetic: synKey) }
            let pairDir = layout.pairDirectory(synthetic: syn.ifindex)
            let createdDirs = try FileSystem.makeDirectories(pairDir)
            undo.push("remove \(pairDir)") { for d in createdDirs.reversed() { FileSystem.removeDirectoryIfEmpty(d) } }
            let mode = try attachMode(synthetic: syn.ifindex)
            for program in [DatapathProgram.synIngress, .synEgress] {
                let pin = layout.linkPath(synthetic: syn.ifindex, program.linkName)
                _ = try? TcHook.detach(pinPath: pin) // a stale pin from a synthetic that went away
                try TcHook.attach(datapath.program(program), ifindex: syn.ifindex, ifname: syn.name,
                                  ingress: program.ingress, pinPath: pin, mode: mode)
                undo.push("detach \(program.name) from \(syn.name)") { try TcHook.detach(pinPath: pin) }
            }
            undo.commit()
            logger.info("pair \(syn.name)(\(syn.ifindex)): installed, state idle, datapath synthetic, attachment \(mode.rawValue)")
            return true
        } catch {
            undo.rollback()
            throw error
        }
    }

    /// Attaches again whichever of the pair's tcx links is missing (its pin was
    /// removed, or bpffs was unmounted), without touching the pair's entries.
    /// Returns what it attached.
    @discardableResult
    public func reattachLinks(synthetic syn: LinkInfo, vf: LinkInfo?, datapath: Datapath) throws -> [String] {
        try FileSystem.makeDirectories(layout.pairDirectory(synthetic: syn.ifindex))
        var wanted: [(DatapathProgram, LinkInfo)] = [(.synIngress, syn), (.synEgress, syn)]
        if let vf { wanted.append((.vfIngress, vf)) }
        var attached: [String] = []
        let mode = try attachMode(synthetic: syn.ifindex)
        for (program, device) in wanted {
            let pin = layout.linkPath(synthetic: syn.ifindex, program.linkName)
            if TcHook.isAttached(pinPath: pin) { continue }
            _ = try? TcHook.detach(pinPath: pin)
            try TcHook.attach(datapath.program(program), ifindex: device.ifindex, ifname: device.name,
                              ingress: program.ingress, pinPath: pin, mode: mode)
            attached.append("\(program.name) on \(device.name)")
        }
        return attached
    }

    /// Removes a pair entry and every link and pin of it (the VF must have left).
    public func uninstall(synthetic ifindex: Int32, datapath: Datapath?) throws {
        let key = UInt32(bitPattern: ifindex)
        let pairDir = layout.pairDirectory(synthetic: ifindex)
        try XDPAttachment.remove(layout: layout, synthetic: ifindex)
        // Every tcx link pin of the pair (and anything else left in its directory).
        for pin in FileSystem.list(pairDir) { try TcHook.detach(pinPath: "\(pairDir)/\(pin)") }
        FileSystem.removeDirectoryIfEmpty(pairDir)
        if let datapath, let pair = try datapath.pairs.lookup(key) {
            try datapath.removePair(synthetic: key)
            try datapath.resetCounters(slot: pair.slot)
        }
        history.remove(synthetic: ifindex)
    }

    /// Joins `vf` to the installed pair of `syn` (B4..B9) and switches the
    /// datapath to it. On failure every step is undone and the pair stays idle.
    public func joinVF(synthetic syn: LinkInfo, vf: LinkInfo, netlink: RTNetlink, datapath: Datapath,
                       switchReason: SwitchReason = .joined) throws -> JoinResult {
        let undo = UndoStack(logger: logger)
        let pairLog = "pair \(syn.name)(\(syn.ifindex))<-\(vf.name)(\(vf.ifindex))"
        let synKey = UInt32(bitPattern: syn.ifindex), vfKey = UInt32(bitPattern: vf.ifindex)
        do {
            guard var pair = try datapath.pairs.lookup(synKey) else {
                throw HnxdpError(.runtime, "\(pairLog): the synthetic is not installed")
            }
            // A record of an earlier join that did not finish (or whose datapath is gone)
            // is finished first; the devices are then read again, as they are now.
            var syn = syn, vf = vf
            if try reconcile(synthetic: syn.ifindex, datapath: datapath, netlink: netlink) {
                guard let s = try netlink.link(index: syn.ifindex), let v = try netlink.link(index: vf.ifindex) else {
                    throw HnxdpError(.runtime, "\(pairLog): a device went away while an earlier join was undone")
                }
                syn = s
                vf = v
                pair = try datapath.pairs.lookup(synKey) ?? pair
            }
            let original = pair
            pair.vf_ifindex = vfKey
            pair.pairFlags.subtract([.vfWasUp, .mtuFallback, .hasGSOIPv4])
            pair.saved_syn_mtu = syn.mtu
            pair.saved_vf_mtu = vf.mtu
            if vf.isUp { pair.pairFlags.insert(.vfWasUp) }
            // B4: capabilities.
            let synFeatures = try Ethtool.features(of: syn.name)
            let vfFeatures = try Ethtool.features(of: vf.name)

            // B21, the write-ahead record: the originals of both devices are durable
            // before the first change to either. From here on, a crash at any point is
            // recovered from this record (`reconcile`), and a failure below undoes
            // everything from it; the record goes only once both devices are back.
            var record = PairRecord(phase: .joining, netnsCookie: NetworkNamespace.currentCookie(),
                                    synthetic: DeviceOriginals(syn, features: synFeatures.requested),
                                    vf: DeviceOriginals(vf, ipv6: IPv6DeviceSettings.hygiene(of: vf.name)))
            record.vfTrafficControl = try netlink.trafficControl(of: vf.ifindex, name: vf.name)
            try records.save(record)
            // The one undo of every device change below (features, GSO limits, MTU, admin state).
            undo.push("put back the originals of \(syn.name) and \(vf.name) from the write-ahead record") {
                try self.restore(record, datapath: datapath, netlink: netlink)
            }
            pair.feature_count = UInt32(synFeatures.names.count)
            pair.saved_features = FeatureWords.tuple(synFeatures.requested)
            pair.saved_active = FeatureWords.tuple(synFeatures.active)
            pair.vf_features = FeatureWords.tuple(vfFeatures.active)
            let (requested, mask) = intersectFeatures(synthetic: synFeatures, vf: vfFeatures)
            var after = synFeatures
            if !FeatureWords.isZero(mask) {
                after = try Ethtool.setFeatures(of: syn.name, requested: requested, mask: mask)
            }
            pair.effective_features = FeatureWords.tuple(after.active)
            let turnedOff = FeatureSet.names(of: FeatureWords.and(synFeatures.active, FeatureWords.xor(synFeatures.active, after.active)),
                                             in: synFeatures.names)

            // B5: segmentation limits.
            pair.saved_gso_max_size = syn.gsoMaxSize ?? 0
            pair.saved_gso_max_segs = syn.gsoMaxSegs ?? 0
            pair.saved_gso_ipv4_max_size = syn.gsoIPv4MaxSize ?? 0
            var limits = LinkChange()
            if let s = syn.gsoMaxSize, let v = vf.gsoMaxSize, v < s { limits.gsoMaxSize = v }
            if let s = syn.gsoMaxSegs, let v = vf.gsoMaxSegs, v < s { limits.gsoMaxSegs = v }
            if let s = syn.gsoIPv4MaxSize, let v = vf.gsoIPv4MaxSize ?? vf.gsoMaxSize, v < s {
                limits.gsoIPv4MaxSize = v
            }
            if syn.gsoIPv4MaxSize != nil { pair.pairFlags.insert(.hasGSOIPv4) }
            if limits != LinkChange() {
                try netlink.setLink(index: syn.ifindex, name: syn.name, limits)
            }
            pair.gso_max_size = limits.gsoMaxSize ?? pair.saved_gso_max_size
            pair.gso_max_segs = limits.gsoMaxSegs ?? pair.saved_gso_max_segs
            pair.gso_ipv4_max_size = limits.gsoIPv4MaxSize ?? pair.saved_gso_ipv4_max_size

            // B6: MTU, synthetic's to the VF; FreeBSD's fallback to 1500 when refused.
            var mtu = syn.mtu
            var mtuFallback = false
            if vf.mtu != syn.mtu {
                do {
                    try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(mtu: syn.mtu))
                } catch let error as HnxdpError where syn.mtu > 1500 {
                    logger.warning("\(pairLog): \(vf.name) refused MTU \(syn.mtu) (\(error)); falling back to 1500 on both")
                    try netlink.setLink(index: syn.ifindex, name: syn.name, LinkChange(mtu: 1500))
                    if vf.mtu != 1500 { try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(mtu: 1500)) }
                    mtu = 1500
                    mtuFallback = true
                    record.mtuFallback = true
                    pair.pairFlags.insert(.mtuFallback)
                }
            }
            pair.mtu = mtu

            // B24: the VF takes no IPv6 addresses of its own while joined (before it
            // comes up, so it never autoconfigures one).
            for (key, value) in record.vf.ipv6 ?? [:] where value != "0" {
                try IPv6DeviceSettings.write(vf.name, key, "0")
            }

            // B7: the VF's admin state follows the synthetic's.
            if vf.isUp != syn.isUp {
                try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(up: syn.isUp))
            }

            // Egress shaping: frames will leave through the VF's qdisc, not the
            // synthetic's, so the VF carries the synthetic's (its own is in the record).
            let qdisc = try QdiscMirror.sync(netlink: netlink, syn: syn, vf: vf, original: record.vfTrafficControl, logger: logger)
            logQdisc(qdisc.state, pairLog: pairLog, syn: syn, vf: vf, what: "joined")

            // B8/B9: datapath. Maps first, so the programs see a complete pair.
            pair.pairState = .active
            pair.switches &+= 1
            pair.last_switch_ns = realtimeNanoseconds()
            try datapath.storeVF(vfKey, synthetic: synKey, slot: pair.slot)
            undo.push("delete VF entry") { try datapath.removeVF(vfKey) }
            let slot = pair.slot
            try datapath.setTransmitDevice(slot: slot, vf: vfKey, name: vf.name)
            undo.push("delete transmit devmap entry") { try datapath.clearTransmitDevice(slot: slot) }
            let pin = layout.linkPath(synthetic: syn.ifindex, DatapathProgram.vfIngress.linkName)
            _ = try? TcHook.detach(pinPath: pin) // the link of a VF that already left
            try TcHook.attach(datapath.program(.vfIngress), ifindex: vf.ifindex, ifname: vf.name, ingress: true,
                              pinPath: pin, mode: attachMode(synthetic: syn.ifindex))
            undo.push("detach \(HNXDP_PROG_VF_INGRESS) from \(vf.name)") { try TcHook.detach(pinPath: pin) }
            try datapath.storePair(pair)
            undo.push("restore pair entry") { try datapath.storePair(original) }
            record.phase = .joined
            try records.save(record)

            undo.commit()
            noteSwitch(synthetic: syn.ifindex, SwitchEvent(timeNs: pair.last_switch_ns, direction: .toVF, reason: switchReason,
                                                           vf: vf.name, vfIfindex: vf.ifindex, switchNumber: pair.switches))
            // B17/B18: an AF_XDP application or user XDP program on the pair follows the new VF.
            do {
                try XDPAttachment.vfJoined(layout: layout, synthetic: syn, vf: vf)
            } catch {
                logger.warning("\(pairLog): XDP steering not moved to \(vf.name): \(error); AF_XDP sockets stay on \(syn.name)")
            }
            logger.info("\(pairLog): joined, state active, datapath vf, mtu \(mtu), switch \(pair.switches)")
            // B24: a VF with addresses of its own is joined, and the user told why that is wrong.
            if let own = try? netlink.ownAddresses(of: vf.ifindex), !own.isEmpty {
                logger.warning("\(pairLog): \(vf.name) has addresses of its own (\(own.map(\.description).joined(separator: ", "))): traffic routed by them bypasses the pair and breaks when the VF leaves; configure \(syn.name) instead")
            }
            if let routes = try? netlink.ownRoutes(of: vf.ifindex), !routes.isEmpty {
                logger.warning("\(pairLog): routes go through \(vf.name) (\(routes.map(\.description).joined(separator: ", "))): traffic they carry bypasses the pair and breaks when the VF leaves; route through \(syn.name) instead")
            }
            return JoinResult(synthetic: syn, vf: vf, alreadyAttached: false, featuresTurnedOff: turnedOff,
                              gsoMaxSize: pair.gso_max_size, gsoMaxSegs: pair.gso_max_segs, mtu: mtu, mtuFallback: mtuFallback)
        } catch {
            undo.rollback()
            throw error
        }
    }

    /// The VF leaves (B13): the datapath falls back to the synthetic at
    /// once, then the VF's link and map entries go and both devices get their
    /// originals back from the write-ahead record (the pinned pair entry is the
    /// second copy, used when the record is missing). Idempotent: a leave that
    /// was cut short is finished by the next one. `datapath` nil: the pins are
    /// gone, only the devices are put back. Returns false when no VF was joined.
    @discardableResult
    public func leaveVF(synthetic ifindex: Int32, datapath: Datapath?, netlink: RTNetlink, reason: String,
                        switchReason: SwitchReason = .departed, onSwitched: (() -> Void)? = nil) throws -> Bool {
        let synKey = UInt32(bitPattern: ifindex)
        let entry = try datapath?.pairs.lookup(synKey)
        // A report-only pair (transparent off) names its VF but never joined it.
        let joined = entry.map { $0.vf_ifindex != 0 && $0.pairState != .disabled } ?? false
        var record = try records.load(synthetic: ifindex)
        if record == nil, joined, let entry {
            logger.warning("pair ifindex \(ifindex): no write-ahead record in \(records.state.namespaceDirectory); restoring from the pinned pair entry")
            record = try recordFromEntry(entry, netlink: netlink)
        }
        guard var record else { return false }
        // The leave is recorded before it starts, so a crash in it is finished, not forgotten.
        record.phase = record.undoPhase
        try records.save(record)
        var switches: UInt32 = 0
        if let datapath, var pair = entry {
            // 1. Transmit falls back now.
            if pair.vf_ifindex != 0 && pair.pairState != .disabled {
                pair.pairState = .idle
                pair.switches &+= 1
                pair.last_switch_ns = realtimeNanoseconds()
                pair.vf_ifindex = 0
                try datapath.storePair(pair)
                noteSwitch(synthetic: ifindex, SwitchEvent(timeNs: pair.last_switch_ns, direction: .toSynthetic, reason: switchReason,
                                                           vf: record.vf.name, vfIfindex: record.vf.ifindex, switchNumber: pair.switches))
            }
            switches = pair.switches
            try datapath.clearTransmitDevice(slot: pair.slot)
        }
        onSwitched?()
        // 2. The VF's links and entry; 3. both devices' originals; then the record goes.
        try restore(record, datapath: datapath, netlink: netlink)
        logger.info("pair \(record.synthetic.name)(\(ifindex))<-\(record.vf.name)(\(record.vf.ifindex)): VF left (\(reason)), state idle, datapath synthetic, switch \(switches)")
        return true
    }

    /// Removes what the datapath has of the record's VF and gives both devices their
    /// originals back, then removes the record. Idempotent; a device that is gone (or
    /// is no longer the recorded one) is left alone.
    func restore(_ record: PairRecord, datapath: Datapath?, netlink: RTNetlink) throws {
        let ifindex = record.synthetic.ifindex
        try TcHook.detach(pinPath: layout.linkPath(synthetic: ifindex, DatapathProgram.vfIngress.linkName))
        try XDPAttachment.vfLeft(layout: layout, synthetic: ifindex)
        if let datapath {
            try datapath.removeVF(UInt32(bitPattern: record.vf.ifindex))
            if let pair = try datapath.pairs.lookup(UInt32(bitPattern: ifindex)), pair.vf_ifindex == 0 {
                try datapath.clearTransmitDevice(slot: pair.slot)
            }
        }
        if let syn = try netlink.link(index: ifindex), record.synthetic.isSameDevice(syn) {
            if let saved = record.synthetic.features {
                let now = try Ethtool.features(of: syn.name)
                if FeatureSet.normalized(now.requested) != FeatureSet.normalized(saved) {
                    _ = try Ethtool.setFeatures(of: syn.name, requested: saved, mask: now.available)
                }
            }
            let change = record.syntheticChange(now: syn)
            if change != LinkChange() { try netlink.setLink(index: syn.ifindex, name: syn.name, change) }
        }
        if let vf = try netlink.link(index: record.vf.ifindex), record.vf.isSameDevice(vf) {
            for mac in record.multicastAdded.compactMap(LinkInfo.parseMAC) {
                do { try MulticastList.set(mac, on: vf.name, add: false) } catch let e as HnxdpError where e.errno == ENOENT || e.errno == EADDRNOTAVAIL {}
            }
            try QdiscMirror.restore(netlink: netlink, vf: vf, original: record.vfTrafficControl)
            let change = record.vfChange(now: vf)
            if change != LinkChange() { try netlink.setLink(index: vf.ifindex, name: vf.name, change) }
            for (key, value) in record.vf.ipv6 ?? [:] where IPv6DeviceSettings.read(vf.name, key).map({ $0 != value }) ?? false {
                try IPv6DeviceSettings.write(vf.name, key, value)
            }
        }
        try records.remove(synthetic: ifindex)
    }

    /// Finishes what a crash, a kill or a lost datapath left of a pair's join or
    /// leave (B21), before anything else touches the pair: a record of a join or
    /// leave in progress, or of a join whose datapath no longer carries the VF
    /// (pins removed, bpffs unmounted, VF gone), is undone from the record.
    /// Returns true when it put anything back.
    @discardableResult
    public func reconcile(synthetic ifindex: Int32, datapath: Datapath?, netlink: RTNetlink) throws -> Bool {
        guard let record = try records.load(synthetic: ifindex) else { return false }
        let why: String
        var switchReason = SwitchReason.recovery
        switch record.phase {
        case .joining: why = "a join that did not finish"
        case .leaving, .abandoning: why = "a leave that did not finish"
        case .joined:
            let pair = try datapath?.pairs.lookup(UInt32(bitPattern: ifindex))
            let vfHere = try netlink.link(index: record.vf.ifindex).map(record.vf.isSameDevice) ?? false
            let carried = pair?.vf_ifindex == UInt32(bitPattern: record.vf.ifindex)
                && TcHook.isAttached(pinPath: layout.linkPath(synthetic: ifindex, DatapathProgram.vfIngress.linkName))
            if carried && vfHere { return false }
            why = !vfHere ? "its VF is gone" : "its datapath is gone (pins removed or bpffs unmounted)"
            if !vfHere { switchReason = .departedWhileStopped }
        }
        logger.warning("pair \(record.synthetic.name)(\(ifindex))<-\(record.vf.name)(\(record.vf.ifindex)): finishing \(why): putting back the originals from \(records.state.recordPath(synthetic: ifindex))")
        try leaveVF(synthetic: ifindex, datapath: datapath, netlink: netlink, reason: why, switchReason: switchReason)
        return true
    }

    /// A record rebuilt from a pinned pair entry (the second copy of the originals),
    /// for pairs whose record file is missing.
    func recordFromEntry(_ pair: hnxdp_pair, netlink: RTNetlink) throws -> PairRecord {
        let ifindex = Int32(bitPattern: pair.syn_ifindex), vfIndex = Int32(bitPattern: pair.vf_ifindex)
        let syn = try netlink.link(index: ifindex)
        var s = syn.map { DeviceOriginals($0) } ?? DeviceOriginals(LinkInfo(ifindex: ifindex, name: ""))
        s.mtu = pair.saved_syn_mtu
        s.gsoMaxSize = pair.saved_gso_max_size
        s.gsoMaxSegs = pair.saved_gso_max_segs
        s.gsoIPv4MaxSize = pair.pairFlags.contains(.hasGSOIPv4) ? pair.saved_gso_ipv4_max_size : nil
        s.features = FeatureWords.array(pair.saved_features)
        // The VF: only what the entry holds (MTU, admin state); the rest stays as it is.
        var v: DeviceOriginals
        if let vf = try netlink.link(index: vfIndex) { v = DeviceOriginals(vf) } else { v = DeviceOriginals(LinkInfo(ifindex: vfIndex, name: "")) }
        v.mtu = pair.saved_vf_mtu != 0 ? pair.saved_vf_mtu : v.mtu
        v.up = pair.pairFlags.contains(.vfWasUp)
        var record = PairRecord(phase: .joined, netnsCookie: NetworkNamespace.currentCookie(), synthetic: s, vf: v)
        record.mtuFallback = pair.pairFlags.contains(.mtuFallback)
        return record
    }

    /// One log line about the VF's egress configuration: a copy is info, one that is
    /// not faithful a warning (the pair works, shaping may not be what the user set).
    func logQdisc(_ state: QdiscState, pairLog: String, syn: LinkInfo, vf: LinkInfo, what: String) {
        switch state {
        case .none: break
        case .mirrored: logger.info("\(pairLog): \(syn.name)'s egress qdiscs copied to \(vf.name) (\(what))")
        case .notFaithful(let why): logger.warning("\(pairLog): \(syn.name)'s egress shaping is not faithfully on \(vf.name): \(why)")
        }
    }

    /// While joined: the VF follows the synthetic's egress configuration (`run`, on
    /// RTNLGRP_TC notifications). `unchangedSince`: the outcome of the last call; when
    /// both devices still read the same, nothing is done. Returns the new outcome.
    public func followQdisc(synthetic syn: LinkInfo, vf: LinkInfo, netlink: RTNetlink,
                            unchangedSince last: QdiscMirror.Outcome?) throws -> QdiscMirror.Outcome? {
        guard let record = try records.load(synthetic: syn.ifindex), record.phase == .joined,
              record.vf.ifindex == vf.ifindex else { return nil }
        let pairLog = "pair \(syn.name)(\(syn.ifindex))<-\(vf.name)(\(vf.ifindex))"
        if let last {
            let synNow = QdiscMirror.signatures(QdiscMirror.userObjects(try netlink.trafficControl(of: syn.ifindex, name: syn.name)))
            let vfNow = QdiscMirror.signatures(QdiscMirror.userObjects(try netlink.trafficControl(of: vf.ifindex, name: vf.name)))
            if synNow == last.synthetic && vfNow == last.vf { return last }
        }
        let outcome = try QdiscMirror.sync(netlink: netlink, syn: syn, vf: vf, original: record.vfTrafficControl, logger: logger)
        if outcome.changed || (last != nil && outcome.state != last?.state) {
            if outcome.changed, case .none = outcome.state {
                logger.info("\(pairLog): \(syn.name) has no egress qdisc of its own any more: \(vf.name)'s own configuration put back")
            }
            logQdisc(outcome.state, pairLog: pairLog, syn: syn, vf: vf, what: "followed a change")
        }
        return outcome
    }

    /// Adds a switch to the pair's history. The switch itself is done: a history
    /// that cannot be written is logged, never a reason to fail or undo it.
    func noteSwitch(synthetic ifindex: Int32, _ event: SwitchEvent) {
        do {
            try history.append(event, synthetic: ifindex)
        } catch {
            logger.warning("pair ifindex \(ifindex): switch \(event.switch) not added to its history: \(error)")
        }
    }

    func freeSlot(_ datapath: Datapath) throws -> UInt32 {
        let used = Set(try datapath.pairs.entries().map(\.value.slot))
        for slot in 0..<UInt32(HNXDP_MAX_PAIRS) where !used.contains(slot) { return slot }
        throw HnxdpError(.runtime, "all \(HNXDP_MAX_PAIRS) pair slots of this network namespace are in use")
    }
}

