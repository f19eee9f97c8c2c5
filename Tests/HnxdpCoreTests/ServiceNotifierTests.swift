import Glibc
@testable import HnxdpCore
import XCTest

/// The sd_notify messages of `hnxdp run` (issue 12): formatting, NOTIFY_SOCKET
/// addresses, the watchdog interval, and one datagram through a real socket.
final class ServiceNotifierTests: XCTestCase {
    func testMessages() {
        XCTAssertEqual(ServiceNotifier.message(ServiceNotifier.ready()), "READY=1")
        XCTAssertEqual(ServiceNotifier.message(ServiceNotifier.ready(status: "managing 1 synthetic(s), 1 pair(s) joined")),
                       "READY=1\nSTATUS=managing 1 synthetic(s), 1 pair(s) joined")
        XCTAssertEqual(ServiceNotifier.message(ServiceNotifier.reloading(monotonicUsec: 123_456_789)),
                       "RELOADING=1\nMONOTONIC_USEC=123456789")
        XCTAssertEqual(ServiceNotifier.message(ServiceNotifier.stopping(status: "stopping on signal 15")),
                       "STOPPING=1\nSTATUS=stopping on signal 15")
        XCTAssertEqual(ServiceNotifier.message(ServiceNotifier.watchdog), "WATCHDOG=1")
    }

    func testNewlineInValueCannotStartAField() {
        XCTAssertEqual(ServiceNotifier.message([("STATUS", "a\nREADY=1\r\nb")]), "STATUS=a READY=1 b")
    }

    func testAddresses() {
        XCTAssertEqual(ServiceNotifier.address("/run/systemd/notify"), Array("/run/systemd/notify".utf8))
        XCTAssertEqual(ServiceNotifier.address("@hnxdp/notify"), [0] + Array("hnxdp/notify".utf8))
        XCTAssertNil(ServiceNotifier.address(""))
        XCTAssertNil(ServiceNotifier.address("@"))
        XCTAssertNil(ServiceNotifier.address("relative/path"))
        XCTAssertNil(ServiceNotifier.address("vsock:2:1234"))
        XCTAssertNil(ServiceNotifier.address("/" + String(repeating: "x", count: 107)))
        XCTAssertNotNil(ServiceNotifier.address("/" + String(repeating: "x", count: 106)))
    }

    func testWatchdogInterval() {
        XCTAssertEqual(ServiceNotifier.watchdogInterval(usec: "2000000", pid: nil, ownPid: 42), 1000)
        XCTAssertEqual(ServiceNotifier.watchdogInterval(usec: "30000000", pid: "42", ownPid: 42), 15000)
        XCTAssertNil(ServiceNotifier.watchdogInterval(usec: "30000000", pid: "43", ownPid: 42), "meant for another process")
        XCTAssertNil(ServiceNotifier.watchdogInterval(usec: nil, pid: nil, ownPid: 42))
        XCTAssertNil(ServiceNotifier.watchdogInterval(usec: "0", pid: nil, ownPid: 42))
        XCTAssertNil(ServiceNotifier.watchdogInterval(usec: "soon", pid: nil, ownPid: 42))
        XCTAssertEqual(ServiceNotifier.watchdogInterval(usec: "1", pid: nil, ownPid: 42), 1)
    }

    func testDatagramsReachAPathSocket() throws {
        let path = "/tmp/hnxdp-notify-test-\(getpid())"
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { unlink(path) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let bound = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        var warnings: [String] = []
        let notifier = try ServiceNotifier(socketPath: path, watchdogIntervalMs: 1000, warn: { warnings.append($0) })
        XCTAssertTrue(notifier.send(ServiceNotifier.ready(status: "ok")))
        notifier.watchdogTick(nowMs: 5000)
        notifier.watchdogTick(nowMs: 5500)  // not due: nothing sent
        notifier.watchdogTick(nowMs: 6000)
        XCTAssertEqual(notifier.watchdogDeadline, 7000)
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
        }
        XCTAssertEqual(receive(), "READY=1\nSTATUS=ok")
        XCTAssertEqual(receive(), "WATCHDOG=1")
        XCTAssertEqual(receive(), "WATCHDOG=1")
        XCTAssertNil(receive())
        XCTAssertEqual(warnings, [])
        // Nobody listening any more: one warning, then silence.
        close(fd)
        unlink(path)
        XCTAssertFalse(notifier.send(ServiceNotifier.stopping()))
        XCTAssertFalse(notifier.send(ServiceNotifier.stopping()))
        XCTAssertEqual(warnings.count, 1)
    }
}
