import Glibc

/// The systemd service notification protocol (sd_notify(3), without libsystemd):
/// when `NOTIFY_SOCKET` is set, `hnxdp run` tells its service manager
///
///     READY=1                              after the start-up resync
///     RELOADING=1 + MONOTONIC_USEC=N       before a SIGHUP reload, READY=1 after it
///     STOPPING=1                           on SIGINT/SIGTERM
///     WATCHDOG=1                           every WATCHDOG_USEC/2 when the watchdog is on
///     STATUS=...                           one human line (pairs managed and joined)
///
/// Each message is one datagram of `KEY=value` lines sent over an AF_UNIX
/// SOCK_DGRAM socket to `NOTIFY_SOCKET`: a path, or an abstract address
/// written with a leading `@`. Failures are logged once and never stop the
/// control plane. No thread: the watchdog deadline is one more poll(2) timeout.
public final class ServiceNotifier {
    /// Where datagrams go, as `NOTIFY_SOCKET` spelled it.
    public let socketPath: String
    /// Interval between WATCHDOG=1 pings (half of WATCHDOG_USEC), in ms; nil: no watchdog.
    public let watchdogIntervalMs: UInt64?
    /// Next WATCHDOG=1 (monotonic ms).
    public private(set) var watchdogDeadline: UInt64 = 0
    let address: [UInt8]
    let fd: Int32
    var warned = false
    let warn: (String) -> Void

    /// From the environment: nil when `NOTIFY_SOCKET` is unset or empty (not
    /// started by a service manager). Throws when it is set but unusable.
    public static func fromEnvironment(warn: @escaping (String) -> Void) throws -> ServiceNotifier? {
        func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        guard let socket = env("NOTIFY_SOCKET"), !socket.isEmpty else { return nil }
        let interval = watchdogInterval(usec: env("WATCHDOG_USEC"), pid: env("WATCHDOG_PID"), ownPid: getpid())
        return try ServiceNotifier(socketPath: socket, watchdogIntervalMs: interval, warn: warn)
    }

    public init(socketPath: String, watchdogIntervalMs: UInt64?, warn: @escaping (String) -> Void) throws {
        guard let address = Self.address(socketPath) else {
            throw HnxdpError(.badInput, "NOTIFY_SOCKET \(quoted(socketPath)) is not an absolute path or an @abstract address of at most \(Self.maxPathBytes) bytes")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw HnxdpError.system("create the service notification socket", errno: errno) }
        // A manager that does not read must not stall the control plane for long.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.socketPath = socketPath
        self.address = address
        self.fd = fd
        self.watchdogIntervalMs = watchdogIntervalMs
        self.warn = warn
    }

    deinit { close(fd) }

    // MARK: - Pure parts (unit-tested)

    /// Room in `sockaddr_un.sun_path`.
    public static let maxPathBytes = 107

    /// The bytes of `sun_path` for NOTIFY_SOCKET: a path as is; `@name` as an
    /// abstract address (a leading NUL, no terminator). nil: neither form, or too long.
    public static func address(_ value: String) -> [UInt8]? {
        var bytes = Array(value.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@"),
              bytes.count >= 2, bytes.count <= maxPathBytes, !bytes.contains(0) else { return nil }
        if first == UInt8(ascii: "@") { bytes[0] = 0 }
        return bytes
    }

    /// Half of WATCHDOG_USEC in ms (at least 1), when the watchdog is meant for
    /// this process: WATCHDOG_PID unset or equal to `ownPid`. nil otherwise.
    public static func watchdogInterval(usec: String?, pid: String?, ownPid: Int32) -> UInt64? {
        guard let usec, let value = UInt64(usec), value > 0 else { return nil }
        if let pid, !pid.isEmpty, Int32(pid) != ownPid { return nil }
        return max(1, value / 2 / 1000)
    }

    /// One datagram: `KEY=value` lines joined by newlines. A newline inside a
    /// value would start a bogus field: it becomes a space.
    public static func message(_ fields: [(String, String)]) -> String {
        fields.map { key, value in
            key + "=" + String(value.map { $0 == "\n" || $0 == "\r\n" || $0 == "\r" ? " " : $0 })
        }.joined(separator: "\n")
    }

    public static func ready(status: String? = nil) -> [(String, String)] {
        [("READY", "1")] + (status.map { [("STATUS", $0)] } ?? [])
    }

    /// RELOADING=1 with the CLOCK_MONOTONIC time of the request (systemd needs
    /// it to tell this reload from an earlier one).
    public static func reloading(monotonicUsec: UInt64, status: String? = nil) -> [(String, String)] {
        [("RELOADING", "1"), ("MONOTONIC_USEC", String(monotonicUsec))] + (status.map { [("STATUS", $0)] } ?? [])
    }

    public static func stopping(status: String? = nil) -> [(String, String)] {
        [("STOPPING", "1")] + (status.map { [("STATUS", $0)] } ?? [])
    }

    public static let watchdog: [(String, String)] = [("WATCHDOG", "1")]

    // MARK: - Sending

    /// Sends one message; false (and one warning per run) when it could not be sent.
    @discardableResult
    public func send(_ fields: [(String, String)]) -> Bool {
        var text = Array(Self.message(fields).utf8)
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { path in
            for (i, b) in address.enumerated() { path[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count + (address.first == 0 ? 0 : 1))
        let n: Int = text.withUnsafeMutableBytes { buffer in
            withUnsafePointer(to: &sa) { sp in
                sp.withMemoryRebound(to: sockaddr.self, capacity: 1) { addr in
                    var r: Int
                    repeat { r = sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), addr, length) }
                    while r < 0 && errno == EINTR
                    return r
                }
            }
        }
        if n == text.count { return true }
        let e = errno
        if !warned {
            warned = true
            warn("service notification to NOTIFY_SOCKET \(quoted(socketPath)) failed (\(n < 0 ? errnoName(e) : "short write")); later failures are not logged")
        }
        return false
    }

    /// Sends WATCHDOG=1 when the ping is due and sets the next deadline.
    public func watchdogTick(nowMs: UInt64) {
        guard let interval = watchdogIntervalMs, nowMs >= watchdogDeadline else { return }
        send(Self.watchdog)
        watchdogDeadline = nowMs + interval
    }
}
