import ArgumentParser
import HnxdpCore

struct Detach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Undo a join exactly: restore features, GSO limits, MTU; remove programs, links and pins.",
        discussion: "With --all, every pair of this network namespace and all of hnxdp's pins in it are removed."
    )

    @Option(help: ArgumentHelp("The synthetic interface of the pair to detach.", valueName: "IF"))
    var synthetic: String?

    @Flag(help: "Detach every pair in this network namespace.")
    var all = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if (synthetic == nil) == !all {
            throw ValidationError("give exactly one of --synthetic IF or --all")
        }
        if let synthetic { try validateInterfaceName(synthetic, option: "--synthetic") }
    }

    func run() throws {
        try HostEnvironment.requirePrivileges("detach")
        let logger = common.logger("detach")
        let lock = try InvocationLock()
        defer { withExtendedLifetime(lock) {} }
        let layout = try common.layout()
        let detach = PairDetach(layout: layout, logger: logger)
        if let synthetic {
            try detach.detach(syntheticNamed: synthetic)
            print("detached \(synthetic)")
        } else {
            let n = try detach.detachAll()
            print("detached \(n) pair\(n == 1 ? "" : "s"); no hnxdp pins left in \(layout.namespaceDirectory)")
        }
    }
}
