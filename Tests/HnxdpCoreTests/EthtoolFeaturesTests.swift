// EthtoolFeaturesTests.swift - unprivileged tests of the ethtool feature model:
// 32/64-bit bitmap conversion, names, and the join's feature intersection, on
// feature sets recorded from Linux 6.18 (ETHTOOL_GSTRINGS ETH_SS_FEATURES and
// ETHTOOL_GFEATURES of a veth, a bridge and lo in a scratch network namespace).

import XCTest
import HnxdpCore

private enum EthtoolFixtures {
    /// ETH_SS_FEATURES of this kernel: 64 strings, "" for unused bits.
    static let names: [String] = [
        "tx-scatter-gather", "tx-checksum-ipv4", "", "tx-checksum-ip-generic", "tx-checksum-ipv6",
        "highdma", "tx-scatter-gather-fraglist", "tx-vlan-hw-insert", "rx-vlan-hw-parse",
        "rx-vlan-filter", "vlan-challenged", "tx-generic-segmentation", "", "", "rx-gro", "rx-lro",
        "tx-tcp-segmentation", "tx-gso-robust", "tx-tcp-ecn-segmentation",
        "tx-tcp-mangleid-segmentation", "tx-tcp6-segmentation", "tx-fcoe-segmentation",
        "tx-gre-segmentation", "tx-gre-csum-segmentation", "tx-ipxip4-segmentation",
        "tx-ipxip6-segmentation", "tx-udp_tnl-segmentation", "tx-udp_tnl-csum-segmentation",
        "tx-gso-partial", "tx-tunnel-remcsum-segmentation", "tx-sctp-segmentation",
        "tx-esp-segmentation", "", "tx-udp-segmentation", "tx-gso-list",
        "tx-tcp-accecn-segmentation", "tx-checksum-fcoe-crc", "tx-checksum-sctp",
        "rx-ntuple-filter", "rx-hashing", "rx-checksum", "tx-nocache-copy", "loopback", "rx-fcs",
        "rx-all", "tx-vlan-stag-hw-insert", "rx-vlan-stag-hw-parse", "rx-vlan-stag-filter",
        "l2-fwd-offload", "hw-tc-offload", "esp-hw-offload", "esp-tx-csum-hw-offload",
        "rx-udp_tunnel-port-offload", "tls-hw-tx-offload", "tls-hw-rx-offload", "rx-gro-hw",
        "tls-hw-record", "rx-gro-list", "macsec-hw-offload", "rx-udp-gro-forwarding",
        "hsr-tag-ins-offload", "hsr-tag-rm-offload", "hsr-fwd-offload", "hsr-dup-offload"
    ]

    /// ETHTOOL_GFEATURES blocks (available, requested, active, never_changed) x 2 blocks.
    static func set(_ blocks: [(UInt32, UInt32, UInt32, UInt32)], names: [String] = names) -> FeatureSet {
        FeatureSet(
            names: names,
            available: FeatureSet.words(fromBlocks: blocks.map { $0.0 }),
            requested: FeatureSet.words(fromBlocks: blocks.map { $0.1 }),
            active: FeatureSet.words(fromBlocks: blocks.map { $0.2 }),
            neverChanged: FeatureSet.words(fromBlocks: blocks.map { $0.3 })
        )
    }

    /// veth "v0" (defaults: rx-gro off).
    static let veth = set([(0x4fdd_49e9, 0x4fdd_09e9, 0x4fdd_09e9, 0x0000_0400),
                           (0x0a00_632e, 0x0000_612e, 0x0000_612e, 0x0000_0000)])
    /// bridge "br0" (tx-gso-robust and tx-fcoe-segmentation requested but inactive).
    static let bridge = set([(0xffff_48e9, 0xffff_48e9, 0xffdd_48e9, 0x0000_0400),
                             (0x0a00_220f, 0x0000_200f, 0x0000_200f, 0x0000_0000)])
    /// "lo" (several always-on features that are not changeable).
    static let loopback = set([(0x401d_4800, 0x401d_4800, 0x401d_4c69, 0x0000_0400),
                               (0x0a00_000e, 0x0000_000e, 0x0000_052e, 0x0000_0000)])
}

final class EthtoolFeaturesTests: XCTestCase {
    fileprivate typealias F = EthtoolFixtures

    // MARK: Bitmaps

    func testBlocksAndWords() {
        XCTAssertEqual(FeatureSet.wordCount, 2)
        XCTAssertEqual(FeatureSet.words(fromBlocks: [0x4fdd_49e9, 0x0a00_632e]), [0x0a00_632e_4fdd_49e9, 0])
        XCTAssertEqual(FeatureSet.words(fromBlocks: [1, 2, 3, 4]), [0x0000_0002_0000_0001, 0x0000_0004_0000_0003])
        XCTAssertEqual(FeatureSet.words(fromBlocks: [1]), [1, 0])
        XCTAssertEqual(FeatureSet.words(fromBlocks: []), [0, 0])
        XCTAssertEqual(FeatureSet.words(fromBlocks: [1, 2, 3, 4, 5, 6]), [0x0000_0002_0000_0001, 0x0000_0004_0000_0003]) // beyond 128 bits: dropped
        XCTAssertEqual(FeatureSet.blocks(fromWords: [0x0a00_632e_4fdd_49e9, 0], count: 2), [0x4fdd_49e9, 0x0a00_632e])
        XCTAssertEqual(FeatureSet.blocks(fromWords: [0x0000_0002_0000_0001, 0x0000_0004_0000_0003], count: 3), [1, 2, 3])
        XCTAssertEqual(FeatureSet.blocks(fromWords: [0xffff_ffff_ffff_ffff], count: 5), [0xffff_ffff, 0xffff_ffff, 0, 0, 0])
        XCTAssertEqual(FeatureSet.blocks(fromWords: [7, 8], count: 0), [])
        for words: [UInt64] in [[0, 0], [1, 1 << 63], [0xdead_beef_0bad_f00d, 0x0123_4567_89ab_cdef]] {
            XCTAssertEqual(FeatureSet.words(fromBlocks: FeatureSet.blocks(fromWords: words, count: 4)), words)
        }
    }

    func testBitHelpers() {
        var words: [UInt64] = [0, 0]
        FeatureSet.set(0, in: &words, to: true)
        FeatureSet.set(63, in: &words, to: true)
        FeatureSet.set(64, in: &words, to: true)
        FeatureSet.set(127, in: &words, to: true)
        XCTAssertEqual(words, [0x8000_0000_0000_0001, 0x8000_0000_0000_0001])
        XCTAssertTrue(FeatureSet.test(63, in: words))
        XCTAssertTrue(FeatureSet.test(64, in: words))
        XCTAssertFalse(FeatureSet.test(65, in: words))
        XCTAssertFalse(FeatureSet.test(128, in: words))
        XCTAssertFalse(FeatureSet.test(-1, in: words))
        FeatureSet.set(63, in: &words, to: false)
        XCTAssertEqual(words[0], 1)
        XCTAssertEqual(FeatureSet.normalized([5]), [5, 0])
        XCTAssertEqual(FeatureSet.normalized([5, 6, 7]), [5, 6])
        let short = FeatureSet(names: [], available: [1], requested: [], active: [1, 2, 3], neverChanged: [])
        XCTAssertEqual(short.available, [1, 0])
        XCTAssertEqual(short.requested, [0, 0])
        XCTAssertEqual(short.active, [1, 2])
    }

    func testDecodeNames() {
        var raw: [UInt8] = []
        for name in F.names {
            var record = Array(name.utf8)
            record += [UInt8](repeating: 0, count: 32 - record.count)
            raw += record
        }
        XCTAssertEqual(FeatureSet.decodeNames(raw, count: 64), F.names)
        // A full 32-byte record without NUL, and a short buffer.
        let full = [UInt8](repeating: 0x61, count: 32)
        XCTAssertEqual(FeatureSet.decodeNames(full + [0x62], count: 3), [String(repeating: "a", count: 32), "b", ""])
    }

    func testSettableBits() {
        // 64 features on this kernel, so nothing in the second word; bit 10 never changes.
        XCTAssertEqual(F.veth.settableBits(), [~UInt64(0x400), 0])
        let seventy = FeatureSet(names: [String](repeating: "f", count: 70), available: [], requested: [],
                                 active: [], neverChanged: [0x20, 0])
        XCTAssertEqual(seventy.settableBits(), [~UInt64(0x20), 0x3f])
        XCTAssertEqual(FeatureSet(names: [], available: [], requested: [], active: [], neverChanged: []).settableBits(), [0, 0])
    }

    // MARK: Names

    func testRecordedVethFeatures() {
        let veth = F.veth
        XCTAssertEqual(F.names.count, 64)
        XCTAssertTrue(veth.isActive("tx-checksum-ip-generic"))
        XCTAssertTrue(veth.isActive("tx-tcp-segmentation"))
        XCTAssertFalse(veth.isActive("rx-gro"))
        XCTAssertTrue(veth.isAvailable("rx-gro"))
        XCTAssertFalse(veth.isRequested("rx-gro"))
        XCTAssertFalse(veth.isActive("no-such-feature"))
        XCTAssertFalse(veth.isActive(""))          // unused bits have empty names
        XCTAssertFalse(veth.isAvailable("vlan-challenged"))
        XCTAssertEqual(veth.bit(named: "rx-gro"), 14)
        XCTAssertEqual(veth.bit(named: "hsr-dup-offload"), 63)
        XCTAssertNil(veth.bit(named: ""))
        XCTAssertEqual(veth.activeNames(), [
            "tx-scatter-gather", "tx-checksum-ip-generic", "highdma", "tx-scatter-gather-fraglist",
            "tx-vlan-hw-insert", "rx-vlan-hw-parse", "tx-generic-segmentation", "tx-tcp-segmentation",
            "tx-tcp-ecn-segmentation", "tx-tcp-mangleid-segmentation", "tx-tcp6-segmentation",
            "tx-gre-segmentation", "tx-gre-csum-segmentation", "tx-ipxip4-segmentation",
            "tx-ipxip6-segmentation", "tx-udp_tnl-segmentation", "tx-udp_tnl-csum-segmentation",
            "tx-sctp-segmentation", "tx-udp-segmentation", "tx-gso-list", "tx-tcp-accecn-segmentation",
            "tx-checksum-sctp", "rx-checksum", "tx-vlan-stag-hw-insert", "rx-vlan-stag-hw-parse",
        ])
    }

    func testNamesOfWordsSkipsUnnamedAndOutOfRangeBits() {
        // Bit 2 and bit 12 have no name on this kernel; bit 100 has none at all.
        var words: [UInt64] = [0, 0]
        for bit in [0, 2, 12, 14, 63, 100] { FeatureSet.set(bit, in: &words, to: true) }
        XCTAssertEqual(FeatureSet.names(of: words, in: F.names), ["tx-scatter-gather", "rx-gro", "hsr-dup-offload"])
        XCTAssertEqual(FeatureSet.names(of: [0, 0], in: F.names), [])
        XCTAssertEqual(FeatureSet.words(of: ["rx-gro", "tx-scatter-gather", "bogus", ""], in: F.names), [(1 << 14) | 1, 0])
    }

    // MARK: Intersection (B4)

    func testIntersectionVethWithBridgeVF() {
        let result = intersectFeatures(synthetic: F.veth, vf: F.bridge)
        XCTAssertEqual(result.mask, [0x0000_4120_0000_0100, 0])
        XCTAssertEqual(FeatureSet.names(of: result.mask, in: F.names),
                       ["rx-vlan-hw-parse", "tx-checksum-sctp", "rx-checksum", "rx-vlan-stag-hw-parse"])
        XCTAssertEqual(result.requested, [0x0000_200e_4fdd_08e9, 0])
        // Each masked bit is turned off, since the VF does not have it active.
        for name in FeatureSet.names(of: result.mask, in: F.names) {
            XCTAssertTrue(F.veth.isActive(name))
            XCTAssertFalse(F.bridge.isActive(name))
            XCTAssertFalse(FeatureSet.test(F.veth.bit(named: name)!, in: result.requested))
        }
    }

    func testIntersectionClearsRequestedButInactiveBits() {
        // On the bridge tx-gso-robust and tx-fcoe-segmentation are requested but not active:
        // they are cleared too, so they cannot switch on later while the VF is joined.
        let result = intersectFeatures(synthetic: F.bridge, vf: F.veth)
        XCTAssertEqual(FeatureSet.names(of: result.mask, in: F.names), [
            "rx-gro", "tx-gso-robust", "tx-fcoe-segmentation", "tx-gso-partial",
            "tx-tunnel-remcsum-segmentation", "tx-esp-segmentation",
        ])
        XCTAssertEqual(result.mask, [0x0000_0000_b022_4000, 0])
        XCTAssertEqual(result.requested, [0x0000_200f_4fdd_08e9, 0])
    }

    func testIntersectionLeavesUnchangeableBitsAlone() {
        // lo has always-on features outside hw_features (e.g. "loopback", "highdma"): the VF
        // lacking them must not put them in the mask, and requested keeps lo's own bits.
        let result = intersectFeatures(synthetic: F.loopback, vf: F.veth)
        XCTAssertEqual(FeatureSet.names(of: result.mask, in: F.names), ["rx-gro"])
        XCTAssertEqual(result.requested, [0x0000_000e_401d_0800, 0])
        for bit in 0..<128 where !FeatureSet.test(bit, in: F.loopback.available) {
            XCTAssertEqual(FeatureSet.test(bit, in: result.requested), FeatureSet.test(bit, in: F.loopback.requested), "bit \(bit)")
            XCTAssertFalse(FeatureSet.test(bit, in: result.mask), "bit \(bit)")
        }
    }

    func testIntersectionWithIdenticalDevicesChangesNothing() {
        let result = intersectFeatures(synthetic: F.veth, vf: F.veth)
        XCTAssertEqual(result.mask, [0, 0])
        XCTAssertEqual(result.requested, F.veth.requested)
    }

    func testIntersectionMatchesByNameNotIndex() {
        // The same bridge features, with its name table (and bits) reversed.
        let reversedNames = Array(F.names.reversed())
        func reversedWords(_ w: [UInt64]) -> [UInt64] {
            var out: [UInt64] = [0, 0]
            for bit in 0..<64 where FeatureSet.test(bit, in: w) { FeatureSet.set(63 - bit, in: &out, to: true) }
            return out
        }
        let b = F.bridge
        let shuffled = FeatureSet(names: reversedNames, available: reversedWords(b.available),
                                  requested: reversedWords(b.requested), active: reversedWords(b.active),
                                  neverChanged: reversedWords(b.neverChanged))
        XCTAssertEqual(shuffled.activeNames().sorted(), b.activeNames().sorted())
        let byIndex = intersectFeatures(synthetic: F.veth, vf: b)
        let byName = intersectFeatures(synthetic: F.veth, vf: shuffled)
        XCTAssertEqual(byName.mask, byIndex.mask)
        XCTAssertEqual(byName.requested, byIndex.requested)
    }

    func testIntersectionWithVFMissingNames() {
        // A VF that reports no names at all: every active changeable synthetic bit goes off.
        let vf = FeatureSet(names: [], available: [~0, ~0], requested: [~0, ~0], active: [~0, ~0], neverChanged: [0, 0])
        let result = intersectFeatures(synthetic: F.veth, vf: vf)
        let changeableActive = (0..<2).map { F.veth.available[$0] & F.veth.active[$0] & ~F.veth.neverChanged[$0] }
        XCTAssertEqual(result.mask, changeableActive)
        XCTAssertEqual(result.requested, zip(F.veth.requested, result.mask).map { $0 & ~$1 })
    }

    func testIntersectionNeverTouchesNeverChangedOrUnnamedBits() {
        // Bit 10 (vlan-challenged) is NETIF_F_NEVER_CHANGE; bit 2 has no name. Even if a
        // device listed them as available and requested, they are left alone.
        var names = F.names
        names[2] = ""
        let synthetic = FeatureSet(names: names, available: [0x405, 0], requested: [0x405, 0],
                                   active: [0x405, 0], neverChanged: [0x400, 0])
        let vf = FeatureSet(names: names, available: [0, 0], requested: [0, 0], active: [0, 0], neverChanged: [0, 0])
        let result = intersectFeatures(synthetic: synthetic, vf: vf)
        XCTAssertEqual(result.mask, [0x1, 0])           // only tx-scatter-gather
        XCTAssertEqual(result.requested, [0x404, 0])
    }
}
