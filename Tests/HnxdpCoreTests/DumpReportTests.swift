import CHnxdpShim
import Foundation
@testable import HnxdpCore
import XCTest

/// `dump --json` shape (docs/json.md) from a recorded pair entry.
final class DumpReportTests: XCTestCase {
    func fixturePair() -> hnxdp_pair {
        var p = hnxdp_pair()
        p.syn_ifindex = 5
        p.vf_ifindex = 7
        p.pairState = .active
        p.pairFlags = [.transparent, .explicit]
        p.slot = 2
        p.mtu = 1500
        p.saved_gso_max_size = 65536
        p.saved_gso_max_segs = 65535
        p.gso_max_size = 32768
        p.gso_max_segs = 100
        p.switches = 1
        p.feature_count = 3
        p.saved_active = (0b111, 0)
        p.vf_features = (0b101, 0)
        p.effective_features = (0b101, 0)
        return p
    }

    func report(vfCarrier: Bool?, txdev: Bool = true) throws -> [String: Any] {
        var counters = PairReport.Stats()
        counters.vf_rx_packets = 10
        counters.tx_fallback_packets = 3
        let syn = LinkInfo(ifindex: 5, name: "hn0", mac: [2, 0, 0, 0, 0, 1], mtu: 1500, gsoMaxSize: 32768, gsoMaxSegs: 100)
        let vf = vfCarrier.map { LinkInfo(ifindex: 7, name: "vf0", mac: [2, 0, 0, 0, 0, 1], mtu: 1500, carrier: $0) }
        let pair = PairReport.make(pair: fixturePair(), counters: counters, synthetic: syn, vf: vf, txdevPresent: txdev,
                                   featureNames: ["tx-checksum-ipv4", "tx-scatter-gather", "tcp-segmentation-offload"],
                                   layout: PinLayout(root: "/sys/fs/bpf/hnxdp", netnsInode: 4026531840))
        let json = try DumpReport(netns_inode: 4026531840, bpffs: "/sys/fs/bpf/hnxdp", pairs: [pair]).json()
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let pairs = try XCTUnwrap(object["pairs"] as? [[String: Any]])
        return try XCTUnwrap(pairs.first)
    }

    func testActivePairWithCarrierIsOnTheVF() throws {
        let p = try report(vfCarrier: true)
        XCTAssertEqual(p["state"] as? String, "active")
        XCTAssertEqual(p["datapath"] as? String, "vf")
        XCTAssertEqual((p["synthetic"] as? [String: Any])?["name"] as? String, "hn0")
        XCTAssertEqual((p["synthetic"] as? [String: Any])?["mac"] as? String, "02:00:00:00:00:01")
        XCTAssertEqual((p["vf"] as? [String: Any])?["carrier"] as? Bool, true)
        XCTAssertEqual((p["vf"] as? [String: Any])?["ifindex"] as? Int, 7)
        let features = try XCTUnwrap(p["features"] as? [String: [String]])
        XCTAssertEqual(features["saved"], ["tx-checksum-ipv4", "tx-scatter-gather", "tcp-segmentation-offload"])
        XCTAssertEqual(features["vf"], ["tx-checksum-ipv4", "tcp-segmentation-offload"])
        XCTAssertEqual(features["effective"], ["tx-checksum-ipv4", "tcp-segmentation-offload"])
        let gso = try XCTUnwrap(p["gso"] as? [String: Int])
        XCTAssertEqual(gso, ["saved_max_size": 65536, "max_size": 32768, "saved_max_segs": 65535, "max_segs": 100])
        let stats = try XCTUnwrap(p["stats"] as? [String: Int])
        for key in ["vf_rx_packets", "vf_rx_bytes", "vf_tx_packets", "vf_tx_bytes", "syn_rx_packets",
                    "syn_tx_packets", "tx_fallback_packets", "drops"] {
            XCTAssertNotNil(stats[key], "stats.\(key)")
        }
        XCTAssertEqual(stats["vf_rx_packets"], 10)
        XCTAssertEqual(stats["tx_fallback_packets"], 3)
        XCTAssertEqual(p["switches"] as? Int, 1)
        XCTAssertEqual(p["mtu"] as? Int, 1500)
    }

    func testVanishedVFIsNullAndSynthetic() throws {
        let p = try report(vfCarrier: nil, txdev: false)
        XCTAssertTrue(p["vf"] is NSNull, "vf must be JSON null when no VF")
        XCTAssertEqual(p["datapath"] as? String, "synthetic")
    }

    func testNoCarrierMeansSyntheticPath() throws {
        let p = try report(vfCarrier: false)
        XCTAssertEqual(p["datapath"] as? String, "synthetic")
    }

    func testStateNames() {
        XCTAssertEqual(PairState(rawValue: UInt32(HNXDP_STATE_IDLE.rawValue)).name, "idle")
        XCTAssertEqual(PairState(rawValue: UInt32(HNXDP_STATE_SETTLING.rawValue)).name, "settling")
        XCTAssertEqual(PairState(rawValue: UInt32(HNXDP_STATE_ACTIVE.rawValue)).name, "active")
        XCTAssertEqual(PairState(rawValue: UInt32(HNXDP_STATE_HELD_DOWN.rawValue)).name, "held-down")
        XCTAssertEqual(PairState(rawValue: UInt32(HNXDP_STATE_DISABLED.rawValue)).name, "disabled")
        XCTAssertEqual(PairState(rawValue: 99), .unknown(99))
        XCTAssertEqual(PairState(rawValue: 99).name, "unknown(99)")
        for state in PairState.allCases { XCTAssertEqual(PairState(rawValue: state.rawValue), state) }
        // The state machine publishes each phase under the same name.
        XCTAssertEqual(PairPhase.heldDown(vf: nil, deadline: 0).state, .heldDown)
    }

    func testStatsSumEveryFieldOverCPUs() {
        // Each CPU's struct hnxdp_stats holds 1...10 in its fields (times the CPU number).
        func cpu(_ k: UInt64) -> hnxdp_stats {
            hnxdp_stats(vf_rx_packets: 1 * k, vf_rx_bytes: 2 * k, vf_tx_packets: 3 * k, vf_tx_bytes: 4 * k,
                        syn_rx_packets: 5 * k, syn_rx_bytes: 6 * k, syn_tx_packets: 7 * k, syn_tx_bytes: 8 * k,
                        tx_fallback_packets: 9 * k, drops: 10 * k)
        }
        let s = PairReport.Stats(summing: [cpu(1), cpu(2), cpu(3)])
        XCTAssertEqual([s.vf_rx_packets, s.vf_rx_bytes, s.vf_tx_packets, s.vf_tx_bytes, s.syn_rx_packets, s.syn_rx_bytes,
                        s.syn_tx_packets, s.syn_tx_bytes, s.tx_fallback_packets, s.drops], (1...10).map { UInt64($0) * 6 })
        XCTAssertEqual(PairReport.Stats(summing: []), PairReport.Stats())
        var wrap = hnxdp_stats()
        wrap.drops = UInt64.max
        XCTAssertEqual(PairReport.Stats(summing: [wrap, cpu(1)]).drops, 9, "wraps like the kernel's counters")
    }

    func testPairFlagsAreTheHeaders() {
        var p = hnxdp_pair()
        p.pairFlags = [.vfWasUp, .hasGSOIPv4]
        XCTAssertEqual(p.flags, UInt32(HNXDP_PAIR_F_VF_WAS_UP | HNXDP_PAIR_F_HAS_GSO_IPV4))
        p.pairFlags.subtract(.vfWasUp)
        XCTAssertEqual(p.flags, UInt32(HNXDP_PAIR_F_HAS_GSO_IPV4))
        p.flags = UInt32(HNXDP_PAIR_F_MTU_FALLBACK)
        XCTAssertEqual(p.pairFlags, .mtuFallback)
    }

    /// `dump --json` and `status --json` say which binary wrote them and which layout they have.
    func testTopLevelVersionFields() throws {
        let json = try DumpReport(netns_inode: 4026531840, bpffs: "/sys/fs/bpf/hnxdp", pairs: []).json()
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["version"] as? String, HnxdpVersion.string)
        XCTAssertEqual(object["schema_version"] as? Int, 1)
        XCTAssertEqual(Set(object.keys), ["version", "schema_version", "netns_inode", "bpffs", "pairs", "pair_map", "kernel_pairs", "pin_layout"])
        XCTAssertEqual(object["pin_layout"] as? Int, Int(HNXDP_PIN_LAYOUT))
        // The pins' maker, when something is pinned: another version of this layout is usable.
        var report = DumpReport(netns_inode: 1, bpffs: "/b", pairs: [])
        report.pinned_by = DumpReport.PinnedBy(.otherVersion(PinMeta(layout: UInt32(HNXDP_PIN_LAYOUT), version: "0.1.0")))
        let pinned = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any])
        let by = try XCTUnwrap(pinned["pinned_by"] as? [String: Any])
        XCTAssertEqual(by["version"] as? String, "0.1.0")
        XCTAssertEqual(by["pin_layout"] as? Int, Int(HNXDP_PIN_LAYOUT))
        XCTAssertEqual(by["usable"] as? Bool, true)
        XCTAssertEqual(DumpReport.PinnedBy(.unversioned), DumpReport.PinnedBy(version: nil, pin_layout: nil, usable: false))
        // Semantic version: three dot-separated numbers.
        let parts = HnxdpVersion.string.split(separator: ".")
        XCTAssertEqual(parts.count, 3)
        XCTAssertTrue(parts.allSatisfy { UInt($0) != nil }, HnxdpVersion.string)
        // Sorted keys: the two fields sit where scripts that diff the output expect them.
        XCTAssertTrue(json.contains("\"schema_version\" : 1"), json)
    }

    /// `capture`: the datapath's capture flag, decoded from its token ((pid << 32) | synthetic ifindex).
    func testCaptureFlag() throws {
        var report = DumpReport(netns_inode: 1, bpffs: "/b", pairs: [])
        report.capture = CaptureFlagReport(token: (UInt64(4242) << 32) | 5)
        let on = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any])
        let flag = try XCTUnwrap(on["capture"] as? [String: Any])
        XCTAssertEqual(flag["copying"] as? Bool, true)
        XCTAssertEqual(flag["pid"] as? Int, 4242)
        XCTAssertEqual(flag["synthetic_ifindex"] as? Int, 5)
        report.capture = CaptureFlagReport(token: 0)
        let off = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any])
        XCTAssertEqual(off["capture"] as? [String: Bool], ["copying": false])
    }

    func testContractLayoutsMatchSwift() {
        XCTAssertEqual(MemoryLayout<hnxdp_pair>.size, 136)
        XCTAssertEqual(MemoryLayout<hnxdp_vf_entry>.size, 8)
        XCTAssertEqual(MemoryLayout<hnxdp_stats>.size, 80)
    }
}
