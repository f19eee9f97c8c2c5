import ArgumentParser
import Glibc
import HnxdpCore

struct Monitor: ParsableCommand, JSONOutputCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Live view of every pair: state, datapath, packets and bytes per second on each path.",
        discussion: """
        Refreshed every --interval seconds: for each pair its devices, state, which path frames \
        take now (vf or synthetic), the switches and the last one (time, direction, reason), and \
        packets and bytes per second received and sent on the VF path and on the synthetic's own \
        path, transmit fallbacks and drops. Rates are the counters' growth over the real time \
        between two reads.

        On a terminal the view is redrawn in place (alternate screen; it follows window resizes). \
        Keys: q quits, Ctrl-L redraws; Ctrl-C quits too, Ctrl-Z suspends. NO_COLOR turns colour \
        off; TERM=dumb prints frames one after another with no control sequences.

        With --json, one JSON object per interval (one per line) on stdout for scripts instead of \
        the live view (docs/json.md); without --json, standard output must be a terminal.

        monitor only reads hnxdp's pins: it works with `attach` alone or beside `run`, and \
        changes nothing.
        """
    )

    @OptionGroup var output: JSONOption

    @Option(help: ArgumentHelp("Seconds between two refreshes, 0.1 to 3600.", valueName: "SECONDS"))
    var interval: Double = 1

    @Option(help: ArgumentHelp("Exit after N refreshes (N JSON lines, or N frames on a terminal).", valueName: "N"))
    var count: Int?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if !(interval >= 0.1 && interval <= 3600) { throw ValidationError("--interval must be between 0.1 and 3600 seconds, got \(interval)") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1, got \(count)") }
    }

    func run() throws {
        try HostEnvironment.requirePrivileges("monitor", forWriting: false)
        if !output.json && !Terminal.isTerminal(1) {
            throw HnxdpError(.badInput, "monitor: standard output is not a terminal; use `hnxdp monitor --json` for one JSON object per interval")
        }
        let monitor = try HnxdpCore.Monitor(layout: try common.layout(), options: MonitorOptions(intervalSeconds: interval, count: count))
        if output.json {
            setvbuf(stdout, nil, _IOLBF, 0)
            try monitor.runJSON { print($0) }
            return
        }
        let env = { (name: String) in getenv(name).flatMap { String(validatingCString: $0) } }
        try monitor.runTerminal(Terminal(mode: Terminal.mode(term: env("TERM"), noColor: env("NO_COLOR"))))
    }
}
