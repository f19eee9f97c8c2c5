import CHnxdpShim
import Glibc
@testable import HnxdpCore
import XCTest

/// The control plane's decisions (adoption, publish rules, MTU rollback,
/// multicast fallback, flap damping) through the reconciler and the joined-pair
/// policy, wired to fakes (ControlFakes.swift): no privileges, no kernel. The
/// assertions are on the sequence of operations the fakes were asked for.
/// The same paths on real devices: integration/test_70_, test_72_, test_73_, test_76_, test_79_*.py.
final class ControlPlaneFakeTests: XCTestCase {
    let mcastA: [UInt8] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]
    let mcastB: [UInt8] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01]

    /// hn0 managed, vf0 (ifindex 7) arrived and joined after the settle delay.
    func joinedWorld() throws -> FakeWorld {
        let w = FakeWorld()
        w.addSynthetic()
        try w.reconciler.resync(reason: "start")
        w.addVF(7, name: "vf0")
        try w.notify(new: 7)
        try w.advance(500)
        XCTAssertEqual(w.phase(), .active(vf: 7))
        return w
    }

    // MARK: - Adoption (B19, B21)

    func testAdoptsActivePairWithItsVFStillThere() throws {
        let w = FakeWorld()
        w.addSynthetic()
        w.addVF(7, name: "vf0")
        w.store.pin(synthetic: 2, vf: 7, state: .active)
        try w.reconciler.resync(reason: "start")
        // Kept as it is: links repaired at most, no join, no leave.
        XCTAssertEqual(w.log.entries, ["reattach hn0 vf0"])
        XCTAssertEqual(w.phase(), .active(vf: 7))
        XCTAssertEqual(w.store.state(2), .active)
        XCTAssertTrue(w.lines.contains("adopted: state active, VF vf0(7), links reused"))
        // It is then followed like any joined pair: its VF leaving is undone.
        try w.notify(deleted: 7)
        XCTAssertEqual(w.log.filtered("join", "leave"), ["leave hn0 departed"])
        XCTAssertEqual(w.phase(), .idle)
        XCTAssertEqual(w.store.state(2), .idle)
        XCTAssertEqual(w.store.pairs[2]?.vf_ifindex, 0)
    }

    func testAdoptedPairWhoseVFLeftWhileStoppedIsUndoneThenIdle() throws {
        let w = FakeWorld()
        w.addSynthetic()
        w.store.pin(synthetic: 2, vf: 7, state: .active)
        try w.reconciler.resync(reason: "start")
        XCTAssertEqual(w.log.entries, ["leave hn0 departed-while-stopped", "install hn0"])
        XCTAssertEqual(w.phase(), .idle)
        XCTAssertEqual(w.store.state(2), .idle)
        XCTAssertEqual(w.store.pairs[2]?.vf_ifindex, 0)
        XCTAssertTrue(w.lines.contains("adopted: VF ifindex 7 left meanwhile, restored the synthetic, state idle"))
    }

    func testAdoptsRenamedSyntheticNotNamedBySynthetic() throws {
        let w = FakeWorld()
        w.settings.synthetics = ["hn0"]
        w.addSynthetic(2, name: "eth5")        // hn0, renamed while no run was there
        w.addSynthetic(3, name: "hn1")         // eligible, but neither named nor pinned
        w.store.pin(synthetic: 2, state: .idle)
        try w.reconciler.resync(reason: "start")
        XCTAssertEqual(Set(w.reconciler.machines.keys), [2])
        XCTAssertTrue(w.lines.contains("adopting pinned pair of eth5(2), not named by --synthetic"))
        // Its VF is followed like the others.
        w.addVF(7, name: "vf0")
        try w.notify(new: 7)
        try w.advance(500)
        XCTAssertEqual(w.log.filtered("join"), ["join eth5 vf0 joined"])
        XCTAssertEqual(w.store.state(2), .active)
    }

    func testInterruptedJoinsAndLeavesAreFinishedBeforeAdoption() throws {
        let w = FakeWorld()
        w.addSynthetic()
        w.addVF(7, name: "vf0")
        w.store.records = [2]
        w.store.pin(synthetic: 2, state: .idle)
        try w.reconciler.resync(reason: "start")
        XCTAssertEqual(w.log.entries.first, "finish hn0")
        XCTAssertEqual(w.log.entries.dropFirst().first, "install hn0")
        XCTAssertEqual(w.phase(), .settling(vf: 7, deadline: w.clock.milliseconds + 500))
    }

    // MARK: - Publish rules

    func testPairEntryMirrorsTheMachine() throws {
        let w = FakeWorld()
        w.addSynthetic()
        try w.reconciler.resync(reason: "start")
        XCTAssertEqual(w.log.entries, ["install hn0"])
        XCTAssertEqual(w.store.state(2), .idle)
        w.addVF(7, name: "vf0")
        try w.notify(new: 7)
        XCTAssertEqual(w.store.state(2), .settling)
        try w.advance(450)
        XCTAssertEqual(w.log.filtered("join"), [])
        try w.advance(50)
        XCTAssertEqual(w.log.filtered("join"), ["join hn0 vf0 joined"])
        XCTAssertEqual(w.store.state(2), .active)
        XCTAssertEqual(w.store.pairs[2]?.vf_ifindex, 7)
        // A VF that leaves while settling is never joined.
        try w.notify(deleted: 7)
        XCTAssertEqual(w.store.state(2), .idle)
        w.addVF(8, name: "vf1")
        try w.notify(new: 8)
        try w.notify(deleted: 8)
        try w.advance(1000)
        XCTAssertEqual(w.log.filtered("join", "leave"), ["join hn0 vf0 joined", "leave hn0 departed"])
        XCTAssertEqual(w.store.state(2), .idle)
    }

    func testNeverPublishesNonActiveWhileAVFIsJoinedInTheMap() throws {
        let w = FakeWorld()
        w.addSynthetic()
        w.store.pin(synthetic: 2, vf: 7, state: .active)
        w.reconciler.links = [2: w.links.table[2]!]
        w.reconciler.machines[2] = PairStateMachine(timing: w.settings.timing)
        try w.reconciler.publish(synIndex: 2)
        XCTAssertEqual(w.store.state(2), .active)
        // Without a VF in the entry, the machine's phase is written.
        w.store.pairs[2]?.vf_ifindex = 0
        try w.reconciler.publish(synIndex: 2)
        XCTAssertEqual(w.store.state(2), .idle)
    }

    func testTransparentOffReportsOnlyAndChangesNoDevice() throws {
        let w = FakeWorld()
        w.settings.transparent = false
        w.addSynthetic()
        try w.reconciler.resync(reason: "start")
        w.addVF(7, name: "vf0")
        try w.notify(new: 7)
        try w.advance(3000)
        XCTAssertEqual(w.log.entries, [], "transparent off: no install, join or link change")
        XCTAssertEqual(w.store.state(2), .disabled)
        XCTAssertEqual(w.store.pairs[2]?.vf_ifindex, 7)
        try w.notify(deleted: 7)
        XCTAssertEqual(w.store.pairs[2]?.vf_ifindex, 0)
        XCTAssertEqual(w.log.entries, [])
    }

    // MARK: - Joined-pair policy (B7, B11, B12)

    func testMTURefusedByTheVFIsPutBackOnTheSynthetic() throws {
        let w = try joinedWorld()
        w.log.entries = []
        w.links.refusedMTU["vf0"] = [9000]
        w.links.table[2]?.mtu = 9000               // `ip link set hn0 mtu 9000`
        try w.notify(new: 2)
        XCTAssertEqual(w.log.filtered("setLink"), ["setLink vf0 \(LinkChange(mtu: 9000)) refused",
                                                  "setLink hn0 \(LinkChange(mtu: 1500))"])
        XCTAssertEqual(w.links.table[2]?.mtu, 1500)
        XCTAssertEqual(w.links.table[7]?.mtu, 1500)
        XCTAssertEqual(w.store.pairs[2]?.mtu, 1500)
        XCTAssertTrue(w.lines.contains("VF vf0 refused MTU 9000"))
        // An MTU the VF takes is passed down and becomes the pair's.
        w.log.entries = []
        w.links.table[2]?.mtu = 4000
        try w.notify(new: 2)
        XCTAssertEqual(w.log.filtered("setLink"), ["setLink vf0 \(LinkChange(mtu: 4000))"])
        XCTAssertEqual(w.links.table[7]?.mtu, 4000)
        XCTAssertEqual(w.store.pairs[2]?.mtu, 4000)
    }

    func testSyntheticFlagsAreFollowedAndADirectlyChangedVFIsPutBack() throws {
        let w = try joinedWorld()
        w.log.entries = []
        w.links.table[2]!.flags |= LinkInfo.Flag.promisc
        try w.notify(new: 2)
        XCTAssertEqual(w.log.filtered("setLink"), ["setLink vf0 \(LinkChange(promisc: true))"])
        // vf0 changed directly (`ip link set vf0 mtu 1400 promisc off`): hnxdp's settings go back.
        w.log.entries = []
        w.links.table[7]!.mtu = 1400
        w.links.table[7]!.flags &= ~LinkInfo.Flag.promisc
        try w.notify(new: 7)
        XCTAssertEqual(w.log.filtered("setLink"), ["setLink vf0 \(LinkChange(mtu: 1500, promisc: true))"])
        XCTAssertEqual(w.phase(), .active(vf: 7))
    }

    func testMulticastListIsCopiedAndOnlyHnxdpsAddressesRemoved() throws {
        let w = try joinedWorld()
        w.log.entries = []
        let vfOwn: [UInt8] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]
        w.links.multicast = [2: [mcastA, mcastB], 7: [vfOwn]]
        try w.reconciler.syncMulticast(synIndex: 2, lists: w.links.multicastLists())
        XCTAssertEqual(w.log.entries, ["multicast vf0 +\(LinkInfo.formatMAC(mcastA))",
                                       "multicast vf0 +\(LinkInfo.formatMAC(mcastB))"])
        XCTAssertGreaterThan(w.store.recordUpdates, 0, "what is added is recorded for a leave after a crash")
        w.log.entries = []
        w.links.multicast[2] = [mcastB]
        try w.reconciler.syncMulticast(synIndex: 2, lists: w.links.multicastLists())
        XCTAssertEqual(w.log.entries, ["multicast vf0 -\(LinkInfo.formatMAC(mcastA))"])
        XCTAssertEqual(w.links.multicast[7], [mcastB, vfOwn])
    }

    func testVFThatTakesNoMulticastAddressGetsAllMulticast() throws {
        let w = FakeWorld()
        w.addSynthetic()
        try w.reconciler.resync(reason: "start")
        w.addVF(7, name: "vf0")
        w.links.refusesMulticast = ["vf0"]
        w.links.multicast = [2: [mcastA, mcastB]]
        try w.notify(new: 7)
        try w.advance(500)
        // Copied right after the join: the first refusal turns all-multicast on, nothing more is tried.
        XCTAssertEqual(w.log.filtered("join", "multicast", "setLink"),
                       ["join hn0 vf0 joined",
                        "multicast vf0 +\(LinkInfo.formatMAC(mcastA)) refused",
                        "setLink vf0 \(LinkChange(allmulti: true))"])
        XCTAssertTrue(w.links.table[7]!.isAllMulticast)
        XCTAssertTrue(w.lines.contains("all-multicast on instead"))
    }

    // MARK: - Flap damping end to end (B16)

    func testFlappingVFIsHeldDownThenJoinedAfterQuiet() throws {
        let w = FakeWorld(timing: PairTiming(settleMs: 500, flapThreshold: 3, holdDownMs: 5000))
        w.addSynthetic()
        try w.reconciler.resync(reason: "start")
        var ifindex: Int32 = 10
        // Three arrivals, each joined after the settle delay and gone 100 ms later.
        for _ in 0..<3 {
            w.addVF(ifindex, name: "vf0")
            try w.notify(new: ifindex)
            try w.advance(500)
            try w.advance(100)
            try w.notify(deleted: ifindex)
            ifindex += 1
        }
        XCTAssertEqual(w.log.filtered("join", "leave"),
                       ["join hn0 vf0 joined", "leave hn0 departed",
                        "join hn0 vf0 joined", "leave hn0 departed",
                        "join hn0 vf0 joined", "leave hn0 held-down"])
        guard case .heldDown(nil, _) = w.phase() else { return XCTFail("not held down: \(String(describing: w.phase()))") }
        XCTAssertEqual(w.store.state(2), .heldDown)
        // Back during the hold-down, gone again before it ends: never joined.
        w.addVF(ifindex, name: "vf0")
        try w.notify(new: ifindex)
        try w.advance(4000)
        try w.notify(deleted: ifindex)
        ifindex += 1
        XCTAssertEqual(w.log.filtered("join").count, 3)
        // Back, and quiet: joined once it stayed for the whole hold-down, not before.
        w.addVF(ifindex, name: "vf0")
        try w.notify(new: ifindex)
        try w.advance(4950)
        XCTAssertEqual(w.log.filtered("join").count, 3)
        XCTAssertEqual(w.store.state(2), .heldDown)
        try w.advance(50)
        XCTAssertEqual(w.log.filtered("join", "leave").last, "join hn0 vf0 hold-down-ended")
        XCTAssertEqual(w.phase(), .active(vf: ifindex))
        XCTAssertEqual(w.store.state(2), .active)
    }

    func testFailedJoinIsRetriedAfterTheHoldDown() throws {
        let w = FakeWorld()
        w.addSynthetic()
        try w.reconciler.resync(reason: "start")
        w.addVF(7, name: "vf0")
        w.lifecycle.failingJoins = ["vf0"]
        try w.notify(new: 7)
        try w.advance(500)
        XCTAssertEqual(w.store.state(2), .heldDown)
        w.lifecycle.failingJoins = []
        try w.advance(4950)
        XCTAssertEqual(w.log.filtered("join"), ["join hn0 vf0 joined"])
        try w.advance(50)
        XCTAssertEqual(w.log.filtered("join"), ["join hn0 vf0 joined", "join hn0 vf0 hold-down-ended"])
        XCTAssertEqual(w.phase(), .active(vf: 7))
    }

    // MARK: - Resync and VF choice

    func testResyncAfterAnOverrunUndoesAVFThatLeftUnnoticed() throws {
        let w = try joinedWorld()
        w.log.entries = []
        // The RTM_DELLINK was lost (ENOBUFS): the loop resynchronises.
        w.links.table[7] = nil
        try w.reconciler.resync(reason: "overrun")
        // A departure like any other: not re-adopted as if no run had been there
        // ("departed-while-stopped"), and counted for flap damping.
        XCTAssertEqual(w.log.filtered("join", "leave", "install"), ["leave hn0 departed"])
        XCTAssertEqual(w.phase(), .idle)
        XCTAssertEqual(w.reconciler.machines[2]?.departures.count, 1)
        XCTAssertEqual(w.store.state(2), .idle)
        // A VF that arrived unnoticed is found the same way.
        w.addVF(8, name: "vf1")
        try w.reconciler.resync(reason: "overrun")
        try w.advance(500)
        XCTAssertEqual(w.log.filtered("join", "leave"), ["leave hn0 departed", "join hn0 vf1 joined"])
    }

    func testTiedVFCandidatesJoinNothingUntilOneGoes() throws {
        let w = FakeWorld()
        w.addSynthetic()
        w.addVF(7, name: "vf0")
        w.addVF(8, name: "vf1")
        try w.reconciler.resync(reason: "start")
        try w.notify(new: 8)                   // a change notification of one of them
        try w.advance(1000)
        XCTAssertEqual(w.log.filtered("join"), [], "two PCI functions with hn0's MAC: neither is joined")
        XCTAssertEqual(w.lines.lines.filter { $0.contains("not joining any VF") }.count, 1, "the tie is logged once")
        try w.notify(deleted: 7)
        try w.advance(500)
        XCTAssertEqual(w.log.filtered("join"), ["join hn0 vf1 joined"])
    }

    func testSecondVFWithTheMACWhileSettlingKeepsTheFirstAndSaysSo() throws {
        let w = FakeWorld()
        w.addSynthetic()
        try w.reconciler.resync(reason: "start")
        w.addVF(7, name: "vf0")
        try w.notify(new: 7)
        try w.advance(100)                     // settling on vf0
        w.addVF(8, name: "vf1")
        try w.notify(new: 8)
        try w.notify(new: 8)                   // a change of vf1: not said again
        try w.advance(1000)
        XCTAssertEqual(w.log.filtered("join"), ["join hn0 vf0 joined"])
        XCTAssertEqual(w.phase(), .active(vf: 7))
        XCTAssertFalse(w.lines.lines.contains { $0.contains("not joining any VF") }, "vf0 is joined: no tie")
        XCTAssertEqual(w.lines.lines.filter { $0.contains("vf1(8) also has hn0's MAC: the pair keeps vf0(7)") }.count, 1)
        // vf0 leaves: vf1 is the only candidate and is joined.
        try w.notify(deleted: 7)
        try w.advance(1000)
        XCTAssertEqual(w.log.filtered("join"), ["join hn0 vf0 joined", "join hn0 vf1 joined"])
    }

    // MARK: - Synthetic removed

    func testRemovedSyntheticIsLeftAndForgotten() throws {
        let w = try joinedWorld()
        w.log.entries = []
        try w.notify(deleted: 2)
        XCTAssertEqual(w.log.entries, ["leave ifindex 2 synthetic-removed", "uninstall ifindex 2"])
        XCTAssertNil(w.store.pairs[2])
        XCTAssertNil(w.phase())
    }
}
