import CHnxdpShim
import Glibc
import Logging

/// An AF_XDP application's hold on a pair: the pair lock (one application
/// per pair), the pair's XDP objects attached to its devices, and one
/// `PairSocket` per receive queue of the synthetic. The pair is an hnxdp pair
/// or one the kernel made (coexistence, `KernelPair`): then the sockets bind to
/// its standby (or netvsc device) and the VF the kernel enslaved, and follow
/// the kernel's joins and releases. `close` (or the process
/// ending, even by SIGKILL) gives the sockets back; the kernel then removes
/// them from the XSKMAP and every frame takes the stack path again.
public final class PairSocketSession {
    public let synthetic: LinkInfo
    public let pair: XDPPair
    public let objects: XDPPairObjects
    public private(set) var sockets: [PairSocket] = []
    private var lock: XSKPairLock?
    private var closed = false

    /// Opens sockets on every receive queue of `synthetic` (or only `queue`).
    /// `udpPort` limits steering to UDP to that port (other frames take the
    /// stack path); nil steers every frame of the queues but ARP and IPv6
    /// neighbour discovery (always the stack's). All or nothing:
    /// when any step fails, the XDP objects, links and steering it set up
    /// are taken back, and XDP objects that were there before stay as they were.
    public init(layout: PinLayout, synthetic name: String, queue: UInt32? = nil, udpPort: UInt16? = nil,
                options: XSKOptions = XSKOptions(), verbose: Bool = false,
                logger: Logger = Logger(label: "hnxdp.xsk"),
                onEvent: ((String) -> Void)? = nil) throws {
        let netlink = try RTNetlink()
        let pair = try XDPPair.resolve(name, option: "--synthetic", layout: layout, netlink: netlink)
        let syn = pair.synthetic
        self.synthetic = syn
        self.pair = pair
        lock = try XSKPairLock(layout: pair.layout, synthetic: syn)
        if case .kernel(let p) = pair.source {
            onEvent?("coexistence with the kernel's pair \(p.summary): the kernel steers, hnxdp changes no device")
        }
        // Held through the set-up, so a failure can be undone before anyone else looks.
        let invocation = try InvocationLock()
        defer { withExtendedLifetime(invocation) {} }
        let undo = UndoStack(logger: logger)
        var opened: [PairSocket] = []
        do {
            let objects = try XDPAttachment.ensure(pair: pair, netlink: netlink, verbose: verbose, undo: undo)
            let follower = try pair.follower()
            let previous = try objects.steering()
            try objects.setSteering(udpPort: udpPort)
            undo.push("steering of \(syn.name)") { try objects.setSteering(udpPort: previous) }
            let queues: [UInt32]
            if let queue {
                queues = [queue]
            } else {
                let n = hnxdp_ethtool_rx_queues(syn.name)
                if n < 0 { throw HnxdpError.system("read the receive queues of \(syn.name)", errno: -n) }
                queues = (0..<UInt32(min(Int(n), Int(HNXDP_XSK_MAX_QUEUES)))).map { $0 }
            }
            for q in queues {
                let s = try PairSocket(pair: pair, queue: q, objects: objects, follower: follower, options: options)
                s.onEvent = onEvent
                onEvent?("queue \(q): bound to synthetic \(syn.name) (ifindex \(syn.ifindex)), \(s.mode.rawValue) mode")
                opened.append(s)
            }
            self.objects = objects
        } catch {
            for s in opened { s.close() }
            undo.rollback()
            throw error
        }
        sockets = opened
        undo.commit()
    }

    deinit { close() }

    /// Copy unless every socket got zero-copy.
    public var mode: XSKBindMode {
        sockets.allSatisfy { s in s.bindings.allSatisfy { $0.mode == .zerocopy } } && !sockets.isEmpty ? .zerocopy : .copy
    }

    /// Runs `handler` on every received frame until `shouldStop` says so.
    public func run(until shouldStop: () -> Bool, _ handler: (inout XSKFrame) -> XSKVerdict) throws {
        var idle = 0
        while !shouldStop() {
            var got = 0
            for s in sockets { got += try s.process(handler) }
            if got == 0 {
                idle += 1
                // Spin a little under load, then sleep in poll (the maintain interval bounds the sleep).
                if idle > 16, let first = sockets.first {
                    if sockets.count == 1 { first.wait(timeoutMs: 5) } else { usleep(1000) }
                }
            } else {
                idle = 0
            }
        }
    }

    /// Counters summed over queues.
    public var counters: PairSocketCounters {
        var total = PairSocketCounters()
        for s in sockets { total.add(s.counters) }
        return total
    }

    /// Closes the sockets; when no user XDP program is attached, the XDP
    /// steering program is removed from the pair's devices as well.
    public func close() {
        if closed { return }
        closed = true
        for s in sockets { s.close() }
        sockets.removeAll()
        if let lock {
            if let invocation = try? InvocationLock() {
                if (try? objects.hasUserProgram()) == false,
                   FileSystem.isDirectory(pair.layout.pairDirectory(synthetic: synthetic.ifindex)) {
                    try? XDPAttachment.remove(layout: pair.layout, synthetic: synthetic.ifindex)
                    pair.removeEmptyDirectories()
                } else {
                    try? objects.setSteering(udpPort: nil)
                }
                withExtendedLifetime(invocation) {}
            }
            withExtendedLifetime(lock) {}
        }
        lock = nil
    }
}
