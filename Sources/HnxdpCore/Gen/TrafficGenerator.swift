import CHnxdpShim
import Glibc

/// `hnxdp gen`: a frame generator over BPF_PROG_TEST_RUN with
/// BPF_F_TEST_XDP_LIVE_FRAMES. The kernel makes real frames from a template
/// and `bpf/hnxdp_gen.bpf.c` redirects them out of one device through a
/// devmap (bulk transmit). Into a veth, the peer must be able to take XDP
/// frames (an XDP program or GRO on the peer enables veth's NAPI path).
public final class TrafficGenerator {
    public struct Result: Sendable {
        /// Frames handed to the device's XDP transmit.
        public var frames: UInt64
        /// Frames the device counted as transmitted meanwhile (its tx_packets rose by
        /// this much; other traffic of the device counts too); nil when it reports none.
        public var left: UInt64?
        public var seconds: Double
        public var framesPerSecond: Double { seconds > 0 ? Double(frames) / seconds : 0 }
    }

    let program: BPFDescriptor
    let device: LinkInfo

    public init(device: LinkInfo, verbose: Bool = false) throws {
        let object = try EmbeddedObject(HNXDP_OBJ_GEN, verbose: verbose)
        let tx = try object.map(HNXDP_GEN_MAP_TX)
        let rc = hnxdp_devmap_set(tx.fd, 0, UInt32(bitPattern: device.ifindex))
        if rc < 0 { throw HnxdpError.system("put \(device.name) in the generator's devmap", errno: -rc) }
        self.program = try object.program(HNXDP_GEN_PROG)
        self.device = device
    }

    /// Sends `count` copies of `frame`, at most `rate` frames per second (0: as fast as
    /// possible), in chunks of at most `chunk` frames per system call.
    public func send(frame: [UInt8], count: UInt64, rate: UInt64, chunk: UInt32 = 65536, deadlineSeconds: Double? = nil) throws -> Result {
        let netlink = try RTNetlink()
        let txBefore = try netlink.transmittedPackets(index: device.ifindex)
        let start = monotonicNanoseconds()
        var sent: UInt64 = 0
        // Each live-frames run sets up and tears down a page pool (tens of ms with an
        // RCU grace period), so pacing is done in chunks of about 50 ms of traffic.
        let step = rate == 0 ? UInt64(chunk) : max(1, min(UInt64(chunk), rate / 20))
        while sent < count {
            if let deadlineSeconds, Double(monotonicNanoseconds() - start) / 1e9 >= deadlineSeconds { break }
            let n = UInt32(min(step, count - sent))
            let rc = frame.withUnsafeBytes { raw in
                hnxdp_test_run_xdp_live(program.fd, raw.baseAddress, UInt32(raw.count), n, 0)
            }
            if rc < 0 {
                throw HnxdpError.system("send \(n) frames out of \(device.name) (BPF_PROG_TEST_RUN live frames)", errno: -rc)
            }
            sent += UInt64(n)
            if rate > 0 {
                // Sleep until this many frames are due.
                let due = start + sent * 1_000_000_000 / rate
                let now = monotonicNanoseconds()
                if due > now {
                    var ts = timespec(tv_sec: Int((due - now) / 1_000_000_000), tv_nsec: Int((due - now) % 1_000_000_000))
                    var rem = timespec()
                    while nanosleep(&ts, &rem) != 0 && errno == EINTR { ts = rem }
                }
            }
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        // What actually left: the device's own counter, given a moment to settle (the
        // last bulk may still be in the driver's queue).
        var left: UInt64? = nil
        if let txBefore {
            for attempt in 0..<20 {
                if let now = try netlink.transmittedPackets(index: device.ifindex) {
                    left = now &- txBefore
                    if left! >= sent { break }
                }
                if attempt < 19 { var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000); nanosleep(&ts, nil) }
            }
        }
        if sent > 0, left == 0 {
            throw HnxdpError(.runtime, "none of the \(sent) frames left \(device.name): its transmit counter did not move. The driver cannot send XDP frames here (it has no XDP transmit, ndo_xdp_xmit, like e1000e; or, like virtio_net, it transmits XDP frames only while an XDP program is attached to the device)")
        }
        return Result(frames: sent, left: left, seconds: seconds)
    }
}
