import Foundation
@testable import HnxdpCore
import XCTest

/// `hnxdp monitor`: rates, formatting, frames, JSON lines; the switch history.
final class MonitorTests: XCTestCase {
    func pair(_ ifindex: Int32 = 5, slot: UInt32 = 2, readNs: UInt64, rxPackets: UInt64, rxBytes: UInt64 = 0, drops: UInt64 = 0) -> MonitorPair {
        var stats = PairReport.Stats()
        stats.vf_rx_packets = rxPackets
        stats.vf_rx_bytes = rxBytes
        stats.drops = drops
        return MonitorPair(synthetic: ifindex, syntheticName: "hn0", vf: 7, vfName: "vf0", vfCarrier: true, slot: slot,
                           state: .active, datapath: "vf", switches: 1, stats: stats, readNs: readNs)
    }

    // MARK: rates

    func testRatesAreDeltasOverRealElapsedTime() throws {
        let a = pair(readNs: 1_000_000_000, rxPackets: 100, rxBytes: 10_000)
        // 1.25 s later, 500 packets and 50 000 bytes more.
        let b = pair(readNs: 2_250_000_000, rxPackets: 600, rxBytes: 60_000)
        let r = try XCTUnwrap(RateMeter.rates(from: a, to: b))
        XCTAssertEqual(r[\.vf_rx_packets], 400, accuracy: 1e-9)
        XCTAssertEqual(r[\.vf_rx_bytes], 40_000, accuracy: 1e-9)
        XCTAssertEqual(r[\.vf_tx_packets], 0)
        XCTAssertEqual(r[\.drops], 0)
    }

    func testNoRateWithoutAnEarlierRead() {
        XCTAssertNil(RateMeter.rates(from: nil, to: pair(readNs: 5, rxPackets: 1)))
    }

    func testCounterGoingBackwardsRestartsTheRateNeverNegative() {
        // The pair was made again: its counters restarted from 0.
        let a = pair(readNs: 1_000_000_000, rxPackets: 1_000, drops: 3)
        let b = pair(readNs: 2_000_000_000, rxPackets: 10)
        XCTAssertNil(RateMeter.rates(from: a, to: b))
        // Only one counter going back is enough.
        let c = pair(readNs: 3_000_000_000, rxPackets: 2_000, drops: 2)
        XCTAssertNil(RateMeter.rates(from: a, to: c))
        // And the next read starts over from the restarted one.
        let d = pair(readNs: 3_000_000_000, rxPackets: 110)
        XCTAssertEqual(RateMeter.rates(from: b, to: d)?[\.vf_rx_packets] ?? -1, 100, accuracy: 1e-9)
    }

    func testAnotherSlotOrNoElapsedTimeGivesNoRate() {
        let a = pair(slot: 2, readNs: 1_000_000_000, rxPackets: 10)
        XCTAssertNil(RateMeter.rates(from: a, to: pair(slot: 3, readNs: 2_000_000_000, rxPackets: 20)))
        XCTAssertNil(RateMeter.rates(from: a, to: pair(slot: 2, readNs: 1_000_000_000, rxPackets: 20)))
        XCTAssertNil(RateMeter.rates(from: a, to: pair(6, slot: 2, readNs: 2_000_000_000, rxPackets: 20)))
    }

    func testSampleRatesMatchPairsBySynthetic() {
        let old = MonitorSample(realtimeNs: 0, pairs: [pair(5, readNs: 1_000_000_000, rxPackets: 0)])
        let new = MonitorSample(realtimeNs: 0, pairs: [pair(5, readNs: 2_000_000_000, rxPackets: 50),
                                                        pair(9, slot: 4, readNs: 2_000_000_000, rxPackets: 7)])
        let rates = RateMeter.rates(from: old, to: new)
        XCTAssertEqual(rates[5]?[\.vf_rx_packets], 50)
        XCTAssertNil(rates[9] ?? nil) // a new pair: no rate yet
    }

    // MARK: formatting

    func testFormatRate() {
        XCTAssertEqual(MonitorView.formatRate(nil), "-")
        XCTAssertEqual(MonitorView.formatRate(0), "0")
        XCTAssertEqual(MonitorView.formatRate(0.04), "0")
        XCTAssertEqual(MonitorView.formatRate(7.46), "7.5")
        XCTAssertEqual(MonitorView.formatRate(400.4), "400")
        XCTAssertEqual(MonitorView.formatRate(9_999), "9999")
        XCTAssertEqual(MonitorView.formatRate(12_345), "12.3k")
        XCTAssertEqual(MonitorView.formatRate(123_456), "123k")
        XCTAssertEqual(MonitorView.formatRate(1_234_567), "1.23M")
        XCTAssertEqual(MonitorView.formatRate(4_560_000_000), "4.56G")
        XCTAssertEqual(MonitorView.formatRate(.infinity), "-")
    }

    func testLineRenderCutsToWidthAndColoursOnlyWhenAllowed() {
        let line = FrameLine([Span("hn0", .bold), Span(": "), Span("active", .good)])
        XCTAssertEqual(line.render(width: 80, color: false), "hn0: active")
        XCTAssertEqual(line.render(width: 7, color: false), "hn0: ac")
        XCTAssertEqual(line.render(width: 0, color: false), "")
        XCTAssertEqual(line.render(width: 7, color: true), "\u{1B}[1mhn0\u{1B}[0m: \u{1B}[32mac\u{1B}[0m")
    }

    func testFitKeepsRowsAndSaysWhatWasLeftOut() {
        let lines = (1...10).map { FrameLine("line \($0)") }
        XCTAssertEqual(MonitorView.fit(lines, rows: 10), lines)
        let fitted = MonitorView.fit(lines, rows: 4)
        XCTAssertEqual(fitted.count, 4)
        XCTAssertEqual(fitted[2].text, "line 3")
        XCTAssertEqual(fitted[3].text, "... 7 more lines: enlarge the window")
    }

    func testFrameShowsRatesPerPathAndTheLastSwitch() {
        var p = pair(readNs: 2_000_000_000, rxPackets: 600)
        p.lastSwitchNs = 1_764_172_800_000_000_000 // 2025-11-26T16:00:00Z
        p.switches = 3
        p.lastSwitch = SwitchEvent(timeNs: p.lastSwitchNs, direction: .toVF, reason: .joined, vf: "vf0", vfIfindex: 7, switchNumber: 3)
        let sample = MonitorSample(realtimeNs: p.lastSwitchNs + 12_000_000_000, pairs: [p])
        var r = PairRates()
        r[\.vf_rx_packets] = 400
        r[\.vf_rx_bytes] = 42_500
        let text = MonitorView.lines(sample: sample, rates: [5: r], netnsInode: 4026531840, intervalSeconds: 1, interactive: true).map(\.text)
        XCTAssertEqual(text[0], "hnxdp monitor  netns 4026531840  every 1.0 s  16:00:12 UTC  q: quit")
        XCTAssertEqual(text[2], "hn0(5) <- vf0(7) carrier up: active, datapath vf, switches 3, last 16:00:00 (12 s ago) to-vf joined")
        XCTAssertEqual(text[4].split(separator: " ").map(String.init), ["vf", "400", "42.5k", "0", "0"])
        XCTAssertEqual(text[5].split(separator: " ").map(String.init), ["synthetic", "0", "0", "0", "0"])
        // Without a rate (first frame, or counters restarted): dashes, never a number.
        let first = MonitorView.lines(sample: sample, rates: [:], netnsInode: 1, intervalSeconds: 1, interactive: false).map(\.text)
        XCTAssertEqual(first[4].split(separator: " ").map(String.init), ["vf", "-", "-", "-", "-"])
        XCTAssertFalse(first[0].contains("q: quit"))
    }

    func testFrameWithoutPairsOrWithAnError() {
        let none = MonitorView.lines(sample: MonitorSample(realtimeNs: 0, pairs: []), rates: [:], netnsInode: 1,
                                     intervalSeconds: 0.5, interactive: false).map(\.text)
        XCTAssertTrue(none.contains { $0.hasPrefix("no pairs in this network namespace") })
        let error = MonitorView.lines(sample: MonitorSample(realtimeNs: 0, pairs: [], error: "incomplete hnxdp pins"), rates: [:],
                                      netnsInode: 1, intervalSeconds: 1, interactive: false).map(\.text)
        XCTAssertEqual(error[1], "reading hnxdp's pins: incomplete hnxdp pins")
    }

    func testTerminalMode() {
        XCTAssertEqual(Terminal.mode(term: "dumb", noColor: nil), .plain)
        XCTAssertEqual(Terminal.mode(term: "xterm-256color", noColor: nil), .screen(color: true))
        XCTAssertEqual(Terminal.mode(term: "xterm", noColor: ""), .screen(color: false))
        XCTAssertEqual(Terminal.mode(term: nil, noColor: "1"), .screen(color: false))
    }

    // MARK: JSON line

    func testJSONLineHasRatesElapsedAndExplicitNulls() throws {
        let a = pair(readNs: 1_000_000_000, rxPackets: 100)
        var b = pair(readNs: 1_500_000_000, rxPackets: 300)
        b.vf = nil
        b.vfName = nil
        b.vfCarrier = nil
        let old = MonitorSample(realtimeNs: 0, pairs: [a])
        let new = MonitorSample(realtimeNs: 1_764_172_800_000_000_000, pairs: [b])
        let line = MonitorView.line(sample: new, previous: old, rates: RateMeter.rates(from: old, to: new),
                                    netnsInode: 42, intervalSeconds: 0.5)
        let text = try MonitorView.json(line)
        XCTAssertFalse(text.contains("\n"))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(object["schema_version"] as? Int, 1)
        XCTAssertEqual(object["time"] as? String, "2025-11-26T16:00:00.000Z")
        XCTAssertEqual(object["netns_inode"] as? Int, 42)
        XCTAssertNil(object["error"])
        let p = try XCTUnwrap((object["pairs"] as? [[String: Any]])?.first)
        XCTAssertTrue(p["vf"] is NSNull)
        XCTAssertTrue(p["last_switch"] is NSNull)
        XCTAssertTrue(p["last_switch_reason"] is NSNull)
        XCTAssertEqual(p["elapsed_s"] as? Double ?? 0, 0.5, accuracy: 1e-9)
        let rates = try XCTUnwrap(p["rates"] as? [String: Any])
        XCTAssertEqual(rates["vf_rx_pps"] as? Double ?? 0, 400, accuracy: 1e-9)
        XCTAssertEqual((p["stats"] as? [String: Any])?["vf_rx_packets"] as? Int, 300)

        // A pair with no earlier read: rates and elapsed_s are null.
        let lone = MonitorView.line(sample: new, previous: nil, rates: [:], netnsInode: 42, intervalSeconds: 0.5)
        let o2 = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try MonitorView.json(lone).utf8)) as? [String: Any])
        let p2 = try XCTUnwrap((o2["pairs"] as? [[String: Any]])?.first)
        XCTAssertTrue(p2["rates"] is NSNull)
        XCTAssertTrue(p2["elapsed_s"] is NSNull)
    }

    // MARK: switch history

    func event(_ n: UInt32, _ direction: SwitchDirection = .toVF, _ reason: SwitchReason = .joined) -> SwitchEvent {
        SwitchEvent(timeNs: 1_764_172_800_000_000_000 + UInt64(n) * 1_000_000, direction: direction, reason: reason,
                    vf: "vf0", vfIfindex: 7, switchNumber: n)
    }

    func testHistoryKeepsTheLastSwitchesOldestFirst() {
        var h = SwitchHistory(netnsCookie: 1, synthetic: 5)
        for n in UInt32(1)...20 { h = h.appending(event(n)) }
        XCTAssertEqual(h.switches.count, SwitchHistory.capacity)
        XCTAssertEqual(h.switches.first?.switch, 5)
        XCTAssertEqual(h.switches.last?.switch, 20)
        XCTAssertEqual(h.last(switches: 20)?.switch, 20)
        // A history that does not have the pair's last switch does not name one.
        XCTAssertNil(h.last(switches: 21))
    }

    func testSwitchEventJSON() throws {
        let e = event(2, .toSynthetic, .heldDown)
        XCTAssertEqual(e.time, "2025-11-26T16:00:00.002Z")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        XCTAssertEqual(String(decoding: try encoder.encode(e), as: UTF8.self),
                       #"{"direction":"to-synthetic","reason":"held-down","switch":2,"time":"2025-11-26T16:00:00.002Z","time_ns":1764172800002000000,"vf":"vf0","vf_ifindex":7}"#)
    }

    func testHistoryStoreRoundTripAndRemove() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hnxdp-history-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = SwitchHistoryStore(StateDirectory(root: root, netnsInode: 77))
        XCTAssertEqual(store.load(synthetic: 5).switches, [])
        for n in UInt32(1)...3 { try store.append(event(n), synthetic: 5) }
        XCTAssertEqual(store.load(synthetic: 5).switches.map(\.switch), [1, 2, 3])
        XCTAssertEqual(store.state.historyFiles(), ["\(root)/77/switches-5.json"])
        XCTAssertEqual(store.state.recordedSynthetics(), []) // not mistaken for a write-ahead record
        // An unreadable file is an empty history, not an error.
        try "garbage".write(toFile: store.state.historyPath(synthetic: 6), atomically: true, encoding: .utf8)
        XCTAssertEqual(store.load(synthetic: 6).switches, [])
        store.remove(synthetic: 5)
        XCTAssertEqual(store.load(synthetic: 5).switches, [])
    }
}
