/// Where `hnxdp run` publishes its metrics (docs/metrics.md): off unless one
/// of them is set.
public struct MetricsSettings: Equatable, Sendable {
    /// `--metrics-listen`: an HTTP endpoint on a loopback address.
    public var listen: MetricsListenAddress?
    /// `--metrics-textfile`: a `.prom` file for node_exporter's textfile collector.
    public var textfile: String?

    public init(listen: MetricsListenAddress? = nil, textfile: String? = nil) {
        self.listen = listen
        self.textfile = textfile
    }

    public var isOn: Bool { listen != nil || textfile != nil }

    /// Checks a `--metrics-textfile` path: absolute, a file name ending in
    /// `.prom` (the only files node_exporter's textfile collector reads).
    public static func validateTextfile(_ path: String, option: String) throws -> String {
        guard path.hasPrefix("/") else {
            throw HnxdpError(.badInput, "\(option) must be an absolute path, got \(quoted(path))")
        }
        guard let slash = path.lastIndex(of: "/"), path[path.index(after: slash)...].count > ".prom".count,
              path.hasSuffix(".prom") else {
            throw HnxdpError(.badInput, "\(option) \(quoted(path)) must name a file ending in .prom (node_exporter's textfile collector reads only those)")
        }
        return path
    }
}

/// A loopback address and port to serve metrics on: `127.0.0.1:9469`,
/// `[::1]:9469`, `localhost:9469` (127.0.0.1). Anything that is not a loopback
/// address is refused: the counters are served without authentication, so
/// they stay on the machine (scrape remotely through node_exporter's textfile
/// collector or a proxy).
public struct MetricsListenAddress: Equatable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    public var address: [UInt8]
    public var port: UInt16

    public var isIPv6: Bool { address.count == 16 }

    public var description: String {
        if isIPv6 { return "[::1]:\(port)" }
        return "\(address.map(String.init).joined(separator: ".")):\(port)"
    }

    public static let defaultPort: UInt16 = 9469

    public static func parse(_ text: String, option: String = "--metrics-listen") throws -> MetricsListenAddress {
        func bad(_ why: String) -> HnxdpError {
            HnxdpError(.badInput, "\(option) \(quoted(text)): \(why)")
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw bad("expected ADDRESS:PORT, e.g. 127.0.0.1:\(defaultPort) or [::1]:\(defaultPort)")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw bad("expected ADDRESS:PORT, e.g. 127.0.0.1:\(defaultPort) or [::1]:\(defaultPort)")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText), port != 0 else {
            throw bad("the port must be a number from 1 to 65535")
        }
        let notLoopback = "not a loopback address: metrics are served only on 127.0.0.0/8 or [::1] (use --metrics-textfile with node_exporter to publish them further)"
        if host == "localhost" { return MetricsListenAddress(address: [127, 0, 0, 1], port: port) }
        if host.contains(":") {
            // IPv6: only the loopback address, in any spelling that parses to ::1.
            guard let bytes = FrameTemplate.parseIP(String(host)), bytes.count == 16 else { throw bad("not an IP address") }
            guard bytes == [UInt8](repeating: 0, count: 15) + [1] else { throw bad(notLoopback) }
            return MetricsListenAddress(address: bytes, port: port)
        }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { p -> UInt8? in
            !p.isEmpty && p.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) ? UInt8(p) : nil
        }
        guard parts.count == 4, bytes.count == 4 else {
            throw bad("not an IP address (IPv4 a.b.c.d, or IPv6 in brackets)")
        }
        guard bytes[0] == 127 else { throw bad(notLoopback) }
        return MetricsListenAddress(address: bytes, port: port)
    }
}
