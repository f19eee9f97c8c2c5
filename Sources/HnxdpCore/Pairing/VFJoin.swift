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

/// Joins a VF to its synthetic interface (behaviours B4..B9): save and
/// intersect features, take the smaller GSO limits, push the MTU, make the
/// VF's admin state follow, then switch the datapath. Every step is undone
/// if a later one fails.
public struct VFJoin {
    public var layout: PinLayout
    public var logger: Logger
    public var verbose: Bool

    public init(layout: PinLayout, logger: Logger, verbose: Bool = false) {
        self.layout = layout
        self.logger = logger
        self.verbose = verbose
    }

    /// Checks an explicit pair by name and joins it. Bad input throws before anything changes.
    public func attach(synthetic synName: String, vf vfName: String, force: Bool, flags: UInt32 = 0) throws -> JoinResult {
        let netlink = try RTNetlink()
        guard let syn = try netlink.link(named: synName) else {
            throw HnxdpError(.badInput, "interface \(synName) not found in this network namespace (--synthetic)")
        }
        guard let vf = try netlink.link(named: vfName) else {
            throw HnxdpError(.badInput, "interface \(vfName) not found in this network namespace (--vf)")
        }
        let existing = try Datapath.openPinned(layout)
        var attached: [Int32: Int32] = [:]
        if let existing {
            for key in try existing.pairs.keys() {
                if let pair = try existing.pairs.lookup(key) { attached[Int32(bitPattern: key)] = Int32(bitPattern: pair.vf_ifindex) }
            }
        }
        // Stale link pins of a synthetic without a map entry also count as attached.
        for ifindex in layout.pairDirectories() where attached[ifindex] == nil { attached[ifindex] = 0 }

        switch try Eligibility.checkExplicitPair(synthetic: syn, vf: vf, force: force, attached: attached) {
        case .alreadyAttached:
            return JoinResult(synthetic: syn, vf: vf, alreadyAttached: true, featuresTurnedOff: [],
                              gsoMaxSize: syn.gsoMaxSize, gsoMaxSegs: syn.gsoMaxSegs, mtu: syn.mtu, mtuFallback: false)
        case .join:
            return try join(synthetic: syn, vf: vf, netlink: netlink, flags: flags | UInt32(HNXDP_PAIR_F_EXPLICIT))
        }
    }

    /// Joins an eligible, checked pair.
    public func join(synthetic syn: LinkInfo, vf: LinkInfo, netlink: RTNetlink, flags: UInt32) throws -> JoinResult {
        let undo = UndoStack(logger: logger)
        let pairLog = "pair \(syn.name)(\(syn.ifindex))<-\(vf.name)(\(vf.ifindex))"
        do {
            // The namespace's maps and programs.
            let (datapath, created) = try Datapath.openOrCreate(layout, verbose: verbose)
            if created {
                undo.push("remove namespace pins") { try datapath.removePinsIfUnused() }
            }

            var pair = hnxdp_pair()
            pair.syn_ifindex = UInt32(bitPattern: syn.ifindex)
            pair.vf_ifindex = UInt32(bitPattern: vf.ifindex)
            pair.state = UInt32(HNXDP_STATE_IDLE.rawValue)
            pair.flags = flags | UInt32(HNXDP_PAIR_F_TRANSPARENT)
            pair.slot = try freeSlot(datapath)
            pair.saved_syn_mtu = syn.mtu
            pair.saved_vf_mtu = vf.mtu
            if vf.isUp { pair.flags |= UInt32(HNXDP_PAIR_F_VF_WAS_UP) }

            // B4: capabilities.
            let synFeatures = try Ethtool.features(of: syn.name)
            let vfFeatures = try Ethtool.features(of: vf.name)
            pair.feature_count = UInt32(synFeatures.names.count)
            pair.saved_features = FeatureWords.tuple(synFeatures.requested)
            pair.saved_active = FeatureWords.tuple(synFeatures.active)
            pair.vf_features = FeatureWords.tuple(vfFeatures.active)
            let (requested, mask) = intersectFeatures(synthetic: synFeatures, vf: vfFeatures)
            var after = synFeatures
            if !FeatureWords.isZero(mask) {
                after = try Ethtool.setFeatures(of: syn.name, requested: requested, mask: mask)
                undo.push("restore features of \(syn.name)") {
                    _ = try Ethtool.setFeatures(of: syn.name, requested: synFeatures.requested, mask: synFeatures.available)
                }
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
            if syn.gsoIPv4MaxSize != nil { pair.flags |= UInt32(HNXDP_PAIR_F_HAS_GSO_IPV4) }
            if limits != LinkChange() {
                try netlink.setLink(index: syn.ifindex, name: syn.name, limits)
                undo.push("restore GSO limits of \(syn.name)") {
                    try netlink.setLink(index: syn.ifindex, name: syn.name,
                                        LinkChange(gsoMaxSize: limits.gsoMaxSize.map { _ in pair.saved_gso_max_size },
                                                   gsoMaxSegs: limits.gsoMaxSegs.map { _ in pair.saved_gso_max_segs },
                                                   gsoIPv4MaxSize: limits.gsoIPv4MaxSize.map { _ in pair.saved_gso_ipv4_max_size }))
                }
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
                    undo.push("restore MTU of \(vf.name)") {
                        try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(mtu: vf.mtu))
                    }
                } catch let error as HnxdpError where syn.mtu > 1500 {
                    logger.warning("\(pairLog): \(vf.name) refused MTU \(syn.mtu) (\(error)); falling back to 1500 on both")
                    try netlink.setLink(index: syn.ifindex, name: syn.name, LinkChange(mtu: 1500))
                    undo.push("restore MTU of \(syn.name)") {
                        try netlink.setLink(index: syn.ifindex, name: syn.name, LinkChange(mtu: syn.mtu))
                    }
                    if vf.mtu != 1500 {
                        try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(mtu: 1500))
                        undo.push("restore MTU of \(vf.name)") {
                            try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(mtu: vf.mtu))
                        }
                    }
                    mtu = 1500
                    mtuFallback = true
                    pair.flags |= UInt32(HNXDP_PAIR_F_MTU_FALLBACK)
                }
            }
            pair.mtu = mtu

            // B7: the VF's admin state follows the synthetic's.
            if vf.isUp != syn.isUp {
                try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(up: syn.isUp))
                undo.push("restore admin state of \(vf.name)") {
                    try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(up: vf.isUp))
                }
            }

            // B8/B9: datapath. Maps first, so the programs see a complete pair.
            try datapath.resetCounters(slot: pair.slot)
            pair.state = UInt32(HNXDP_STATE_ACTIVE.rawValue)
            pair.switches = 1
            pair.last_switch_ns = realtimeNanoseconds()
            let synKey = UInt32(bitPattern: syn.ifindex), vfKey = UInt32(bitPattern: vf.ifindex)
            try datapath.pairs.update(synKey, pair)
            undo.push("delete pair entry") { try datapath.pairs.delete(synKey) }
            try datapath.vfs.update(vfKey, hnxdp_vf_entry(syn_ifindex: synKey, slot: pair.slot))
            undo.push("delete VF entry") { try datapath.vfs.delete(vfKey) }
            let rc = hnxdp_devmap_set(datapath.txdev.fd, synKey, vfKey)
            if rc < 0 { throw HnxdpError.system("put \(vf.name) in the transmit devmap", errno: -rc) }
            undo.push("delete transmit devmap entry") { try datapath.txdev.delete(synKey) }

            let pairDir = layout.pairDirectory(synthetic: syn.ifindex)
            let createdDirs = try FileSystem.makeDirectories(pairDir)
            undo.push("remove \(pairDir)") { for d in createdDirs.reversed() { FileSystem.removeDirectoryIfEmpty(d) } }
            for program in [DatapathProgram.synIngress, .synEgress, .vfIngress] {
                let device = program.onVF ? vf : syn
                let pin = layout.linkPath(synthetic: syn.ifindex, program.linkName)
                try TcxLink.attach(datapath.program(program), ifindex: device.ifindex, ifname: device.name,
                                   ingress: program.ingress, pinPath: pin)
                undo.push("detach \(program.name) from \(device.name)") { try TcxLink.detach(pinPath: pin) }
            }

            undo.commit()
            logger.info("\(pairLog): joined, state active, datapath vf, mtu \(mtu)")
            return JoinResult(synthetic: syn, vf: vf, alreadyAttached: false, featuresTurnedOff: turnedOff,
                              gsoMaxSize: pair.gso_max_size, gsoMaxSegs: pair.gso_max_segs, mtu: mtu, mtuFallback: mtuFallback)
        } catch {
            undo.rollback()
            throw error
        }
    }

    private func freeSlot(_ datapath: Datapath) throws -> UInt32 {
        var used = Set<UInt32>()
        for key in try datapath.pairs.keys() {
            if let p = try datapath.pairs.lookup(key) { used.insert(p.slot) }
        }
        for slot in 0..<UInt32(HNXDP_MAX_PAIRS) where !used.contains(slot) { return slot }
        throw HnxdpError(.runtime, "all \(HNXDP_MAX_PAIRS) pair slots of this network namespace are in use")
    }
}

/// CLOCK_REALTIME in nanoseconds.
func realtimeNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
