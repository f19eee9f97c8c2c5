import CHnxdpShim
@testable import HnxdpCore
import XCTest

/// The choices made from a kernel's capabilities: which attachment and which
/// datapath object, and what is refused (pure: capabilities are given).
final class KernelProbeTests: XCTestCase {
    private let k61 = KernelCapabilities(release: "6.1.0-56-amd64", btf: true, tcx: false, kfuncs: false)
    private let k612 = KernelCapabilities(release: "6.12.117+deb12-amd64", btf: true, tcx: true, kfuncs: true)
    private let k65 = KernelCapabilities(release: "6.5.0", btf: true, tcx: false, kfuncs: true)

    func testAutoPicksTcxWhereTheKernelHasIt() throws {
        XCTAssertEqual(try k612.mode(for: .auto), .tcx)
        XCTAssertEqual(try k61.mode(for: .auto), .classic)
        XCTAssertEqual(try k65.mode(for: .auto), .classic)
    }

    func testClassicIsAlwaysPossible() throws {
        XCTAssertEqual(try k612.mode(for: .classic), .classic)
        XCTAssertEqual(try k61.mode(for: .classic), .classic)
    }

    func testTcxWithoutTcxIsAMissingKernelFeature() {
        XCTAssertThrowsError(try k61.mode(for: .tcx)) { error in
            let e = error as! HnxdpError
            XCTAssertEqual(e.exitCode, 3)
            XCTAssertTrue(e.message.contains("has no tcx"), e.message)
            XCTAssertTrue(e.message.contains("--tc-mode classic"), e.message)
        }
    }

    func testObjectFollowsTheKfuncs() {
        XCTAssertEqual(k612.datapathObject, HNXDP_OBJ_DATAPATH)
        XCTAssertEqual(k65.datapathObject, HNXDP_OBJ_DATAPATH)
        XCTAssertEqual(k61.datapathObject, HNXDP_OBJ_DATAPATH_COMPAT)
    }

    func testNoBTFIsBelowTheFloor() {
        let old = KernelCapabilities(release: "5.4.0", btf: false, tcx: false, kfuncs: false)
        XCTAssertThrowsError(try old.requireSupported()) { error in
            XCTAssertEqual((error as! HnxdpError).exitCode, 3)
            XCTAssertTrue((error as! HnxdpError).message.contains("BTF"))
        }
        XCTAssertNoThrow(try k61.requireSupported())
    }

    func testModeRequestParsing() throws {
        XCTAssertEqual(try TcModeRequest.parse("classic", source: "--tc-mode"), .classic)
        XCTAssertThrowsError(try TcModeRequest.parse("fast", source: "HNXDP_TC_MODE")) { error in
            let e = error as! HnxdpError
            XCTAssertEqual(e.exitCode, 2)
            XCTAssertTrue(e.message.hasPrefix("HNXDP_TC_MODE must be auto, tcx or classic"), e.message)
        }
    }

    func testNetdevFeatureBits() {
        let veth = XDPFeatures(bits: 0x23, zeroCopyMaxSegments: nil) // BASIC | REDIRECT | RX_SG
        XCTAssertTrue(veth.native)
        XCTAssertFalse(veth.transmit)
        XCTAssertFalse(veth.zeroCopy)
        XCTAssertTrue(XDPFeatures(bits: 0x0f, zeroCopyMaxSegments: 1).zeroCopy)
        XCTAssertEqual(NetdevFamilyCodec.le([0x23, 0, 0, 0, 0, 0, 0, 0][...], UInt64.self), 0x23)
        XCTAssertNil(NetdevFamilyCodec.le([1, 2][...], UInt32.self))
    }

    func testNetdevDumpRequestBytes() {
        let r = NetdevFamilyCodec.request(family: 20, command: 1, seq: 7, dump: true)
        XCTAssertEqual(r.count, 20)
        XCTAssertEqual(Array(r[4..<6]), [20, 0])        // nlmsg_type: the family id
        XCTAssertEqual(Array(r[6..<8]), [0x01, 0x03])   // NLM_F_REQUEST | NLM_F_DUMP
        XCTAssertEqual(Array(r[16..<20]), [1, 1, 0, 0]) // genlmsghdr: cmd 1, version 1
    }
}
