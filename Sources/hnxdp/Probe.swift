import ArgumentParser
import HnxdpCore

struct Probe: ParsableCommand, JSONOutputCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Show what this kernel and this namespace's devices offer hnxdp; changes nothing.",
        discussion: """
        The kernel: BTF (required), tcx links (Linux 6.6+; without them pairs attach as classic \
        tc filters on a clsact qdisc), the kfuncs of the main datapath object (Linux 6.2+; without \
        them a variant built without kfuncs is loaded), AF_XDP sockets, multicast address \
        notifications. The devices: driver, bus, and what `hnxdp run` without --synthetic makes of \
        each (synthetic, VF candidate, a VF the kernel already pairs, or other, with the reason). \
        Exit 3 when the kernel is below hnxdp's floor. --json prints all of it as one object \
        (docs/json.md).
        """
    )

    @OptionGroup var output: JSONOption

    func run() throws {
        let report = try ProbeReport.collect()
        if output.json { print(try report.json()) } else { report.textLines().forEach { print($0) } }
        if !report.supported { throw ExitCode(3) }
    }
}
