/// The `hnxdp run --config FILE` format: one `key = value` per line, `#`
/// starts a comment, blank lines are ignored. Keys:
///
///     synthetic = hn0          # repeatable; none: every eligible synthetic
///     settle-ms = 2000         # B2 settle delay
///     hold-down-ms = 5000      # B16 flap window and stability time
///     flap-threshold = 3       # departures within hold-down-ms that hold a VF down
///     transparent = on         # on | off (B3)
///
/// Anything else is refused with the line number and the reason.
public enum RunConfig {
    public static func parse(_ text: String, file: String, into settings: RunSettings = RunSettings()) throws -> RunSettings {
        var s = settings
        var seen = Set<String>()
        // "\r\n" is one Character in Swift: split on it, "\n" and a lone "\r".
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        for (index, raw) in lines.enumerated() {
            let lineNumber = index + 1
            func bad(_ reason: String) -> HnxdpError {
                HnxdpError(.badInput, "invalid config \(file) line \(lineNumber): \(reason)")
            }
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else { throw bad("expected 'key = value', got '\(trimmed)'") }
            let key = trimmed[..<eq].trimmingWhitespace()
            let value = trimmed[trimmed.index(after: eq)...].trimmingWhitespace()
            if value.isEmpty { throw bad("'\(key)' has no value") }
            if key != "synthetic" {
                if seen.contains(key) { throw bad("'\(key)' is given twice") }
                seen.insert(key)
            }
            func milliseconds(max: UInt64) throws -> UInt64 {
                guard let n = UInt64(value), n <= max else { throw bad("'\(key)' must be a whole number of milliseconds from 0 to \(max), got '\(value)'") }
                return n
            }
            switch key {
            case "synthetic":
                guard value.utf8.count <= 15, !value.contains("/"), !value.contains(where: { $0 == " " || $0 == "\t" }) else {
                    throw bad("'\(value)' is not a valid interface name")
                }
                if s.synthetics.contains(value) { throw bad("synthetic '\(value)' is listed twice") }
                s.synthetics.append(value)
            case "settle-ms":
                s.timing.settleMs = try milliseconds(max: 600_000)
            case "hold-down-ms":
                s.timing.holdDownMs = try milliseconds(max: 3_600_000)
            case "flap-threshold":
                guard let n = Int(value), n >= 1, n <= 1000 else { throw bad("'flap-threshold' must be from 1 to 1000, got '\(value)'") }
                s.timing.flapThreshold = n
            case "transparent":
                switch value {
                case "on": s.transparent = true
                case "off": s.transparent = false
                default: throw bad("'transparent' must be on or off, got '\(value)'")
                }
            default:
                throw bad("unknown key '\(key)' (known: synthetic, settle-ms, hold-down-ms, flap-threshold, transparent)")
            }
        }
        return s
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
