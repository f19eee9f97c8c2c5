@testable import HnxdpCore
import Glibc
import XCTest

/// Error lines: errno and libbpf error names, and the object-file checks of
/// `xdp attach` (no kernel needed).
final class ErrorsTests: XCTestCase {
    func testLibbpfErrorCodesHaveNames() {
        XCTAssertEqual(errnoName(4000), "LIBBPF_ERRNO__LIBELF")
        XCTAssertEqual(errnoName(4001), "LIBBPF_ERRNO__FORMAT")
        XCTAssertEqual(errnoName(4007), "LIBBPF_ERRNO__VERIFY")
        XCTAssertEqual(errnoName(4013), "LIBBPF_ERRNO__NLPARSE")
        XCTAssertEqual(errnoName(4014), "errno 4014")
        XCTAssertEqual(errnoName(EPERM), "EPERM")
    }

    func testSystemErrorUsesLibbpfText() {
        let e = HnxdpError.system("open BPF object x.o", errno: 4001)
        XCTAssertEqual(e.message, "open BPF object x.o: LIBBPF_ERRNO__FORMAT (BPF object format invalid)")
        XCTAssertEqual(e.kind, .runtime)
        XCTAssertEqual(HnxdpError.system("op", errno: ENOENT).message, "op: ENOENT (No such file or directory)")
        XCTAssertEqual(HnxdpError.system("op", errno: EPERM).kind, .privilege)
    }

    func testObjectFileChecks() throws {
        let dir = NSTemporaryDirectory() + "hnxdp-errors-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func refused(_ path: String, _ text: String, line: UInt = #line) {
            XCTAssertThrowsError(try UserXDPProgram.checkObjectFile(path), line: line) { error in
                guard let e = error as? HnxdpError else { return XCTFail("not an HnxdpError: \(error)", line: line) }
                XCTAssertEqual(e.kind, .badInput, line: line)
                XCTAssertTrue(e.message.contains(text), "\(e.message) lacks \(text)", line: line)
            }
        }
        func write(_ name: String, _ bytes: [UInt8]) {
            XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(bytes)))
        }
        refused(dir + "/missing.o", "not found")
        refused(dir, "is a directory")
        write("empty.o", [])
        refused(dir + "/empty.o", "is empty")
        write("text.o", Array("hello, world\n".utf8))
        refused(dir + "/text.o", "not a BPF ELF object")
        var elf = [UInt8](repeating: 0, count: 64)
        elf[0...3] = [0x7F, 0x45, 0x4C, 0x46]
        elf[5] = 1 // little-endian
        elf[18] = 62 // EM_X86_64
        write("x86.o", elf)
        refused(dir + "/x86.o", "another machine")
        elf[18] = 247 // EM_BPF
        write("bpf.o", elf)
        XCTAssertNoThrow(try UserXDPProgram.checkObjectFile(dir + "/bpf.o"))
    }
}
