import Foundation
@testable import HnxdpCore
import XCTest

/// The Prometheus exposition of `hnxdp run` (docs/metrics.md): names, labels,
/// escaping, one-hot states, histograms; the endpoint's address rules; the
/// config keys. The real maps and promtool are exercised by integration/test_88_metrics.py.
final class MetricsTests: XCTestCase {
    func pair(_ syn: Int32, _ name: String?, vf: Int32? = nil, vfName: String? = nil, state: PairState = .active) -> PairCounters {
        var stats = PairReport.Stats()
        stats.vf_rx_packets = 10; stats.vf_rx_bytes = 640; stats.vf_tx_packets = 3; stats.vf_tx_bytes = 300
        stats.syn_rx_packets = 1; stats.syn_rx_bytes = 60; stats.syn_tx_packets = 2; stats.syn_tx_bytes = 120
        stats.tx_fallback_packets = 4; stats.drops = 0
        return PairCounters(synthetic: syn, syntheticName: name, vf: vf, vfName: vfName, slot: 0, state: state,
                            switches: 5, lastSwitchNs: 1_700_000_000_500_000_000, stats: stats)
    }

    func lines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// name{labels} -> value, for the sample lines.
    func samples(_ bytes: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        for line in lines(bytes) where !line.hasPrefix("#") {
            let space = line.lastIndex(of: " ")!
            out[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        return out
    }

    func testCountersStatesAndInfoPerPair() {
        let out = MetricsExposition.render(pairs: [pair(5, "hn0", vf: 7, vfName: "vf0"), pair(9, "hn1", state: .idle)], version: "1.2.3")
        let s = samples(out)
        XCTAssertEqual(s[#"hnxdp_build_info{version="1.2.3"}"#], "1.0")
        XCTAssertEqual(s["hnxdp_pairs"], "2.0")
        XCTAssertEqual(s[#"hnxdp_vf_rx_packets_total{synthetic="hn0"}"#], "10")
        XCTAssertEqual(s[#"hnxdp_vf_rx_bytes_total{synthetic="hn0"}"#], "640")
        XCTAssertEqual(s[#"hnxdp_vf_tx_packets_total{synthetic="hn1"}"#], "3")
        XCTAssertEqual(s[#"hnxdp_synthetic_rx_packets_total{synthetic="hn0"}"#], "1")
        XCTAssertEqual(s[#"hnxdp_synthetic_tx_bytes_total{synthetic="hn0"}"#], "120")
        XCTAssertEqual(s[#"hnxdp_tx_fallback_packets_total{synthetic="hn0"}"#], "4")
        XCTAssertEqual(s[#"hnxdp_dropped_packets_total{synthetic="hn0"}"#], "0")
        XCTAssertEqual(s[#"hnxdp_switches_total{synthetic="hn1"}"#], "5")
        XCTAssertEqual(s[#"hnxdp_pair_state{synthetic="hn0",state="active"}"#], "1.0")
        XCTAssertEqual(s[#"hnxdp_pair_state{synthetic="hn0",state="idle"}"#], "0.0")
        XCTAssertEqual(s[#"hnxdp_pair_state{synthetic="hn1",state="idle"}"#], "1.0")
        for state in ["settling", "held-down", "disabled"] {
            XCTAssertEqual(s[#"hnxdp_pair_state{synthetic="hn1",state="\#(state)"}"#], "0.0")
        }
        XCTAssertEqual(s[#"hnxdp_pair_info{synthetic="hn0",ifindex="5",vf="vf0"}"#], "1.0")
        XCTAssertEqual(s[#"hnxdp_pair_info{synthetic="hn1",ifindex="9",vf=""}"#], "1.0")
        XCTAssertEqual(s[#"hnxdp_last_switch_timestamp_seconds{synthetic="hn0"}"#], "1700000000.5")
    }

    func testNamesFollowPrometheusConventions() {
        let observations = RunObservations()
        observations.departureReaction(synthetic: "hn0", nanoseconds: 300_000)
        observations.joinDuration(synthetic: "hn0", nanoseconds: 12_000_000)
        let out = MetricsExposition.render(pairs: [pair(5, "hn0")], observations: observations)
        var types: [String: String] = [:]
        var helps = Set<String>()
        for line in lines(out) {
            let f = line.split(separator: " ", maxSplits: 3).map(String.init)
            if line.hasPrefix("# TYPE ") {
                XCTAssertNil(types[f[2]], "one TYPE line per family: \(f[2])")
                types[f[2]] = f[3]
            } else if line.hasPrefix("# HELP ") {
                XCTAssertFalse(helps.contains(f[2]))
                helps.insert(f[2])
            }
        }
        XCTAssertEqual(Set(types.keys), helps, "every family has a help text (promtool requires it)")
        for (name, type) in types {
            XCTAssertTrue(name.hasPrefix("hnxdp_"), name)
            XCTAssertNotNil(name.range(of: #"^[a-z_][a-z0-9_]*$"#, options: .regularExpression), name)
            XCTAssertEqual(name.hasSuffix("_total"), type == "counter", "counters, and only they, end in _total: \(name)")
            if type == "histogram" { XCTAssertTrue(name.hasSuffix("_seconds"), name) }
        }
        XCTAssertEqual(types["hnxdp_departure_reaction_seconds"], "histogram")
        XCTAssertEqual(types["hnxdp_join_duration_seconds"], "histogram")
        XCTAssertEqual(types["hnxdp_build_info"], "gauge")
        XCTAssertEqual(types["hnxdp_pair_state"], "gauge")
        XCTAssertEqual(Set(MetricsExposition.counters.map(\.name)).count, 11)
    }

    func testHistogramBucketsInSeconds() {
        let observations = RunObservations()
        observations.departureReaction(synthetic: "hn0", nanoseconds: 300_000)
        observations.departureReaction(synthetic: "hn0", nanoseconds: 2_000_000)
        observations.joinDuration(synthetic: "hn1", nanoseconds: 12_000_000)
        let s = samples(MetricsExposition.render(pairs: [], observations: observations))
        XCTAssertEqual(s[#"hnxdp_departure_reaction_seconds_bucket{synthetic="hn0",le="0.00025"}"#], "0")
        XCTAssertEqual(s[#"hnxdp_departure_reaction_seconds_bucket{synthetic="hn0",le="0.0005"}"#], "1")
        XCTAssertEqual(s[#"hnxdp_departure_reaction_seconds_bucket{synthetic="hn0",le="0.0025"}"#], "2")
        XCTAssertEqual(s[#"hnxdp_departure_reaction_seconds_bucket{synthetic="hn0",le="+Inf"}"#], "2")
        XCTAssertEqual(s[#"hnxdp_departure_reaction_seconds_count{synthetic="hn0"}"#], "2")
        XCTAssertEqual(Double(s[#"hnxdp_departure_reaction_seconds_sum{synthetic="hn0"}"#] ?? "")!, 0.0023, accuracy: 1e-9)
        XCTAssertEqual(s[#"hnxdp_join_duration_seconds_bucket{synthetic="hn1",le="0.01"}"#], "0")
        XCTAssertEqual(s[#"hnxdp_join_duration_seconds_bucket{synthetic="hn1",le="0.025"}"#], "1")
    }

    /// Interface names may hold `"` and `\` (the kernel forbids only `/`, `:` and
    /// white space): label values are escaped, never break a line.
    func testLabelValuesAreEscaped() {
        let out = MetricsExposition.render(pairs: [pair(5, #"a"b\c"#, vf: 7, vfName: "v\nf")])
        let s = samples(out)
        XCTAssertEqual(s[#"hnxdp_vf_rx_packets_total{synthetic="a\"b\\c"}"#], "10")
        XCTAssertEqual(s[#"hnxdp_pair_info{synthetic="a\"b\\c",ifindex="5",vf="v\nf"}"#], "1.0")
        for line in lines(out) { XCTAssertTrue(line.hasPrefix("#") || line.hasPrefix("hnxdp_"), line) }
    }

    func testPairWithoutNamesIsLabelledByIfindex() {
        let s = samples(MetricsExposition.render(pairs: [pair(5, nil, vf: 7, vfName: nil)]))
        XCTAssertEqual(s[#"hnxdp_vf_rx_packets_total{synthetic="ifindex-5"}"#], "10")
        XCTAssertEqual(s[#"hnxdp_pair_info{synthetic="ifindex-5",ifindex="5",vf="ifindex-7"}"#], "1.0")
    }

    func testCountersAboveInt64AreClamped() {
        var p = pair(5, "hn0")
        p.stats.vf_rx_bytes = UInt64.max
        XCTAssertEqual(samples(MetricsExposition.render(pairs: [p]))[#"hnxdp_vf_rx_bytes_total{synthetic="hn0"}"#], String(Int64.max))
    }

    func testListenAddressIsLoopbackOnly() throws {
        XCTAssertEqual(try MetricsListenAddress.parse("127.0.0.1:9469"), MetricsListenAddress(address: [127, 0, 0, 1], port: 9469))
        XCTAssertEqual(try MetricsListenAddress.parse("127.1.2.3:80").description, "127.1.2.3:80")
        XCTAssertEqual(try MetricsListenAddress.parse("localhost:9469").description, "127.0.0.1:9469")
        XCTAssertEqual(try MetricsListenAddress.parse("[::1]:9469").address, [UInt8](repeating: 0, count: 15) + [1])
        XCTAssertEqual(try MetricsListenAddress.parse("[0:0:0:0:0:0:0:1]:1").description, "[::1]:1")
        for bad in ["0.0.0.0:9469", "198.18.0.1:9469", "[::]:9469", "[fd00::1]:9469", "127.0.0.1", "127.0.0.1:0",
                    "127.0.0.1:65536", "127.0.0.1:x", "127.0.0.1.1:9", "127.0.0:9", "example.com:9469", ":9469",
                    "::1:9469", "[::1]9469", "[::1:9469", "127.0.0.01a:9", "+127.0.0.1:9", "[1:2:3:4:5:6:7:8:9]:9"] {
            XCTAssertThrowsError(try MetricsListenAddress.parse(bad), bad) { error in
                XCTAssertEqual((error as? HnxdpError)?.exitCode, 2, bad)
            }
        }
        XCTAssertThrowsError(try MetricsListenAddress.parse("0.0.0.0:9469")) { error in
            XCTAssertTrue((error as! HnxdpError).message.contains("not a loopback address"))
        }
    }

    func testTextfilePath() throws {
        XCTAssertEqual(try MetricsSettings.validateTextfile("/var/lib/node/hnxdp.prom", option: "--metrics-textfile"), "/var/lib/node/hnxdp.prom")
        for bad in ["hnxdp.prom", "/var/lib/node/hnxdp.txt", "/var/lib/node/.prom", "/var/lib/node/", "relative/x.prom"] {
            XCTAssertThrowsError(try MetricsSettings.validateTextfile(bad, option: "--metrics-textfile"), bad)
        }
        XCTAssertEqual(MetricsService.directory(of: "/a/b/c.prom"), "/a/b")
        XCTAssertEqual(MetricsService.directory(of: "/c.prom"), "/")
    }

    func testConfigKeys() throws {
        let s = try RunConfig.parse("metrics-listen = [::1]:9470\nmetrics-textfile = /run/x/hnxdp.prom\n", file: "f")
        XCTAssertEqual(s.metrics.listen?.description, "[::1]:9470")
        XCTAssertEqual(s.metrics.textfile, "/run/x/hnxdp.prom")
        XCTAssertTrue(s.metrics.isOn)
        XCTAssertFalse(try RunConfig.parse("", file: "f").metrics.isOn)
        XCTAssertThrowsError(try RunConfig.parse("\nmetrics-listen = 0.0.0.0:9469\n", file: "f")) { error in
            let message = (error as! HnxdpError).message
            XCTAssertTrue(message.hasPrefix("invalid config f line 2: 'metrics-listen' '0.0.0.0:9469': not a loopback address"), message)
        }
        XCTAssertThrowsError(try RunConfig.parse("metrics-textfile = x.prom", file: "f"))
        XCTAssertThrowsError(try RunConfig.parse("metrics-listen = 127.0.0.1:1\nmetrics-listen = 127.0.0.1:2", file: "f"))
    }

    func testReloadDoesNotChangeMetrics() throws {
        let current = RunSettings()
        var requested = RunSettings()
        requested.metrics.listen = try MetricsListenAddress.parse("127.0.0.1:9469")
        let plan = RunReload.plan(current: current, requested: requested)
        XCTAssertEqual(plan.settings.metrics, current.metrics)
        XCTAssertEqual(plan.refused.count, 1)
        XCTAssertTrue(plan.refused[0].contains("restart"))
    }

    func testHTTPRequestHead() {
        func head(_ s: String) -> HTTPRequestHead? { HTTPRequestHead(Array(s.utf8)) }
        XCTAssertEqual(head("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), HTTPRequestHead(method: "GET", path: "/metrics"))
        XCTAssertEqual(head("HEAD /metrics?x=1 HTTP/1.0\n\n")?.path, "/metrics")
        XCTAssertNil(head("GET /metrics\r\n\r\n"))
        XCTAssertNil(head("GET metrics HTTP/1.1\r\n\r\n"))
        XCTAssertNil(head("\u{16}\u{3}\u{1}"))
        XCTAssertEqual(HTTPRequestHead.end(of: Array("GET / HTTP/1.1\r\nA: b\r\n\r\nrest".utf8)), 24)
        XCTAssertNil(HTTPRequestHead.end(of: Array("GET / HTTP/1.1\r\nA: b\r\n".utf8)))
    }
}
