import CHnxdpShim
import CLibBPF
import Foundation
import Glibc
import HnxdpCore
import XCTest

/// Without root these tests skip, saying so (`swift test` as a user runs the
/// unprivileged tests); in CI (`CI` set, run as root) they never skip: a CI
/// without root fails them with the reason.
func requireRoot(_ why: String) throws {
    guard geteuid() != 0 else { return }
    if ProcessInfo.processInfo.environment["CI"].map({ !$0.isEmpty }) ?? false {
        XCTFail("needs root: \(why) (CI runs as root)")
        throw XCTSkip("needs root: \(why)")
    }
    throw XCTSkip("needs root: \(why)")
}

/// Runs the real datapath programs with BPF_PROG_TEST_RUN on good and
/// malformed frames. Needs root and bpffs (skipped without root, except in CI).
final class DatapathTestRunTests: XCTestCase {
    /// The verdicts as the test run reports them (retval is unsigned).
    static let tcxNext = UInt32(bitPattern: HNXDP_TCX_NEXT)
    static let tcxRedirect = UInt32(HNXDP_TCX_REDIRECT)

    var netnsName = ""
    var originalNetns: Int32 = -1
    var layout: PinLayout!
    var datapath: Datapath!
    var synIndex: Int32 = 0
    var vfIndex: Int32 = 0

    override func setUpWithError() throws {
        try requireRoot("the datapath tests load BPF programs and make a network namespace")
        netnsName = "hnxdp-dpt-\(getpid())-\(UInt32.random(in: 0...0xffff))"
        try sh("ip netns add \(netnsName)")
        try sh("ip -n \(netnsName) link add syn0 type veth peer name syn0p")
        try sh("ip -n \(netnsName) link add vf0 type veth peer name vf0p")
        for dev in ["syn0", "syn0p", "vf0", "vf0p"] { try sh("ip -n \(netnsName) link set \(dev) up") }
        originalNetns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
        let target = open("/run/netns/\(netnsName)", O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(target, 0)
        XCTAssertEqual(hnxdp_setns_net(target), 0, "setns into \(netnsName)")
        close(target)
        let netlink = try RTNetlink()
        synIndex = try XCTUnwrap(try netlink.link(named: "syn0")).ifindex
        vfIndex = try XCTUnwrap(try netlink.link(named: "vf0")).ifindex
        let root = "/sys/fs/bpf/hnxdp-dpt-\(getpid())"
        if !HostEnvironment.isBPFFS("/sys/fs/bpf") { _ = mount("bpf", "/sys/fs/bpf", "bpf", 0, nil) }
        layout = try PinLayout.current(root: root)
        datapath = try Datapath.openOrCreate(layout).0
    }

    override func tearDownWithError() throws {
        if let datapath {
            for key in (try? datapath.pairs.keys()) ?? [] { _ = try? datapath.removePair(synthetic: key) }
            for key in (try? datapath.vfs.keys()) ?? [] { _ = try? datapath.removeVF(key) }
            _ = try? datapath.removePinsIfUnused()
        }
        datapath = nil
        if originalNetns >= 0 {
            _ = hnxdp_setns_net(originalNetns)
            close(originalNetns)
            originalNetns = -1
        }
        if !netnsName.isEmpty { _ = try? sh("ip netns del \(netnsName)") }
        if let layout { XCTAssertFalse(FileSystem.exists(layout.namespaceDirectory), "pins left behind") }
    }

    // MARK: frames

    static func ether(_ type: UInt16, _ payload: [UInt8], vlan: UInt16? = nil) -> [UInt8] {
        var f: [UInt8] = [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02]
        if let vlan { f += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xff)] }
        return f + [UInt8(type >> 8), UInt8(type & 0xff)] + payload
    }

    static let ipv4UDP: [UInt8] = [0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
                                   0x30, 0x39, 0x30, 0x39, 0, 12, 0, 0, 1, 2, 3, 4]
    /// IPv6 with hop-by-hop, routing and fragment extension headers, then UDP.
    static let ipv6ExtHeaders: [UInt8] = {
        var h: [UInt8] = [0x60, 0, 0, 0, 0, 40, 0 /* hop-by-hop */, 64]
        h += [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [2]
        h += [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [1]
        h += [43, 0, 1, 4, 0, 0, 0, 0]             // hop-by-hop -> routing, PadN
        h += [44, 0, 0, 0, 0, 0, 0, 0]             // routing -> fragment
        h += [17, 0, 0, 1, 0, 0, 0, 1]             // fragment -> UDP
        h += [0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0]  // UDP
        return h
    }()

    /// How BPF_PROG_TEST_RUN treats a frame of the corpus.
    enum Harness {
        /// Must run: the program's verdict is checked.
        case runs
        /// The kernel's test harness refuses it (EINVAL) before the program
        /// runs: below ETH_HLEN, or an IP ethertype whose IP header is cut
        /// short. If a kernel accepts it, the verdict is still checked.
        case mayRefuse
    }

    /// Frames the datapath must survive.
    static var corpus: [(String, [UInt8], Harness)] {
        var random = SystemRandomNumberGenerator()
        return [
            ("empty", [], .mayRefuse),
            ("runt 13 bytes", [UInt8](repeating: 0xff, count: 13), .mayRefuse),
            ("IPv4 ethertype, no IP header", ether(0x0800, []), .mayRefuse),
            ("truncated IPv4 header", ether(0x0800, Array(ipv4UDP.prefix(10))), .mayRefuse),
            ("truncated IPv6 header", ether(0x86dd, Array(ipv6ExtHeaders.prefix(20))), .mayRefuse),
            ("ethernet header only", ether(0x88b5, []), .runs),
            ("IPv4 UDP", ether(0x0800, ipv4UDP), .runs),
            ("IPv4 with bogus IHL", ether(0x0800, [0x4f] + Array(ipv4UDP.dropFirst())), .runs),
            ("IPv6 with extension headers", ether(0x86dd, ipv6ExtHeaders), .runs),
            ("802.1Q tagged IPv4", ether(0x0800, ipv4UDP, vlan: 42), .runs),
            ("QinQ-ish tagged", ether(0x8100, [0, 7, 0x08, 0x00] + ipv4UDP, vlan: 42), .runs),
            ("ARP", ether(0x0806, [UInt8](repeating: 0, count: 28)), .runs),
            ("unknown ethertype", ether(0x88b5, [1, 2, 3]), .runs),
            ("oversized (3000 bytes, above MTU)", ether(0x0800, ipv4UDP + [UInt8](repeating: 0xab, count: 3000 - 14 - 32)), .runs),
            ("random garbage", (0..<512).map { _ in UInt8.random(in: 0...255, using: &random) }, .runs),
        ]
    }

    // MARK: helpers

    func run(_ program: DatapathProgram, on ifindex: Int32, _ frame: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> (rc: Int32, verdict: UInt32) {
        var retval: UInt32 = 0, duration: UInt32 = 0, outSize: UInt32 = 0
        let rc = frame.withUnsafeBytes { raw in
            hnxdp_test_run_skb(datapath.program(program).fd, raw.baseAddress, UInt32(raw.count), UInt32(bitPattern: ifindex), 1, &retval, &duration, &outSize)
        }
        return (rc, retval)
    }

    func installPair(state: PairState = .active) throws {
        var pair = hnxdp_pair()
        pair.syn_ifindex = UInt32(synIndex)
        pair.vf_ifindex = UInt32(vfIndex)
        pair.pairState = state
        pair.slot = 3
        try datapath.storePair(pair)
        try datapath.storeVF(UInt32(vfIndex), synthetic: UInt32(synIndex), slot: 3)
        try datapath.setTransmitDevice(slot: 3, vf: UInt32(vfIndex), name: "vf0")
        try datapath.resetCounters(slot: 3)
    }

    func assertCorpus(_ program: DatapathProgram, on ifindex: Int32, expect verdict: UInt32, file: StaticString = #filePath, line: UInt = #line) -> Int {
        var accepted = 0
        for (name, frame, harness) in Self.corpus {
            let r = run(program, on: ifindex, frame)
            if r.rc == 0 {
                XCTAssertEqual(r.verdict, verdict, "\(program.name) on '\(name)': verdict", file: file, line: line)
                accepted += 1
            } else if harness == .mayRefuse {
                XCTAssertEqual(r.rc, -EINVAL, "'\(name)': the harness may only refuse with EINVAL", file: file, line: line)
            } else {
                XCTFail("\(program.name) on '\(name)': test run failed (\(r.rc))", file: file, line: line)
            }
        }
        XCTAssertGreaterThanOrEqual(accepted, Self.corpus.filter { $0.2 == .runs }.count, file: file, line: line)
        return accepted
    }

    // MARK: tests

    func testVFIngressRedirectsEveryFrameToTheSynthetic() throws {
        try installPair()
        let n = assertCorpus(.vfIngress, on: vfIndex, expect: Self.tcxRedirect)
        let c = try PairCounters.stats(datapath, slot: 3)
        XCTAssertEqual(c.vf_rx_packets, UInt64(n))
        XCTAssertEqual(c.syn_rx_packets, 0)
    }

    func testVFIngressPassesFramesOfUnknownDevices() throws {
        try installPair()
        _ = assertCorpus(.vfIngress, on: synIndex, expect: Self.tcxNext)
        XCTAssertEqual(try PairCounters.stats(datapath, slot: 3).vf_rx_packets, 0)
    }

    func testVFIngressLoopGuard() throws {
        // A VF entry that points at itself must never redirect.
        try datapath.storeVF(UInt32(vfIndex), synthetic: UInt32(vfIndex), slot: 3)
        _ = assertCorpus(.vfIngress, on: vfIndex, expect: Self.tcxNext)
    }

    func assertNothingCounted(slot: UInt32 = 3, file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try PairCounters.stats(datapath, slot: slot)
        XCTAssertEqual([c.vf_rx_packets, c.vf_rx_bytes, c.syn_rx_packets, c.vf_tx_packets, c.syn_tx_packets, c.tx_fallback_packets],
                       [0, 0, 0, 0, 0, 0], "counters of slot \(slot)", file: file, line: line)
    }

    /// Runs `body` with this thread in network namespace `name` (BPF_PROG_TEST_RUN
    /// resolves the ctx ifindex there), then returns to the test's namespace.
    func inNamespace(_ name: String, _ body: () throws -> Void) throws {
        let target = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(target, 0)
        XCTAssertEqual(hnxdp_setns_net(target), 0, "setns into \(name)")
        close(target)
        defer {
            let back = open("/run/netns/\(netnsName)", O_RDONLY | O_CLOEXEC)
            XCTAssertEqual(hnxdp_setns_net(back), 0, "setns back into \(netnsName)")
            close(back)
        }
        try body()
    }

    func testVFIngressPassesOnceThePairLetsTheVFGo() throws {
        // leaveVF clears the transmit slot first, then the VF's entries: from
        // then on its frames are its own again.
        try installPair()
        try datapath.clearTransmitDevice(slot: 3)
        try datapath.removeVF(UInt32(vfIndex))
        _ = assertCorpus(.vfIngress, on: vfIndex, expect: Self.tcxNext)
        try assertNothingCounted()
    }

    func testVFIngressNeverRedirectsInAnotherNamespace() throws {
        // A tcx link moves with its device: the VF's program can run in a
        // namespace where the VF's ifindex (or the synthetic's) is another device.
        try installPair()
        let away = "\(netnsName)-away"
        try sh("ip netns add \(away)")
        defer { _ = try? sh("ip netns del \(away)") }
        // 1. Another device with the VF's ifindex there, the VF still joined here.
        try sh("ip -n \(away) link add imp0 index \(vfIndex) type veth peer name imp0p")
        try sh("ip -n \(away) link set imp0 up && ip -n \(away) link set imp0p up")
        try inNamespace(away) { _ = assertCorpus(.vfIngress, on: vfIndex, expect: Self.tcxNext) }
        try assertNothingCounted()
        XCTAssertEqual(try datapath.transmitDevice(slot: 3), UInt32(vfIndex))
        // 2. The VF itself moved there (same ifindex): its devmap entry is gone.
        try sh("ip -n \(away) link del imp0")
        try sh("ip -n \(netnsName) link set vf0 netns \(away)")
        XCTAssertEqual(try sh("ip -n \(away) -o link show vf0").split(separator: ":").first.map(String.init), "\(vfIndex)")
        XCTAssertNil(try datapath.transmitDevice(slot: 3), "the kernel deletes the devmap entry when the VF leaves")
        try inNamespace(away) { _ = assertCorpus(.vfIngress, on: vfIndex, expect: Self.tcxNext) }
        try assertNothingCounted()
    }

    func testSyntheticEgressLeavesThroughTheVF() throws {
        try installPair()
        let n = assertCorpus(.synEgress, on: synIndex, expect: Self.tcxRedirect)
        let c = try PairCounters.stats(datapath, slot: 3)
        XCTAssertEqual(c.vf_tx_packets, UInt64(n))
        XCTAssertEqual(c.syn_tx_packets, 0)
        XCTAssertEqual(c.tx_fallback_packets, 0)
    }

    func testSyntheticEgressFallsBackWithoutCarrier() throws {
        try installPair()
        // Taking the VF's peer down drops the VF's carrier.
        try sh("ip -n \(netnsName) link set vf0p down")
        let n = assertCorpus(.synEgress, on: synIndex, expect: Self.tcxNext)
        let c = try PairCounters.stats(datapath, slot: 3)
        XCTAssertEqual(c.vf_tx_packets, 0)
        XCTAssertEqual(c.tx_fallback_packets, UInt64(n))
        XCTAssertEqual(c.syn_tx_packets, UInt64(n))
    }

    func testSyntheticEgressFallsBackWhenTheVFIsDeleted() throws {
        try installPair()
        try sh("ip -n \(netnsName) link del vf0")
        // The kernel removes the devmap entry on unregister.
        XCTAssertNil(try datapath.transmitDevice(slot: 3))
        let n = assertCorpus(.synEgress, on: synIndex, expect: Self.tcxNext)
        XCTAssertEqual(try PairCounters.stats(datapath, slot: 3).tx_fallback_packets, UInt64(n))
    }

    func testSyntheticEgressIdlePairTakesTheSyntheticPath() throws {
        try installPair(state: .idle)
        let n = assertCorpus(.synEgress, on: synIndex, expect: Self.tcxNext)
        let c = try PairCounters.stats(datapath, slot: 3)
        XCTAssertEqual(c.syn_tx_packets, UInt64(n))
        XCTAssertEqual(c.tx_fallback_packets, 0)
    }

    func testLargeIfindexesUseTheHashMaps() throws {
        // Devices with ifindexes above HNXDP_FAST_IFINDEXES take the HASH path.
        let big: Int32 = Int32(HNXDP_FAST_IFINDEXES) + 100
        try sh("ip -n \(netnsName) link add vf9 index \(big) type veth peer name vf9p")
        try sh("ip -n \(netnsName) link set vf9 up && ip -n \(netnsName) link set vf9p up")
        var pair = hnxdp_pair()
        pair.syn_ifindex = UInt32(synIndex)
        pair.vf_ifindex = UInt32(big)
        pair.pairState = .active
        pair.slot = 3
        try datapath.storePair(pair)
        try datapath.storeVF(UInt32(big), synthetic: UInt32(synIndex), slot: 3)
        try datapath.setTransmitDevice(slot: 3, vf: UInt32(big), name: "vf9")
        try datapath.resetCounters(slot: 3)
        let n = assertCorpus(.vfIngress, on: big, expect: Self.tcxRedirect)
        _ = assertCorpus(.synEgress, on: synIndex, expect: Self.tcxRedirect)
        let c = try PairCounters.stats(datapath, slot: 3)
        XCTAssertEqual(c.vf_rx_packets, UInt64(n))
        XCTAssertEqual(c.vf_tx_packets, UInt64(n))
        try datapath.removeVF(UInt32(big))
        _ = assertCorpus(.vfIngress, on: big, expect: Self.tcxNext)
    }

    func testSyntheticIngressCountsItsOwnPath() throws {
        try installPair()
        let n = assertCorpus(.synIngress, on: synIndex, expect: Self.tcxNext)
        XCTAssertEqual(try PairCounters.stats(datapath, slot: 3).syn_rx_packets, UInt64(n))
    }

    func testProgramsPassFramesOnDevicesWithoutAPair() throws {
        for program in DatapathProgram.allCases {
            _ = assertCorpus(program, on: 1, expect: Self.tcxNext)
        }
    }
}

/// Runs a shell command; throws with its output when it fails.
@discardableResult
func sh(_ command: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: out, as: UTF8.self)
    if p.terminationStatus != 0 {
        throw NSError(domain: "sh", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "`\(command)` failed: \(text)"])
    }
    return text
}

/// The AF_XDP steering program (bpf/hnxdp_xsk.bpf.c) under BPF_PROG_TEST_RUN:
/// with no socket bound it passes every frame, good or malformed, to the stack.
final class XSKSteeringTestRunTests: XCTestCase {
    static let xdpPass = XDP_PASS.rawValue

    func testSteeringPassesEveryFrameWhenNoSocketIsBound() throws {
        try requireRoot("loading BPF programs")
        let object = try EmbeddedObject(HNXDP_OBJ_XSK)
        let program = try object.program(HNXDP_XSK_PROG_STEER)
        let config = try BPFMap<UInt32, hnxdp_xsk_config>(name: HNXDP_XSK_MAP_CONFIG, descriptor: try object.map(HNXDP_XSK_MAP_CONFIG))
        for match in [UInt32(HNXDP_XSK_MATCH_ALL), UInt32(HNXDP_XSK_MATCH_UDP_PORT)] {
            try config.update(0, hnxdp_xsk_config(syn_ifindex: 1, match: match, flags: 0, udp_port: 0x3039, pad: 0))
            var accepted = 0
            for (name, frame, harness) in DatapathTestRunTests.corpus {
                var retval: UInt32 = 0, duration: UInt32 = 0
                let rc = frame.withUnsafeBytes { raw in
                    hnxdp_test_run_xdp(program.fd, raw.baseAddress, UInt32(raw.count), 1, &retval, &duration)
                }
                if rc == 0 {
                    XCTAssertEqual(retval, Self.xdpPass, "match \(match), '\(name)': verdict")
                    accepted += 1
                } else {
                    XCTAssertEqual(harness, .mayRefuse, "match \(match), '\(name)': test run failed (\(rc))")
                }
            }
            XCTAssertGreaterThanOrEqual(accepted, DatapathTestRunTests.corpus.filter { $0.2 == .runs }.count)
        }
    }
}
