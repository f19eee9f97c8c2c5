@testable import HnxdpCore
import XCTest

/// What a SIGHUP reload of `hnxdp run` applies, refuses and reports.
final class RunReloadTests: XCTestCase {
    func settings(_ text: String) throws -> RunSettings { try RunConfig.parse(text, file: "run.conf") }

    func testNothingChanged() throws {
        let s = try settings("synthetic = hn0\nsettle-ms = 0\n")
        let plan = RunReload.plan(current: s, requested: s)
        XCTAssertEqual(plan.settings, s)
        XCTAssertEqual(plan.changes, [])
        XCTAssertEqual(plan.refused, [])
    }

    func testSyntheticDriversApply() throws {
        let old = try settings("settle-ms = 0\n")
        let new = try settings("settle-ms = 0\nsynthetic-driver = xen-netfront\n")
        let plan = RunReload.plan(current: old, requested: new)
        XCTAssertEqual(plan.settings.syntheticDrivers, ["xen-netfront"])
        XCTAssertEqual(plan.changes, ["synthetic-driver default (virtio_net) -> xen-netfront"])
        XCTAssertEqual(plan.refused, [])
    }

    func testTimingApplies() throws {
        let old = try settings("synthetic = hn0\nsettle-ms = 0\n")
        let new = try settings("synthetic = hn0\nsettle-ms = 1500\nhold-down-ms = 100\nflap-threshold = 7\n")
        let plan = RunReload.plan(current: old, requested: new)
        XCTAssertEqual(plan.settings, new)
        XCTAssertEqual(plan.changes, ["settle-ms 0 -> 1500", "hold-down-ms 5000 -> 100", "flap-threshold 3 -> 7"])
        XCTAssertEqual(plan.added, [])
        XCTAssertEqual(plan.unlisted, [])
    }

    func testTransparentIsRefused() throws {
        let old = try settings("settle-ms = 10\n")
        let new = try settings("settle-ms = 20\ntransparent = off\n")
        let plan = RunReload.plan(current: old, requested: new)
        XCTAssertTrue(plan.settings.transparent, "transparent stays on")
        XCTAssertEqual(plan.settings.timing.settleMs, 20, "the rest still applies")
        XCTAssertEqual(plan.refused.count, 1)
        XCTAssertTrue(plan.refused[0].hasPrefix("transparent on -> off is not applied"), plan.refused[0])
    }

    func testSyntheticList() throws {
        let old = try settings("synthetic = hn0\nsynthetic = hn1\n")
        let new = try settings("synthetic = hn1\nsynthetic = hn2\n")
        let plan = RunReload.plan(current: old, requested: new)
        XCTAssertEqual(plan.settings.synthetics, ["hn1", "hn2"])
        XCTAssertEqual(plan.added, ["hn2"])
        XCTAssertEqual(plan.unlisted, ["hn0"])
        XCTAssertEqual(plan.changes, ["synthetic hn0,hn1 -> hn1,hn2"])
        // Back to "every eligible": nothing is unlisted.
        let all = RunReload.plan(current: old, requested: RunSettings())
        XCTAssertEqual(all.unlisted, [])
        XCTAssertEqual(all.changes, ["synthetic hn0,hn1 -> every eligible"])
    }

    func testRetimeKeepsPhase() {
        var m = PairStateMachine(timing: PairTiming(settleMs: 0))
        _ = m.handle(.vfPresent(7), now: 100)
        _ = m.handle(.tick, now: 100)
        XCTAssertEqual(m.phase, .active(vf: 7))
        m.retime(PairTiming(settleMs: 1500))
        XCTAssertEqual(m.phase, .active(vf: 7), "a reload does not touch a joined pair")
        _ = m.handle(.vfGone(7), now: 200)
        _ = m.handle(.vfPresent(8), now: 300)
        XCTAssertEqual(m.phase, .settling(vf: 8, deadline: 1800), "the next arrival waits the new settle")
    }
}
