import CHnxdpShim
@testable import HnxdpCore
import XCTest

/// What a binary does with the pins it finds (`PinCompatibility.decide`), and the
/// pinned meta's bytes (`PinMeta`), without a kernel.
final class PinVersionTests: XCTestCase {
    let this = PinMeta(layout: 3, version: "1.4.0")

    func testNothingPinnedIsUsable() {
        let c = PinCompatibility.decide(meta: nil, datapathPinsPresent: false, this: this)
        XCTAssertEqual(c, .nothingPinned)
        XCTAssertTrue(c.usable)
        XCTAssertNil(c.refusal(directory: "/p/1", this: this))
    }

    func testSameLayoutAndVersionIsCurrent() {
        XCTAssertEqual(PinCompatibility.decide(meta: this, datapathPinsPresent: true, this: this), .current)
    }

    func testSameLayoutOtherVersionIsAdopted() {
        let older = PinMeta(layout: 3, version: "1.3.9")
        let c = PinCompatibility.decide(meta: older, datapathPinsPresent: true, this: this)
        XCTAssertEqual(c, .otherVersion(older))
        XCTAssertTrue(c.usable)
        XCTAssertNil(c.refusal(directory: "/p/1", this: this))
    }

    func testOtherLayoutIsRefusedWithBothVersionsAndTheWayOut() throws {
        for other in [PinMeta(layout: 2, version: "1.2.0"), PinMeta(layout: 4, version: "2.0.0"), PinMeta(layout: 4, version: "1.4.0")] {
            let c = PinCompatibility.decide(meta: other, datapathPinsPresent: true, this: this)
            XCTAssertEqual(c, .otherLayout(other))
            XCTAssertFalse(c.usable)
            XCTAssertFalse(c.readableForUndo, "another layout's maps are never read")
            let line = try XCTUnwrap(c.refusal(directory: "/p/1", this: this))
            XCTAssertFalse(line.contains("\n"))
            XCTAssertTrue(line.contains("hnxdp \(other.version) (pin layout \(other.layout))"), line)
            XCTAssertTrue(line.contains("hnxdp 1.4.0 (pin layout 3)"), line)
            XCTAssertTrue(line.contains("`hnxdp migrate`"), line)
            XCTAssertTrue(line.contains("/p/1"), line)
        }
    }

    func testPinsWithoutMetaWereMadeBeforeVersioning() throws {
        let c = PinCompatibility.decide(meta: nil, datapathPinsPresent: true, this: this)
        XCTAssertEqual(c, .unversioned)
        XCTAssertFalse(c.usable)
        XCTAssertTrue(c.readableForUndo, "their maps are pin layout 1's: detach --all and migrate read them")
        let line = try XCTUnwrap(c.refusal(directory: "/p/1", this: this))
        XCTAssertTrue(line.contains("before pin versioning"), line)
        XCTAssertTrue(line.contains("`hnxdp migrate`"), line)
    }

    func testMetaValueRoundTripsAndAnyLongerLayoutParses() throws {
        let value = PinMeta(layout: 7, version: "0.9.1-rc.2").value
        let bytes = withUnsafeBytes(of: value) { Array($0) }
        XCTAssertEqual(bytes.count, 32)
        XCTAssertEqual(PinMeta.parse(bytes), PinMeta(layout: 7, version: "0.9.1-rc.2"))
        // A later layout may make the value longer; the first two fields stay.
        XCTAssertEqual(PinMeta.parse(bytes + [UInt8](repeating: 0xff, count: 32)), PinMeta(layout: 7, version: "0.9.1-rc.2"))
        XCTAssertNil(PinMeta.parse([1, 0, 0]))
        // A version longer than the field is cut, NUL-terminated.
        let long = PinMeta(layout: 1, version: String(repeating: "9", count: 40)).value
        XCTAssertEqual(PinMeta.parse(withUnsafeBytes(of: long) { Array($0) })?.version.count, Int(HNXDP_META_VERSION_LEN) - 1)
    }

    func testThisBuildWritesItsOwnLayoutAndVersion() {
        XCTAssertEqual(PinMeta.current, PinMeta(layout: UInt32(HNXDP_PIN_LAYOUT), version: HnxdpVersion.string))
    }
}
