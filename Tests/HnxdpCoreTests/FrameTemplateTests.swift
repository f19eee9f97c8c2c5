import HnxdpCore
import XCTest

/// The generator's frame builder: layout and checksums, without privileges.
final class FrameTemplateTests: XCTestCase {
    let dmac: [UInt8] = [2, 0, 0, 0, 0, 1], smac: [UInt8] = [2, 0, 0, 0, 0, 2]

    func testMinimumIPv4UDPFrame() throws {
        let t = FrameTemplate(sourceMAC: smac, destinationMAC: dmac, sourceIP: [198, 18, 0, 2], destinationIP: [198, 18, 0, 1],
                              sourcePort: 1000, destinationPort: 2000)
        let f = t.bytes()
        XCTAssertEqual(f.count, 60, "64-byte frame without its FCS")
        XCTAssertEqual(Array(f[0..<6]), dmac)
        XCTAssertEqual(Array(f[6..<12]), smac)
        XCTAssertEqual(Array(f[12..<14]), [0x08, 0x00])
        XCTAssertEqual(FrameTemplate.checksum(Array(f[14..<34])), 0, "IPv4 header checksum verifies")
        XCTAssertEqual(Int(f[16]) << 8 | Int(f[17]), 46, "IPv4 total length")
        XCTAssertEqual(f[23], 17)
        let udp = Array(f[34...])
        XCTAssertEqual(Int(udp[4]) << 8 | Int(udp[5]), 26, "UDP length")
        let pseudo: [UInt8] = [198, 18, 0, 2, 198, 18, 0, 1, 0, 17, 0, 26]
        XCTAssertEqual(FrameTemplate.checksum(pseudo + udp), 0, "UDP checksum verifies")
    }

    func testIPv6UDPFrame() throws {
        let src = try XCTUnwrap(FrameTemplate.parseIP("fd00::2")), dst = try XCTUnwrap(FrameTemplate.parseIP("fd00::1"))
        let f = FrameTemplate(sourceMAC: smac, destinationMAC: dmac, sourceIP: src, destinationIP: dst, frameSize: 128).bytes()
        XCTAssertEqual(f.count, 124)
        XCTAssertEqual(Array(f[12..<14]), [0x86, 0xdd])
        let udp = Array(f[54...])
        XCTAssertEqual(Int(f[18]) << 8 | Int(f[19]), udp.count, "payload length")
        let pseudo = src + dst + [0, 0, 0, UInt8(udp.count), 0, 0, 0, 17]
        XCTAssertEqual(FrameTemplate.checksum(pseudo + udp), 0)
    }

    func testAddressParsing() {
        XCTAssertEqual(FrameTemplate.parseIP("198.18.0.1"), [198, 18, 0, 1])
        XCTAssertNil(FrameTemplate.parseIP("198.18.0"))
        XCTAssertNil(FrameTemplate.parseIP("198.18.0.256"))
        XCTAssertEqual(FrameTemplate.parseIP("fd00::1"), [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [1])
        XCTAssertEqual(FrameTemplate.parseIP("::"), [UInt8](repeating: 0, count: 16))
        XCTAssertNil(FrameTemplate.parseIP("fd00::1::2"))
        XCTAssertNil(FrameTemplate.parseIP("fd00:1"))
    }
}
