import ArgumentParser
import HnxdpCore

struct Dump: ParsableCommand, JSONOutputCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Show what is in hnxdp's maps: pairs, states, features, limits, counters.",
        discussion: "Counters are sums over CPUs. Each pair also shows its last 16 switches between the VF and the synthetic path (when, which way, why). --json prints the object documented in docs/json.md."
    )

    @OptionGroup var output: JSONOption

    @Option(help: ArgumentHelp("Only this synthetic interface's pair.", valueName: "IF"))
    var synthetic: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if let synthetic { try validateInterfaceName(synthetic, option: "--synthetic") }
    }

    func run() throws {
        try HostEnvironment.requirePrivileges("dump", forWriting: false)
        let layout = try common.layout()
        let report = try DumpReport.collect(layout: layout, synthetic: synthetic)
        // Pins this hnxdp cannot use: what it can say, then the one line and exit 1.
        defer { failOnUnusablePins(report, layout: layout) }
        if output.json {
            print(try report.json())
            return
        }
        let pins = report.pinned_by.map { "; made by \($0.version.map { "hnxdp \($0)" } ?? "an hnxdp from before pin versioning")\($0.pin_layout.map { " (pin layout \($0))" } ?? "")" } ?? ""
        print("netns \(report.netns_inode), pins \(report.bpffs)/\(report.netns_inode)\(pins)")
        if report.pairs.isEmpty && report.pinned_by?.usable != false { print("no pairs attached") }
        for p in report.pairs {
            print("pair \(p.synthetic.name ?? "?") (ifindex \(p.synthetic.ifindex), \(p.synthetic.mac ?? "?"))")
            if let vf = p.vf {
                print("  vf        \(vf.name ?? "?") (ifindex \(vf.ifindex)), carrier \(vf.carrier == true ? "up" : "down")")
            } else {
                print("  vf        none")
            }
            print("  state     \(p.state), datapath \(p.datapath), switches \(p.switches)\(p.last_switch.map { ", last \($0)" } ?? "")")
            print("  mtu       \(p.mtu)")
            print("  gso       max_size \(p.gso.max_size) (saved \(p.gso.saved_max_size)), max_segs \(p.gso.max_segs) (saved \(p.gso.saved_max_segs))")
            let off = Set(p.features.saved).subtracting(p.features.effective).sorted()
            print("  features  \(p.features.effective.count) active\(off.isEmpty ? "" : ", off for the VF: " + off.joined(separator: " "))")
            let s = p.stats
            print("  vf        rx \(s.vf_rx_packets) pkts \(s.vf_rx_bytes) B, tx \(s.vf_tx_packets) pkts \(s.vf_tx_bytes) B")
            print("  synthetic rx \(s.syn_rx_packets) pkts \(s.syn_rx_bytes) B, tx \(s.syn_tx_packets) pkts \(s.syn_tx_bytes) B")
            print("  fallback  \(s.tx_fallback_packets) pkts, drops \(s.drops)")
            print("  pins      \(p.pins)")
            if !p.switch_history.isEmpty {
                print("  history   (last \(p.switch_history.count) switches, oldest first)")
                for e in p.switch_history {
                    print("    #\(e.switch) \(e.time) \(e.direction) \(e.reason), VF \(e.vf) (ifindex \(e.vf_ifindex))")
                }
            }
        }
    }
}

struct Status: ParsableCommand, JSONOutputCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "One line per pair: devices, state, datapath, counters.",
        discussion: "--json prints the same object as `dump --json` (docs/json.md)."
    )

    @OptionGroup var output: JSONOption

    @OptionGroup var common: CommonOptions

    func run() throws {
        try HostEnvironment.requirePrivileges("status", forWriting: false)
        let layout = try common.layout()
        let report = try DumpReport.collect(layout: layout, kernel: output.json, history: output.json)
        defer { failOnUnusablePins(report, layout: layout) }
        if output.json {
            print(try report.json())
        } else if report.pinned_by?.usable != false {
            for line in report.statusLines() { print(line) }
        }
    }
}

/// After `dump`/`status` printed what they could: pins this hnxdp cannot use are
/// a failure (exit 1, the one line naming `hnxdp migrate`).
func failOnUnusablePins(_ report: DumpReport, layout: PinLayout) {
    guard report.pinned_by?.usable == false,
          let line = (try? Datapath.pinCompatibility(layout))?.refusal(directory: layout.namespaceDirectory) else { return }
    HnxdpCommand.fail(line, code: 1)
}
