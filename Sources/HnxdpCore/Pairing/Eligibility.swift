/// Pairing rules of behaviour B1, as pure functions over link descriptions.
public enum Eligibility {
    /// Link kinds that are never paired: masters and stacked devices.
    public static let excludedKinds: [String: String] = [
        "bridge": "a bridge master",
        "bond": "a bond master",
        "team": "a team master",
        "vlan": "a VLAN device",
    ]

    static let arphrdEther: UInt16 = 1
    static let iffMaster: UInt32 = 0x400

    /// The address a device is matched by: its permanent MAC where it has
    /// one, else its current MAC.
    public static func matchAddress(_ link: LinkInfo) -> [UInt8] {
        link.permanentMAC ?? link.mac
    }

    /// Why `link` can never be part of a pair, or nil when it can.
    public static func ineligibilityReason(_ link: LinkInfo) -> String? {
        if link.isLoopback { return "\(link.name) is the loopback device; only Ethernet devices can be paired" }
        if let kind = link.kind, let what = excludedKinds[kind] {
            return "\(link.name) is \(what); bridge, bond and team masters and VLAN devices cannot be paired"
        }
        if link.flags & iffMaster != 0 {
            return "\(link.name) is a master device; bridge, bond and team masters cannot be paired"
        }
        if link.arpType != arphrdEther || link.mac.count != 6 {
            return "\(link.name) is not an Ethernet device; only Ethernet devices can be paired"
        }
        return nil
    }

    /// Why `vf` can never be the VF of a pair, or nil when it can: besides
    /// `ineligibilityReason`, a device that has a master is a bridge, bond or
    /// team port, or a VF the kernel already pairs itself (hv_netvsc's
    /// transparent VF, net_failover): steering its frames would fight that
    /// master (B22).
    public static func vfIneligibilityReason(_ vf: LinkInfo) -> String? {
        if let reason = ineligibilityReason(vf) { return reason }
        if let master = vf.masterIndex, master != 0 {
            return "\(vf.name) has a master (ifindex \(master)): a bridge, bond or team port, or a VF the kernel already pairs (hv_netvsc, net_failover), is never taken as a VF"
        }
        return nil
    }

    /// The refusal of a VF that has a master, naming the master and what it means:
    /// the kernel's own transparent VF (hv_netvsc), kernel failover (net_failover),
    /// or a bridge, bond or team port. Pure.
    public static func masterRefusal(vf: LinkInfo, master: LinkInfo?, masterDriver: String?, vfDriver: String? = nil) -> String {
        let name = master.map { "\($0.name)(\($0.ifindex))" } ?? "ifindex \(vf.masterIndex ?? 0)"
        switch masterDriver ?? master?.kind ?? "" {
        case "hv_netvsc":
            return "\(vf.name) is already paired by the kernel with \(name) (hv_netvsc's transparent VF is active): hnxdp never steers it"
        case "net_failover":
            // The standby is the virtio_net slave (it shares the master's virtio device).
            let role = vfDriver == "virtio_net" ? "standby" : "primary"
            return "\(vf.name) is the \(role) of kernel failover \(name) (net_failover is active): use the failover master, hnxdp never steers it"
        case let kind where !kind.isEmpty:
            return "\(vf.name) is a port of \(name) (\(kind)): a device with a master is never taken as a VF"
        default:
            return "\(vf.name) has a master, \(name): a device with a master is never taken as a VF"
        }
    }

    /// Outcome of checking an explicit pair.
    public enum Verdict: Equatable, Sendable {
        /// Join it.
        case join
        /// This exact pair is already attached: nothing to do.
        case alreadyAttached
    }

    /// Checks an explicit `attach --synthetic S --vf V` against B1. `pairedVFs`
    /// maps each attached synthetic ifindex to its VF ifindex (0 when none).
    /// Throws `.badInput` naming the problem; changes nothing.
    public static func checkExplicitPair(synthetic: LinkInfo, vf: LinkInfo, force: Bool,
                                         attached: [Int32: Int32]) throws -> Verdict {
        if synthetic.ifindex == vf.ifindex {
            throw HnxdpError(.badInput, "\(synthetic.name) cannot be paired with itself: --synthetic and --vf name the same device")
        }
        if let reason = ineligibilityReason(synthetic) { throw HnxdpError(.badInput, reason) }
        if let reason = vfIneligibilityReason(vf) { throw HnxdpError(.badInput, reason) }
        if let current = attached[synthetic.ifindex] {
            if current == vf.ifindex { return .alreadyAttached }
            throw HnxdpError(.badInput, "\(synthetic.name) is already paired (VF ifindex \(current)); run `hnxdp detach --synthetic \(synthetic.name)` first")
        }
        if attached[vf.ifindex] != nil {
            throw HnxdpError(.badInput, "\(vf.name) is itself the synthetic interface of a pair and cannot be a VF")
        }
        if let owner = attached.first(where: { $0.value == vf.ifindex })?.key {
            throw HnxdpError(.badInput, "\(vf.name) is already the VF of the synthetic with ifindex \(owner); detach that pair first")
        }
        if attached.values.contains(synthetic.ifindex) {
            throw HnxdpError(.badInput, "\(synthetic.name) is already the VF of another pair and cannot be a synthetic interface")
        }
        let s = matchAddress(synthetic), v = matchAddress(vf)
        if s != v && !force {
            throw HnxdpError(.badInput, "MAC mismatch: \(synthetic.name) has \(LinkInfo.formatMAC(s)), \(vf.name) has \(LinkInfo.formatMAC(v)); a VF must share its synthetic's MAC (use --force to pair anyway)")
        }
        return .join
    }
}
