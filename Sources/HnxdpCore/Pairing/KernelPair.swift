/// A pair the kernel made itself: a net_failover master over a virtio_net
/// standby and a VF primary (KVM with `failover=on`), or an hv_netvsc device
/// with its VF enslaved (Hyper-V, Azure). hnxdp never steers such a pair and
/// changes none of its devices; what it adds there is *coexistence*: AF_XDP
/// sockets (`hnxdp xsk`) and a user's XDP program (`hnxdp xdp`) on the pair's
/// two receive paths, following the VF as the kernel joins and releases it.
///
/// A pure description, found from link descriptions (`find`), so the
/// decision is unit-tested without a kernel.
public struct KernelPair: Equatable, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case netFailover = "net_failover"
        case netvsc = "hv_netvsc"
    }

    public var kind: Kind
    /// The device the stack uses: the failover master, or the netvsc device.
    public var master: LinkInfo
    /// The receive path that is always there: the failover standby (virtio_net),
    /// or the netvsc device itself. AF_XDP sockets bind to its queues, as to a
    /// synthetic's.
    public var synthetic: LinkInfo
    /// The VF the kernel has joined now (the failover primary, the netvsc's VF); nil while none.
    public var vf: LinkInfo?

    /// hv_netvsc hands the XDP program of the netvsc device to its VF itself
    /// (on attach and whenever a VF joins): hnxdp must not attach one there too.
    public var kernelPropagatesXDP: Bool { kind == .netvsc }

    /// Every kernel pair among `devices` (links with their ethtool driver), by master ifindex.
    public static func find(in devices: [PairingPolicy.Device]) -> [KernelPair] {
        devices.compactMap { master -> KernelPair? in
            guard let driver = master.driver, let kind = Kind(rawValue: driver) else { return nil }
            let slaves = devices.filter { $0.link.masterIndex == master.link.ifindex && $0.link.ifindex != master.link.ifindex }
            switch kind {
            case .netvsc:
                // The netvsc device is the synthetic; a slave of it is its VF.
                return KernelPair(kind: kind, master: master.link, synthetic: master.link,
                                  vf: slaves.min { $0.link.ifindex < $1.link.ifindex }?.link)
            case .netFailover:
                // The standby shares the master's virtio device: the virtio_net slave.
                guard let standby = slaves.first(where: { $0.driver == "virtio_net" }) else { return nil }
                let primary = slaves.filter { $0.link.ifindex != standby.link.ifindex }
                    .min { $0.link.ifindex < $1.link.ifindex }
                return KernelPair(kind: kind, master: master.link, synthetic: standby.link, vf: primary?.link)
            }
        }.sorted { $0.master.ifindex < $1.master.ifindex }
    }

    /// The kernel pair `name` belongs to (as its master, its synthetic or its VF).
    public static func containing(_ name: String, in devices: [PairingPolicy.Device]) -> KernelPair? {
        find(in: devices).first { p in [p.master.name, p.synthetic.name, p.vf?.name].contains(name) }
    }

    /// A one-line description for logs and `status`.
    public var summary: String {
        let vfText = vf.map { "VF \($0.name)(\($0.ifindex))" } ?? "no VF"
        switch kind {
        case .netFailover:
            return "\(master.name)(\(master.ifindex)): net_failover, standby \(synthetic.name)(\(synthetic.ifindex)), \(vfText)"
        case .netvsc:
            return "\(master.name)(\(master.ifindex)): hv_netvsc, \(vfText)"
        }
    }
}
