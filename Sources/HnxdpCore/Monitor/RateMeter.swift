/// Per-second rates of one pair between two reads of its counters: one for each
/// counter of `PairReport.Stats`, read by the counter's key path
/// (`rates[\.vf_rx_packets]`), and named in JSON as `PairRates.names` says.
public struct PairRates: Equatable, Encodable, Sendable {
    public typealias Counter = KeyPath<PairReport.Stats, UInt64>

    /// Each counter with its rate's JSON name, in `struct hnxdp_stats`' order.
    public static let names: [(counter: Counter, name: String)] = [
        (\.vf_rx_packets, "vf_rx_pps"), (\.vf_rx_bytes, "vf_rx_bytes_per_s"),
        (\.vf_tx_packets, "vf_tx_pps"), (\.vf_tx_bytes, "vf_tx_bytes_per_s"),
        (\.syn_rx_packets, "syn_rx_pps"), (\.syn_rx_bytes, "syn_rx_bytes_per_s"),
        (\.syn_tx_packets, "syn_tx_pps"), (\.syn_tx_bytes, "syn_tx_bytes_per_s"),
        (\.tx_fallback_packets, "tx_fallback_pps"), (\.drops, "drops_pps"),
    ]

    /// In the order of `names`.
    private var values = [Double](repeating: 0, count: PairRates.names.count)

    /// Every rate 0.
    public init() {}

    /// The rate of one counter.
    public subscript(counter: Counter) -> Double {
        get { values[Self.index(counter)] }
        set { values[Self.index(counter)] = newValue }
    }

    private static func index(_ counter: Counter) -> Int {
        guard let i = names.firstIndex(where: { $0.counter == counter }) else {
            preconditionFailure("\(counter) is not a counter of PairReport.Stats")
        }
        return i
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        for (i, n) in Self.names.enumerated() { try c.encode(values[i], forKey: Key(stringValue: n.name)) }
    }
}

/// Rates from counter deltas. Pure.
public enum RateMeter {
    /// The rates of a pair between an earlier and a later read: each counter's
    /// delta divided by the real time between the two reads (monotonic clock).
    /// nil when there is no rate to give: no earlier read of this pair, no time
    /// passed, the pair moved to another slot, or any counter went backwards
    /// (the pair was made again and its counters restarted). The next read then
    /// starts over from this one; a rate is never negative.
    public static func rates(from old: MonitorPair?, to new: MonitorPair) -> PairRates? {
        guard let old, old.synthetic == new.synthetic, old.slot == new.slot, new.readNs > old.readNs else { return nil }
        let counters = PairRates.names.map(\.counter)
        if counters.contains(where: { new.stats[keyPath: $0] < old.stats[keyPath: $0] }) { return nil }
        let seconds = Double(new.readNs - old.readNs) / 1e9
        var rates = PairRates()
        for c in counters { rates[c] = Double(new.stats[keyPath: c] - old.stats[keyPath: c]) / seconds }
        return rates
    }

    /// Rates of every pair of `new` against the same pair (same synthetic) in `old`.
    public static func rates(from old: MonitorSample?, to new: MonitorSample) -> [Int32: PairRates] {
        var before: [Int32: MonitorPair] = [:]
        for p in old?.pairs ?? [] { before[p.synthetic] = p }
        var result: [Int32: PairRates] = [:]
        for p in new.pairs { result[p.synthetic] = rates(from: before[p.synthetic], to: p) }
        return result
    }
}
