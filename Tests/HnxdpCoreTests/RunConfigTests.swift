import HnxdpCore
import XCTest

/// The `hnxdp run --config FILE` parser, without privileges: a valid file
/// gives the settings; every invalid line is refused with exit code 2, the
/// file, the line number and the reason, on one line.
final class RunConfigTests: XCTestCase {
    let file = "/etc/hnxdp/run.conf"

    func parse(_ text: String, into base: RunSettings = RunSettings()) throws -> RunSettings {
        try RunConfig.parse(text, file: file, into: base)
    }

    /// Asserts that `text` is refused at `line` with a message containing `reason`.
    func refused(_ text: String, line: Int, _ reason: String, file sourceFile: StaticString = #filePath, line sourceLine: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: sourceFile, line: sourceLine) { error in
            guard let e = error as? HnxdpError else {
                return XCTFail("not an HnxdpError: \(error)", file: sourceFile, line: sourceLine)
            }
            XCTAssertEqual(e.kind, .badInput, file: sourceFile, line: sourceLine)
            XCTAssertEqual(e.exitCode, 2, "invalid config is bad input", file: sourceFile, line: sourceLine)
            XCTAssertTrue(e.message.contains("invalid config \(self.file) line \(line):"),
                          "'\(e.message)' lacks the file and line \(line)", file: sourceFile, line: sourceLine)
            XCTAssertTrue(e.message.contains(reason), "'\(e.message)' lacks '\(reason)'", file: sourceFile, line: sourceLine)
            XCTAssertFalse(e.message.contains("\n"), "one line", file: sourceFile, line: sourceLine)
        }
    }

    // MARK: - valid

    func testValidFileWithEveryKey() throws {
        let text = """
        # hnxdp run settings
        synthetic = hn0

        synthetic=hn1        # no spaces around '=' is fine
        \tsettle-ms\t=\t250\t
        hold-down-ms = 1500
        flap-threshold = 4
        transparent = off
        """
        let s = try parse(text)
        XCTAssertEqual(s.synthetics, ["hn0", "hn1"], "in file order")
        XCTAssertEqual(s.timing, PairTiming(settleMs: 250, flapThreshold: 4, holdDownMs: 1500))
        XCTAssertFalse(s.transparent)
    }

    func testEmptyFileAndCommentsKeepTheDefaults() throws {
        XCTAssertEqual(try parse(""), RunSettings())
        XCTAssertEqual(try parse("\n\n# only comments\n   # indented comment\n\t\n"), RunSettings())
        let d = RunSettings()
        XCTAssertEqual(d.synthetics, [])
        XCTAssertEqual(d.timing, PairTiming(settleMs: 2000, flapThreshold: 3, holdDownMs: 5000))
        XCTAssertTrue(d.transparent)
    }

    func testMissingKeysKeepWhatWasThere() throws {
        var base = RunSettings()
        base.timing.holdDownMs = 777
        base.transparent = false
        let s = try parse("settle-ms = 10\n", into: base)
        XCTAssertEqual(s.timing.settleMs, 10)
        XCTAssertEqual(s.timing.holdDownMs, 777)
        XCTAssertFalse(s.transparent)
    }

    func testCRLFLineEndings() throws {
        let s = try parse("synthetic = hn0\r\nsettle-ms = 100\r\ntransparent = on\r\n")
        XCTAssertEqual(s.synthetics, ["hn0"])
        XCTAssertEqual(s.timing.settleMs, 100)
        XCTAssertTrue(s.transparent)
    }

    func testBoundaries() throws {
        XCTAssertEqual(try parse("settle-ms = 0").timing.settleMs, 0)
        XCTAssertEqual(try parse("settle-ms = 600000").timing.settleMs, 600_000)
        XCTAssertEqual(try parse("hold-down-ms = 0").timing.holdDownMs, 0)
        XCTAssertEqual(try parse("hold-down-ms = 3600000").timing.holdDownMs, 3_600_000)
        XCTAssertEqual(try parse("flap-threshold = 1").timing.flapThreshold, 1)
        XCTAssertEqual(try parse("flap-threshold = 1000").timing.flapThreshold, 1000)
        XCTAssertEqual(try parse("synthetic = abcdefghijklmno").synthetics, ["abcdefghijklmno"], "15 bytes is the kernel's limit")
    }

    // MARK: - invalid: each refused with its line number and reason

    func testLineWithoutEquals() {
        refused("synthetic = hn0\nsettle-ms 200\n", line: 2, "expected 'key = value', got 'settle-ms 200'")
    }

    func testKeyWithoutValue() {
        refused("\n\nsettle-ms =   # nothing\n", line: 3, "'settle-ms' has no value")
        refused("synthetic =", line: 1, "'synthetic' has no value")
    }

    func testUnknownKey() {
        refused("# c\nsettle = 200\n", line: 2, "unknown key 'settle'")
        refused("Transparent = on", line: 1, "unknown key 'Transparent'")
        refused("= on", line: 1, "unknown key ''")
    }

    func testKeyGivenTwice() {
        refused("settle-ms = 1\nhold-down-ms = 2\nsettle-ms = 3\n", line: 3, "'settle-ms' is given twice")
        refused("transparent = on\ntransparent = on\n", line: 2, "'transparent' is given twice")
    }

    func testSyntheticListedTwice() {
        refused("synthetic = hn0\nsynthetic = hn1\nsynthetic = hn0\n", line: 3, "synthetic 'hn0' is listed twice")
    }

    func testInvalidInterfaceNames() {
        refused("synthetic = abcdefghijklmnop", line: 1, "'abcdefghijklmnop' is not a valid interface name")
        refused("synthetic = hn/0", line: 1, "'hn/0' is not a valid interface name")
        refused("synthetic = hn 0", line: 1, "'hn 0' is not a valid interface name")
    }

    func testMillisecondsMustBeWholeNumbersInRange() {
        let range = "must be a whole number of milliseconds from 0 to 600000"
        refused("settle-ms = 2s", line: 1, "'settle-ms' \(range), got '2s'")
        refused("settle-ms = -1", line: 1, "'settle-ms' \(range), got '-1'")
        refused("settle-ms = 1.5", line: 1, "'settle-ms' \(range), got '1.5'")
        refused("settle-ms = 600001", line: 1, "'settle-ms' \(range), got '600001'")
        refused("hold-down-ms = 3600001", line: 1, "'hold-down-ms' must be a whole number of milliseconds from 0 to 3600000, got '3600001'")
        refused("hold-down-ms = 99999999999999999999999", line: 1, "from 0 to 3600000")
    }

    func testFlapThresholdRange() {
        refused("flap-threshold = 0", line: 1, "'flap-threshold' must be from 1 to 1000, got '0'")
        refused("flap-threshold = 1001", line: 1, "'flap-threshold' must be from 1 to 1000, got '1001'")
        refused("flap-threshold = three", line: 1, "'flap-threshold' must be from 1 to 1000, got 'three'")
    }

    func testTransparentOnOrOff() {
        refused("transparent = yes", line: 1, "'transparent' must be on or off, got 'yes'")
        refused("transparent = ON", line: 1, "'transparent' must be on or off, got 'ON'")
    }

    func testSyntheticDrivers() throws {
        let s = try parse("synthetic-driver = virtio_net\nsynthetic-driver = xen-netfront\n")
        XCTAssertEqual(s.syntheticDrivers, ["virtio_net", "xen-netfront"])
        XCTAssertEqual(s.effectiveSyntheticDrivers, ["virtio_net", "xen-netfront"])
        XCTAssertEqual(RunSettings().effectiveSyntheticDrivers, ["virtio_net"], "the default")
        refused("synthetic-driver = hv_netvsc", line: 1, "pairs its VF in the kernel itself")
        refused("synthetic-driver = net_failover", line: 1, "hnxdp never steers its devices")
        refused("synthetic-driver = virtio net", line: 1, "is not a driver name")
        refused("synthetic-driver = e1000e\nsynthetic-driver = e1000e", line: 2, "listed twice")
    }

    func testFirstBadLineIsReported() {
        // Line numbers count blank and comment lines.
        let text = """
        # header

        synthetic = hn0
        settle-ms = 10
        flap-threshold = 0
        transparent = maybe
        """
        refused(text, line: 5, "'flap-threshold' must be from 1 to 1000")
    }
}
