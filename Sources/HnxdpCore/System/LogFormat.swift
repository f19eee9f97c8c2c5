import Glibc
import Logging

/// hnxdp's log lines on stderr. Two forms:
///
///     2026-05-01T12:00:00.123+0000 info hnxdp.run: pair=hn0(5) [HnxdpCore] VF vf0(7) joined ...
///     <6>info hnxdp.run: pair=hn0(5) [HnxdpCore] VF vf0(7) joined ...
///
/// The first everywhere (swift-log's StreamLogHandler layout, with milliseconds);
/// the second when stderr is connected to the systemd journal: an sd-daemon
/// priority prefix (`<N>`, sd-daemon(3)) instead of the timestamp, since journald
/// stamps every line itself and files it under that priority.
public enum LogFormat {
    /// The sd-daemon (syslog) priority of a level: debug 7, info 6, notice 5,
    /// warning 4, error 3, critical 2 (trace is debug).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// One log line, newline included. `timestamp` is used when not `journald`.
    public static func line(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata,
                            source: String, journald: Bool, timestamp: String) -> String {
        var out = journald ? "<\(priority(level))>" : timestamp + " "
        out += "\(level)"
        if !label.isEmpty { out += " " + label }
        out += ":"
        if !metadata.isEmpty {
            // As StreamLogHandler prints it: sorted `key=value` pairs.
            out += " " + metadata.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        out += " [\(source)] \(message)"
        // One event, one line: journald would split a multi-line message into
        // entries of which only the first has the priority.
        if journald, out.contains(where: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            out = out.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).joined(separator: " | ")
        }
        return out + "\n"
    }

    /// Whether `JOURNAL_STREAM` (the `device:inode` systemd sets for a service whose
    /// stdout/stderr is the journal) names the stream with this device and inode.
    public static func journalStreamMatches(_ value: String?, device: UInt64, inode: UInt64) -> Bool {
        guard let value else { return false }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        return dev == device && ino == inode
    }

    /// True when stderr is connected to the journal (sd-daemon's check: `JOURNAL_STREAM`
    /// matches stderr's device and inode; a child's redirected stderr does not).
    public static func stderrIsJournal() -> Bool {
        guard let raw = getenv("JOURNAL_STREAM") else { return false }
        var st = stat()
        guard fstat(STDERR_FILENO, &st) == 0 else { return false }
        return journalStreamMatches(String(cString: raw), device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Local time with milliseconds: `2026-05-01T12:00:00.123+0000`.
    public static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var seconds = ts.tv_sec
        var local = tm()
        guard localtime_r(&seconds, &local) != nil else { return "<unknown>" }
        var date = [CChar](repeating: 0, count: 32)
        var zone = [CChar](repeating: 0, count: 16)
        strftime(&date, date.count, "%Y-%m-%dT%H:%M:%S", &local)
        strftime(&zone, zone.count, "%z", &local)
        let ms = Int(ts.tv_nsec / 1_000_000)
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return String(cString: date) + "." + msText + String(cString: zone)
    }
}

/// A swift-log handler writing `LogFormat` lines to stderr, one write per line.
public struct HnxdpLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let journald: Bool

    public init(label: String, journald: Bool = LogFormat.stderrIsJournal()) {
        self.label = label
        self.journald = journald
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided, uniquingKeysWith: { $1 }) }
        if let explicit = event.metadata { all.merge(explicit, uniquingKeysWith: { $1 }) }
        let text = LogFormat.line(level: event.level, label: label, message: "\(event.message)", metadata: all,
                                  source: event.source, journald: journald,
                                  timestamp: journald ? "" : LogFormat.timestamp())
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

/// printf-style formatting through vsnprintf(3), for the few numbers hnxdp
/// prints with a fixed width or precision (`String(format:)` needs
/// Foundation, which would link ICU into the binary).
public func cFormat(_ format: String, _ arguments: CVarArg...) -> String {
    withVaList(arguments) { list in
        var buffer = [CChar](repeating: 0, count: 256)
        let n = vsnprintf(&buffer, buffer.count, format, list)
        if n >= buffer.count {
            buffer = [CChar](repeating: 0, count: Int(n) + 1)
            return withVaList(arguments) { again in
                _ = vsnprintf(&buffer, buffer.count, format, again)
                return String(cString: buffer)
            }
        }
        return String(cString: buffer)
    }
}

/// RFC 3339 UTC time with milliseconds (`2026-05-01T12:00:00.123Z`), as
/// ISO8601DateFormatter's internet date time with fractional seconds.
public func iso8601UTC(nanosecondsSinceEpoch ns: UInt64) -> String {
    var seconds = time_t(ns / 1_000_000_000)
    var utc = tm()
    guard gmtime_r(&seconds, &utc) != nil else { return "<unknown>" }
    var date = [CChar](repeating: 0, count: 32)
    strftime(&date, date.count, "%Y-%m-%dT%H:%M:%S", &utc)
    // The milliseconds by hand: String(format:)'s CVarArg boxing costs more than the rest
    // of the function (`status` formats one of these per pair).
    let ms = Int(ns % 1_000_000_000 / 1_000_000)
    let digits: [UInt8] = [UInt8(ascii: "."), UInt8(48 + ms / 100), UInt8(48 + ms / 10 % 10), UInt8(48 + ms % 10),
                           UInt8(ascii: "Z")]
    return String(cString: date) + String(decoding: digits, as: UTF8.self)
}
