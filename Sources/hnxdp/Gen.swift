import ArgumentParser
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HnxdpCore

struct Gen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gen",
        abstract: "Generate UDP frames out of a device at several Mpps (BPF_PROG_TEST_RUN live frames).",
        discussion: """
        The kernel builds real frames from one template and an XDP program redirects them out of \
        --dev (devmap bulk transmit). Into a veth, the peer needs an XDP program or GRO on \
        (`ethtool -K PEER gro on`) to take them. Always bounded: --count frames, --seconds at most. \
        Only for test networks: send to addresses of your own namespaces (198.18.0.0/15, fd00::/8).
        """
    )

    @Option(help: ArgumentHelp("Device the frames leave through.", valueName: "IF"))
    var dev: String

    @Option(name: .customLong("dst-mac"), help: ArgumentHelp("Destination MAC.", valueName: "MAC"))
    var dstMAC: String

    @Option(name: .customLong("src-mac"), help: ArgumentHelp("Source MAC (default: --dev's).", valueName: "MAC"))
    var srcMAC: String?

    @Option(name: .customLong("dst-ip"), help: ArgumentHelp("Destination IPv4 or IPv6 address.", valueName: "IP"))
    var dstIP: String

    @Option(name: .customLong("src-ip"), help: ArgumentHelp("Source address (default 198.18.0.2 or fd00::2).", valueName: "IP"))
    var srcIP: String?

    @Option(name: .customLong("dst-port"), help: "UDP destination port.")
    var dstPort: UInt16 = 9

    @Option(name: .customLong("src-port"), help: "UDP source port.")
    var srcPort: UInt16 = 9

    @Option(help: "Frame size in bytes including the FCS (64 = minimum).")
    var size: Int = 64

    @Option(help: "Frames per second, 0 = as fast as possible (paced in bursts of about 50 ms).")
    var rate: UInt64 = 0

    @Option(help: "Frames to send.")
    var count: UInt64

    @Option(help: "Stop after this many seconds even if --count is not reached.")
    var seconds: Double = 60

    @Flag(help: "Print {\"generator\", \"frames\", \"seconds\", \"fps\"} as JSON.")
    var json = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        try validateInterfaceName(dev, option: "--dev")
        guard LinkInfo.parseMAC(dstMAC) != nil else { throw ValidationError("--dst-mac '\(dstMAC)' is not a MAC address") }
        if let srcMAC, LinkInfo.parseMAC(srcMAC) == nil { throw ValidationError("--src-mac '\(srcMAC)' is not a MAC address") }
        guard let dst = FrameTemplate.parseIP(dstIP) else { throw ValidationError("--dst-ip '\(dstIP)' is not an IP address") }
        if let srcIP {
            guard let src = FrameTemplate.parseIP(srcIP), src.count == dst.count else {
                throw ValidationError("--src-ip '\(srcIP)' is not an address of the same family as --dst-ip")
            }
        }
        if size < 64 || size > 1518 { throw ValidationError("--size must be from 64 to 1518") }
        if count == 0 || count > 10_000_000_000 { throw ValidationError("--count must be from 1 to 10000000000") }
        if seconds <= 0 || seconds > 3600 { throw ValidationError("--seconds must be above 0 and at most 3600") }
    }

    func run() throws {
        try HostEnvironment.requirePrivileges("gen")
        let netlink = try RTNetlink()
        let device = try netlink.requireLink(named: dev, option: "--dev")
        let dst = FrameTemplate.parseIP(dstIP)!
        let src = srcIP.flatMap(FrameTemplate.parseIP) ?? (dst.count == 4 ? [198, 18, 0, 2] : FrameTemplate.parseIP("fd00::2")!)
        let template = FrameTemplate(sourceMAC: srcMAC.flatMap(LinkInfo.parseMAC) ?? device.mac,
                                     destinationMAC: LinkInfo.parseMAC(dstMAC)!, sourceIP: src, destinationIP: dst,
                                     sourcePort: srcPort, destinationPort: dstPort, frameSize: size)
        let generator = try TrafficGenerator(device: device, verbose: common.verbose)
        let result = try generator.send(frame: template.bytes(), count: count, rate: rate, deadlineSeconds: seconds)
        if json {
            print("{\"generator\": \"hnxdp gen (BPF_PROG_TEST_RUN live frames)\", \"frames\": \(result.frames), \"left\": \(result.left.map(String.init) ?? "null"), \"seconds\": \(cFormat("%.6f", result.seconds)), \"fps\": \(Int(result.framesPerSecond))}")
        } else {
            let left = result.left.map { "; \(dev) counted \($0) transmitted" } ?? "; \(dev) reports no transmit counter"
            print("sent \(result.frames) frames of \(size) bytes out of \(dev) in \(cFormat("%.3f", result.seconds)) s: \(cFormat("%.0f", result.framesPerSecond)) frames/s\(left)")
        }
    }
}
