import CHnxdpShim
import Glibc
import Logging

/// Undoes a join exactly (behaviour B13): the datapath falls back to the
/// synthetic first, then every link, map entry and pin made for the pair is
/// removed and the saved features, GSO limits, MTU and VF admin state are
/// put back. When the last pair of a namespace goes, its pins go too.
public struct PairDetach {
    public var layout: PinLayout
    public var logger: Logger

    public init(layout: PinLayout, logger: Logger) {
        self.layout = layout
        self.logger = logger
    }

    /// Detaches the pair whose synthetic interface is `name`.
    public func detach(syntheticNamed name: String) throws {
        let netlink = try RTNetlink()
        guard let syn = try netlink.link(named: name) else {
            throw HnxdpError(.badInput, "interface \(name) not found in this network namespace (--synthetic)")
        }
        let datapath = try Datapath.openPinned(layout)
        let key = UInt32(bitPattern: syn.ifindex)
        let pair = try datapath?.pairs.lookup(key)
        let hasLinks = FileSystem.isDirectory(layout.pairDirectory(synthetic: syn.ifindex))
        guard pair != nil || hasLinks else {
            throw HnxdpError(.badInput, "\(name) is not attached (see `hnxdp status`)")
        }
        try detachPair(synthetic: syn.ifindex, pair: pair, datapath: datapath, netlink: netlink)
        if let datapath { try datapath.removePinsIfUnused() }
    }

    /// Detaches every pair of this namespace and removes all of hnxdp's pins
    /// in it; returns how many pairs were detached.
    @discardableResult
    public func detachAll() throws -> Int {
        let netlink = try RTNetlink()
        var datapath: Datapath? = nil
        do {
            datapath = try Datapath.openPinned(layout)
        } catch let error as HnxdpError {
            // Incomplete pins: still clean up links and whatever is left.
            logger.warning("\(error.message)")
        }
        var synthetics = Set(layout.pairDirectories())
        if let datapath { for k in try datapath.pairs.keys() { synthetics.insert(Int32(bitPattern: k)) } }
        for ifindex in synthetics.sorted() {
            let pair = try datapath?.pairs.lookup(UInt32(bitPattern: ifindex))
            try detachPair(synthetic: ifindex, pair: pair, datapath: datapath, netlink: netlink)
        }
        // Namespace level: maps, programs, directories.
        for name in Datapath.pinNames { try FileSystem.remove(layout.objectPath(name)) }
        FileSystem.removeDirectoryIfEmpty(layout.namespaceDirectory)
        FileSystem.removeDirectoryIfEmpty(layout.root)
        return synthetics.count
    }

    /// Detaches one pair. `pair` is its map entry when there is one.
    func detachPair(synthetic ifindex: Int32, pair: hnxdp_pair?, datapath: Datapath?, netlink: RTNetlink) throws {
        let key = UInt32(bitPattern: ifindex)
        let syn = try netlink.link(index: ifindex)
        let synName = syn?.name ?? "ifindex \(ifindex)"
        // 1. Transmit falls back to the synthetic at once.
        if let datapath { try datapath.txdev.delete(key) }
        // 2. Links: VF ingress first, so nothing more is redirected.
        let pairDir = layout.pairDirectory(synthetic: ifindex)
        for program in [DatapathProgram.vfIngress, .synEgress, .synIngress] {
            try TcxLink.detach(pinPath: layout.linkPath(synthetic: ifindex, program.linkName))
        }
        for leftover in FileSystem.list(pairDir) { try TcxLink.detach(pinPath: "\(pairDir)/\(leftover)") }
        FileSystem.removeDirectoryIfEmpty(pairDir)
        // 3. Map entries.
        if let datapath, let pair {
            try datapath.vfs.delete(pair.vf_ifindex)
            try datapath.pairs.delete(key)
            try datapath.resetCounters(slot: pair.slot)
        }
        guard let pair else {
            logger.info("pair \(synName): removed leftover links")
            return
        }
        // 4. The synthetic's saved state.
        if let syn {
            let saved = FeatureWords.array(pair.saved_features)
            let now = try Ethtool.features(of: syn.name)
            if now.requested != saved {
                _ = try Ethtool.setFeatures(of: syn.name, requested: saved, mask: now.available)
            }
            var change = LinkChange()
            if pair.saved_gso_max_size != 0, syn.gsoMaxSize != pair.saved_gso_max_size { change.gsoMaxSize = pair.saved_gso_max_size }
            if pair.saved_gso_max_segs != 0, syn.gsoMaxSegs != pair.saved_gso_max_segs { change.gsoMaxSegs = pair.saved_gso_max_segs }
            if pair.flags & UInt32(HNXDP_PAIR_F_HAS_GSO_IPV4) != 0, pair.saved_gso_ipv4_max_size != 0,
               syn.gsoIPv4MaxSize != pair.saved_gso_ipv4_max_size {
                change.gsoIPv4MaxSize = pair.saved_gso_ipv4_max_size
            }
            if pair.flags & UInt32(HNXDP_PAIR_F_MTU_FALLBACK) != 0, syn.mtu != pair.saved_syn_mtu {
                change.mtu = pair.saved_syn_mtu
            }
            if change != LinkChange() { try netlink.setLink(index: syn.ifindex, name: syn.name, change) }
        }
        // 5. The VF's, when it is still there.
        if pair.vf_ifindex != 0, let vf = try netlink.link(index: Int32(bitPattern: pair.vf_ifindex)) {
            var change = LinkChange()
            if vf.mtu != pair.saved_vf_mtu, pair.saved_vf_mtu != 0 { change.mtu = pair.saved_vf_mtu }
            let wasUp = pair.flags & UInt32(HNXDP_PAIR_F_VF_WAS_UP) != 0
            if vf.isUp != wasUp { change.up = wasUp }
            if change != LinkChange() { try netlink.setLink(index: vf.ifindex, name: vf.name, change) }
        }
        logger.info("pair \(synName)(\(ifindex)): detached, state idle, datapath synthetic")
    }
}
