import CHnxdpShim
import Foundation
@testable import HnxdpCore
import XCTest

/// The egress qdisc copy (Netlink/TrafficControl, Pairing/QdiscMirror): parsing,
/// requests, what is default, the plan and the comparison. Pure, no privileges.
final class TrafficControlTests: XCTestCase {
    typealias Codec = TrafficControlCodec
    let root = Codec.rootParent

    func attr(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
        Codec.encodeAttribute(RTNetlinkCodec.Attribute(type: type, value: value[...]))
    }
    func kind(_ k: String) -> [UInt8] { attr(UInt16(TCA_KIND), Array(k.utf8) + [0]) }
    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }

    func qdisc(_ k: String, _ handle: UInt32, parent: UInt32? = nil, options: [UInt8] = [], info: UInt32 = 2) -> TCObject {
        TCObject(type: .qdisc, handle: handle, parent: parent ?? root, info: info, kind: k,
                 attributes: kind(k) + (options.isEmpty ? [] : attr(UInt16(TCA_OPTIONS), options)))
    }
    func tclass(_ k: String, _ handle: UInt32, parent: UInt32, options: [UInt8] = [1, 2, 3, 4]) -> TCObject {
        TCObject(type: .class, handle: handle, parent: parent, kind: k, attributes: kind(k) + attr(UInt16(TCA_OPTIONS), options))
    }

    /// A dumped RTM_NEWQDISC: tcmsg, TCA_KIND, TCA_OPTIONS, TCA_STATS2, TCA_HW_OFFLOAD.
    func dumpedQdisc() -> NetlinkMessage {
        var p: [UInt8] = [0, 0, 0, 0] + u32(9) + u32(0x0001_0000) + u32(root) + u32(2)
        p += kind("tbf") + attr(UInt16(TCA_OPTIONS), [7, 7, 7, 7]) + attr(7, [9, 9, 9, 9, 9, 9, 9, 9]) + attr(12, [0])
        return NetlinkMessage(type: UInt16(RTM_NEWQDISC), flags: 2, seq: 1, pid: 0, payload: p)
    }

    func testParseKeepsConfigurationAndDropsStatistics() throws {
        let parsed = try XCTUnwrap(try Codec.parse(dumpedQdisc()))
        XCTAssertEqual(parsed.ifindex, 9)
        XCTAssertEqual(parsed.object.kind, "tbf")
        XCTAssertEqual(parsed.object.handle, 0x0001_0000)
        XCTAssertTrue(parsed.object.isRoot)
        XCTAssertEqual(parsed.object.attributes, kind("tbf") + attr(UInt16(TCA_OPTIONS), [7, 7, 7, 7]))
        XCTAssertNil(try Codec.parse(NetlinkMessage(type: 16, flags: 0, seq: 0, pid: 0, payload: [])))
        XCTAssertThrowsError(try Codec.parse(NetlinkMessage(type: UInt16(RTM_NEWQDISC), flags: 0, seq: 0, pid: 0, payload: [1, 2])))
    }

    func testRequestNamesTheOtherDeviceAndReplacesAQdisc() throws {
        let object = try XCTUnwrap(try Codec.parse(dumpedQdisc())).object
        let bytes = Codec.newRequest(object, seq: 5, ifindex: 11)
        let message = try XCTUnwrap(try RTNetlinkCodec.parseMessages(bytes).first)
        XCTAssertEqual(message.type, UInt16(RTM_NEWQDISC))
        XCTAssertEqual(message.flags, 0x1 | 0x4 | 0x400 | 0x100) // REQUEST ACK CREATE REPLACE
        XCTAssertEqual(Codec.ifindex(of: message), 11)
        XCTAssertEqual(try XCTUnwrap(try Codec.parse(NetlinkMessage(type: UInt16(RTM_NEWQDISC), flags: 0, seq: 0, pid: 0,
                                                                    payload: message.payload))).object, object)
    }

    func testHtbVersionAndFilterFlagsAreTurnedIntoTheRequestForm() throws {
        let glob = u32(0x0003_0011) + u32(10) + u32(0x20) + u32(0) + u32(77)
        let htb = qdisc("htb", 0x0001_0000, options: attr(2, glob))
        let sent = try RTNetlinkCodec.parseAttributes(Codec.requestAttributes(htb)[...])
        let options = try RTNetlinkCodec.parseAttributes(try XCTUnwrap(sent.first { $0.type == UInt16(TCA_OPTIONS) }).value)
        XCTAssertEqual(Array(options[0].value.prefix(4)), u32(3))
        let u32filter = TCObject(type: .filter, handle: 0x8000_0800, parent: 0x0001_0000, info: 0x0001_0008, kind: "u32",
                                 attributes: kind("u32") + attr(UInt16(TCA_OPTIONS), attr(11, u32(0x8 | 0x1))))
        let fsent = try RTNetlinkCodec.parseAttributes(Codec.requestAttributes(u32filter)[...])
        let fopts = try RTNetlinkCodec.parseAttributes(try XCTUnwrap(fsent.first { $0.type == UInt16(TCA_OPTIONS) }).value)
        XCTAssertEqual(Array(fopts[0].value), u32(0x1)) // NOT_IN_HW is state, skip_hw stays
    }

    func testTopLevelClassesAreNamedByTheirQdisc() {
        let c = tclass("htb", 0x0001_0001, parent: root)
        XCTAssertEqual(Codec.withQdiscParent(c).parent, 0x0001_0000)
        XCTAssertEqual(Codec.withQdiscParent(tclass("htb", 0x0001_0010, parent: 0x0001_0001)).parent, 0x0001_0001)
    }

    func testDefaultQdiscsAreNothingToCopy() {
        let config = TCConfig(qdiscs: [qdisc("mq", 0), qdisc("fq_codel", 0, parent: 1), qdisc("fq_codel", 0, parent: 2)])
        XCTAssertTrue(config.isDefault)
        let plan = QdiscMirror.plan(synthetic: config, synName: "hn0", vfName: "vf0", vfQueues: 4)
        XCTAssertFalse(plan.mirrors)
        XCTAssertEqual(plan.objects, [])
    }

    func testATreeIsMadeParentsFirstAndFiltersLast() {
        let filter = TCObject(type: .filter, handle: 1, parent: 0x0001_0000, info: 0x0001_0008, kind: "fw",
                              attributes: kind("fw"))
        let syn = TCConfig(qdiscs: [qdisc("sfq", 0x0010_0000, parent: 0x0001_0010), qdisc("htb", 0x0001_0000)],
                           classes: [tclass("htb", 0x0001_0010, parent: 0x0001_0001), tclass("htb", 0x0001_0001, parent: 0x0001_0000)],
                           filters: [filter])
        let plan = QdiscMirror.plan(synthetic: syn, synName: "hn0", vfName: "vf0", vfQueues: 1)
        XCTAssertTrue(plan.mirrors)
        XCTAssertEqual(plan.caveats, [])
        XCTAssertEqual(plan.objects.map(\.description), [
            "qdisc htb 1: root", "class htb 1:1 parent 1:", "class htb 1:10 parent 1:1",
            "qdisc sfq 10: parent 1:10", "filter fw parent 1: prio 1 handle 1",
        ])
    }

    func testMqIsSpreadOverTheVFsQueues() {
        let syn = TCConfig(qdiscs: [qdisc("mq", 0x0001_0000), qdisc("fq", 0x0010_0000, parent: 0x0001_0001),
                                    qdisc("fq", 0x0020_0000, parent: 0x0001_0002)],
                           classes: [tclass("mq", 0x0001_0001, parent: 0x0001_0000), tclass("mq", 0x0001_0002, parent: 0x0001_0000)])
        let plan = QdiscMirror.plan(synthetic: syn, synName: "hn0", vfName: "vf0", vfQueues: 3)
        XCTAssertEqual(plan.caveats, [])
        XCTAssertEqual(plan.objects.map(\.description), [
            "qdisc mq 1: root", "qdisc fq 10: parent 1:1", "qdisc fq 20: parent 1:2", "qdisc fq 0: parent 1:3",
        ])
        // One queue: queue 1's qdisc is the root, and that is said.
        let single = QdiscMirror.plan(synthetic: syn, synName: "hn0", vfName: "vf0", vfQueues: 1)
        XCTAssertEqual(single.objects.map(\.description), ["qdisc fq 10: root"])
        XCTAssertEqual(single.caveats.count, 1)
        // Per-queue shapers on another number of queues add up to another total: not faithful.
        var shaped = syn
        shaped.qdiscs[1].kind = "tbf"
        XCTAssertTrue(QdiscMirror.plan(synthetic: shaped, synName: "hn0", vfName: "vf0", vfQueues: 3).caveats
            .contains { $0.contains("total differs") })
    }

    func testBPFFiltersAreLeftOutAndSaid() {
        let bpf = TCObject(type: .filter, handle: 1, parent: 0x0001_0000, info: 0x0001_0003, kind: "bpf", attributes: kind("bpf"))
        let plan = QdiscMirror.plan(synthetic: TCConfig(qdiscs: [qdisc("prio", 0x0001_0000)], filters: [bpf]),
                                    synName: "hn0", vfName: "vf0", vfQueues: 1)
        XCTAssertEqual(plan.objects.map(\.kind), ["prio"])
        XCTAssertEqual(plan.caveats.count, 1)
    }

    func testComparisonIgnoresCountersButNotConfiguration() {
        let a = qdisc("htb", 0x0001_0000, options: attr(2, u32(0x30011) + u32(10) + u32(0x20) + u32(0) + u32(5)), info: 2)
        var b = qdisc("htb", 0x0001_0000, options: attr(2, u32(0x30011) + u32(10) + u32(0x20) + u32(0) + u32(900)), info: 7)
        XCTAssertNil(Codec.difference(expected: [a], actual: [b], device: "vf0"))
        b = qdisc("htb", 0x0001_0000, options: attr(2, u32(0x30011) + u32(10) + u32(0x30) + u32(0) + u32(5)))
        XCTAssertEqual(Codec.difference(expected: [a], actual: [b], device: "vf0"), "vf0 has qdisc htb 1: root with other options than expected")
        XCTAssertEqual(Codec.difference(expected: [a], actual: [], device: "vf0"), "vf0 lacks qdisc htb 1: root")
        XCTAssertEqual(Codec.difference(expected: [], actual: [a], device: "vf0"), "vf0 has qdisc htb 1: root, not expected")
        // A filter's actions: their kinds count, their reference counts and timestamps do not.
        func action(_ refcnt: UInt8) -> [UInt8] {
            attr(1, attr(1, Array("gact".utf8) + [0]) + attr(2, [refcnt, 0, 0, 0]) + attr(4, [refcnt]))
        }
        let f1 = TCObject(type: .filter, handle: 0x800, parent: 0x0001_0000, info: 0x0001_0008, kind: "u32",
                          attributes: kind("u32") + attr(UInt16(TCA_OPTIONS), attr(7, action(1)) + attr(9, [1, 2, 3, 4])))
        var f2 = f1
        f2.attributes = kind("u32") + attr(UInt16(TCA_OPTIONS), attr(7, action(2)) + attr(9, [5, 6, 7, 8]))
        XCTAssertNil(Codec.difference(expected: [f1], actual: [f2], device: "vf0"))
        f2.info = 0x0002_0008
        XCTAssertNotNil(Codec.difference(expected: [f1], actual: [f2], device: "vf0"))
    }

    func testTheRecordKeepsTheVFsConfiguration() throws {
        let config = TCConfig(qdiscs: [qdisc("pfifo", 0x0007_0000, options: u32(500))])
        let link = LinkInfo(ifindex: 7, name: "vf0", mac: [2, 0, 0, 0, 0, 1], flags: 0, mtu: 1500)
        var record = PairRecord(phase: .joining, netnsCookie: 1, synthetic: DeviceOriginals(link), vf: DeviceOriginals(link))
        record.vfTrafficControl = config
        let data = try JSONEncoder().encode(record)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"attributes\":\""), "attributes are base64")
        XCTAssertEqual(try JSONDecoder().decode(PairRecord.self, from: data).vfTrafficControl, config)
        // A record of an older hnxdp has none: the VF's qdiscs are then left as they are.
        var old = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        old["vfTrafficControl"] = nil
        let oldData = try JSONSerialization.data(withJSONObject: old)
        XCTAssertNil(try JSONDecoder().decode(PairRecord.self, from: oldData).vfTrafficControl)
    }
}

extension TrafficControlTests {
    func testAQdiscTheKernelNumbersMatchesAnyHandle() {
        let expected = [qdisc("fq", 0, parent: 0x0001_0003)]
        XCTAssertNil(Codec.difference(expected: expected, actual: [qdisc("fq", 0x8001_0000, parent: 0x0001_0003)], device: "vf0"))
        XCTAssertNotNil(Codec.difference(expected: expected, actual: [qdisc("fq", 0x8001_0000, parent: 0x0001_0002)], device: "vf0"))
        XCTAssertNotNil(Codec.difference(expected: expected + expected, actual: [qdisc("fq", 0x8001_0000, parent: 0x0001_0003)], device: "vf0"))
    }
}
