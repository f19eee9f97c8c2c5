import HnxdpCore
import XCTest

/// The per-pair state machine of `hnxdp run` (B2, B3, B15, B16, B19), without
/// privileges: events in, actions out, time in milliseconds.
final class PairStateMachineTests: XCTestCase {
    typealias M = PairStateMachine
    let timing = PairTiming(settleMs: 2000, flapThreshold: 3, holdDownMs: 5000)

    func machine(transparent: Bool = true, adopted: PairPhase = .idle) -> M {
        M(timing: timing, transparent: transparent, adopted: adopted)
    }

    func changed(_ from: String, _ to: String) -> M.Action { .phaseChanged(from: from, to: to) }

    // MARK: - B2 settle

    func testDefaultsAreFreeBSDs() {
        let t = PairTiming()
        XCTAssertEqual(t.settleMs, 2000)
        XCTAssertEqual(t.flapThreshold, 3)
        XCTAssertEqual(t.holdDownMs, 5000)
        let m = M(timing: t)
        XCTAssertEqual(m.phase, .idle)
        XCTAssertTrue(m.transparent)
        XCTAssertNil(m.deadline)
    }

    func testArrivalSettlesThenJoins() {
        var m = machine()
        XCTAssertEqual(m.handle(.vfPresent(7), now: 1000), [changed("idle", "settling")])
        XCTAssertEqual(m.phase, .settling(vf: 7, deadline: 3000))
        XCTAssertEqual(m.phase.name, "settling")
        XCTAssertEqual(m.phase.vf, 7)
        XCTAssertEqual(m.deadline, 3000)
        XCTAssertEqual(m.handle(.tick, now: 2999), [], "not before the settle delay")
        XCTAssertEqual(m.phase, .settling(vf: 7, deadline: 3000))
        XCTAssertEqual(m.handle(.tick, now: 3000), [changed("settling", "active"), .join(7)])
        XCTAssertEqual(m.phase, .active(vf: 7))
        XCTAssertNil(m.deadline, "nothing timed while active")
        XCTAssertEqual(m.handle(.tick, now: 9000), [], "joined once")
    }

    func testRepeatedNotificationsOfTheSameVFDoNotRestartTheSettleDelay() {
        var m = machine()
        _ = m.handle(.vfPresent(7), now: 0)
        // Every change on the VF (up, MTU, ...) is another RTM_NEWLINK for it.
        XCTAssertEqual(m.handle(.vfPresent(7), now: 1500), [])
        XCTAssertEqual(m.deadline, 2000)
        XCTAssertEqual(m.handle(.tick, now: 2000), [changed("settling", "active"), .join(7)])
    }

    func testVFThatVanishesDuringTheSettleDelayIsDropped() {
        var m = machine()
        _ = m.handle(.vfPresent(7), now: 0)
        XCTAssertEqual(m.handle(.vfGone(7), now: 500), [changed("settling", "idle")])
        XCTAssertEqual(m.phase, .idle)
        XCTAssertNil(m.deadline)
        XCTAssertEqual(m.handle(.tick, now: 2000), [], "no join of a VF that left")
        XCTAssertEqual(m.phase, .idle)
    }

    func testOtherVFGoneDuringSettleIsIgnored() {
        var m = machine()
        _ = m.handle(.vfPresent(7), now: 0)
        XCTAssertEqual(m.handle(.vfGone(8), now: 100), [])
        XCTAssertEqual(m.phase, .settling(vf: 7, deadline: 2000))
    }

    func testAnotherVFDuringSettleStartsTheDelayOver() {
        var m = machine()
        _ = m.handle(.vfPresent(7), now: 0)
        XCTAssertEqual(m.handle(.vfPresent(9), now: 1000), [], "still settling: no phase change")
        XCTAssertEqual(m.phase, .settling(vf: 9, deadline: 3000))
        XCTAssertEqual(m.handle(.tick, now: 2000), [])
        XCTAssertEqual(m.handle(.tick, now: 3000), [changed("settling", "active"), .join(9)])
    }

    func testZeroSettleJoinsOnTheFirstTick() {
        var m = M(timing: PairTiming(settleMs: 0, flapThreshold: 3, holdDownMs: 5000))
        XCTAssertEqual(m.handle(.vfPresent(7), now: 10), [changed("idle", "settling")])
        XCTAssertEqual(m.deadline, 10)
        XCTAssertEqual(m.handle(.tick, now: 10), [changed("settling", "active"), .join(7)])
    }

    // MARK: - B13/B15 departure and return

    func testDepartureLeaves() {
        var m = machine(adopted: .active(vf: 7))
        XCTAssertEqual(m.handle(.vfGone(7), now: 100), [changed("active", "idle"), .leave(7)])
        XCTAssertEqual(m.phase, .idle)
        XCTAssertEqual(m.departures, [100])
    }

    func testOtherVFGoneWhileActiveIsIgnored() {
        var m = machine(adopted: .active(vf: 7))
        XCTAssertEqual(m.handle(.vfGone(8), now: 100), [])
        XCTAssertEqual(m.phase, .active(vf: 7))
    }

    func testSecondVFWithTheSameMACWhileActiveKeepsTheJoinedOne() {
        var m = machine(adopted: .active(vf: 7))
        XCTAssertEqual(m.handle(.vfPresent(8), now: 100), [])
        XCTAssertEqual(m.handle(.vfPresent(7), now: 200), [])
        XCTAssertEqual(m.phase, .active(vf: 7))
    }

    func testReturnWithANewIfindexSettlesAndJoinsAgain() {
        var m = machine()
        _ = m.handle(.vfPresent(7), now: 0)
        _ = m.handle(.tick, now: 2000)
        XCTAssertEqual(m.handle(.vfGone(7), now: 10_000), [changed("active", "idle"), .leave(7)])
        // Same MAC, new ifindex.
        XCTAssertEqual(m.handle(.vfPresent(12), now: 10_500), [changed("idle", "settling")])
        XCTAssertEqual(m.phase, .settling(vf: 12, deadline: 12_500))
        XCTAssertEqual(m.handle(.tick, now: 12_499), [])
        XCTAssertEqual(m.handle(.tick, now: 12_500), [changed("settling", "active"), .join(12)])
        XCTAssertEqual(m.handle(.vfGone(7), now: 13_000), [], "the old ifindex is not the joined VF")
        XCTAssertEqual(m.handle(.vfGone(12), now: 14_000), [changed("active", "idle"), .leave(12)])
    }

    func testDeparturesSpreadBeyondTheWindowNeverHoldDown() {
        var m = machine()
        var t: UInt64 = 0
        var vf: Int32 = 7
        for _ in 0..<6 {
            XCTAssertEqual(m.handle(.vfPresent(vf), now: t), [changed("idle", "settling")])
            XCTAssertEqual(m.handle(.tick, now: t + 2000), [changed("settling", "active"), .join(vf)])
            XCTAssertEqual(m.handle(.vfGone(vf), now: t + 3000), [changed("active", "idle"), .leave(vf)])
            XCTAssertFalse(m.flapping)
            t += 3000 // each departure 3000 ms after the previous: two in any 5000 ms window
            vf += 1
        }
    }

    // MARK: - B16 flap damping

    /// Three quick departures (during the settle delay), then a fourth arrival.
    func flapped() -> M {
        var m = machine()
        var t: UInt64 = 0
        for vf in Int32(7)...9 {
            XCTAssertEqual(m.handle(.vfPresent(vf), now: t), [changed("idle", "settling")])
            XCTAssertEqual(m.handle(.vfGone(vf), now: t + 10), [changed("settling", "idle")])
            t += 20
        }
        XCTAssertEqual(m.departures, [10, 30, 50])
        XCTAssertTrue(m.flapping)
        return m
    }

    func testFlappingVFIsHeldDownThenJoinedWhenStable() {
        var m = flapped()
        XCTAssertEqual(m.handle(.vfPresent(10), now: 60), [changed("idle", "held-down")])
        XCTAssertEqual(m.phase, .heldDown(vf: 10, deadline: 5060))
        XCTAssertEqual(m.phase.name, "held-down")
        XCTAssertEqual(m.deadline, 5060)
        XCTAssertEqual(m.handle(.tick, now: 2060), [], "no join after the settle delay while held down")
        XCTAssertEqual(m.handle(.vfPresent(10), now: 3000), [], "the same VF again does not restart the hold-down")
        XCTAssertEqual(m.handle(.tick, now: 5059), [])
        XCTAssertEqual(m.handle(.tick, now: 5060), [changed("held-down", "active"), .join(10)])
        XCTAssertEqual(m.phase, .active(vf: 10))
    }

    func testHeldDownMeasuresStabilityFromTheLatestArrival() {
        var m = flapped()
        _ = m.handle(.vfPresent(10), now: 60)
        XCTAssertEqual(m.handle(.vfGone(10), now: 1000), [], "still held down")
        XCTAssertEqual(m.phase, .heldDown(vf: nil, deadline: 6000))
        XCTAssertEqual(m.handle(.vfPresent(11), now: 2000), [])
        XCTAssertEqual(m.phase, .heldDown(vf: 11, deadline: 7000))
        XCTAssertEqual(m.handle(.tick, now: 6000), [])
        XCTAssertEqual(m.handle(.tick, now: 7000), [changed("held-down", "active"), .join(11)])
    }

    func testHeldDownWithoutAVFEndsIdle() {
        var m = flapped()
        _ = m.handle(.vfPresent(10), now: 60)
        _ = m.handle(.vfGone(10), now: 100)
        XCTAssertEqual(m.handle(.tick, now: 5099), [])
        XCTAssertEqual(m.handle(.tick, now: 5100), [changed("held-down", "idle")], "no join without a VF")
        XCTAssertEqual(m.phase, .idle)
    }

    func testFlapWindowExpires() {
        var m = flapped()
        // The departures were at 10, 30, 50: all older than 5000 ms at 5050.
        XCTAssertEqual(m.handle(.vfPresent(10), now: 5050), [changed("idle", "settling")])
        XCTAssertEqual(m.departures, [])
        XCTAssertFalse(m.flapping)
    }

    func testDepartureOfAJoinedVFWhileFlappingHoldsDown() {
        var m = machine()
        _ = m.handle(.vfPresent(7), now: 0)
        _ = m.handle(.tick, now: 2000)
        XCTAssertEqual(m.handle(.vfGone(7), now: 2100), [changed("active", "idle"), .leave(7)])
        _ = m.handle(.vfPresent(8), now: 2200)
        XCTAssertEqual(m.handle(.vfGone(8), now: 2300), [changed("settling", "idle")])
        _ = m.handle(.vfPresent(9), now: 2400)
        XCTAssertEqual(m.handle(.tick, now: 4400), [changed("settling", "active"), .join(9)])
        XCTAssertEqual(m.handle(.vfGone(9), now: 4500), [changed("active", "held-down"), .leave(9)])
        XCTAssertEqual(m.phase, .heldDown(vf: nil, deadline: 9500))
        XCTAssertEqual(m.handle(.vfPresent(10), now: 5000), [])
        XCTAssertEqual(m.phase, .heldDown(vf: 10, deadline: 10_000))
        XCTAssertEqual(m.handle(.tick, now: 10_000), [changed("held-down", "active"), .join(10)])
    }

    func testFlapThresholdIsConfigurable() {
        var m = M(timing: PairTiming(settleMs: 100, flapThreshold: 1, holdDownMs: 1000))
        _ = m.handle(.vfPresent(7), now: 0)
        _ = m.handle(.vfGone(7), now: 10)
        XCTAssertEqual(m.handle(.vfPresent(8), now: 20), [changed("idle", "held-down")], "one departure is enough")
        XCTAssertEqual(m.handle(.tick, now: 1020), [changed("held-down", "active"), .join(8)])
    }

    // MARK: - join failure

    func testJoinFailureHoldsDownAndRetries() {
        var m = machine()
        _ = m.handle(.vfPresent(7), now: 0)
        XCTAssertEqual(m.handle(.tick, now: 2000), [changed("settling", "active"), .join(7)])
        XCTAssertEqual(m.handle(.joinFailed(7), now: 2001), [changed("active", "held-down")])
        XCTAssertEqual(m.phase, .heldDown(vf: 7, deadline: 7001))
        XCTAssertEqual(m.handle(.tick, now: 7000), [])
        XCTAssertEqual(m.handle(.tick, now: 7001), [changed("held-down", "active"), .join(7)], "retried after the hold-down")
    }

    func testJoinFailureOfAnotherVFIsIgnored() {
        var m = machine(adopted: .active(vf: 7))
        XCTAssertEqual(m.handle(.joinFailed(8), now: 10), [])
        XCTAssertEqual(m.phase, .active(vf: 7))
    }

    func testFailedVFThatLeavesIsNotRetried() {
        var m = machine()
        _ = m.handle(.vfPresent(7), now: 0)
        _ = m.handle(.tick, now: 2000)
        _ = m.handle(.joinFailed(7), now: 2001)
        XCTAssertEqual(m.handle(.vfGone(7), now: 3000), [])
        XCTAssertEqual(m.phase, .heldDown(vf: nil, deadline: 8000))
        XCTAssertEqual(m.handle(.tick, now: 8000), [changed("held-down", "idle")])
    }

    // MARK: - B3 transparent off

    func testTransparentOffOnlyReports() {
        var m = machine(transparent: false)
        XCTAssertEqual(m.phase, .disabled(vf: nil))
        XCTAssertEqual(m.phase.name, "disabled")
        XCTAssertFalse(m.transparent)
        XCTAssertEqual(m.handle(.vfPresent(7), now: 0), [.reported(vf: 7)], "reported: no join, no leave, no phase change")
        XCTAssertEqual(m.phase, .disabled(vf: 7), "the VF is known (reported)")
        XCTAssertNil(m.deadline, "nothing to wait for")
        XCTAssertEqual(m.handle(.tick, now: 100_000), [])
        XCTAssertEqual(m.handle(.vfGone(8), now: 100_001), [], "another device leaving is not reported")
        XCTAssertEqual(m.phase, .disabled(vf: 7))
        XCTAssertEqual(m.handle(.vfGone(7), now: 100_002), [.reported(vf: nil)])
        XCTAssertEqual(m.phase, .disabled(vf: nil))
        for i in 0..<10 {
            XCTAssertEqual(m.handle(.vfPresent(Int32(20 + i)), now: 200_000 + UInt64(i)), [.reported(vf: Int32(20 + i))])
            XCTAssertEqual(m.handle(.vfGone(Int32(20 + i)), now: 200_000 + UInt64(i)), [.reported(vf: nil)])
        }
        XCTAssertEqual(m.phase, .disabled(vf: nil), "flapping is irrelevant when off")
    }

    func testTransparentOffOverridesAnAdoptedPhase() {
        let m = machine(transparent: false, adopted: .active(vf: 7))
        XCTAssertEqual(m.phase, .disabled(vf: 7))
    }

    // MARK: - B19 adoption

    func testAdoptedActivePairIsKeptAsIs() {
        var m = machine(adopted: .active(vf: 7))
        XCTAssertEqual(m.phase, .active(vf: 7))
        XCTAssertEqual(m.handle(.vfPresent(7), now: 0), [], "the VF seen at start is the joined one: no rejoin")
        XCTAssertEqual(m.handle(.tick, now: 10_000), [])
        XCTAssertEqual(m.handle(.vfGone(7), now: 10_001), [changed("active", "idle"), .leave(7)])
    }

    func testPhaseNamesAreDumpsStateNames() {
        XCTAssertEqual(PairPhase.idle.name, "idle")
        XCTAssertEqual(PairPhase.settling(vf: 1, deadline: 0).name, "settling")
        XCTAssertEqual(PairPhase.active(vf: 1).name, "active")
        XCTAssertEqual(PairPhase.heldDown(vf: nil, deadline: 0).name, "held-down")
        XCTAssertEqual(PairPhase.disabled(vf: nil).name, "disabled")
        XCTAssertNil(PairPhase.idle.vf)
        XCTAssertEqual(PairPhase.heldDown(vf: 3, deadline: 0).vf, 3)
    }
}
