import CHnxdpShim
import Glibc
import Logging

/// The joined-pair policy of `hnxdp run` (B7, B11, B12): what to do about a
/// joined pair's devices when they change. The synthetic is configured, the VF
/// follows: MTU (put back on the synthetic when the VF refuses it), admin
/// state, promiscuous and all-multicast flags, offload features, the
/// multicast list (all-multicast when the VF cannot take an address) and the
/// egress qdiscs; a VF changed directly gets hnxdp's settings back.
extension PairReconciler {
    /// The synthetic changed: pass MTU, admin state, promiscuous and
    /// all-multicast down to the joined VF, re-intersect features.
    func synthChanged(_ event: LinkInfo) throws {
        // Notifications can be stale (our own changes are in flight): decide on the devices as they are now.
        guard case .active(let vfIndex) = machines[event.ifindex]?.phase,
              let syn = try netlink.link(index: event.ifindex), let vf = try netlink.link(index: vfIndex),
              var pair = try store.pair(syn.ifindex) else { return }
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        if syn.mtu != pair.mtu {
            do {
                try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(mtu: syn.mtu))
                log.info("MTU \(pair.mtu) -> \(syn.mtu) passed to VF \(vf.name)")
                pair.mtu = syn.mtu
                try store.store(pair)
            } catch {
                log.warning("VF \(vf.name) refused MTU \(syn.mtu) (\(error)); putting \(syn.name) back to \(pair.mtu)")
                try netlink.setLink(index: syn.ifindex, name: syn.name, LinkChange(mtu: pair.mtu))
            }
        }
        let change = Self.flagsToFollow(synthetic: syn, vf: vf)
        if change != LinkChange() {
            try netlink.setLink(index: vf.ifindex, name: vf.name, change)
            log.info("passed \(change) to VF \(vf.name)")
        }
        try reintersectFeatures(syn: syn, vf: vf, pair: &pair, log: log)
        try syncMulticast(synIndex: syn.ifindex, lists: netlink.multicastLists())
    }

    /// The joined VFs follow their synthetic's egress configuration (qdiscs, classes,
    /// filters); a VF whose qdiscs were changed directly gets the copy back.
    func followQdiscs() {
        devices.beginQdiscBatch()
        defer { devices.endQdiscBatch() }
        for synIndex in machines.keys.sorted() {
            guard case .active(let vfIndex) = machines[synIndex]?.phase else {
                qdiscOutcomes[synIndex] = nil
                continue
            }
            do {
                guard let syn = try netlink.link(index: synIndex), let vf = try netlink.link(index: vfIndex) else { continue }
                var log = logger
                log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
                qdiscOutcomes[synIndex] = try devices.followQdisc(synthetic: syn, vf: vf, logger: log,
                                                                  unchangedSince: qdiscOutcomes[synIndex])
            } catch {
                logger.warning("egress qdiscs of pair ifindex \(synIndex): \(error)")
            }
        }
    }

    /// B11: the joined VF gets the synthetic's multicast list, or all-multicast
    /// when it cannot take an address.
    func syncMulticast(synIndex: Int32, lists: [Int32: Set<[UInt8]>]) throws {
        guard case .active(let vfIndex) = machines[synIndex]?.phase, links[vfIndex] != nil else { return }
        // A VF that is already gone from the namespace (its deletion notification
        // may still be on its way) is left alone.
        guard let vf = try netlink.link(index: vfIndex) else { return }
        var added = multicastAdded[synIndex] ?? []
        let plan = MulticastList.plan(synthetic: lists[synIndex] ?? [], vf: lists[vfIndex] ?? [], added: added)
        if plan.add.isEmpty && plan.remove.isEmpty { return }
        var log = logger
        log[metadataKey: "pair"] = "\(links[synIndex]?.name ?? "?")(\(synIndex))"
        // B21: what is about to be added is recorded first, so a leave after any crash removes it.
        try recordMulticast(synIndex, added.union(plan.add))
        for mac in plan.add {
            do {
                try netlink.setMulticast(mac, on: vf.name, add: true)
                added.insert(mac)
            } catch let error as HnxdpError where error.errno == ENODEV {
                return
            } catch {
                log.warning("VF \(vf.name) cannot take multicast \(LinkInfo.formatMAC(mac)) (\(error)): all-multicast on instead")
                try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(allmulti: true))
                break
            }
        }
        for mac in plan.remove {
            try netlink.setMulticast(mac, on: vf.name, add: false)
            added.remove(mac)
        }
        multicastAdded[synIndex] = added
        try recordMulticast(synIndex, added)
        log.info("multicast list copied to VF \(vf.name): +\(plan.add.count) -\(plan.remove.count)")
    }

    /// Keeps the record's list of multicast addresses hnxdp added to the VF up to date.
    func recordMulticast(_ synIndex: Int32, _ added: Set<[UInt8]>) throws {
        try store.updateRecord(synIndex) {
            $0.multicastAdded = added.map(LinkInfo.formatMAC).sorted()
        }
    }

    /// Offload changes on the synthetic: the user's new wish becomes the
    /// saved state, and the synthetic gets the intersection with the VF again.
    func reintersectFeatures(syn: LinkInfo, vf: LinkInfo, pair: inout hnxdp_pair, log: Logger) throws {
        let now = try features.features(of: syn.name)
        let effective = FeatureWords.array(pair.effective_features)
        if now.active == effective { return }
        let vfFeatures = try features.features(of: vf.name)
        let changed = FeatureWords.xor(now.active, effective)
        let saved = FeatureWords.array(pair.saved_features)
        pair.saved_features = FeatureWords.tuple((0..<FeatureWords.count).map { (saved[$0] & ~changed[$0]) | (now.requested[$0] & changed[$0]) })
        let savedActive = FeatureWords.array(pair.saved_active)
        pair.saved_active = FeatureWords.tuple((0..<FeatureWords.count).map { (savedActive[$0] & ~changed[$0]) | (now.active[$0] & changed[$0]) })
        // The user's new wish is what a leave puts back: recorded before the change (B21).
        let wish = FeatureWords.array(pair.saved_features)
        try store.updateRecord(syn.ifindex) { $0.synthetic.features = wish }
        let (requested, mask) = intersectFeatures(synthetic: now, vf: vfFeatures)
        let after = FeatureWords.isZero(mask) ? now : try features.setFeatures(of: syn.name, requested: requested, mask: mask)
        pair.effective_features = FeatureWords.tuple(after.active)
        pair.vf_features = FeatureWords.tuple(vfFeatures.active)
        try store.store(pair)
        log.info("offloads changed on \(syn.name): re-intersected with VF \(vf.name) (\(FeatureSet.names(of: FeatureWords.xor(now.active, after.active), in: now.names).joined(separator: " ")))")
    }

    /// The admin state, promiscuous and all-multicast flags the VF must take
    /// from the synthetic (B7, B11); empty when they already agree.
    static func flagsToFollow(synthetic syn: LinkInfo, vf: LinkInfo) -> LinkChange {
        var change = LinkChange()
        if syn.isUp != vf.isUp { change.up = syn.isUp }
        if syn.isPromiscuous != vf.isPromiscuous { change.promisc = syn.isPromiscuous }
        if syn.isAllMulticast != vf.isAllMulticast { change.allmulti = syn.isAllMulticast }
        return change
    }

    /// B12: the joined VF was changed directly: put hnxdp's settings back.
    func enforceVF(vfIndex: Int32, synIndex: Int32) throws {
        // Decide on the devices as they are now, not on a possibly stale notification.
        guard let vf = try netlink.link(index: vfIndex), let syn = try netlink.link(index: synIndex),
              let pair = try store.pair(synIndex),
              pair.vf_ifindex == UInt32(bitPattern: vfIndex) else { return }
        var change = Self.flagsToFollow(synthetic: syn, vf: vf)
        if vf.mtu != pair.mtu { change.mtu = pair.mtu }
        guard change != LinkChange() else { return }
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        log.warning("VF \(vf.name) was changed directly (configure \(syn.name) instead); putting back \(change)")
        try netlink.setLink(index: vf.ifindex, name: vf.name, change)
    }
}

extension LinkInfo {
    /// IFF_ALLMULTI as requested on the device.
    var isAllMulticast: Bool { flags & 0x200 != 0 }
}
