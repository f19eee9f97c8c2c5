import ArgumentParser
import Glibc
import HnxdpCore

/// `hnxdp capture`: both directions of a pair as the datapath sees them.
struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture a pair's frames in both directions, with the path each took (pcapng or text).",
        discussion: """
        While a VF is joined, `tcpdump -i` on the synthetic sees received frames only: what the \
        synthetic sends is moved to the VF before the point where packet taps run. This command \
        asks hnxdp's own programs for a copy of every frame of the pair, with its path:
          vf-rx   received on the VF, handed to the synthetic
          syn-rx  received on the synthetic's own path
          vf-tx   sent on the synthetic, left through the VF
          syn-tx  sent on the synthetic, left through its own path (no VF, or VF without carrier)

        With -w FILE (or -w - for stdout) it writes pcapng with one interface per path, named \
        like "hn0:vf-rx", and a comment per frame naming the path and the device; \
        `tcpdump -r FILE` and Wireshark read it (Wireshark shows the interface of each frame). \
        `hnxdp capture --synthetic hn0 -w - | tcpdump -n -r -` shows the frames live. Without \
        -w, one line per frame is printed. A summary goes to stderr at the end.

        The capture ends after -c frames, after --seconds (default 60), on SIGINT/SIGTERM, or \
        when the reader of -w - goes away; the datapath's copying is switched off again in every \
        case (if the process is killed, the datapath switches it off by itself at the next \
        frame). When no capture runs the datapath does nothing but check one flag. One capture \
        per network namespace at a time.
        """
    )

    @Option(help: ArgumentHelp("The synthetic interface of an attached pair.", valueName: "IF"))
    var synthetic: String

    @Option(name: [.customShort("w"), .customLong("write")],
            help: ArgumentHelp("Write pcapng to FILE (`-` for stdout) instead of text lines.", valueName: "FILE"))
    var write: String?

    @Option(name: [.customShort("c"), .customLong("count")], help: ArgumentHelp("Stop after N frames.", valueName: "N"))
    var count: UInt64?

    @Option(help: ArgumentHelp("Copy at most N bytes of each frame (default and most: \(PacketCapture.maxSnaplen)).", valueName: "N"))
    var snaplen: UInt32 = PacketCapture.maxSnaplen

    @Option(help: ArgumentHelp("Stop after N seconds (default 60, at most 86400).", valueName: "N"))
    var seconds: Double = 60

    @OptionGroup var common: CommonOptions

    func validate() throws {
        try validateInterfaceName(synthetic, option: "--synthetic")
        if let count, count == 0 { throw ValidationError("-c/--count must be at least 1") }
        if snaplen == 0 || snaplen > PacketCapture.maxSnaplen {
            throw ValidationError("--snaplen must be 1..\(PacketCapture.maxSnaplen)")
        }
        if !(seconds > 0 && seconds <= 86_400) { throw ValidationError("--seconds must be in (0, 86400]") }
        if let write, write.isEmpty { throw ValidationError("-w needs a file name or -") }
    }

    func run() throws {
        try common.privileged("capture")
        let capture = try PacketCapture(layout: try common.layout(), synthetic: synthetic, snaplen: snaplen)
        let output = try CaptureOutput(path: write)
        if capture.staleToken != 0 {
            fputs("hnxdp capture: switching off the copy a capture (pid \(capture.staleToken >> 32)) left on\n", stderr)
        }
        try output.begin(synthetic: synthetic, snaplen: snaplen)
        CaptureSignals.install()
        let bound = count.map { "\($0) frames or " } ?? ""
        let s = try capture.run(count: count, seconds: seconds, shouldStop: { CaptureSignals.stop != 0 }, onStart: {
            fputs("hnxdp capture: capturing \(synthetic)'s frames on every path (snaplen \(snaplen); until \(bound)\(formatSeconds(seconds)))\n", stderr)
        }, onFrame: output.frame)
        let perPath = CapturePath.allCases.map { "\($0.name) \(s.perPath[Int($0.id)])" }.joined(separator: ", ")
        fputs("hnxdp capture: \(s.frames) frames (\(perPath)), \(s.lost) lost\(s.readerGone ? ", reader gone" : "")\n", stderr)
    }

    private func formatSeconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }
}

/// SIGINT/SIGTERM end the capture cleanly (flag off, perf buffers closed);
/// SIGPIPE is ignored so a reader that went away ends it through EPIPE.
enum CaptureSignals {
    nonisolated(unsafe) static var stop: sig_atomic_t = 0
    static func install() {
        signal(SIGINT) { _ in CaptureSignals.stop = 1 }
        signal(SIGTERM) { _ in CaptureSignals.stop = 1 }
        signal(SIGPIPE, SIG_IGN)
    }
}
