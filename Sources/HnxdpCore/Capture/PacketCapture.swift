import CHnxdpShim
import CLibBPF
import Glibc

/// The four ways a frame goes through a pair (`HNXDP_CAPTURE_PATH_*`).
public enum CapturePath: CaseIterable, Sendable {
    case vfReceive, synReceive, vfTransmit, synTransmit

    /// The id the datapath writes (also the pcapng interface index).
    public var id: UInt32 {
        switch self {
        case .vfReceive: return UInt32(HNXDP_CAPTURE_PATH_VF_RX)
        case .synReceive: return UInt32(HNXDP_CAPTURE_PATH_SYN_RX)
        case .vfTransmit: return UInt32(HNXDP_CAPTURE_PATH_VF_TX)
        case .synTransmit: return UInt32(HNXDP_CAPTURE_PATH_SYN_TX)
        }
    }

    public init?(id: UInt32) {
        guard let p = CapturePath.allCases.first(where: { $0.id == id }) else { return nil }
        self = p
    }

    /// Short name, also the suffix of the pcapng interface name ("hn0:vf-rx").
    public var name: String {
        switch self {
        case .vfReceive: return "vf-rx"
        case .synReceive: return "syn-rx"
        case .vfTransmit: return "vf-tx"
        case .synTransmit: return "syn-tx"
        }
    }

    public var inbound: Bool { self == .vfReceive || self == .synReceive }

    public func describe(synthetic: String) -> String {
        switch self {
        case .vfReceive: return "received on the VF, handed to \(synthetic)"
        case .synReceive: return "received on \(synthetic)'s own path"
        case .vfTransmit: return "sent on \(synthetic), left through the VF"
        case .synTransmit: return "sent on \(synthetic), left through \(synthetic)'s own path"
        }
    }
}

/// The capture objects of the namespace's datapath (pinned with it): the perf
/// event array the programs copy frames into, and the flag that switches them on.
public enum CaptureMaps {
    /// Pin name -> map name in hnxdp.bpf.o.
    public static let objectNames: [String: String] = [
        HNXDP_MAP_CAPTURE: HNXDP_MAP_CAPTURE,
        HNXDP_PIN_CAPTURE_CTL: HNXDP_CAPTURE_CTL_SECTION,
    ]

    /// The capture pins that exist (none for a datapath pinned by a build
    /// without capture), each checked to be this build's map.
    static func openPinned(_ layout: PinLayout) throws -> [String: BPFDescriptor] {
        let types = try EmbeddedObject.declaredMapTypes(HNXDP_OBJ_DATAPATH)
        var out: [String: BPFDescriptor] = [:]
        for (pin, name) in objectNames {
            guard let d = try BPFDescriptor.openPinned(layout.objectPath(pin)) else { continue }
            try d.requireIdentity(path: layout.objectPath(pin), program: false, expectedName: name,
                                  expectedType: types[name] ?? UInt32.max)
            out[pin] = d
        }
        return out
    }
}

/// Whether the pinned datapath copies frames to a capture now (its flag), for
/// `dump --json` and `status --json` (`capture`, docs/json.md).
public struct CaptureFlagReport: Encodable, Equatable, Sendable {
    /// The flag is on: the datapath copies the frames of one pair.
    public var copying: Bool
    /// That pair's synthetic (ifindex); nil when not copying.
    public var synthetic_ifindex: UInt32?
    /// The pid of the `hnxdp capture` that switched it on; nil when not copying.
    /// It may be gone (killed): the datapath then switches the flag off at the pair's next frame.
    public var pid: UInt32?

    public init(token: UInt64) {
        copying = token != 0
        synthetic_ifindex = token == 0 ? nil : UInt32(truncatingIfNeeded: token)
        pid = token == 0 ? nil : UInt32(truncatingIfNeeded: token >> 32)
    }

    /// The flag of a pinned datapath; nil when it was pinned without the capture maps.
    static func read(_ datapath: Datapath) throws -> CaptureFlagReport? {
        guard let ctl = datapath.captureMaps[HNXDP_PIN_CAPTURE_CTL] else { return nil }
        let control = try BPFMap<UInt32, hnxdp_capture_ctl>(name: HNXDP_PIN_CAPTURE_CTL, descriptor: ctl)
        return CaptureFlagReport(token: try control.lookup(0)?.token ?? 0)
    }
}

/// One frame as the datapath saw it (bytes valid only during the callback).
public struct CapturedFrame {
    public var path: CapturePath
    public var ifindex: UInt32
    public var device: String
    /// CLOCK_REALTIME, nanoseconds.
    public var timestampNs: UInt64
    public var length: UInt32
    public var bytes: UnsafeRawBufferPointer
}

/// What a capture saw.
public struct CaptureSummary: Sendable {
    public var frames: UInt64 = 0
    public var perPath: [UInt64] = Array(repeating: 0, count: CapturePath.allCases.count)
    public var lost: UInt64 = 0
    /// Times the flag had to be switched on again (a datapath program had switched it off).
    public var rearmed: UInt64 = 0
    /// The reader of the output went away (EPIPE).
    public var readerGone = false
}

/// `hnxdp capture`: switches the datapath's copy of one pair's frames on,
/// reads them from the perf buffers until a bound is reached, and switches it
/// off again. One capture per network namespace (a lock naming its pid).
///
/// Switching off is done by this process when it ends (count, time, signal,
/// error). When it cannot (killed), its perf events close with it, the kernel
/// empties their slots, and the first program that then fails to copy a frame
/// switches the flag off itself; a later capture also overwrites a stale flag.
public final class PacketCapture {
    /// Most bytes of a frame a capture copies (`--snaplen`).
    public static let maxSnaplen = UInt32(HNXDP_CAPTURE_MAX_SNAPLEN)

    public let synthetic: LinkInfo
    public let snaplen: UInt32
    private let control: BPFMap<UInt32, hnxdp_capture_ctl>
    private let events: BPFDescriptor
    private let lock: PidLock
    private var buffer: OpaquePointer?
    private let token: UInt64
    /// A flag found on from a capture that did not end cleanly.
    public private(set) var staleToken: UInt64 = 0

    // State of a running capture (touched from the perf buffer callbacks, same thread).
    private var summary = CaptureSummary()
    private var limit: UInt64 = .max
    private var onFrame: ((CapturedFrame) throws -> Void)?
    private var failure: Error?
    private var clockOffsetNs: Int64 = 0
    private var names: [UInt32: String] = [:]
    /// Frames of one poll, from every CPU's buffer, written in timestamp order.
    private var pending: [(hdr: hnxdp_capture_hdr, bytes: [UInt8])] = []

    /// Checks everything and takes the capture lock; changes nothing yet.
    public init(layout: PinLayout, synthetic name: String, snaplen: UInt32) throws {
        precondition(snaplen > 0 && snaplen <= PacketCapture.maxSnaplen)
        let netlink = try RTNetlink()
        let syn = try netlink.requireLink(named: name, option: "--synthetic")
        guard let datapath = try Datapath.openPinned(layout),
              try datapath.pairs.lookup(UInt32(bitPattern: syn.ifindex)) != nil else {
            throw HnxdpError(.badInput, "\(name) is not attached (see `hnxdp status`); run `hnxdp attach --synthetic \(name) --vf VF` or `hnxdp run` first")
        }
        guard let ctl = datapath.captureMaps[HNXDP_PIN_CAPTURE_CTL], let events = datapath.captureMaps[HNXDP_MAP_CAPTURE] else {
            throw HnxdpError(.runtime, "the datapath pinned in \(layout.namespaceDirectory) was loaded by an hnxdp without capture: `hnxdp detach --all`, then attach again (or start `hnxdp run`), loads one that has it")
        }
        let state = StateDirectory.of(layout)
        do {
            lock = try PidLock.acquire(PacketCapture.lockPath(state), timeoutMs: nil, what: "hnxdp capture --synthetic \(name)")
        } catch let held as LockHeld {
            throw HnxdpError(.badInput, "another hnxdp capture (pid \(held.pid)) is running in this network namespace; one at a time")
        }
        self.synthetic = syn
        self.snaplen = snaplen
        self.events = events
        control = try BPFMap(name: HNXDP_PIN_CAPTURE_CTL, descriptor: ctl)
        token = (UInt64(UInt32(bitPattern: getpid())) << 32) | UInt64(UInt32(bitPattern: syn.ifindex))
        if let current = try control.lookup(0), current.token != 0 { staleToken = current.token }
    }

    deinit {
        switchOff()
        if let buffer { perf_buffer__free(buffer) }
        lock.release(removeFile: true)
    }

    static func lockPath(_ state: StateDirectory) -> String { "\(state.root)/capture-\(state.netnsInode).lock" }

    /// Whether the datapath's flag is on (any capture).
    public func flagToken() throws -> UInt64 { try control.lookup(0)?.token ?? 0 }

    /// Captures until `count` frames, `seconds`, `shouldStop()` (checked every 100 ms),
    /// or the output's reader going away. `onStart` runs once the flag is on.
    public func run(count: UInt64?, seconds: Double, shouldStop: () -> Bool, onStart: () -> Void,
                    onFrame: @escaping (CapturedFrame) throws -> Void) throws -> CaptureSummary {
        limit = count ?? .max
        self.onFrame = onFrame
        summary = CaptureSummary()
        failure = nil
        clockOffsetNs = PacketCapture.realtimeMinusMonotonicNs()

        let sample: perf_buffer_sample_fn = { ctx, _, data, size in
            guard let ctx, let data else { return }
            Unmanaged<PacketCapture>.fromOpaque(ctx).takeUnretainedValue().sample(UnsafeRawBufferPointer(start: data, count: Int(size)))
        }
        let lost: perf_buffer_lost_fn = { ctx, _, n in
            guard let ctx else { return }
            Unmanaged<PacketCapture>.fromOpaque(ctx).takeUnretainedValue().summary.lost &+= n
        }
        // 64 pages (256 KiB) per CPU.
        guard let pb = perf_buffer__new(events.fd, 64, sample, lost, Unmanaged.passUnretained(self).toOpaque(), nil) else {
            throw HnxdpError.system("open the capture's perf buffers", errno: errno)
        }
        buffer = pb
        defer { switchOff() }
        try switchOn()
        onStart()

        let deadline = monotonicMilliseconds() + UInt64(seconds * 1000)
        while !done {
            let rc = perf_buffer__poll(pb, 100)
            if rc < 0 && rc != -EINTR { throw HnxdpError.system("read the capture's perf buffers", errno: -rc) }
            flush()
            if done || shouldStop() || monotonicMilliseconds() >= deadline { break }
            // A program switches the flag off when a copy finds no perf event
            // (CPU brought online after we started, or a stale capture's
            // clean-up racing ours): switch it on again.
            if try control.lookup(0)?.token != token {
                try switchOn()
                summary.rearmed += 1
            }
        }
        switchOff()
        // Frames copied before the flag went off.
        if !done {
            _ = perf_buffer__consume(pb)
            flush()
        }
        if let failure { throw failure }
        return summary
    }

    private var done: Bool { summary.frames >= limit || summary.readerGone || failure != nil }

    private func switchOn() throws {
        try control.update(0, hnxdp_capture_ctl(token: token, snaplen: snaplen, pad: 0))
    }

    /// Puts the flag back to off if it is still ours (or a stale one we found).
    private func switchOff() {
        guard let current = try? control.lookup(0) else { return }
        if current.token == token || (current.token != 0 && current.token == staleToken) {
            try? control.update(0, hnxdp_capture_ctl())
        }
    }

    private func sample(_ raw: UnsafeRawBufferPointer) {
        if done || summary.frames + UInt64(pending.count) >= limit { return }
        let headerSize = MemoryLayout<hnxdp_capture_hdr>.size
        guard raw.count >= headerSize else { return }
        let hdr = raw.loadUnaligned(as: hnxdp_capture_hdr.self)
        guard CapturePath(id: hdr.path) != nil, Int(hdr.caplen) <= raw.count - headerSize else { return }
        pending.append((hdr, Array(raw[headerSize..<(headerSize + Int(hdr.caplen))])))
    }

    /// Hands the frames of the last poll to the output, oldest first.
    private func flush() {
        let batch = pending.sorted { $0.hdr.tstamp_ns < $1.hdr.tstamp_ns }
        pending.removeAll(keepingCapacity: true)
        for (hdr, bytes) in batch where !done {
            let path = CapturePath(id: hdr.path)!
            do {
                try bytes.withUnsafeBytes { raw in
                    try onFrame?(CapturedFrame(path: path, ifindex: hdr.ifindex, device: deviceName(hdr.ifindex),
                                               timestampNs: UInt64(bitPattern: Int64(bitPattern: hdr.tstamp_ns) &+ clockOffsetNs),
                                               length: hdr.len, bytes: raw))
                }
                summary.frames += 1
                summary.perPath[Int(path.id)] += 1
            } catch is CaptureReaderGone {
                summary.readerGone = true
            } catch {
                failure = error
            }
        }
    }

    private func deviceName(_ ifindex: UInt32) -> String {
        if let n = names[ifindex] { return n }
        var buf = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        let n = if_indextoname(ifindex, &buf) != nil ? String(cString: buf) : "ifindex \(ifindex)"
        names[ifindex] = n
        return n
    }

    static func realtimeMinusMonotonicNs() -> Int64 {
        let mono = monotonicNanoseconds()
        let rt = realtimeNanoseconds()
        let mono2 = monotonicNanoseconds()
        return Int64(rt) - Int64((mono + mono2) / 2)
    }
}

/// The reader of the capture's output went away (EPIPE): the capture ends, not an error.
public struct CaptureReaderGone: Error {}
