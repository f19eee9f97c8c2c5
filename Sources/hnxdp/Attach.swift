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
        synthetic, then attaches the tcx programs: VF ingress -> synthetic, synthetic egress -> VF. \
        Any failure undoes the steps already done. Attaching an already attached pair is a no-op. \
        `hnxdp detach` undoes all of it exactly. With --json: what was done, as one object \
        (docs/json.md).
        """
    )

    @Option(help: ArgumentHelp("The synthetic (paravirtual) interface, the one upper layers use.", valueName: "IF"))
    var synthetic: String

    @Option(help: ArgumentHelp("The VF: an Ethernet device with the synthetic's MAC.", valueName: "IF"))
    var vf: String

    @Option(name: .customLong("settle-ms"), parsing: .unconditional, help: ArgumentHelp("Wait this long before joining (default 0 for attach).", valueName: "N"))
    var settleMs: UInt32 = 0

    @Flag(help: "Pair even when the MAC addresses differ.")
    var force = false

    @OptionGroup var output: JSONOption

    @OptionGroup var common: CommonOptions

    func validate() throws {
        try validateInterfaceName(synthetic, option: "--synthetic")
        try validateInterfaceName(vf, option: "--vf")
        if settleMs > 600_000 { throw ValidationError("--settle-ms \(settleMs) is above the 600000 ms limit") }
    }

    func run() throws {
        let result = try common.locked("attach") { logger in
            if settleMs > 0 { sleepMilliseconds(settleMs) }
            return try common.lifecycle(logger).attach(synthetic: synthetic, vf: vf, force: force)
        }
        if output.json {
            return try JSONOutput.emit(AttachResult(
                result: result.alreadyAttached ? "already-attached" : "attached",
                synthetic: DeviceName(result.synthetic), vf: DeviceName(result.vf),
                mtu: result.mtu, mtu_fallback: result.mtuFallback,
                gso_max_size: result.gsoMaxSize, gso_max_segs: result.gsoMaxSegs,
                features_turned_off: result.featuresTurnedOff))
        }
        if result.alreadyAttached {
            print("\(result.synthetic.name) <- \(result.vf.name): already attached, nothing changed")
            return
        }
        var line = "attached \(result.synthetic.name) (ifindex \(result.synthetic.ifindex)) <- \(result.vf.name) (ifindex \(result.vf.ifindex)): datapath vf, mtu \(result.mtu)"
        if let size = result.gsoMaxSize, let segs = result.gsoMaxSegs { line += ", gso \(size)/\(segs)" }
        if !result.featuresTurnedOff.isEmpty { line += ", turned off on \(result.synthetic.name): \(result.featuresTurnedOff.joined(separator: " "))" }
        if result.mtuFallback { line += " (VF refused the MTU: both fell back to 1500)" }
        print(line)
    }
}

func sleepMilliseconds(_ ms: UInt32) {
    var request = timespec(tv_sec: Int(ms / 1000), tv_nsec: Int(ms % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
