import Foundation
@testable import HnxdpCore
import Glibc
import XCTest

/// B21: what the write-ahead record puts back, and how it is stored, without privileges.
final class PairRecordTests: XCTestCase {
    let mac: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    lazy var syn = LinkInfo(ifindex: 5, name: "hn0", mac: mac, flags: LinkInfo.Flag.up, mtu: 1400, kind: "veth",
                            gsoMaxSize: 65536, gsoMaxSegs: 65535, gsoIPv4MaxSize: 65536)
    lazy var vf = LinkInfo(ifindex: 7, name: "vf0", mac: mac, flags: LinkInfo.Flag.allmulti, mtu: 2000, kind: "veth",
                           gsoMaxSize: 30000, gsoMaxSegs: 40)

    func record(_ phase: PairRecord.Phase) -> PairRecord {
        PairRecord(phase: phase, netnsCookie: 42, synthetic: DeviceOriginals(syn, features: [0b1011, 0]), vf: DeviceOriginals(vf))
    }

    /// The devices as a completed join leaves them: smaller limits, MTU pushed, VF up, allmulti off.
    var joinedSyn: LinkInfo { var s = syn; s.gsoMaxSize = 30000; s.gsoMaxSegs = 40; s.gsoIPv4MaxSize = 30000; return s }
    var joinedVF: LinkInfo { var v = vf; v.mtu = 1400; v.flags = LinkInfo.Flag.up | LinkInfo.Flag.promisc; return v }

    func testNothingToDoWhenTheDevicesAreAsRecorded() {
        for phase in [PairRecord.Phase.joining, .joined, .leaving, .abandoning] {
            XCTAssertEqual(record(phase).syntheticChange(now: syn), LinkChange(), "\(phase)")
            XCTAssertEqual(record(phase).vfChange(now: vf), LinkChange(), "\(phase)")
        }
    }

    func testLeaveGivesBackLimitsAndTheVFsSettings() {
        let r = record(.leaving)
        XCTAssertEqual(r.syntheticChange(now: joinedSyn), LinkChange(gsoMaxSize: 65536, gsoMaxSegs: 65535, gsoIPv4MaxSize: 65536))
        XCTAssertEqual(r.vfChange(now: joinedVF), LinkChange(mtu: 2000, up: false, promisc: false, allmulti: true))
    }

    func testACompletedJoinKeepsTheUsersNewSyntheticMTU() {
        var s = joinedSyn
        s.mtu = 9000 // set by the user while joined (passed down, B11)
        XCTAssertNil(record(.leaving).syntheticChange(now: s).mtu)
        var fallback = record(.leaving)
        fallback.mtuFallback = true
        XCTAssertEqual(fallback.syntheticChange(now: s).mtu, 1400, "B6 fallback is undone")
    }

    func testAnIncompleteJoinPutsBackEverything() {
        var s = joinedSyn
        s.mtu = 1500
        for phase in [PairRecord.Phase.joining, .abandoning] {
            XCTAssertEqual(record(phase).syntheticChange(now: s).mtu, 1400, "\(phase)")
            XCTAssertEqual(record(phase).undoPhase, .abandoning)
        }
        XCTAssertEqual(record(.joined).undoPhase, .leaving)
    }

    func testIdentityNeedsTheIfindexAndTheAddressOrName() {
        let o = DeviceOriginals(vf)
        XCTAssertTrue(o.isSameDevice(vf))
        var renamed = vf
        renamed.name = "eth9"
        XCTAssertTrue(o.isSameDevice(renamed))
        var other = vf
        other.name = "dummy7"
        other.mac = [0x02, 9, 9, 9, 9, 9]
        XCTAssertFalse(o.isSameDevice(other), "a device that took a freed ifindex is not the VF")
        var moved = vf
        moved.ifindex = 8
        XCTAssertFalse(o.isSameDevice(moved))
    }

    func testStoreRoundTripsAndRejectsGarbage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hnxdp-record-\(getpid())").path
        defer { FileSystem.removeTree(dir) }
        let store = PairRecordStore(StateDirectory(root: dir, netnsInode: 7))
        var r = record(.joining)
        r.netnsCookie = NetworkNamespace.currentCookie()
        r.multicastAdded = ["01:00:5e:00:00:fb"]
        try store.save(r)
        XCTAssertEqual(try store.load(synthetic: 5), r)
        XCTAssertEqual(store.state.recordedSynthetics(), [5])
        try store.update(synthetic: 5) { $0.phase = .joined }
        XCTAssertEqual(try store.load(synthetic: 5)?.phase, .joined)
        XCTAssertEqual(FileSystem.list(store.state.namespaceDirectory), ["pair-5.json"], "no temporary file left")

        try "{\"phase\": 1}".write(toFile: store.state.recordPath(synthetic: 5), atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try store.load(synthetic: 5)) { error in
            XCTAssertTrue("\(error)".contains("pair-5.json"), "names the file: \(error)")
        }
        try store.remove(synthetic: 5)
        XCTAssertNil(try store.load(synthetic: 5))
        XCTAssertFalse(FileSystem.exists(store.state.namespaceDirectory))
    }

    func testARecordOfAnotherNamespaceWithTheSameInodeIsStale() throws {
        let cookie = NetworkNamespace.currentCookie()
        XCTAssertNotEqual(cookie, 0, "SO_NETNS_COOKIE (Linux 5.14+)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hnxdp-stale-\(getpid())").path
        defer { FileSystem.removeTree(dir) }
        let store = PairRecordStore(StateDirectory(root: dir, netnsInode: 7))
        var r = record(.joined)
        r.netnsCookie = cookie &+ 1
        try store.save(r)
        XCTAssertNil(try store.load(synthetic: 5))
        XCTAssertFalse(FileSystem.exists(store.state.recordPath(synthetic: 5)))
    }
}
