import Foundation
@testable import HnxdpCore
import Logging
import XCTest

/// Log lines: the timestamped form and the journald (sd-daemon priority) form.
final class LogFormatTests: XCTestCase {
    func testPriorities() {
        XCTAssertEqual(LogFormat.priority(.trace), 7)
        XCTAssertEqual(LogFormat.priority(.debug), 7)
        XCTAssertEqual(LogFormat.priority(.info), 6)
        XCTAssertEqual(LogFormat.priority(.notice), 5)
        XCTAssertEqual(LogFormat.priority(.warning), 4)
        XCTAssertEqual(LogFormat.priority(.error), 3)
        XCTAssertEqual(LogFormat.priority(.critical), 2)
    }

    func testTimestampedLineKeepsStreamLogHandlerLayout() {
        let line = LogFormat.line(level: .info, label: "hnxdp.run", message: "VF vf0(7) joined",
                                  metadata: ["pair": "hn0(5)"], source: "HnxdpCore", journald: false,
                                  timestamp: "2026-05-01T12:00:00.123+0000")
        XCTAssertEqual(line, "2026-05-01T12:00:00.123+0000 info hnxdp.run: pair=hn0(5) [HnxdpCore] VF vf0(7) joined\n")
    }

    func testJournaldLineHasPriorityAndNoTimestamp() {
        let warning = LogFormat.line(level: .warning, label: "hnxdp.run", message: "putting back mtu 1500",
                                     metadata: ["pair": "hn0(5)", "a": "1"], source: "HnxdpCore", journald: true,
                                     timestamp: "ignored")
        XCTAssertEqual(warning, "<4>warning hnxdp.run: a=1 pair=hn0(5) [HnxdpCore] putting back mtu 1500\n")
        let info = LogFormat.line(level: .info, label: "hnxdp.run", message: "control plane running", metadata: [:],
                                  source: "HnxdpCore", journald: true, timestamp: "")
        XCTAssertEqual(info, "<6>info hnxdp.run: [HnxdpCore] control plane running\n")
        let error = LogFormat.line(level: .error, label: "", message: "two\nlines", metadata: [:],
                                   source: "s", journald: true, timestamp: "")
        XCTAssertEqual(error, "<3>error: [s] two | lines\n")
    }

    func testJournalStreamMatch() {
        XCTAssertTrue(LogFormat.journalStreamMatches("64769:1234", device: 64769, inode: 1234))
        XCTAssertFalse(LogFormat.journalStreamMatches("64769:1235", device: 64769, inode: 1234))
        XCTAssertFalse(LogFormat.journalStreamMatches(nil, device: 1, inode: 1))
        XCTAssertFalse(LogFormat.journalStreamMatches("", device: 0, inode: 0))
        XCTAssertFalse(LogFormat.journalStreamMatches("1:2:3", device: 1, inode: 2))
        XCTAssertFalse(LogFormat.journalStreamMatches("x:2", device: 1, inode: 2))
    }

    func testTimestampHasMilliseconds() {
        let t = LogFormat.timestamp()
        // 2026-05-01T12:00:00.123+0000
        XCTAssertNotNil(t.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$"#, options: .regularExpression), t)
    }

    func testISO8601UTCMilliseconds() {
        XCTAssertEqual(iso8601UTC(nanosecondsSinceEpoch: 0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(iso8601UTC(nanosecondsSinceEpoch: 1_700_000_000_123_456_789), "2023-11-14T22:13:20.123Z")
        XCTAssertEqual(iso8601UTC(nanosecondsSinceEpoch: 1_700_000_000_005_999_999), "2023-11-14T22:13:20.005Z")
        XCTAssertEqual(iso8601UTC(nanosecondsSinceEpoch: 1_700_000_000_999_999_999), "2023-11-14T22:13:20.999Z")
        XCTAssertEqual(iso8601UTC(nanosecondsSinceEpoch: 1_700_000_000_040_000_000), "2023-11-14T22:13:20.040Z")
    }
}
