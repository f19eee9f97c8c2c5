import CHnxdpShim
import Glibc
@testable import HnxdpCore
import XCTest

/// bpf/hnxdp_shared.h is the one contract between the BPF objects and Swift:
/// the names Swift looks things up by are the header's, and the embedded
/// objects (built from bpf/*.bpf.c, which check their names against the same
/// header at compile time) declare them.
final class ContractTests: XCTestCase {
    func testEveryEmbeddedObjectIsNamedInTheHeader() {
        XCTAssertEqual(Set(EmbeddedBPFObjects.base64.keys),
                       [HNXDP_OBJ_DATAPATH, HNXDP_OBJ_DATAPATH_COMPAT, HNXDP_OBJ_XSK, HNXDP_OBJ_GEN])
    }

    func testObjectsDeclareTheHeadersMaps() throws {
        let datapathMaps = Datapath.mapNames + [HNXDP_MAP_META, HNXDP_MAP_CAPTURE, HNXDP_CAPTURE_CTL_SECTION]
        for object in [HNXDP_OBJ_DATAPATH, HNXDP_OBJ_DATAPATH_COMPAT] {
            let declared = try EmbeddedObject.declaredMapTypes(object)
            for name in datapathMaps { XCTAssertNotNil(declared[name], "\(object) declares \(name)") }
            XCTAssertNotNil(declared[HNXDP_NETNS_SECTION], "\(object) has the constant section")
        }
        let xsk = try EmbeddedObject.declaredMapTypes(HNXDP_OBJ_XSK)
        for name in [HNXDP_XSK_MAP_XSKS, HNXDP_XSK_MAP_CONFIG, HNXDP_XSK_MAP_STATS, HNXDP_XDP_MAP_USER] {
            XCTAssertNotNil(xsk[name], "\(HNXDP_OBJ_XSK) declares \(name)")
        }
        XCTAssertNotNil(try EmbeddedObject.declaredMapTypes(HNXDP_OBJ_GEN)[HNXDP_GEN_MAP_TX])
    }

    func testEveryNameHasThePrefix() {
        let names = Datapath.pinNames + [HNXDP_XSK_PROG_STEER, HNXDP_XSK_MAP_XSKS, HNXDP_XSK_MAP_CONFIG,
                                         HNXDP_XSK_MAP_STATS, HNXDP_XDP_MAP_USER, HNXDP_GEN_PROG, HNXDP_GEN_MAP_TX, HNXDP_MAP_CAPTURE]
        for name in names { XCTAssertTrue(name.hasPrefix(HNXDP_NAME_PREFIX), name) }
    }

    /// The layout `dump --json` prints for scripts (pair_map) is the header's struct.
    func testPairMapLayoutIsTheHeaders() throws {
        let layout = PairMapLayout.current
        XCTAssertEqual(layout.name, HNXDP_MAP_PAIRS)
        XCTAssertEqual(layout.value_size, 136)
        XCTAssertEqual(layout.fields["syn_ifindex"], .init(offset: 0, size: 4))
        XCTAssertEqual(layout.fields["vf_ifindex"], .init(offset: 4, size: 4))
        XCTAssertEqual(layout.fields["state"], .init(offset: 8, size: 4))
        XCTAssertEqual(layout.fields["last_switch_ns"], .init(offset: 64, size: 8))
        XCTAssertEqual(layout.states["active"], UInt32(HNXDP_STATE_ACTIVE.rawValue))
        XCTAssertEqual(layout.states.count, PairState.allCases.count)
        // Every field read back from a value's bytes at its offset is the field.
        var pair = hnxdp_pair()
        pair.vf_ifindex = 7; pair.pairState = .heldDown; pair.slot = 3; pair.last_switch_ns = 0x1122_3344_5566_7788
        let bytes = withUnsafeBytes(of: pair) { Array($0) }
        func read(_ name: String) throws -> UInt64 {
            let f = try XCTUnwrap(layout.fields[name])
            return bytes[f.offset..<f.offset + f.size].reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        XCTAssertEqual(try read("vf_ifindex"), 7)
        XCTAssertEqual(try read("state"), UInt64(layout.states["held-down"]!))
        XCTAssertEqual(try read("slot"), 3)
        XCTAssertEqual(try read("last_switch_ns"), 0x1122_3344_5566_7788)
        let json = try DumpReport(netns_inode: 1, bpffs: "/sys/fs/bpf/hnxdp", pairs: []).json()
        XCTAssertTrue(json.contains("\"pair_map\" : {"), json)
    }

}

/// The one interface-name check (CLI options, --config, lookups, ethtool).
final class InterfaceNameTests: XCTestCase {
    func testKernelRules() {
        for good in ["hn0", "enp0s3", "a", "abcdefghijklmno", "vf-0.1"] { XCTAssertTrue(InterfaceName.isValid(good), good) }
        for bad in ["", "abcdefghijklmnop", ".", "..", "hn/0", "eth0:1", "hn 0", "hn\t0", "hn\n", "hn\u{0}0"] {
            XCTAssertFalse(InterfaceName.isValid(bad), bad.debugDescription)
        }
        XCTAssertEqual(InterfaceName.maxLength, Int(IF_NAMESIZE) - 1)
    }
}
