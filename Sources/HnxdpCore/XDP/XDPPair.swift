import CHnxdpShim
import Glibc

/// The pair `hnxdp xsk` and `hnxdp xdp` work on: one hnxdp steers (its pinned
/// entry says which VF is active), or one the kernel made itself (`KernelPair`,
/// coexistence: netlink says which VF is enslaved, and hnxdp changes no device).
/// Either way the XDP objects are pinned in `layout`'s pair directory of
/// `synthetic`, and the sockets bind to `synthetic` and the current VF.
public struct XDPPair {
    public enum Source: Equatable {
        /// An hnxdp pair (attach or run).
        case hnxdp
        /// A pair the kernel made (net_failover, hv_netvsc), by its master.
        case kernel(KernelPair)
    }

    public let synthetic: LinkInfo
    /// Where its XDP objects are pinned: the namespace's layout for an hnxdp pair,
    /// `PinLayout.kernelPairs` for a kernel pair (kept apart from the datapath's
    /// pins, which appear and go all at once).
    public let layout: PinLayout
    public let source: Source

    /// hv_netvsc gives the netvsc device's XDP program to its VF itself.
    public var kernelPropagatesXDP: Bool {
        if case .kernel(let pair) = source { return pair.kernelPropagatesXDP }
        return false
    }

    /// What the user named, for messages: "the pair of hn0" or "kernel failover eth0".
    public var description: String {
        switch source {
        case .hnxdp: return "the pair of \(synthetic.name)"
        case .kernel(let p): return "the kernel's pair \(p.master.name) (\(p.kind.rawValue), coexistence)"
        }
    }

    public init(synthetic: LinkInfo, layout: PinLayout, source: Source) {
        self.synthetic = synthetic
        self.layout = layout
        self.source = source
    }

    /// Resolves `name`: the synthetic of an attached hnxdp pair, or any device of a
    /// pair the kernel made (its master, standby or VF). Throws (bad input) naming
    /// what to do when it is neither.
    public static func resolve(_ name: String, option: String, layout: PinLayout, netlink: RTNetlink) throws -> XDPPair {
        let link = try netlink.requireLink(named: name, option: option)
        if let datapath = try Datapath.openPinned(layout),
           try datapath.pairs.lookup(UInt32(bitPattern: link.ifindex)) != nil,
           FileSystem.isDirectory(layout.pairDirectory(synthetic: link.ifindex)) {
            return XDPPair(synthetic: link, layout: layout, source: .hnxdp)
        }
        if let pair = KernelPair.containing(name, in: try KernelPair.devices(netlink: netlink)) {
            return XDPPair(synthetic: pair.synthetic, layout: layout.kernelPairs, source: .kernel(pair))
        }
        throw HnxdpError(.badInput, "\(name) is not attached (see `hnxdp status`) and is in no pair the kernel made; run `hnxdp attach --synthetic \(name) --vf VF` or `hnxdp run` first")
    }

    /// The VF the pair carries now, read once (`ensure`); `VFFollower` follows it.
    func currentVF(netlink: RTNetlink) throws -> LinkInfo? {
        switch source {
        case .hnxdp:
            let pair = try XDPAttachment.installedPair(layout: layout, synthetic: synthetic)
            guard pair.pairState == .active, pair.vf_ifindex != 0 else { return nil }
            return try netlink.link(index: Int32(bitPattern: pair.vf_ifindex))
        case .kernel(let p):
            return try KernelPairFollower.enslavedVF(of: p, links: netlink.links())
        }
    }

    /// The follower that tells an AF_XDP socket where the VF is now.
    func follower() throws -> VFFollower {
        switch source {
        case .hnxdp:
            guard let datapath = try Datapath.openPinned(layout) else {
                throw HnxdpError(.badInput, "\(synthetic.name) is not attached (see `hnxdp status`)")
            }
            return try PinnedPairFollower(pairs: datapath.pairs, synthetic: synthetic, state: StateDirectory.of(layout))
        case .kernel(let p):
            return try KernelPairFollower(pair: p)
        }
    }

    /// After the XDP pins of a kernel pair are gone: removes its directories
    /// when empty (an hnxdp pair's directory belongs to the pair's life cycle).
    func removeEmptyDirectories() {
        guard case .kernel = source else { return }
        XDPPair.removeEmptyKernelDirectories(layout, synthetic: synthetic.ifindex)
    }

    /// Removes, when empty, a kernel pair's directory (`synthetic`, if given) in the
    /// kernel-pair layout `kernel`, then its namespace directory, its root and
    /// hnxdp's root above it (as the datapath's last detach does).
    static func removeEmptyKernelDirectories(_ kernel: PinLayout, synthetic: Int32?) {
        if let synthetic { FileSystem.removeDirectoryIfEmpty(kernel.pairDirectory(synthetic: synthetic)) }
        FileSystem.removeDirectoryIfEmpty(kernel.namespaceDirectory)
        FileSystem.removeDirectoryIfEmpty(kernel.root)
        if let slash = kernel.root.lastIndex(of: "/"), slash != kernel.root.startIndex {
            FileSystem.removeDirectoryIfEmpty(String(kernel.root[..<slash]))
        }
    }
}

/// Where an AF_XDP socket learns which VF carries its pair now.
/// Where a pair's VF is, learned from notifications (subscribed, never polled):
/// `descriptors` become readable when the pair may have changed, `takeNotifications`
/// reads them, and `currentVF` reads the pair again only after one arrived.
protocol VFFollower: AnyObject {
    /// Readable when a notification is waiting (for poll(2) beside the sockets).
    var descriptors: [Int32] { get }
    /// Reads the waiting notifications; true when there were any.
    func takeNotifications() -> Bool
    /// The current VF's ifindex, nil while there is none. Throws when the pair itself is gone.
    func currentVF() throws -> Int32?
}

/// Link notifications of the namespace (RTNLGRP_LINK): a device came, changed or went.
final class LinkNotifications {
    let netlink: RTNetlink

    init() throws {
        netlink = try RTNetlink(subscribeToLinks: true)
    }

    /// Reads every waiting notification; true when there was one (or some were lost).
    func drain() -> Bool {
        var any = false
        var fds = [pollfd(fd: netlink.fileDescriptor, events: Int16(POLLIN), revents: 0)]
        while poll(&fds, 1, 0) > 0 && fds[0].revents & Int16(POLLIN) != 0 {
            any = true
            do { _ = try netlink.readEvents() } catch let e as HnxdpError where e.errno == ENOBUFS {
                continue // notifications were lost: the follower reads the pair again anyway
            } catch {
                break
            }
        }
        return any
    }
}

/// An hnxdp pair: the pinned pair entry (the control plane's decision), read
/// again when the namespace's state directory changed (every join, leave and
/// detach ends with a write there) or a link changed (a VF that vanished while
/// no control plane runs).
final class PinnedPairFollower: VFFollower {
    let pairs: BPFMap<UInt32, hnxdp_pair>
    let synthetic: LinkInfo
    private let records: StateDirectoryWatch
    private let links: LinkNotifications
    private var vf: Int32?
    private var stale = true

    init(pairs: BPFMap<UInt32, hnxdp_pair>, synthetic: LinkInfo, state: StateDirectory) throws {
        self.pairs = pairs
        self.synthetic = synthetic
        records = try StateDirectoryWatch(state)
        links = try LinkNotifications()
    }

    var descriptors: [Int32] { [records.fileDescriptor, links.netlink.fileDescriptor] }

    func takeNotifications() -> Bool {
        let fromRecords = records.drain()
        let fromLinks = links.drain()
        let changed = fromRecords || fromLinks
        if changed { stale = true }
        return changed
    }

    func currentVF() throws -> Int32? {
        if stale {
            guard let pair = try pairs.lookup(UInt32(bitPattern: synthetic.ifindex)) else {
                throw HnxdpError(.runtime, "pair \(synthetic.name) was detached while its AF_XDP sockets were open")
            }
            vf = pair.pairState == .active && pair.vf_ifindex != 0 ? Int32(bitPattern: pair.vf_ifindex) : nil
            stale = false
        }
        return vf
    }
}

/// A kernel pair: the kernel's own master/slave relationship, read again only
/// when a link notification arrived.
final class KernelPairFollower: VFFollower {
    let pair: KernelPair
    private let links: LinkNotifications
    private var vf: Int32?
    private var stale = true

    init(pair: KernelPair) throws {
        self.pair = pair
        links = try LinkNotifications()
    }

    /// The slave of `pair`'s master that is not its synthetic (the standby).
    static func enslavedVF(of pair: KernelPair, links: [LinkInfo]) throws -> LinkInfo? {
        guard links.contains(where: { $0.ifindex == pair.master.ifindex }) else {
            throw HnxdpError(.runtime, "the kernel's pair \(pair.master.name) (\(pair.kind.rawValue)) went away while its AF_XDP sockets were open")
        }
        return links.filter { $0.masterIndex == pair.master.ifindex && $0.ifindex != pair.synthetic.ifindex
            && $0.ifindex != pair.master.ifindex }.min { $0.ifindex < $1.ifindex }
    }

    var descriptors: [Int32] { [links.netlink.fileDescriptor] }

    func takeNotifications() -> Bool {
        let changed = links.drain()
        if changed { stale = true }
        return changed
    }

    func currentVF() throws -> Int32? {
        if stale {
            vf = try KernelPairFollower.enslavedVF(of: pair, links: links.netlink.links())?.ifindex
            stale = false
        }
        return vf
    }
}

extension KernelPair {
    /// The namespace's Ethernet links with their drivers, as `find` needs them.
    /// Only devices with no link kind (real or paravirtual NICs) and slaves are
    /// asked for their driver: one ethtool call each.
    public static func devices(netlink: RTNetlink) throws -> [PairingPolicy.Device] {
        devices(links: try netlink.links())
    }

    /// The same from links already read.
    public static func devices(links: [LinkInfo]) -> [PairingPolicy.Device] {
        links.filter { $0.isEthernet && !$0.isLoopback }.map { link in
            // Devices with no kind (not veth, bridge, bond...) may be net_failover or hv_netvsc;
            // slaves' drivers tell a failover standby from its primary.
            let ask = link.kind == nil || link.masterIndex != nil
            let info = ask ? Ethtool.driverInfo(of: link.name) : nil
            return PairingPolicy.Device(link: link, driver: info?.driver, busInfo: info?.busInfo)
        }
    }
}
