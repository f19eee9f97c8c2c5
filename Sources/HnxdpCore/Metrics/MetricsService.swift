import Glibc
import Logging
import Synchronization

/// Publishes `hnxdp run`'s metrics (docs/metrics.md): an HTTP endpoint on a
/// loopback address (`GET /metrics`), a node_exporter textfile rewritten every
/// `textfileIntervalMs`, or both. Each runs on a thread of its own, so a slow
/// client or file system never holds up the control plane's loop, and reads
/// the pinned maps afresh for every answer or write (`PairCounters`).
///
/// Everything that can fail on bad input (the address is taken, the directory
/// is not writable) fails in `init`, before `run` changes anything.
public final class MetricsService: @unchecked Sendable {
    public let settings: MetricsSettings
    /// The histograms the control plane observes into.
    public let observations = RunObservations()
    /// How often the textfile is rewritten.
    public static let textfileIntervalMs: UInt64 = 5000
    /// A request line and headers larger than this are refused.
    static let maxRequestBytes = 8192

    let layout: PinLayout
    let logger: Logger
    private let listenFD: Int32
    /// Held while the textfile is written and while `stop` removes it; true once
    /// stopped, so a write that was under way cannot put the file back after `stop`.
    private let textfileStopped = Mutex(false)

    public init(settings: MetricsSettings, layout: PinLayout, logger: Logger) throws {
        self.settings = settings
        self.layout = layout
        self.logger = logger
        if let textfile = settings.textfile { try Self.checkTextfile(textfile) }
        listenFD = try settings.listen.map(Self.listen) ?? -1
    }

    deinit {
        if listenFD >= 0 { close(listenFD) }
    }

    /// Starts the threads. Call once the control plane has blocked its signals
    /// or not: the threads block every signal themselves.
    public func start() {
        // Read-only from here on (its cache is filled by this thread, before the others exist).
        _ = try? EmbeddedObject.declaredMapTypes("hnxdp")
        if listenFD >= 0 {
            logger.info("metrics served on http://\(settings.listen!)/metrics")
            spawn { [self] in serveForever() }
        }
        if let textfile = settings.textfile {
            writeTextfile(textfile, logErrors: true)
            logger.info("metrics written to \(textfile) every \(Self.textfileIntervalMs / 1000) s")
            spawn { [self] in
                var failing = false
                while true {
                    var ts = timespec(tv_sec: Int(Self.textfileIntervalMs / 1000), tv_nsec: Int(Self.textfileIntervalMs % 1000) * 1_000_000)
                    var left = timespec()
                    while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
                    // One error line when writing starts failing, one when it works again.
                    let ok = writeTextfile(textfile, logErrors: !failing)
                    if ok && failing { logger.info("metrics textfile \(textfile) written again") }
                    failing = !ok
                }
            }
        }
    }

    /// On a clean exit: the textfile goes (a stale one would be exported as if current).
    public func stop() {
        guard let textfile = settings.textfile else { return }
        textfileStopped.withLock { stopped in
            stopped = true
            unlink(textfile)
        }
    }

    /// The exposition as of now: the namespace's pairs read from the pinned maps.
    public func exposition() throws -> [UInt8] {
        let pairs = try PairCounters.read(layout: layout, netlink: try RTNetlink())
        return MetricsExposition.render(pairs: pairs, observations: observations)
    }

    // MARK: - Textfile

    /// The directory must exist and take a new file (created and removed again here).
    static func checkTextfile(_ path: String) throws {
        let dir = directory(of: path)
        var st = stat()
        guard stat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw HnxdpError(.badInput, "--metrics-textfile: directory \(quoted(dir)) does not exist")
        }
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
            throw HnxdpError(.badInput, "--metrics-textfile \(quoted(path)) exists and is not a regular file")
        }
        let probe = temporaryPath(of: path)
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            let e = errno
            throw HnxdpError(.runtime, "--metrics-textfile: cannot write in \(quoted(dir)): \(errnoName(e)) (\(String(cString: strerror(e))))")
        }
        close(fd)
        unlink(probe)
    }

    static func directory(of path: String) -> String {
        let slash = path.lastIndex(of: "/")!
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Next to the file, not ending in .prom: node_exporter never reads it half-written.
    static func temporaryPath(of path: String) -> String { "\(path).\(getpid()).tmp" }

    /// Writes the exposition to a temporary file and renames it over `path`, so
    /// a reader sees the old file or the new one, never a part.
    @discardableResult
    func writeTextfile(_ path: String, logErrors: Bool) -> Bool {
        textfileStopped.withLock { stopped in
            stopped || writeTextfileNow(path, logErrors: logErrors)
        }
    }

    private func writeTextfileNow(_ path: String, logErrors: Bool) -> Bool {
        let tmp = Self.temporaryPath(of: path)
        do {
            let bytes = try exposition()
            let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd < 0 { throw HnxdpError.system("open \(tmp)", errno: errno) }
            defer { close(fd) }
            try Self.writeAll(fd, bytes, what: "write \(tmp)")
            if rename(tmp, path) != 0 { throw HnxdpError.system("rename \(tmp) to \(path)", errno: errno) }
            return true
        } catch {
            unlink(tmp)
            if logErrors { logger.error("metrics textfile \(path) not written (the last one stays): \(error)") }
            return false
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String, flags: Int32? = nil) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { raw in
                flags.map { send(fd, raw.baseAddress, raw.count, $0) } ?? write(fd, raw.baseAddress, raw.count)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw HnxdpError.system(what, errno: errno)
            }
            offset += n
        }
    }

    // MARK: - HTTP

    /// A listening TCP socket on the loopback address.
    static func listen(_ address: MetricsListenAddress) throws -> Int32 {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw HnxdpError.system("socket for --metrics-listen", errno: errno) }
        var one: Int32 = 1
        // A restart must not wait for the last connection's TIME_WAIT; a port
        // another process listens on is still refused.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if address.isIPv6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: address.address) }
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: address.address) }
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        if rc == 0 { rc = Glibc.listen(fd, 16) }
        if rc != 0 {
            let e = errno
            close(fd)
            let why = e == EADDRINUSE ? "the port is in use by another program"
                : e == EADDRNOTAVAIL ? "no such address on this machine (is the loopback interface up?)"
                : "\(errnoName(e)) (\(String(cString: strerror(e))))"
            throw HnxdpError(.runtime, "--metrics-listen \(address): cannot listen: \(why)", errno: e)
        }
        return fd
    }

    func serveForever() {
        while true {
            let c = accept(listenFD, nil, nil)
            if c < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                logger.error("metrics endpoint: accept: \(errnoName(errno)); retrying in 1 s")
                sleep(1)
                continue
            }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            serve(c)
            close(c)
        }
    }

    /// One request, one answer, then the connection is closed. A client gets 2 s
    /// to send its request and 5 s to take the answer, so none holds the endpoint.
    func serve(_ fd: Int32) {
        var receive = timeval(tv_sec: 2, tv_usec: 0)
        var sendTimeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while HTTPRequestHead.end(of: request) == nil {
            if request.count >= Self.maxRequestBytes { return respond(fd, HTTPResponse(status: "431 Request Header Fields Too Large")) }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return } // closed, or too slow
            request += chunk[..<n]
        }
        respond(fd, answer(to: HTTPRequestHead(request)))
    }

    func answer(to head: HTTPRequestHead?) -> HTTPResponse {
        guard let head else { return HTTPResponse(status: "400 Bad Request") }
        guard head.method == "GET" || head.method == "HEAD" else {
            return HTTPResponse(status: "405 Method Not Allowed", headers: ["Allow: GET, HEAD"])
        }
        guard head.path == "/metrics" else {
            return HTTPResponse(status: "404 Not Found", body: Array("hnxdp serves its metrics at /metrics\n".utf8))
        }
        do {
            let body = try exposition()
            return HTTPResponse(status: "200 OK", contentType: MetricsExposition.contentType, body: body, headOnly: head.method == "HEAD")
        } catch {
            logger.error("metrics endpoint: reading the maps: \(error)")
            return HTTPResponse(status: "500 Internal Server Error", body: Array("\(error)\n".utf8))
        }
    }

    func respond(_ fd: Int32, _ response: HTTPResponse) {
        try? Self.writeAll(fd, response.bytes, what: "send", flags: Int32(MSG_NOSIGNAL))
    }

    /// Runs `body` on a detached thread with every signal blocked (the control
    /// plane takes its signals through a signalfd on the main thread).
    func spawn(_ body: @escaping () -> Void) {
        final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
        var all = sigset_t(), old = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        var thread = pthread_t()
        let arg = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, arg)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(arg).release()
            logger.error("metrics: cannot start a thread: \(errnoName(rc))")
            return
        }
        pthread_detach(thread)
    }
}

/// The request line of an HTTP/1.x request (headers are read and ignored).
struct HTTPRequestHead: Equatable {
    var method: String
    /// The target without its query string.
    var path: String

    init(method: String, path: String) {
        self.method = method
        self.path = path
    }

    /// Index just past the blank line that ends the head, if it has arrived.
    static func end(of bytes: [UInt8]) -> Int? {
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == 0x0A && bytes[i + 1] == 0x0A { return i + 2 }
            if i + 3 < bytes.count && bytes[i] == 0x0D && bytes[i + 1] == 0x0A && bytes[i + 2] == 0x0D && bytes[i + 3] == 0x0A { return i + 4 }
            i += 1
        }
        return nil
    }

    init?(_ bytes: [UInt8]) {
        guard let lineEnd = bytes.firstIndex(of: 0x0A),
              let line = String(validating: bytes[..<lineEnd].filter { $0 != 0x0D }, as: UTF8.self) else { return nil }
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), !parts[0].isEmpty, parts[1].hasPrefix("/") else { return nil }
        method = String(parts[0])
        path = String(parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }
}

struct HTTPResponse {
    var status: String
    var headers: [String] = []
    var contentType = "text/plain; charset=utf-8"
    var body: [UInt8] = []
    var headOnly = false

    var bytes: [UInt8] {
        var head = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for h in headers { head += h + "\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (headOnly ? [] : body)
    }
}
