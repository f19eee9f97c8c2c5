import CHnxdpShim
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
        let datapathMaps = Datapath.mapNames + [HNXDP_MAP_CAPTURE, HNXDP_CAPTURE_CTL_SECTION]
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
}
