import HnxdpCore
import XCTest

/// `hnxdp xsk reflect`'s header swap, on hand-built frames.
final class XSKFrameReflectionTests: XCTestCase {
    let a: [UInt8] = [0x02, 0, 0, 0, 0, 0x0a], b: [UInt8] = [0x02, 0, 0, 0, 0, 0x0b]

    func udp4() -> [UInt8] {
        var f = b + a + [0x08, 0x00]                                      // dst b, src a
        f += [0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0x12, 0x34]             // IPv4, UDP, csum 0x1234
        f += [198, 18, 0, 2] + [198, 18, 0, 1]                            // src, dst
        f += [0x30, 0x39, 0x17, 0x70, 0, 8, 0xab, 0xcd]                   // 12345 -> 6000, csum 0xabcd
        return f
    }

    func swap(_ f: inout [UInt8]) -> FrameReflection.Result {
        f.withUnsafeMutableBytes { FrameReflection.swap($0) }
    }

    func testIPv4UDP() {
        var f = udp4()
        XCTAssertEqual(swap(&f), [.ethernet, .ip, .udp])
        XCTAssertEqual(Array(f[0..<6]), a)
        XCTAssertEqual(Array(f[6..<12]), b)
        XCTAssertEqual(Array(f[26..<30]), [198, 18, 0, 1])
        XCTAssertEqual(Array(f[30..<34]), [198, 18, 0, 2])
        XCTAssertEqual(Array(f[34..<38]), [0x17, 0x70, 0x30, 0x39])
        XCTAssertEqual(Array(f[24..<26]), [0x12, 0x34], "IPv4 checksum unchanged by the swap")
        XCTAssertEqual(Array(f[40..<42]), [0xab, 0xcd], "UDP checksum unchanged by the swap")
        var twice = f
        _ = swap(&twice)
        XCTAssertEqual(twice, udp4(), "swapping twice gives the original")
    }

    func testIPv6UDPWithVLAN() {
        var f = b + a + [0x81, 0x00, 0x00, 0x05, 0x86, 0xdd]
        f += [0x60, 0, 0, 0, 0, 8, 17, 64]
        let src: [UInt8] = [0xfd] + [UInt8](repeating: 0, count: 14) + [2]
        let dst: [UInt8] = [0xfd] + [UInt8](repeating: 0, count: 14) + [1]
        f += src + dst + [0x30, 0x39, 0x17, 0xd4, 0, 8, 0, 0]
        XCTAssertEqual(swap(&f), [.ethernet, .ip, .udp])
        XCTAssertEqual(Array(f[26..<42]), dst)
        XCTAssertEqual(Array(f[42..<58]), src)
        XCTAssertEqual(Array(f[58..<62]), [0x17, 0xd4, 0x30, 0x39])
    }

    func testShortAndOtherFrames() {
        var tiny: [UInt8] = [1, 2, 3]
        XCTAssertEqual(swap(&tiny), [])
        var arp = b + a + [0x08, 0x06] + [UInt8](repeating: 7, count: 28)
        XCTAssertEqual(swap(&arp), [.ethernet])
        var truncated = Array(udp4()[0..<30]) // IPv4 header cut short
        XCTAssertEqual(swap(&truncated), [.ethernet])
        var fragment = udp4()
        fragment[20] = 0x00; fragment[21] = 0x10 // offset != 0: no UDP header here
        XCTAssertEqual(swap(&fragment), [.ethernet, .ip])
    }
}
