import ArgumentParser
import Glibc
import HnxdpCore
import Logging

/// `hnxdp xdp`: a user's XDP program on the pair (B18).
struct Xdp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xdp",
        abstract: "Run a user's XDP program on frames from whichever device carries the pair.",
        discussion: """
        hnxdp's own XDP program sits on the synthetic and on the current VF and tail-calls the \
        user's program, so it follows the VF across departures and returns. Order: frames an \
        AF_XDP socket of `hnxdp xsk` asked for go to the socket first (a tail call never returns, \
        so steering cannot come after the user's program); every other frame gets the user's \
        verdict. The program must be an XDP program (SEC("xdp")); it is loaded without frags \
        support so the tail call is allowed. `hnxdp detach` removes it with the pair.
        """,
        subcommands: [XdpAttach.self, XdpDetach.self]
    )
}

struct XdpAttach: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Attach OBJ.o's XDP program to the pair (replaces one attached before)."
    )

    @OptionGroup var pair: PairOption

    @Argument(help: ArgumentHelp("BPF object file with the XDP program.", valueName: "OBJ.o"))
    var object: String

    @Option(help: ArgumentHelp("Program name in the object (default: its first XDP program).", valueName: "NAME"))
    var prog: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if object.isEmpty { throw ValidationError("OBJ.o must not be empty") }
    }

    func run() throws {
        try common.locked("xdp attach", attach)
    }

    private func attach(_ logger: Logger) throws {
        let netlink = try RTNetlink()
        let pair = try self.pair.resolve(try common.layout(), netlink: netlink)
        let result = try XDPAttachment.attachUser(pair: pair, objectPath: object, programName: prog, netlink: netlink,
                                                  logger: logger, verbose: common.verbose)
        print("attached XDP program \(result.name) (id \(result.id)) from \(object) to \(pair.description)")
    }
}

struct XdpDetach: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Remove the user's XDP program from the pair (and hnxdp's XDP program when no AF_XDP application runs)."
    )

    @OptionGroup var pair: PairOption

    @OptionGroup var common: CommonOptions

    func run() throws {
        // Only takes a program away, so it neither requires nor mounts a bpffs.
        try common.locked("xdp detach", needsBPFFS: false) { _ in try detach() }
    }

    private func detach() throws {
        let netlink = try RTNetlink()
        let pair = try self.pair.resolve(try common.layout(), netlink: netlink)
        let running = XSKPairLock.isHeld(layout: pair.layout, synthetic: pair.synthetic.ifindex)
        guard try XDPAttachment.detachUser(pair: pair, applicationRunning: running) else {
            throw HnxdpError(.badInput, "no XDP program is attached to \(pair.description)")
        }
        print("detached the XDP program from \(pair.description)")
    }
}

/// `--synthetic IF` of `hnxdp xdp` and `hnxdp xsk`: an hnxdp pair or a pair the kernel made.
struct PairOption: ParsableArguments {
    @Option(help: ArgumentHelp("The synthetic interface of an attached pair, or any device of a pair the kernel made (a net_failover master, standby or primary; an hv_netvsc device): hnxdp then changes no device and follows the kernel's VF.", valueName: "IF"))
    var synthetic: String

    func validate() throws {
        try validateInterfaceName(synthetic, option: "--synthetic")
    }

    func resolve(_ layout: PinLayout, netlink: RTNetlink) throws -> XDPPair {
        try XDPPair.resolve(synthetic, option: "--synthetic", layout: layout, netlink: netlink)
    }
}
