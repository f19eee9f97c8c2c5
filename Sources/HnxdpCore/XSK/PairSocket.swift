import CHnxdpShim
import CLibBPF
import Glibc

/// How the kernel bound an AF_XDP socket.
public enum XSKBindMode: String, Sendable {
    case copy
    case zerocopy
}

/// Sizes and policy of a pair socket.
public struct XSKOptions: Sendable {
    /// UMEM chunk size (a power of two, 2048 or 4096).
    public var frameSize: UInt32 = 2048
    /// Size of each ring (RX, TX, fill, completion); a power of two.
    public var ringSize: UInt32 = 2048
    /// UMEM frames: two fill rings, a TX ring and what the application holds.
    public var frameCount: Int = 8192
    /// Try XDP_ZEROCOPY first (falls back to copy mode).
    public var tryZeroCopy = true
    /// Frames taken off the rings per batch.
    public var batchSize = 64
    /// Under load (no sleep in poll), how often (milliseconds) the loop looks
    /// whether a notification of the pair is waiting (one poll(2), no read).
    public var maintainIntervalMs: UInt64 = 10

    public init() {}
}

/// A received frame, valid only inside the handler.
public struct XSKFrame {
    /// The socket it came in on: which device of the pair, and how bound.
    public var binding: XSKBinding
    /// The frame's bytes in the UMEM (writable; `capacity` bytes from the start).
    public var bytes: UnsafeMutableRawPointer
    public var length: Int
    public var capacity: Int
}

/// What to do with a received frame.
public enum XSKVerdict {
    /// Give the frame back (it is not sent anywhere).
    case drop
    /// Send `length` bytes of it (after the handler edited it in place)
    /// through the device that carries the pair now.
    case transmit(length: Int)
}

/// Counters of one pair socket.
public struct PairSocketCounters: Sendable {
    public var rxPackets: [String: UInt64] = [:] // by device name
    public var rxTotal: UInt64 = 0
    /// Received frames by binding, "NAME@IFINDEX" (a returned VF has a new ifindex).
    public var rxPerBinding: [String: UInt64] = [:]
    public var txPackets: UInt64 = 0
    public var txDropped: UInt64 = 0
    /// TX frames that were on a departing device's ring (in flight at the switch).
    public var txLostAtSwitch: UInt64 = 0
    public var rebinds: UInt64 = 0
    public var departures: UInt64 = 0

    /// Adds `other`'s counts to these (a session's counters are its sockets' summed).
    public mutating func add(_ other: PairSocketCounters) {
        rxPackets.merge(other.rxPackets, uniquingKeysWith: +)
        rxTotal += other.rxTotal
        rxPerBinding.merge(other.rxPerBinding, uniquingKeysWith: +)
        txPackets += other.txPackets
        txDropped += other.txDropped
        txLostAtSwitch += other.txLostAtSwitch
        rebinds += other.rebinds
        departures += other.departures
    }
}

/// Where one AF_XDP socket of a pair socket is bound: a device of the pair,
/// as it was named and numbered at the bind, and the mode the kernel gave.
public struct XSKBinding: Sendable {
    public let device: PairDevice
    public let ifindex: Int32
    public let ifname: String
    public let mode: XSKBindMode
    /// "NAME@IFINDEX", the key of `PairSocketCounters.rxPerBinding`: a returned
    /// VF has a new ifindex, so each device the sockets followed has its own.
    public let key: String

    init(device: PairDevice, ifindex: Int32, ifname: String, mode: XSKBindMode) {
        self.device = device
        self.ifindex = ifindex
        self.ifname = ifname
        self.mode = mode
        key = "\(ifname)@\(ifindex)"
    }
}

/// One bound AF_XDP socket of a pair socket.
final class MemberSocket {
    let handle: OpaquePointer
    let fd: Int32
    let binding: XSKBinding
    var failed: Int32 = 0 // errno seen on a kick (device gone)

    init(handle: OpaquePointer, binding: XSKBinding) {
        self.handle = handle
        self.binding = binding
        fd = hnxdp_xsk_socket_fd(handle)
    }
}

/// The pair's AF_XDP socket for one queue (B17): a socket on the
/// synthetic's queue, always, and one on the current VF's queue while the
/// pair is active, both on one UMEM. Frames from either come out of
/// `process`; transmit leaves through the VF's socket while the pair is
/// active and the VF exists, else through the synthetic's. When the VF
/// leaves (socket error, or the pair map moves away from it) its socket is
/// drained and closed and its frames are taken back; when a VF is joined
/// again the socket is rebound to it. The application never re-opens.
public final class PairSocket {
    public let synthetic: LinkInfo
    public let queue: UInt32
    public let options: XSKOptions
    /// Mode of the UMEM's first socket (the synthetic's); sockets sharing the UMEM get the same.
    public private(set) var mode: XSKBindMode = .copy
    public private(set) var counters = PairSocketCounters()
    /// Called with a one-line description of every bind, departure and rebind.
    public var onEvent: ((String) -> Void)?

    let pair: XDPPair
    let objects: XDPPairObjects
    let follower: VFFollower
    private let area: UnsafeMutableRawPointer
    private let areaSize: Int
    private var umem: OpaquePointer?
    private var ledger: FrameLedger
    private var members: [MemberSocket?] = [nil, nil]
    private var descs: [hnxdp_xsk_desc]
    private var addrs: [UInt64] = []
    private var txBatch: [hnxdp_xsk_desc] = []
    private var lastMaintain: UInt64 = 0
    /// The pair must be looked at again: at the start, after a notification,
    /// a socket error, or when a failed bind to the VF is due for a retry.
    private var mustMaintain = true
    /// When a failed bind to the VF is tried again; nil: no retry pending.
    private var nextVFAttempt: UInt64?
    private var lastVFFailure = ""
    private var closed = false

    /// Opens the pair socket of `queue`. The pair's XDP objects must be in
    /// place (`XDPAttachment.ensure`); the synthetic's socket is bound now,
    /// the VF's by the first `process` call. `follower` says where the VF is.
    init(pair: XDPPair, queue: UInt32, objects: XDPPairObjects, follower: VFFollower,
         options: XSKOptions = XSKOptions()) throws {
        let synthetic = pair.synthetic
        guard queue < UInt32(HNXDP_XSK_MAX_QUEUES) else {
            throw HnxdpError(.badInput, "queue \(queue) of \(synthetic.name) is beyond the \(HNXDP_XSK_MAX_QUEUES) queues hnxdp steers")
        }
        guard options.frameSize.nonzeroBitCount == 1, options.ringSize.nonzeroBitCount == 1,
              options.frameCount >= 2 * Int(options.ringSize) else {
            throw HnxdpError(.badInput, "AF_XDP sizes: frame and ring sizes must be powers of two and frames >= 2 x ring size")
        }
        self.pair = pair
        self.synthetic = synthetic
        self.queue = queue
        self.objects = objects
        self.follower = follower
        self.options = options
        ledger = FrameLedger(frameCount: options.frameCount, frameSize: options.frameSize)
        descs = [hnxdp_xsk_desc](repeating: hnxdp_xsk_desc(), count: options.batchSize)
        areaSize = options.frameCount * Int(options.frameSize)
        guard let p = mmap(nil, areaSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw HnxdpError.system("allocate \(areaSize) bytes of UMEM", errno: errno)
        }
        area = p
        var u: OpaquePointer? = nil
        let rc = hnxdp_xsk_umem_create(area, UInt64(areaSize), options.frameSize, options.ringSize, &u)
        if rc < 0 {
            munmap(area, areaSize)
            var e = HnxdpError.system("register AF_XDP UMEM for \(synthetic.name) queue \(queue)", errno: -rc)
            if -rc == EAFNOSUPPORT { e = HnxdpError(.privilege, "AF_XDP sockets are not available in this kernel (EAFNOSUPPORT)") }
            throw e
        }
        umem = u
        do {
            let syn = try bind(device: .synthetic, ifindex: synthetic.ifindex, ifname: synthetic.name)
            mode = syn.binding.mode
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// The sockets' bindings now: the synthetic's, and the VF's while it is bound.
    public var bindings: [XSKBinding] { members.compactMap { $0?.binding } }

    /// Descriptors to poll(2) for input.
    public var pollDescriptors: [Int32] { members.compactMap { $0?.fd } }

    /// Takes up to a batch of received frames from each bound socket, hands
    /// each to `handler`, transmits or recycles them, keeps the fill rings
    /// full, and follows the pair (departure, return) when its follower was
    /// notified of a change: notifications are taken at most every
    /// `maintainIntervalMs` under load, at once by `wait`. Returns the number
    /// of frames received.
    @discardableResult
    public func process(_ handler: (inout XSKFrame) -> XSKVerdict) throws -> Int {
        let now = monotonicNanoseconds()
        if now &- lastMaintain >= options.maintainIntervalMs * 1_000_000 {
            lastMaintain = now
            if follower.takeNotifications() || (nextVFAttempt.map { now >= $0 } ?? false) || anySocketFailed {
                mustMaintain = true
            }
        }
        if mustMaintain {
            mustMaintain = false
            try maintain(handler)
        }
        collectCompletions()
        var received = 0
        for slot in 0..<members.count {
            guard let m = members[slot] else { continue }
            received += try receive(m, handler)
        }
        flushTransmit()
        refill()
        return received
    }

    /// Sleeps until a socket has input or an error, a notification of the pair
    /// arrived, or `timeoutMs` passed; the next `process` looks at the pair at
    /// once when it was a notification or an error.
    public func wait(timeoutMs: Int32) {
        let sockets = pollDescriptors
        var fds = (sockets + follower.descriptors).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        guard poll(&fds, nfds_t(fds.count), timeoutMs) > 0 else { return }
        let errors = fds[..<sockets.count].contains { $0.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 }
        let notified = fds[sockets.count...].contains { $0.revents != 0 }
        if errors { mustMaintain = true }
        if notified { lastMaintain = 0 } // take the notifications now, not at the next interval
    }

    /// A socket's transmit found its device gone (set by `flushTransmit`).
    private var anySocketFailed: Bool {
        members.contains { $0.map { $0.failed != 0 } ?? false }
    }

    /// Closes every socket and the UMEM; the kernel removes the sockets from the XSKMAP.
    public func close() {
        if closed { return }
        closed = true
        for slot in members.indices.reversed() {
            if let m = members[slot] { unbind(m, slot: slot) }
        }
        if let umem { _ = hnxdp_xsk_umem_destroy(umem) }
        umem = nil
        munmap(area, areaSize)
    }

    /// Frames the ledger holds per place (for tests and `--verbose`).
    public var frameAccounting: (free: Int, inRings: Int, application: Int) {
        var rings = 0
        for s in 0..<2 { rings += ledger.count(.fill(socket: s)) + ledger.count(.transmit(socket: s)) }
        return (ledger.freeCount, rings, ledger.count(.application))
    }

    // MARK: - binding

    @discardableResult
    private func bind(device: PairDevice, ifindex: Int32, ifname: String) throws -> MemberSocket {
        guard let umem else { throw HnxdpError(.runtime, "AF_XDP UMEM of \(synthetic.name) is closed") }
        var handle: OpaquePointer? = nil
        var zc: Int32 = 0
        // Zero-copy first when asked, copy mode as the fallback; only the UMEM's
        // first socket has a mode of its own (the others share it).
        let first = members.allSatisfy { $0 == nil }
        var rc = hnxdp_xsk_socket_create(umem, ifname, queue, options.ringSize, options.tryZeroCopy && first ? 1 : 0,
                                         &handle, &zc)
        if rc < 0, options.tryZeroCopy, first, -rc != ENODEV, -rc != ENXIO {
            rc = hnxdp_xsk_socket_create(umem, ifname, queue, options.ringSize, 0, &handle, &zc)
        }
        guard rc >= 0, let handle else {
            var e = HnxdpError.system("bind AF_XDP socket to \(ifname) queue \(queue)", errno: -rc)
            if -rc == EAFNOSUPPORT { e = HnxdpError(.privilege, "AF_XDP sockets are not available in this kernel (EAFNOSUPPORT)") }
            throw e
        }
        let m = MemberSocket(handle: handle, binding: XSKBinding(device: device, ifindex: ifindex, ifname: ifname,
                                                                 mode: zc != 0 ? .zerocopy : .copy))
        do {
            try objects.xsks.update(device.xskKey(queue: queue), UInt32(bitPattern: m.fd))
        } catch {
            hnxdp_xsk_socket_destroy(handle)
            throw error
        }
        members[device.rawValue] = m
        fillRing(m)
        return m
    }

    private func unbind(_ m: MemberSocket, slot: Int) {
        // The kernel also drops the entry when the socket closes; deleting it
        // first keeps a stale socket of a departed VF from catching frames.
        _ = try? objects.xsks.delete(m.binding.device.xskKey(queue: queue))
        hnxdp_xsk_socket_destroy(m.handle)
        members[slot] = nil
        counters.txLostAtSwitch += UInt64(ledger.count(.transmit(socket: slot)))
        ledger.reclaim(socket: slot)
    }

    /// Follows the pair: a VF whose socket failed or that the pair left is
    /// dropped; a VF the pair is active on gets a socket.
    private func maintain(_ handler: (inout XSKFrame) -> XSKVerdict) throws {
        guard let syn = members[PairDevice.synthetic.rawValue] else {
            throw HnxdpError(.runtime, "AF_XDP socket of \(synthetic.name) queue \(queue) is closed")
        }
        let synErr = hnxdp_xsk_socket_error(syn.handle)
        if synErr != 0 || !interfaceExists(synthetic.ifindex) {
            throw HnxdpError(.runtime, "AF_XDP socket of \(synthetic.name) queue \(queue) failed (\(synErr != 0 ? errnoName(synErr) : "device gone")): the synthetic interface went away")
        }
        let wanted = try follower.currentVF()
        if let vf = members[PairDevice.vf.rawValue] {
            var reason: String? = nil
            let err = hnxdp_xsk_socket_error(vf.handle)
            if err != 0 || vf.failed != 0 {
                reason = "socket error \(errnoName(err != 0 ? err : vf.failed))"
            } else if wanted != vf.binding.ifindex {
                reason = wanted == nil ? "pair no longer active on it" : "pair moved to ifindex \(wanted!)"
            } else if !interfaceExists(vf.binding.ifindex) {
                reason = "device gone"
            }
            if let reason { depart(vf, reason: reason, handler) }
        }
        if members[PairDevice.vf.rawValue] == nil, let w = wanted {
            let now = monotonicNanoseconds()
            guard now >= nextVFAttempt ?? 0, let name = interfaceName(w) else { return }
            do {
                let queues = hnxdp_ethtool_rx_queues(name)
                if queues >= 0 && UInt32(queues) <= queue {
                    throw HnxdpError(.runtime, "\(name) has \(queues) receive queue(s), none numbered \(queue)")
                }
                // On an hnxdp pair the join itself puts the XDP program on the VF
                // (PairLifecycle.joinVF); on a kernel pair nobody else does.
                if case .kernel = pair.source {
                    let lock = try InvocationLock()
                    try XDPAttachment.ensureVF(pair: pair, vfIndex: w, vfName: name)
                    withExtendedLifetime(lock) {}
                }
                let m = try bind(device: .vf, ifindex: w, ifname: name)
                counters.rebinds += 1
                lastVFFailure = ""
                nextVFAttempt = nil
                event("queue \(queue): bound to VF \(name) (ifindex \(w)), \(m.binding.mode.rawValue) mode; transmit through \(name)")
            } catch {
                let text = "\(error)"
                if text != lastVFFailure { event("queue \(queue): cannot bind to VF \(name) yet: \(text); retrying") }
                lastVFFailure = text
                nextVFAttempt = now + 200_000_000
            }
        }
    }

    private func depart(_ vf: MemberSocket, reason: String, _ handler: (inout XSKFrame) -> XSKVerdict) {
        // Frames already on the RX ring were received: hand them out first.
        vf.failed = vf.failed == 0 ? ENETDOWN : vf.failed
        _ = try? receive(vf, handler)
        let inFlight = ledger.count(.transmit(socket: PairDevice.vf.rawValue))
        unbind(vf, slot: PairDevice.vf.rawValue)
        counters.departures += 1
        event("queue \(queue): VF \(vf.binding.ifname) (ifindex \(vf.binding.ifindex)) left (\(reason)); \(inFlight) TX frame(s) were in flight; receive and transmit on \(synthetic.name)")
    }

    // MARK: - rings

    private func receive(_ m: MemberSocket, _ handler: (inout XSKFrame) -> XSKVerdict) throws -> Int {
        let slot = m.binding.device.rawValue
        let n = Int(descs.withUnsafeMutableBufferPointer { hnxdp_xsk_rx(m.handle, $0.baseAddress, UInt32($0.count)) })
        if n == 0 {
            if hnxdp_xsk_fill_needs_wakeup(m.handle) != 0 { _ = hnxdp_xsk_kick_rx(m.handle) }
            return 0
        }
        let txSlot = transmitSlot()
        let frameSize = Int(options.frameSize)
        for i in 0..<n {
            let d = descs[i]
            try ledger.received(d.addr, socket: slot)
            let offset = Int(d.addr % UInt64(frameSize))
            var frame = XSKFrame(binding: m.binding,
                                 bytes: area + Int(d.addr), length: Int(d.len), capacity: frameSize - offset)
            switch handler(&frame) {
            case .drop:
                try ledger.release(d.addr)
            case .transmit(let length):
                if txSlot != nil, length > 0, length <= frame.capacity {
                    txBatch.append(hnxdp_xsk_desc(addr: d.addr, len: UInt32(length), options: 0))
                } else {
                    counters.txDropped += 1
                    try ledger.release(d.addr)
                }
            }
        }
        counters.rxTotal += UInt64(n)
        counters.rxPackets[m.binding.ifname, default: 0] += UInt64(n)
        counters.rxPerBinding[m.binding.key, default: 0] += UInt64(n)
        return n
    }

    /// The socket transmit goes through: the VF's while the pair is active on it, else the synthetic's.
    private func transmitSlot() -> Int? {
        if let vf = members[PairDevice.vf.rawValue], vf.failed == 0 { return PairDevice.vf.rawValue }
        return members[PairDevice.synthetic.rawValue] == nil ? nil : PairDevice.synthetic.rawValue
    }

    private func flushTransmit() {
        guard !txBatch.isEmpty else { return }
        defer { txBatch.removeAll(keepingCapacity: true) }
        guard let slot = transmitSlot(), let m = members[slot] else {
            for d in txBatch { try? ledger.release(d.addr) }
            counters.txDropped += UInt64(txBatch.count)
            return
        }
        let sent = Int(txBatch.withUnsafeBufferPointer { hnxdp_xsk_tx(m.handle, $0.baseAddress, UInt32($0.count)) })
        for (i, d) in txBatch.enumerated() {
            if i < sent { try? ledger.transmit(d.addr, socket: slot) } else { try? ledger.release(d.addr) }
        }
        counters.txPackets += UInt64(sent)
        counters.txDropped += UInt64(txBatch.count - sent)
        kick(m)
    }

    private func kick(_ m: MemberSocket) {
        // Copy mode transmits only from sendto(); zero-copy only when the driver asks.
        guard m.binding.mode == .copy || hnxdp_xsk_tx_needs_wakeup(m.handle) != 0 else { return }
        let rc = hnxdp_xsk_kick_tx(m.handle)
        switch -rc {
        case 0, EAGAIN, EBUSY, ENOBUFS, EINTR: break
        default: m.failed = -rc // ENETDOWN/ENXIO: the device is gone; maintain() takes it down
        }
    }

    private func collectCompletions() {
        var buffer = [UInt64](repeating: 0, count: options.batchSize)
        for slot in 0..<members.count {
            guard let m = members[slot] else { continue }
            while true {
                let n = Int(buffer.withUnsafeMutableBufferPointer { hnxdp_xsk_completions(m.handle, $0.baseAddress, UInt32($0.count)) })
                for i in 0..<n { try? ledger.completed(buffer[i], socket: slot) }
                if n < buffer.count { break }
            }
            // Copy mode may leave descriptors on the TX ring when the kernel ran out of room.
            if hnxdp_xsk_tx_pending(m.handle) > 0 { kick(m) }
        }
    }

    private func refill() {
        // The VF first: it carries the traffic while it is there.
        for slot in [PairDevice.vf.rawValue, PairDevice.synthetic.rawValue] {
            if let m = members[slot] { fillRing(m) }
        }
    }

    private func fillRing(_ m: MemberSocket) {
        let slot = m.binding.device.rawValue
        let room = Int(hnxdp_xsk_fill_free(m.handle, options.ringSize))
        guard room > 0, ledger.freeCount > 0 else { return }
        addrs.removeAll(keepingCapacity: true)
        ledger.takeForFill(socket: slot, max: room, into: &addrs)
        let put = Int(addrs.withUnsafeBufferPointer { hnxdp_xsk_fill(m.handle, $0.baseAddress, UInt32($0.count)) })
        if put < addrs.count {
            for a in addrs[put...] { try? ledger.unfill(a, socket: slot) }
        }
    }

    private func event(_ text: String) { onEvent?(text) }
}

/// Name of the interface with `ifindex` in this network namespace (SIOCGIFNAME), nil when none.
fileprivate func interfaceName(_ ifindex: Int32) -> String? {
    var buf = [CChar](repeating: 0, count: Int(IF_NAMESIZE))
    guard if_indextoname(UInt32(bitPattern: ifindex), &buf) != nil else { return nil }
    return String(cString: buf)
}

fileprivate func interfaceExists(_ ifindex: Int32) -> Bool { interfaceName(ifindex) != nil }
