// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The `hnxdp run --config FILE` format: one `key = value` per line, `#`
/// starts a comment, blank lines are ignored. Keys:
///
///     synthetic = hn0          # repeatable; none: every eligible synthetic
///     synthetic-driver = virtio_net  # repeatable; drivers of eligible synthetics (default virtio_net)
///     settle-ms = 2000         # B2 settle delay
///     hold-down-ms = 5000      # B16 flap window and stability time
///     flap-threshold = 3       # departures within hold-down-ms that hold a VF down
///     transparent = on         # on | off (B3)
///     metrics-listen = 127.0.0.1:9469          # HTTP /metrics on a loopback address
///     metrics-textfile = /var/lib/prometheus/node-exporter/hnxdp.prom
///
/// Anything else is refused with the line number and the reason.
public enum RunConfig {
    /// Largest config file accepted; a real one is a few hundred bytes.
    public static let maxBytes = 64 * 1024

    /// Parses the bytes of a config file: refuses one above `maxBytes` or not UTF-8,
    /// and drops a UTF-8 byte order mark.
    public static func parse(bytes: [UInt8], file: String, into settings: RunSettings = RunSettings()) throws -> RunSettings {
        if bytes.count > maxBytes {
            throw HnxdpError(.badInput, "config file \(quoted(file)) is \(bytes.count) bytes, above the \(maxBytes)-byte limit: not a config file?")
        }
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        guard let text = String(validating: body, as: UTF8.self) else {
            throw HnxdpError(.badInput, "config file \(quoted(file)) is not UTF-8 text")
        }
        return try parse(text, file: file, into: settings)
    }

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
            guard let eq = trimmed.firstIndex(of: "=") else { throw bad("expected 'key = value', got \(quoted(trimmed))") }
            let key = trimmed[..<eq].trimmingWhitespace()
            let value = trimmed[trimmed.index(after: eq)...].trimmingWhitespace()
            if value.isEmpty { throw bad("\(quoted(key)) has no value") }
            if key != "synthetic" && key != "synthetic-driver" {
                if seen.contains(key) { throw bad("\(quoted(key)) is given twice") }
                seen.insert(key)
            }
            func milliseconds(max: UInt64) throws -> UInt64 {
                guard let n = UInt64(value), n <= max else { throw bad("\(quoted(key)) must be a whole number of milliseconds from 0 to \(max), got \(quoted(value))") }
                return n
            }
            switch key {
            case "synthetic":
                guard InterfaceName.isValid(value) else {
                    throw bad("\(quoted(value)) is not a valid interface name")
                }
                if s.synthetics.contains(value) { throw bad("synthetic \(quoted(value)) is listed twice") }
                s.synthetics.append(value)
            case "synthetic-driver":
                do { try RunConfig.validateSyntheticDriver(String(value)) } catch let e as HnxdpError { throw bad(e.message) }
                if s.syntheticDrivers.contains(String(value)) { throw bad("synthetic-driver \(quoted(value)) is listed twice") }
                s.syntheticDrivers.append(String(value))
            case "settle-ms":
                s.timing.settleMs = try milliseconds(max: 600_000)
            case "hold-down-ms":
                s.timing.holdDownMs = try milliseconds(max: 3_600_000)
            case "flap-threshold":
                guard let n = Int(value), n >= 1, n <= 1000 else { throw bad("'flap-threshold' must be from 1 to 1000, got \(quoted(value))") }
                s.timing.flapThreshold = n
            case "transparent":
                switch value {
                case "on": s.transparent = true
                case "off": s.transparent = false
                default: throw bad("'transparent' must be on or off, got \(quoted(value))")
                }
            case "metrics-listen":
                do { s.metrics.listen = try MetricsListenAddress.parse(value, option: "'metrics-listen'") } catch let e as HnxdpError {
                    throw bad(e.message)
                }
            case "metrics-textfile":
                do { s.metrics.textfile = try MetricsSettings.validateTextfile(value, option: "'metrics-textfile'") } catch let e as HnxdpError {
                    throw bad(e.message)
                }
            default:
                throw bad("unknown key \(quoted(key)) (known: synthetic, synthetic-driver, settle-ms, hold-down-ms, flap-threshold, transparent, metrics-listen, metrics-textfile)")
            }
        }
        return s
    }
}

extension RunConfig {
    /// A driver name for `synthetic-driver` / `--synthetic-driver`: a plain name
    /// (as `ethtool -i` reports it), never one whose devices the kernel pairs itself.
    public static func validateSyntheticDriver(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 32,
              name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw HnxdpError(.badInput, "synthetic driver \(quoted(name)) is not a driver name (as ethtool -i shows it, e.g. virtio_net)")
        }
        if PairingPolicy.kernelPairingDrivers.contains(name) {
            throw HnxdpError(.badInput, "synthetic driver \(quoted(name)) pairs its VF in the kernel itself: hnxdp never steers its devices")
        }
    }
}

/// What a SIGHUP reload of `hnxdp run` changes (pure: the control plane applies it).
///
/// settle-ms, hold-down-ms and flap-threshold apply at once to every pair (a
/// deadline already running keeps its value); newly listed synthetics are
/// managed. transparent cannot change at run time: turning it off would have to
/// undo joined pairs and turning it on would join VFs hnxdp was told to leave
/// alone; the change is refused with a warning and needs a restart. A synthetic
/// no longer listed keeps being managed (its pair is pinned, and pinned pairs are
/// always adopted) until `hnxdp detach` or a restart without it.
public struct RunReload: Equatable, Sendable {
    /// The settings run uses from now on.
    public var settings: RunSettings
    /// One short phrase per change, e.g. "settle-ms 0 -> 1500".
    public var changes: [String] = []
    /// What was asked for and not applied.
    public var refused: [String] = []
    /// Synthetics listed now and not before (manage them if they exist).
    public var added: [String] = []
    /// Synthetics listed before and not now (kept managed, with a warning).
    public var unlisted: [String] = []

    public static func plan(current: RunSettings, requested: RunSettings) -> RunReload {
        var r = RunReload(settings: current)
        let (a, b) = (current.timing, requested.timing)
        if a.settleMs != b.settleMs { r.changes.append("settle-ms \(a.settleMs) -> \(b.settleMs)") }
        if a.holdDownMs != b.holdDownMs { r.changes.append("hold-down-ms \(a.holdDownMs) -> \(b.holdDownMs)") }
        if a.flapThreshold != b.flapThreshold { r.changes.append("flap-threshold \(a.flapThreshold) -> \(b.flapThreshold)") }
        r.settings.timing = b
        if current.transparent != requested.transparent {
            let (now, asked) = (onOff(current.transparent), onOff(requested.transparent))
            r.refused.append("transparent \(now) -> \(asked) is not applied at run time (it would \(current.transparent ? "undo joined pairs" : "join VFs")); restart `hnxdp run` to apply it; transparent stays \(now)")
        }
        if current.metrics != requested.metrics {
            r.refused.append("metrics-listen and metrics-textfile are not changed at run time; restart `hnxdp run` to apply them; the metrics stay as they are")
        }
        if current.syntheticDrivers != requested.syntheticDrivers {
            func list(_ d: [String]) -> String { d.isEmpty ? "default (\(PairingPolicy.defaultSyntheticDrivers.sorted().joined(separator: ",")))" : d.joined(separator: ",") }
            r.changes.append("synthetic-driver \(list(current.syntheticDrivers)) -> \(list(requested.syntheticDrivers))")
            r.settings.syntheticDrivers = requested.syntheticDrivers
        }
        if current.synthetics != requested.synthetics {
            func list(_ names: [String]) -> String { names.isEmpty ? "every eligible" : names.joined(separator: ",") }
            r.changes.append("synthetic \(list(current.synthetics)) -> \(list(requested.synthetics))")
            r.added = requested.synthetics.filter { !current.synthetics.contains($0) }
            if !requested.synthetics.isEmpty {
                r.unlisted = current.synthetics.filter { !requested.synthetics.contains($0) }
            }
            r.settings.synthetics = requested.synthetics
        }
        return r
    }

    static func onOff(_ b: Bool) -> String { b ? "on" : "off" }
}

/// Text from a file or the command line, for an error line: in single quotes,
/// control and non-ASCII characters escaped, at most 64 characters.
public func quoted<S: StringProtocol>(_ text: S) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        if out.count >= 64 { out += "..."; break }
        if scalar.value >= 0x20 && scalar.value < 0x7F && scalar != "'" && scalar != "\\" {
            out.unicodeScalars.append(scalar)
        } else {
            out += scalar.value <= 0xFF ? cFormat("\\x%02x", scalar.value) : cFormat("\\u{%x}", scalar.value)
        }
    }
    return "'\(out)'"
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
