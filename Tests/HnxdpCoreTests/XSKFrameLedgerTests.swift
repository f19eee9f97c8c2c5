import HnxdpCore
import XCTest

/// UMEM frame ownership: no frame lost, none handed out twice (B17).
final class XSKFrameLedgerTests: XCTestCase {
    func testFillReceiveRefillAndTransmitCycle() throws {
        var l = FrameLedger(frameCount: 8, frameSize: 2048)
        var addrs: [UInt64] = []
        l.takeForFill(socket: 0, max: 5, into: &addrs)
        XCTAssertEqual(addrs.count, 5)
        XCTAssertEqual(Set(addrs).count, 5, "no frame handed out twice")
        XCTAssertEqual(l.freeCount, 3)
        XCTAssertEqual(l.count(.fill(socket: 0)), 5)

        // The kernel returns RX addresses pointing at the data (frame base + headroom).
        let rx = addrs[2] + 256
        try l.received(rx, socket: 0)
        XCTAssertEqual(l.holder(of: rx), .application)
        try l.transmit(rx, socket: 1) // shared UMEM: any socket may send it
        XCTAssertEqual(l.count(.transmit(socket: 1)), 1)
        try l.completed(rx, socket: 1)
        XCTAssertEqual(l.holder(of: addrs[2]), .free)

        try l.received(addrs[0], socket: 0)
        try l.refill(addrs[0], socket: 0)
        XCTAssertEqual(l.count(.fill(socket: 0)), 4)
        XCTAssertTrue(l.isConsistent())
    }

    func testRefusesDoubleHandOutAndWrongSocket() throws {
        var l = FrameLedger(frameCount: 4, frameSize: 4096)
        var addrs: [UInt64] = []
        l.takeForFill(socket: 0, max: 2, into: &addrs)
        XCTAssertThrowsError(try l.received(addrs[0], socket: 1)) { e in
            XCTAssertTrue("\(e)".contains("fill ring of socket 0"), "\(e)")
        }
        try l.received(addrs[0], socket: 0)
        XCTAssertThrowsError(try l.received(addrs[0], socket: 0), "a frame cannot be received twice")
        try l.release(addrs[0])
        XCTAssertThrowsError(try l.release(addrs[0]), "a frame cannot be released twice")
        XCTAssertThrowsError(try l.completed(addrs[1], socket: 0), "a frame in the fill ring was never sent")
        XCTAssertThrowsError(try l.release(4 * 4096), "outside the UMEM")
        XCTAssertTrue(l.isConsistent())
    }

    func testReclaimTakesBackEverythingOfADepartedSocket() throws {
        var l = FrameLedger(frameCount: 16, frameSize: 2048)
        var syn: [UInt64] = [], vf: [UInt64] = []
        l.takeForFill(socket: 0, max: 4, into: &syn)
        l.takeForFill(socket: 1, max: 6, into: &vf)
        try l.received(vf[0], socket: 1)
        try l.transmit(vf[0], socket: 1)     // in flight on the VF
        try l.received(vf[1], socket: 1)     // held by the application
        try l.received(syn[0], socket: 0)
        try l.transmit(syn[0], socket: 1)    // received on the synthetic, sent on the VF
        XCTAssertEqual(l.reclaim(socket: 1), 6) // 4 in the fill ring + 2 in flight
        XCTAssertEqual(l.count(.fill(socket: 1)), 0)
        XCTAssertEqual(l.count(.transmit(socket: 1)), 0)
        XCTAssertEqual(l.holder(of: vf[1]), .application, "frames the application holds stay its own")
        XCTAssertEqual(l.count(.fill(socket: 0)), 3)
        XCTAssertEqual(l.freeCount + l.count(.fill(socket: 0)) + l.count(.application), 16)
        XCTAssertEqual(l.reclaim(socket: 1), 0)
        XCTAssertTrue(l.isConsistent())
    }

    func testTakeNeverExceedsThePool() {
        var l = FrameLedger(frameCount: 3, frameSize: 2048)
        var a: [UInt64] = []
        l.takeForFill(socket: 0, max: 10, into: &a)
        XCTAssertEqual(a.count, 3)
        XCTAssertNil(l.takeForApplication())
        XCTAssertTrue(l.isConsistent())
    }
}
