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
        let syn = try netlink.requireLink(named: name, option: "--synthetic")
        try detach(synthetic: syn.ifindex, name: name, netlink: netlink)
    }

    /// Detaches the pair of the synthetic with this ifindex (`name`: how errors call it).
    public func detach(synthetic ifindex: Int32, name: String? = nil, netlink: RTNetlink? = nil) throws {
        let netlink = try netlink ?? RTNetlink()
        let datapath = try Datapath.openPinned(layout)
        let pair = try datapath?.pairs.lookup(UInt32(bitPattern: ifindex))
        let hasLinks = FileSystem.isDirectory(layout.pairDirectory(synthetic: ifindex))
        let hasRecord = FileSystem.exists(StateDirectory.of(layout).recordPath(synthetic: ifindex))
        guard pair != nil || hasLinks || hasRecord else {
            // A detach killed after its last pair entry went leaves unused namespace pins: finish it.
            if let datapath, try datapath.removePinsIfUnused() {
                logger.info("removed the unused pins of an interrupted detach from \(layout.namespaceDirectory)")
            }
            throw HnxdpError(.badInput, "\(name ?? "ifindex \(ifindex)") is not attached (see `hnxdp status`)")
        }
        try detachPair(synthetic: ifindex, datapath: datapath, netlink: netlink)
        if let datapath { try datapath.removePinsIfUnused() }
    }

    /// Detaches every pair of this namespace and removes all of hnxdp's pins
    /// in it; returns how many pairs were detached. Pins of another pin layout are
    /// not read, only removed (the records put the devices back); a migration's plan
    /// goes too (`hnxdp migrate` keeps it: it attaches the pairs again).
    @discardableResult
    public func detachAll(keepMigrationPlan: Bool = false) throws -> Int {
        let netlink = try RTNetlink()
        var datapath: Datapath? = nil
        do {
            if case .otherLayout(let meta) = try Datapath.pinCompatibility(layout) {
                logger.warning("the pins in \(layout.namespaceDirectory) were made by hnxdp \(meta.version) (pin layout \(meta.layout)): removed without reading them; the devices go back from their write-ahead records")
            } else {
                datapath = try Datapath.openPinned(layout, purpose: .undo)
            }
        } catch let error as HnxdpError {
            // Incomplete pins, or another layout's: still clean up links and whatever is left.
            logger.warning("\(error.message)")
        }
        if !keepMigrationPlan, FileSystem.exists(StateDirectory.of(layout).migrationPlanPath) {
            try StateDirectory.of(layout).removeMigrationPlan()
            logger.info("the plan of a migration cut short is removed: its pairs are not attached again")
        }
        var synthetics = Set(layout.pairDirectories()).union(StateDirectory.of(layout).recordedSynthetics())
        if let datapath { for (k, _) in try datapath.pairs.entries() { synthetics.insert(Int32(bitPattern: k)) } }
        for ifindex in synthetics.sorted() {
            try detachPair(synthetic: ifindex, datapath: datapath, netlink: netlink)
        }
        // Namespace level: maps, programs, directories.
        try Datapath.removePins(layout)
        removeKernelPairXDP()
        return synthetics.count
    }

    /// The XDP programs hnxdp put on pairs the kernel made (coexistence), unless
    /// an AF_XDP application still holds them; no device setting is involved.
    func removeKernelPairXDP() {
        let kernel = layout.kernelPairs
        for ifindex in kernel.pairDirectories() {
            if XSKPairLock.isHeld(layout: kernel, synthetic: ifindex) {
                logger.warning("the kernel's pair with ifindex \(ifindex): an AF_XDP application holds its XDP program; left alone")
                continue
            }
            do {
                try XDPAttachment.remove(layout: kernel, synthetic: ifindex)
                XDPPair.removeEmptyKernelDirectories(kernel, synthetic: ifindex)
                logger.info("the kernel's pair with ifindex \(ifindex): hnxdp's XDP programs removed")
            } catch {
                logger.warning("the kernel's pair with ifindex \(ifindex): \(error)")
            }
        }
        XDPPair.removeEmptyKernelDirectories(kernel, synthetic: nil)
    }

    /// Detaches one pair: the VF leaves (restoring both devices), then the
    /// pair's entry, links and pins go. `pair` is its map entry when there is one.
    func detachPair(synthetic ifindex: Int32, datapath: Datapath?, netlink: RTNetlink) throws {
        let lifecycle = PairLifecycle(layout: layout, logger: logger)
        // Also without pins: the write-ahead record alone gives the devices back (B21).
        try lifecycle.leaveVF(synthetic: ifindex, datapath: datapath, netlink: netlink, reason: "detach", switchReason: .detach)
        try lifecycle.uninstall(synthetic: ifindex, datapath: datapath)
        logger.info("pair ifindex \(ifindex): detached, pins removed")
    }
}
