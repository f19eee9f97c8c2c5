import Glibc
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A piece of a line on the terminal, with how it is shown when colour is allowed.
public struct Span: Equatable, Sendable {
    public enum Style: Equatable, Sendable { case plain, bold, good, warn, bad, dim }
    public var text: String
    public var style: Style
    public init(_ text: String, _ style: Style = .plain) {
        self.text = text
        self.style = style
    }
}

/// One line of a frame: spans, cut to the terminal's width when rendered.
public struct FrameLine: Equatable, Sendable {
    public var spans: [Span]
    public init(_ spans: [Span]) { self.spans = spans }
    public init(_ text: String, _ style: Span.Style = .plain) { self.spans = [Span(text, style)] }

    /// The text without styles.
    public var text: String { spans.map(\.text).joined() }

    /// The line cut to `width` characters, with SGR colour sequences when `color`.
    public func render(width: Int, color: Bool) -> String {
        var left = max(width, 0)
        var out = ""
        for span in spans where left > 0 {
            let piece = String(span.text.prefix(left))
            left -= piece.count
            if color, let sgr = FrameLine.sgr(span.style), !piece.isEmpty {
                out += "\u{1B}[\(sgr)m" + piece + "\u{1B}[0m"
            } else {
                out += piece
            }
        }
        return out
    }

    static func sgr(_ style: Span.Style) -> String? {
        switch style {
        case .plain: return nil
        case .bold: return "1"
        case .good: return "32"
        case .warn: return "33"
        case .bad: return "31"
        case .dim: return "2"
        }
    }
}

/// What `hnxdp monitor` shows: the text frame for a terminal and the JSON line
/// for scripts (docs/json.md, "hnxdp monitor --json"). Pure.
public enum MonitorView {
    /// A rate as a short number: "0", "7.5", "200", "9999", "12.3k", "1.23M", "4.56G".
    public static func formatRate(_ value: Double?) -> String {
        guard let v = value, v.isFinite else { return "-" }
        if v < 0.05 { return "0" }
        if v < 10 { return cFormat("%.1f", v) }
        if v < 10_000 { return cFormat("%.0f", v) }
        let units: [(Double, String)] = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
        for (scale, suffix) in units where v >= scale {
            let x = v / scale
            return cFormat(x < 10 ? "%.2f" : x < 100 ? "%.1f" : "%.0f", x) + suffix
        }
        return cFormat("%.0f", v)
    }

    /// "16:49:58" (UTC) of a CLOCK_REALTIME nanosecond time.
    public static func clock(_ ns: UInt64) -> String {
        let iso = iso8601UTC(nanosecondsSinceEpoch: ns) // 2026-11-25T16:34:49.123Z
        guard let t = iso.firstIndex(of: "T") else { return iso }
        return String(iso[iso.index(after: t)...].prefix(8))
    }

    /// "3 s", "12 min", "5 h", "2 d": how long ago, coarse.
    public static func age(nowNs: UInt64, thenNs: UInt64) -> String {
        let s = nowNs > thenNs ? (nowNs - thenNs) / 1_000_000_000 : 0
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3600) h" }
        return "\(s / 86_400) d"
    }

    static let columns = ["rx pkt/s", "rx B/s", "tx pkt/s", "tx B/s"]

    /// The lines of one frame, before width and height are applied.
    public static func lines(sample: MonitorSample, rates: [Int32: PairRates], netnsInode: UInt64,
                             intervalSeconds: Double, interactive: Bool) -> [FrameLine] {
        var out: [FrameLine] = []
        var head = [Span("hnxdp monitor", .bold),
                    Span("  netns \(netnsInode)  every \(cFormat("%.1f", intervalSeconds)) s  \(clock(sample.realtimeNs)) UTC")]
        if interactive { head.append(Span("  q: quit", .dim)) }
        out.append(FrameLine(head))
        if let error = sample.error {
            out.append(FrameLine("reading hnxdp's pins: \(error)", .bad))
        }
        if sample.pairs.isEmpty && sample.error == nil {
            out.append(FrameLine(""))
            out.append(FrameLine("no pairs in this network namespace (hnxdp attach or hnxdp run makes them)"))
        }
        for p in sample.pairs {
            out.append(FrameLine(""))
            let r = rates[p.synthetic]
            var title = [Span("\(p.syntheticName ?? "?")(\(p.synthetic))", .bold)]
            if let vf = p.vf {
                title.append(Span(" <- \(p.vfName ?? "gone")(\(vf))"))
                if let carrier = p.vfCarrier { title.append(Span(carrier ? " carrier up" : " carrier down", carrier ? .plain : .warn)) }
            } else {
                title.append(Span(" <- no VF"))
            }
            let stateStyle: Span.Style = p.state == .active ? .good : (p.state == .idle || p.state == .disabled) ? .plain : .warn
            title += [Span(": "), Span(p.state.name, stateStyle), Span(", datapath "),
                      Span(p.datapath, p.datapath == "vf" ? .good : .plain), Span(", switches \(p.switches)")]
            if p.lastSwitchNs != 0 {
                var last = ", last \(clock(p.lastSwitchNs)) (\(age(nowNs: sample.realtimeNs, thenNs: p.lastSwitchNs)) ago)"
                if let e = p.lastSwitch { last += " \(e.direction) \(e.reason)" }
                title.append(Span(last))
            }
            out.append(FrameLine(title))
            out.append(FrameLine("  " + pad("path", 10) + columns.map { pad($0, 11, right: true) }.joined(), .dim))
            let vfRow = [\PairReport.Stats.vf_rx_packets, \.vf_rx_bytes, \.vf_tx_packets, \.vf_tx_bytes].map { r?[$0] }
            let synRow = [\PairReport.Stats.syn_rx_packets, \.syn_rx_bytes, \.syn_tx_packets, \.syn_tx_bytes].map { r?[$0] }
            out.append(FrameLine("  " + pad("vf", 10) + vfRow.map { pad(formatRate($0), 11, right: true) }.joined()))
            out.append(FrameLine("  " + pad("synthetic", 10) + synRow.map { pad(formatRate($0), 11, right: true) }.joined()))
            let fb = r?[\.tx_fallback_packets], drops = r?[\.drops]
            out.append(FrameLine([
                Span("  fallback "), Span("\(formatRate(fb)) pkt/s", (fb ?? 0) >= 0.05 ? .bad : .plain),
                Span(" (total \(p.stats.tx_fallback_packets)), drops "),
                Span("\(formatRate(drops)) pkt/s", (drops ?? 0) >= 0.05 ? .bad : .plain),
                Span(" (total \(p.stats.drops))"),
            ]))
        }
        return out
    }

    /// The lines that fit `rows`: when they do not all fit, the last row says how many were left out.
    public static func fit(_ lines: [FrameLine], rows: Int) -> [FrameLine] {
        let rows = max(rows, 1)
        if lines.count <= rows { return lines }
        let kept = Array(lines.prefix(rows - 1))
        return kept + [FrameLine("... \(lines.count - kept.count) more lines: enlarge the window", .dim)]
    }

    static func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
        if s.count >= n { return right ? " " + s : s + " " }
        let fill = String(repeating: " ", count: n - s.count)
        return right ? fill + s : s + fill
    }

    // MARK: - JSON

    /// One line of `monitor --json`.
    public struct Line: Encodable, Equatable, Sendable {
        public struct Device: Encodable, Equatable, Sendable {
            public var name: String?
            public var ifindex: Int32
            public var carrier: Bool?
        }
        public struct Pair: Encodable, Equatable, Sendable {
            public var synthetic: Device
            @ExplicitNull public var vf: Device?
            public var state: String
            public var datapath: String
            public var switches: UInt32
            @ExplicitNull public var last_switch: String?
            @ExplicitNull public var last_switch_direction: String?
            @ExplicitNull public var last_switch_reason: String?
            public var slot: UInt32
            public var stats: PairReport.Stats
            @ExplicitNull public var rates: PairRates?
            @ExplicitNull public var elapsed_s: Double?
        }
        public var version = HnxdpVersion.string
        public var schema_version = HnxdpVersion.jsonSchema
        public var time: String
        public var netns_inode: UInt64
        public var interval_s: Double
        public var pairs: [Pair]
        /// Why the pins could not be read this time; absent when they could.
        public var error: String?
    }

    public static func line(sample: MonitorSample, previous: MonitorSample?, rates: [Int32: PairRates],
                            netnsInode: UInt64, intervalSeconds: Double) -> Line {
        var before: [Int32: MonitorPair] = [:]
        for p in previous?.pairs ?? [] { before[p.synthetic] = p }
        let pairs = sample.pairs.map { p -> Line.Pair in
            let r = rates[p.synthetic]
            var elapsed: Double? = nil
            if r != nil, let old = before[p.synthetic] { elapsed = Double(p.readNs - old.readNs) / 1e9 }
            return Line.Pair(
                synthetic: Line.Device(name: p.syntheticName, ifindex: p.synthetic, carrier: nil),
                vf: p.vf.map { Line.Device(name: p.vfName, ifindex: $0, carrier: p.vfCarrier) },
                state: p.state.name, datapath: p.datapath, switches: p.switches,
                last_switch: p.lastSwitchNs == 0 ? nil : iso8601UTC(nanosecondsSinceEpoch: p.lastSwitchNs),
                last_switch_direction: p.lastSwitch?.direction, last_switch_reason: p.lastSwitch?.reason,
                slot: p.slot, stats: p.stats, rates: r, elapsed_s: elapsed)
        }
        return Line(time: iso8601UTC(nanosecondsSinceEpoch: sample.realtimeNs), netns_inode: netnsInode,
                    interval_s: intervalSeconds, pairs: pairs, error: sample.error)
    }

    /// The line as printed: one compact JSON object, keys sorted.
    public static func json(_ line: Line) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(line), as: UTF8.self)
    }
}
