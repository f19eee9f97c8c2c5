@testable import HnxdpCore
import XCTest

/// `attach --pairs FILE`: what a pairs list may hold and what it is refused for.
final class PairListTests: XCTestCase {
    func testPairsCommentsAndBlankLines() throws {
        let text = """
        # synthetic  vf
        hn0 vf0
          hn1\tvf1   # second pair

        hn2 vf2\r
        """
        XCTAssertEqual(try PairNames.parseList(text, source: "pairs.txt"),
                       [PairNames(synthetic: "hn0", vf: "vf0"), PairNames(synthetic: "hn1", vf: "vf1"),
                        PairNames(synthetic: "hn2", vf: "vf2")])
    }

    func testRefusalsNameTheLine() {
        func refusal(_ text: String) -> String {
            do {
                _ = try PairNames.parseList(text, source: "p")
                return "accepted"
            } catch let e as HnxdpError {
                XCTAssertEqual(e.kind, .badInput)
                return e.message
            } catch { return "\(error)" }
        }
        XCTAssertEqual(refusal("hn0 vf0\nhn1\n"), "p line 2: expected 'SYNTHETIC VF', got 1 field")
        XCTAssertEqual(refusal("hn0 vf0 extra"), "p line 1: expected 'SYNTHETIC VF', got 3 fields")
        XCTAssertEqual(refusal("hn0 vf/0"), "p line 1: 'vf/0' is not a valid interface name")
        XCTAssertEqual(refusal("hn0 vf0\nhn1 vf0"), "p line 2: vf0 is already named on line 1")
        XCTAssertEqual(refusal("hn0 vf0\nvf0 vf1"), "p line 2: vf0 is already named on line 1")
        XCTAssertEqual(refusal("hn0 hn0"), "p line 1: hn0 is already named on line 1")
        XCTAssertEqual(refusal("# nothing\n\n"), "p names no pair")
        XCTAssertEqual(refusal(""), "p names no pair")
    }

    func testAListThatCannotBeReadIsBadInput() {
        for path in ["/nonexistent/pairs.txt", "/"] {
            XCTAssertThrowsError(try PairNames.load(from: path)) { error in
                XCTAssertEqual((error as? HnxdpError)?.kind, .badInput, "\(path): \(error)")
                XCTAssertTrue((error as? HnxdpError)?.message.hasPrefix("cannot read the pairs list: ") == true, "\(error)")
            }
        }
    }
}
