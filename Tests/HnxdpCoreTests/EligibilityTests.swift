@testable import HnxdpCore
import XCTest

/// Behaviour B1's rules for explicit pairs, without privileges.
final class EligibilityTests: XCTestCase {
    let mac: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    lazy var syn = LinkInfo(ifindex: 5, name: "hn0", mac: mac, flags: 1, mtu: 1500, kind: "veth")
    lazy var vf = LinkInfo(ifindex: 7, name: "vf0", mac: mac, mtu: 1500, kind: "veth")

    func badInput(_ block: () throws -> Eligibility.Verdict, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try block(), file: file, line: line) { error in
            guard let e = error as? HnxdpError else { return XCTFail("not an HnxdpError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, .badInput, file: file, line: line)
            XCTAssertEqual(e.exitCode, 2, file: file, line: line)
            XCTAssertTrue(e.message.contains(text), "'\(e.message)' lacks '\(text)'", file: file, line: line)
            XCTAssertFalse(e.message.contains("\n"), "one line", file: file, line: line)
        }
    }

    func testMatchingPairJoins() throws {
        XCTAssertEqual(try Eligibility.checkExplicitPair(synthetic: syn, vf: vf, force: false, attached: [:]), .join)
    }

    func testAPortOfAMasterIsNeverAVF() throws {
        var port = vf
        port.masterIndex = 9
        badInput({ try Eligibility.checkExplicitPair(synthetic: syn, vf: port, force: true, attached: [:]) }, contains: "has a master (ifindex 9)")
        XCTAssertNotNil(Eligibility.vfIneligibilityReason(port))
        XCTAssertNil(Eligibility.vfIneligibilityReason(vf))
        var enslavedSynthetic = syn
        enslavedSynthetic.masterIndex = 9 // e.g. in a VRF: still a synthetic
        XCTAssertEqual(try Eligibility.checkExplicitPair(synthetic: enslavedSynthetic, vf: vf, force: false, attached: [:]), .join)
    }

    func testTheRefusalNamesTheMasterAndWhatItIs() {
        var port = vf
        port.masterIndex = 4
        let master = LinkInfo(ifindex: 4, name: "eth0", mac: mac, kind: nil)
        XCTAssertTrue(Eligibility.masterRefusal(vf: port, master: master, masterDriver: "hv_netvsc").contains("already paired by the kernel with eth0(4) (hv_netvsc"))
        XCTAssertTrue(Eligibility.masterRefusal(vf: port, master: master, masterDriver: "net_failover").contains("kernel failover eth0(4)"))
        XCTAssertTrue(Eligibility.masterRefusal(vf: port, master: master, masterDriver: "net_failover", vfDriver: "e1000e").contains("is the primary of kernel failover"))
        XCTAssertTrue(Eligibility.masterRefusal(vf: port, master: master, masterDriver: "net_failover", vfDriver: "virtio_net").contains("is the standby of kernel failover"))
        var bridge = master
        bridge.name = "br0"
        bridge.kind = "bridge"
        XCTAssertTrue(Eligibility.masterRefusal(vf: port, master: bridge, masterDriver: "bridge").contains("a port of br0(4) (bridge)"))
        XCTAssertTrue(Eligibility.masterRefusal(vf: port, master: nil, masterDriver: nil).contains("has a master, ifindex 4"))
    }

    func testPermanentAddressWinsOverCurrent() throws {
        var v = vf
        v.mac = [0x02, 9, 9, 9, 9, 9]
        v.permanentMAC = mac
        XCTAssertEqual(try Eligibility.checkExplicitPair(synthetic: syn, vf: v, force: false, attached: [:]), .join)
    }

    func testMACMismatchNeedsForce() throws {
        var v = vf
        v.mac = [0x02, 0, 0, 0, 0, 0x02]
        badInput({ try Eligibility.checkExplicitPair(synthetic: syn, vf: v, force: false, attached: [:]) }, contains: "MAC mismatch")
        XCTAssertEqual(try Eligibility.checkExplicitPair(synthetic: syn, vf: v, force: true, attached: [:]), .join)
    }

    func testSameDeviceTwice() {
        badInput({ try Eligibility.checkExplicitPair(synthetic: syn, vf: syn, force: true, attached: [:]) }, contains: "itself")
    }

    func testLoopbackBridgeBondVLANRefused() {
        let lo = LinkInfo(ifindex: 1, name: "lo", mac: [0, 0, 0, 0, 0, 0], arpType: 772, flags: 0x8, mtu: 65536)
        badInput({ try Eligibility.checkExplicitPair(synthetic: syn, vf: lo, force: true, attached: [:]) }, contains: "loopback")
        for kind in ["bridge", "bond", "team", "vlan"] {
            let dev = LinkInfo(ifindex: 9, name: "x0", mac: mac, mtu: 1500, kind: kind)
            badInput({ try Eligibility.checkExplicitPair(synthetic: syn, vf: dev, force: false, attached: [:]) }, contains: "x0 is a")
            badInput({ try Eligibility.checkExplicitPair(synthetic: dev, vf: vf, force: false, attached: [:]) }, contains: "x0 is a")
        }
        let notEther = LinkInfo(ifindex: 9, name: "tun0", mac: [], arpType: 65534, mtu: 1500, kind: "tun")
        badInput({ try Eligibility.checkExplicitPair(synthetic: syn, vf: notEther, force: true, attached: [:]) }, contains: "not an Ethernet")
    }

    func testAlreadyPaired() throws {
        XCTAssertEqual(try Eligibility.checkExplicitPair(synthetic: syn, vf: vf, force: false, attached: [5: 7]), .alreadyAttached)
        let other = LinkInfo(ifindex: 8, name: "vf1", mac: mac, mtu: 1500)
        badInput({ try Eligibility.checkExplicitPair(synthetic: syn, vf: other, force: false, attached: [5: 7]) }, contains: "already paired")
        let otherSyn = LinkInfo(ifindex: 6, name: "hn1", mac: mac, mtu: 1500)
        badInput({ try Eligibility.checkExplicitPair(synthetic: otherSyn, vf: vf, force: false, attached: [5: 7]) }, contains: "already the VF")
        badInput({ try Eligibility.checkExplicitPair(synthetic: otherSyn, vf: syn, force: false, attached: [5: 7]) }, contains: "synthetic interface of a pair")
        badInput({ try Eligibility.checkExplicitPair(synthetic: vf, vf: other, force: false, attached: [5: 7]) }, contains: "already the VF of another pair")
    }
}
