import ArgumentParser
import HnxdpCore
import Logging

struct Detach: ParsableCommand, JSONOutputCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Undo a join exactly: restore features, GSO limits, MTU; remove programs, links and pins.",
        discussion: "With --all, every pair of this network namespace and all of hnxdp's pins in it are removed. With --json: what was done, as one object (docs/json.md)."
    )

    @Option(help: ArgumentHelp("The synthetic interface of the pair to detach.", valueName: "IF"))
    var synthetic: String?

    @Flag(help: "Detach every pair in this network namespace.")
    var all = false

    @OptionGroup var output: JSONOption

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if (synthetic == nil) == !all {
            throw ValidationError("give exactly one of --synthetic IF or --all")
        }
        if let synthetic { try validateInterfaceName(synthetic, option: "--synthetic") }
    }

    func run() throws {
        // Only takes pins away, so it neither requires nor mounts a bpffs.
        try common.locked("detach", needsBPFFS: false, detach)
    }

    private func detach(_ logger: Logger) throws {
        let layout = try common.layout()
        let detach = PairDetach(layout: layout, logger: logger)
        if output.json {
            // What is detached, as it is before (best effort: detach also cleans up pins too broken to read).
            let before = (try? DumpReport.collect(layout: layout, synthetic: synthetic))?.pairs ?? []
            if let synthetic { try detach.detach(syntheticNamed: synthetic) } else { try detach.detachAll() }
            return try JSONOutput.emit(DetachResult(
                pairs: before.map {
                    DetachResult.Pair(synthetic: DeviceName(name: $0.synthetic.name, ifindex: $0.synthetic.ifindex),
                                      vf: $0.vf.map { DeviceName(name: $0.name, ifindex: $0.ifindex) },
                                      state: $0.state, switches: $0.switches)
                },
                pins_removed: !FileSystem.exists(layout.namespaceDirectory)))
        }
        if let synthetic {
            try detach.detach(syntheticNamed: synthetic)
            print("detached \(synthetic)")
        } else {
            let n = try detach.detachAll()
            print("detached \(n) pair\(n == 1 ? "" : "s"); no hnxdp pins left in \(layout.namespaceDirectory)")
        }
    }
}
