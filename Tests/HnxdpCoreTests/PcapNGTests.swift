import HnxdpCore
import XCTest

/// The pcapng blocks `hnxdp capture` writes, checked byte by byte.
final class PcapNGTests: XCTestCase {
    private func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    private func le16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }

    /// (code, value) of the options from `at` up to opt_endofopt, checking padding.
    private func options(_ b: [UInt8], from at: Int, to end: Int) -> [(UInt16, [UInt8])] {
        var out: [(UInt16, [UInt8])] = []
        var i = at
        while i + 4 <= end {
            let code = le16(b, i), len = Int(le16(b, i + 2))
            if code == 0 {
                XCTAssertEqual(len, 0, "opt_endofopt has length 0")
                XCTAssertEqual(i + 4, end, "opt_endofopt is the last option")
                return out
            }
            out.append((code, Array(b[(i + 4)..<(i + 4 + len)])))
            let padded = (len + 3) & ~3
            XCTAssertTrue(b[(i + 4 + len)..<(i + 4 + padded)].allSatisfy { $0 == 0 }, "option padding is zero")
            i += 4 + padded
        }
        XCTFail("options not ended by opt_endofopt")
        return out
    }

    private func checkFraming(_ b: [UInt8], type: UInt32) {
        XCTAssertEqual(le32(b, 0), type)
        XCTAssertEqual(Int(le32(b, 4)), b.count, "leading total length")
        XCTAssertEqual(Int(le32(b, b.count - 4)), b.count, "trailing total length")
        XCTAssertEqual(b.count % 4, 0, "blocks are 32-bit aligned")
    }

    func testSectionHeaderBlock() {
        let b = PcapNG.sectionHeader(application: "hnxdp")
        checkFraming(b, type: 0x0A0D_0D0A)
        XCTAssertEqual(Array(b[8..<12]), [0x4D, 0x3C, 0x2B, 0x1A], "byte-order magic, little-endian")
        XCTAssertEqual(le16(b, 12), 1, "major version")
        XCTAssertEqual(le16(b, 14), 0, "minor version")
        XCTAssertEqual(Array(b[16..<24]), [UInt8](repeating: 0xff, count: 8), "section length -1 (streamed)")
        let opts = options(b, from: 24, to: b.count - 4)
        XCTAssertEqual(opts.count, 1)
        XCTAssertEqual(opts[0].0, 4, "shb_userappl")
        XCTAssertEqual(opts[0].1, Array("hnxdp".utf8))
        XCTAssertEqual(b.count, 12 + 16 + 4 + 8 + 4, "framing, header fields, userappl (5 bytes padded to 8), endofopt")
    }

    func testInterfaceDescriptionBlock() {
        let b = PcapNG.interfaceDescription(name: "hn0:vf-rx", description: "received on the VF", snaplen: 65000)
        checkFraming(b, type: 1)
        XCTAssertEqual(le16(b, 8), 1, "LINKTYPE_ETHERNET")
        XCTAssertEqual(le16(b, 10), 0, "reserved")
        XCTAssertEqual(le32(b, 12), 65000, "snaplen")
        let opts = options(b, from: 16, to: b.count - 4)
        XCTAssertEqual(opts.map(\.0), [2, 3, 9], "if_name, if_description, if_tsresol")
        XCTAssertEqual(String(decoding: opts[0].1, as: UTF8.self), "hn0:vf-rx")
        XCTAssertEqual(String(decoding: opts[1].1, as: UTF8.self), "received on the VF")
        XCTAssertEqual(opts[2].1, [9], "if_tsresol: 10^-9 s")
    }

    func testEnhancedPacketBlock() {
        let frame: [UInt8] = Array(0..<61) // odd length: 3 bytes of padding
        let ts: UInt64 = 1_764_000_000_123_456_789
        let b = PcapNG.enhancedPacket(interface: 2, timestampNs: ts, data: frame, originalLength: 1514,
                                      direction: .outbound, comment: "vf-tx vf0")
        checkFraming(b, type: 6)
        XCTAssertEqual(le32(b, 8), 2, "interface id")
        XCTAssertEqual(UInt64(le32(b, 12)) << 32 | UInt64(le32(b, 16)), ts, "timestamp high and low words, in ns")
        XCTAssertEqual(le32(b, 20), 61, "captured length")
        XCTAssertEqual(le32(b, 24), 1514, "original length")
        XCTAssertEqual(Array(b[28..<89]), frame)
        XCTAssertEqual(Array(b[89..<92]), [0, 0, 0], "packet data padded to 32 bits")
        let opts = options(b, from: 92, to: b.count - 4)
        XCTAssertEqual(opts.map(\.0), [2, 1], "epb_flags, opt_comment")
        XCTAssertEqual(opts[0].1, [2, 0, 0, 0], "direction: outbound")
        XCTAssertEqual(String(decoding: opts[1].1, as: UTF8.self), "vf-tx vf0")
    }

    func testEnhancedPacketWithoutOptionsAndShortOriginalLength() {
        let b = PcapNG.enhancedPacket(interface: 0, timestampNs: 5, data: [1, 2, 3, 4], originalLength: 0)
        checkFraming(b, type: 6)
        XCTAssertEqual(le32(b, 24), 4, "original length is never below the captured length")
        XCTAssertEqual(b.count, 12 + 20 + 4, "no options: no opt_endofopt either")
    }

    func testPathsAreTheContractIds() {
        XCTAssertEqual(CapturePath.allCases.map(\.id), [0, 1, 2, 3])
        XCTAssertEqual(CapturePath.allCases.map(\.name), ["vf-rx", "syn-rx", "vf-tx", "syn-tx"])
        XCTAssertEqual(CapturePath(id: 2), .vfTransmit)
        XCTAssertNil(CapturePath(id: 4))
    }

    func testFrameSummary() {
        // IPv4 ICMP echo request 198.18.0.2 -> 198.18.0.1.
        var f: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
        f += [0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1]
        f += [8, 0, 0, 0, 0, 1, 0, 1]
        f.withUnsafeBytes { XCTAssertEqual(FrameSummary.describe($0), "198.18.0.2 > 198.18.0.1 ICMP echo request") }
        [UInt8](repeating: 0, count: 10).withUnsafeBytes { XCTAssertEqual(FrameSummary.describe($0), "runt frame (10 bytes)") }
    }
}
