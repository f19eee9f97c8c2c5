/// Which devices `hnxdp run` takes as synthetics by itself, and which VF it
/// joins to a synthetic: pure functions over link descriptions (B1, B22).
public enum PairingPolicy {
    /// A device as the policy sees it: its link, and its driver and bus as
    /// ethtool reports them (`ethtool -i`); nil where the device has none.
    public struct Device: Sendable, Equatable {
        public var link: LinkInfo
        public var driver: String?
        public var busInfo: String?

        public init(link: LinkInfo, driver: String? = nil, busInfo: String? = nil) {
            self.link = link
            self.driver = driver
            self.busInfo = busInfo
        }

        /// Backed by a PCI function ("0000:00:03.0"): a real or passed-through NIC,
        /// what a VF is; virtio devices report "virtio0", veth and tap nothing.
        public var isPCIFunction: Bool {
            guard let bus = busInfo else { return false }
            let parts = bus.split(separator: ":")
            guard parts.count == 3, parts[0].count == 4, parts[1].count == 2 else { return false }
            let devfn = parts[2].split(separator: ".")
            return devfn.count == 2 && devfn[0].count == 2 && devfn[1].count == 1
                && bus.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        }
    }

    /// Drivers of paravirtual NICs `run` takes as synthetics when no `--synthetic`
    /// names them. virtio_net: KVM/QEMU's paravirtual NIC, next to which a
    /// passthrough VF with the same MAC is what hnxdp exists for. Not hv_netvsc
    /// (the kernel pairs its VF itself, B22), nor a virtio_net that is a
    /// net_failover standby (it has a master).
    public static let defaultSyntheticDrivers: Set<String> = ["virtio_net"]

    /// Drivers of devices that pair VFs themselves: never a VF (the net_failover
    /// master shares the VF's MAC but is the kernel's own pair).
    public static let kernelPairingDrivers = Set(KernelPair.Kind.allCases.map(\.rawValue))

    /// Why `device` can never be a synthetic hnxdp steers, even when named (B22): the
    /// kernel already pairs it (a net_failover master, an hv_netvsc device, or a slave
    /// of either, like a failover standby). nil: it can (a bridge or bond port can).
    public static func syntheticRefusal(_ device: Device, master: Device?) -> String? {
        if let master, kernelPairingDrivers.contains(master.driver ?? master.link.kind ?? "") {
            return Eligibility.masterRefusal(vf: device.link, master: master.link, masterDriver: master.driver ?? master.link.kind,
                                             vfDriver: device.driver)
        }
        switch device.driver {
        case "net_failover":
            return "\(device.link.name) is a net_failover master: the kernel pairs its VF itself (kernel failover is active), hnxdp never steers it"
        case "hv_netvsc":
            return "\(device.link.name) is an hv_netvsc device: the kernel pairs its VF itself (Hyper-V transparent VF), hnxdp never steers it"
        default:
            return nil
        }
    }

    /// Whether `device` is a synthetic `run` manages without being told to.
    public static func isDefaultSynthetic(_ device: Device, drivers: Set<String> = defaultSyntheticDrivers) -> Bool {
        guard let driver = device.driver, drivers.contains(driver) else { return false }
        return Eligibility.ineligibilityReason(device.link) == nil && (device.link.masterIndex ?? 0) == 0
    }

    public enum VFChoice: Equatable, Sendable {
        /// No device can be the VF.
        case none
        /// This one.
        case vf(Device)
        /// Several are equally good: nothing is joined; these are named.
        case ambiguous([Device])
    }

    /// The VF for `synthetic` among `devices`: one sharing its match address,
    /// eligible as a VF (no master: never a failover standby, bridge port or a
    /// VF the kernel pairs; never a device that pairs VFs itself), not in
    /// `taken` (other pairs' synthetics and VFs).
    /// A PCI function is preferred to anything else; a tie is not broken by guess.
    public static func chooseVF(for synthetic: Device, among devices: [Device], taken: Set<Int32>) -> VFChoice {
        let address = Eligibility.matchAddress(synthetic.link)
        let candidates = devices.filter {
            $0.link.ifindex != synthetic.link.ifindex && !taken.contains($0.link.ifindex)
                && Eligibility.vfIneligibilityReason($0.link) == nil
                && !kernelPairingDrivers.contains($0.driver ?? "")
                && Eligibility.matchAddress($0.link) == address
        }
        let pci = candidates.filter(\.isPCIFunction)
        let best = pci.isEmpty ? candidates : pci
        switch best.count {
        case 0: return .none
        case 1: return .vf(best[0])
        default: return .ambiguous(best.sorted { $0.link.ifindex < $1.link.ifindex })
        }
    }
}
