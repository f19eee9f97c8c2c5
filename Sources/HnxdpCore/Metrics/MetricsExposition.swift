import CHnxdpShim
import Prometheus

/// The Prometheus text exposition of `hnxdp run` (docs/metrics.md).
///
/// Counters and states come from the pinned maps at the moment of each scrape
/// or write (`PairCounters`): they are put into a registry made for that one
/// exposition, so nothing is kept in the process that could drift from the
/// datapath, and a pair's counters carry on across a restart of `run`. The
/// histograms are observations of this process (`RunObservations`) and are
/// appended after them.
public enum MetricsExposition {
    /// The content type of the text format (version 0.0.4).
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// A per-pair counter: its name, help and which of the datapath's counters it is.
    public struct CounterDefinition: Sendable {
        public var name: String
        public var help: String
        public var value: @Sendable (PairCounters) -> UInt64
    }

    /// Every per-pair counter, in the order of `struct hnxdp_stats`, then the switches.
    public static let counters: [CounterDefinition] = [
        .init(name: "hnxdp_vf_rx_packets_total", help: "Frames received on the VF and handed to the synthetic.", value: { $0.stats.vf_rx_packets }),
        .init(name: "hnxdp_vf_rx_bytes_total", help: "Bytes received on the VF and handed to the synthetic.", value: { $0.stats.vf_rx_bytes }),
        .init(name: "hnxdp_vf_tx_packets_total", help: "Frames sent on the synthetic that left through the VF.", value: { $0.stats.vf_tx_packets }),
        .init(name: "hnxdp_vf_tx_bytes_total", help: "Bytes sent on the synthetic that left through the VF.", value: { $0.stats.vf_tx_bytes }),
        .init(name: "hnxdp_synthetic_rx_packets_total", help: "Frames received on the synthetic's own path.", value: { $0.stats.syn_rx_packets }),
        .init(name: "hnxdp_synthetic_rx_bytes_total", help: "Bytes received on the synthetic's own path.", value: { $0.stats.syn_rx_bytes }),
        .init(name: "hnxdp_synthetic_tx_packets_total", help: "Frames sent on the synthetic's own path.", value: { $0.stats.syn_tx_packets }),
        .init(name: "hnxdp_synthetic_tx_bytes_total", help: "Bytes sent on the synthetic's own path.", value: { $0.stats.syn_tx_bytes }),
        .init(name: "hnxdp_tx_fallback_packets_total", help: "Frames of a joined pair that took the synthetic's path because the VF was gone or had no carrier.", value: { $0.stats.tx_fallback_packets }),
        .init(name: "hnxdp_dropped_packets_total", help: "Frames the datapath dropped.", value: { $0.stats.drops }),
        .init(name: "hnxdp_switches_total", help: "Datapath switches between the VF and the synthetic.", value: { UInt64($0.switches) }),
    ]

    /// The states `hnxdp_pair_state` has one series for each, as `dump` names them.
    public static let states: [PairState] = PairState.allCases

    /// The `synthetic` label of a pair: its name, or `ifindex-N` when it has none (gone meanwhile).
    public static func syntheticLabel(_ pair: PairCounters) -> String {
        pair.syntheticName ?? "ifindex-\(pair.synthetic)"
    }

    /// The exposition of `pairs` (read from the maps just before), followed by
    /// the histograms of `observations` when given.
    public static func render(pairs: [PairCounters], observations: RunObservations? = nil,
                              version: String = HnxdpVersion.string) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        registry.makeGauge(descriptor: describe("hnxdp_build_info", "The hnxdp build serving these metrics; always 1."),
                           labels: [("version", version)]).set(to: 1)
        registry.makeGauge(descriptor: describe("hnxdp_pairs", "Pairs in the network namespace (entries of the pinned pair map)."))
            .set(to: Double(pairs.count))
        for pair in pairs {
            let synthetic = syntheticLabel(pair)
            let labels = [("synthetic", synthetic)]
            for counter in counters {
                // Prometheus counters are signed 64-bit here: 2^63 frames is not reached.
                registry.makeCounter(descriptor: describe(counter.name, counter.help), labels: labels)
                    .increment(by: Int64(clamping: counter.value(pair)))
            }
            for state in states {
                registry.makeGauge(descriptor: describe("hnxdp_pair_state", "1 for the pair's state (idle, settling, active, held-down, disabled), 0 for the others."),
                                   labels: [("synthetic", synthetic), ("state", state.name)])
                    .set(to: pair.state == state ? 1 : 0)
            }
            registry.makeGauge(descriptor: describe("hnxdp_pair_info", "Always 1: the pair's synthetic ifindex and the VF its entry names (empty: none)."),
                               labels: [("synthetic", synthetic), ("ifindex", String(pair.synthetic)),
                                        ("vf", pair.vf.map { pair.vfName ?? "ifindex-\($0)" } ?? "")])
                .set(to: 1)
            registry.makeGauge(descriptor: describe("hnxdp_last_switch_timestamp_seconds", "When the pair's datapath last switched (Unix time); 0: never."),
                               labels: labels)
                .set(to: Double(pair.lastSwitchNs) / 1e9)
        }
        var buffer = registry.emitToBuffer()
        if let observations { observations.registry.emit(into: &buffer) }
        return buffer
    }
}

/// A metric's name and help text (names are given whole, suffix included).
func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}

/// What `run` itself measures, as histograms: how long it takes from a VF's
/// departure notification to the pair's map update (the datapath back on the
/// synthetic), and how long a join takes. Thread-safe (the registry is).
public final class RunObservations: Sendable {
    let registry = PrometheusCollectorRegistry()

    /// Departure reactions are hundreds of microseconds to milliseconds.
    public static let reactionBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .seconds(1),
    ]
    /// Joins take milliseconds to tens of milliseconds (three tcx attachments, ethtool, rtnetlink).
    public static let joinBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .microseconds(2_500_000), .seconds(5),
    ]

    public init() {}

    /// A VF left `synthetic`: `nanoseconds` from the notification to the map update.
    public func departureReaction(synthetic: String, nanoseconds: UInt64) {
        registry.makeDurationHistogram(
            descriptor: describe("hnxdp_departure_reaction_seconds", "Time from a VF's departure notification to the pair's map update (datapath on the synthetic)."),
            labels: [("synthetic", synthetic)], buckets: Self.reactionBuckets)
            .recordNanoseconds(Int64(clamping: nanoseconds))
    }

    /// A VF was joined to `synthetic` in `nanoseconds` (devices, maps and links).
    public func joinDuration(synthetic: String, nanoseconds: UInt64) {
        registry.makeDurationHistogram(
            descriptor: describe("hnxdp_join_duration_seconds", "Time a join of a VF took: features, limits, MTU, map entries and links."),
            labels: [("synthetic", synthetic)], buckets: Self.joinBuckets)
            .recordNanoseconds(Int64(clamping: nanoseconds))
    }
}
