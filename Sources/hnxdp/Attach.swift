import ArgumentParser
import Glibc
import HnxdpCore

struct Attach: ParsableCommand, JSONOutputCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Join a VF to its synthetic interface now and leave the datapath pinned.",
        discussion: """
        Saves the synthetic's offload features and GSO limits, sets them to the intersection / \
        minimum of both devices, pushes the synthetic's MTU to the VF, brings the VF up with the \
        synthetic, then attaches the programs (tcx, or classic tc: --tc-mode): VF ingress -> \
        synthetic, synthetic egress -> VF. Any failure undoes the steps already done. Attaching \
        an already attached pair is a no-op. `hnxdp detach` undoes all of it exactly.

        With --pairs FILE, every pair of the list in one invocation, in its order; when one \
        fails, the pairs attached before it are detached again. Many pairs attach fastest with \
        --tc-mode classic: a tcx link waits for an RCU grace period in the kernel, a tc filter \
        does not.

        With --json: what was done, as one object (docs/json.md).
        """
    )

    @Option(help: ArgumentHelp("The synthetic (paravirtual) interface, the one upper layers use.", valueName: "IF"))
    var synthetic: String?

    @Option(help: ArgumentHelp("The VF: an Ethernet device with the synthetic's MAC.", valueName: "IF"))
    var vf: String?

    @Option(help: ArgumentHelp("Attach every pair of FILE instead (- for standard input): one 'SYNTHETIC VF' per line, '#' starts a comment. All or nothing: when one pair fails, the pairs attached before it are detached again.", valueName: "FILE"))
    var pairs: String?

    @Option(name: .customLong("settle-ms"), parsing: .unconditional, help: ArgumentHelp("Wait this long before joining (default 0 for attach).", valueName: "N"))
    var settleMs: UInt32 = 0

    @Flag(help: "Pair even when the MAC addresses differ.")
    var force = false

    @OptionGroup var output: JSONOption

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if pairs != nil {
            if synthetic != nil || vf != nil { throw ValidationError("give either --synthetic IF --vf IF or --pairs FILE, not both") }
        } else {
            guard let synthetic, let vf else { throw ValidationError("give --synthetic IF and --vf IF (or --pairs FILE)") }
            try validateInterfaceName(synthetic, option: "--synthetic")
            try validateInterfaceName(vf, option: "--vf")
        }
        if settleMs > 600_000 { throw ValidationError("--settle-ms \(settleMs) is above the 600000 ms limit") }
    }

    /// The pairs to attach: --synthetic/--vf, or the list of --pairs (read before anything changes).
    func requestedPairs() throws -> [PairNames] {
        guard let pairs else { return [PairNames(synthetic: synthetic ?? "", vf: vf ?? "")] }
        return try PairNames.load(from: pairs)
    }

    func run() throws {
        let requested = try requestedPairs()
        let results = try common.locked("attach") { logger in
            if settleMs > 0 { sleepMilliseconds(settleMs) }
            let lifecycle = try common.lifecycle(logger)
            if pairs == nil, let only = requested.first {
                return [try lifecycle.attach(synthetic: only.synthetic, vf: only.vf, force: force)]
            }
            return try lifecycle.attach(pairs: requested, force: force)
        }
        if output.json {
            if pairs == nil, let only = results.first { return try JSONOutput.emit(AttachResult(pair: AttachedPair(only))) }
            return try JSONOutput.emit(AttachManyResult(pairs: results.map(AttachedPair.init)))
        }
        for result in results { print(Self.line(result)) }
        if pairs != nil {
            let already = results.filter(\.alreadyAttached).count
            print("attached \(results.count - already) pair\(results.count - already == 1 ? "" : "s")\(already > 0 ? ", \(already) already attached" : "")")
        }
    }

    /// What was done to one pair, as one line.
    static func line(_ result: JoinResult) -> String {
        if result.alreadyAttached { return "\(result.synthetic.name) <- \(result.vf.name): already attached, nothing changed" }
        var line = "attached \(result.synthetic.name) (ifindex \(result.synthetic.ifindex)) <- \(result.vf.name) (ifindex \(result.vf.ifindex)): datapath vf, mtu \(result.mtu)"
        if let size = result.gsoMaxSize, let segs = result.gsoMaxSegs { line += ", gso \(size)/\(segs)" }
        if !result.featuresTurnedOff.isEmpty { line += ", turned off on \(result.synthetic.name): \(result.featuresTurnedOff.joined(separator: " "))" }
        if result.mtuFallback { line += " (VF refused the MTU: both fell back to 1500)" }
        return line
    }
}

func sleepMilliseconds(_ ms: UInt32) {
    var request = timespec(tv_sec: Int(ms / 1000), tv_nsec: Int(ms % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
