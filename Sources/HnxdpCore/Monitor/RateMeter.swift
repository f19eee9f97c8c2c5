/// Per-second rates of one pair between two reads of its counters.
public struct PairRates: Equatable, Encodable, Sendable {
    public var vf_rx_pps: Double = 0
    public var vf_rx_bytes_per_s: Double = 0
    public var vf_tx_pps: Double = 0
    public var vf_tx_bytes_per_s: Double = 0
    public var syn_rx_pps: Double = 0
    public var syn_rx_bytes_per_s: Double = 0
    public var syn_tx_pps: Double = 0
    public var syn_tx_bytes_per_s: Double = 0
    public var tx_fallback_pps: Double = 0
    public var drops_pps: Double = 0

    public init() {}
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
        let a = old.stats, b = new.stats
        let pairs: [(UInt64, UInt64)] = [
            (a.vf_rx_packets, b.vf_rx_packets), (a.vf_rx_bytes, b.vf_rx_bytes),
            (a.vf_tx_packets, b.vf_tx_packets), (a.vf_tx_bytes, b.vf_tx_bytes),
            (a.syn_rx_packets, b.syn_rx_packets), (a.syn_rx_bytes, b.syn_rx_bytes),
            (a.syn_tx_packets, b.syn_tx_packets), (a.syn_tx_bytes, b.syn_tx_bytes),
            (a.tx_fallback_packets, b.tx_fallback_packets), (a.drops, b.drops),
        ]
        if pairs.contains(where: { $0.1 < $0.0 }) { return nil }
        let seconds = Double(new.readNs - old.readNs) / 1e9
        let r = pairs.map { Double($0.1 - $0.0) / seconds }
        var rates = PairRates()
        rates.vf_rx_pps = r[0]; rates.vf_rx_bytes_per_s = r[1]
        rates.vf_tx_pps = r[2]; rates.vf_tx_bytes_per_s = r[3]
        rates.syn_rx_pps = r[4]; rates.syn_rx_bytes_per_s = r[5]
        rates.syn_tx_pps = r[6]; rates.syn_tx_bytes_per_s = r[7]
        rates.tx_fallback_pps = r[8]; rates.drops_pps = r[9]
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
