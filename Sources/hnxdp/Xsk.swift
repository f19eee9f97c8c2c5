import ArgumentParser
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import HnxdpCore

/// `hnxdp xsk`: AF_XDP sockets on a pair (B17).
struct Xsk: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xsk",
        abstract: "AF_XDP sockets on a pair: frames from whichever device carries the pair.",
        discussion: """
        The sockets follow the pair: bound to the synthetic's queue always and to the current VF's \
        queue while the pair is active on it; a VF departure or return rebinds them without \
        re-opening. Zero-copy is tried first, copy mode is the fallback (veth: copy). One AF_XDP \
        application per pair at a time. When it exits, its sockets leave the XSKMAP and every frame \
        takes the stack path again (also after kill -9). \

        On a pair the kernel made itself (KVM's net_failover, Hyper-V's hv_netvsc), the sockets \
        bind to the always-there device (the failover standby, the netvsc device) and to the VF the \
        kernel has enslaved, and follow the kernel's joins and releases; hnxdp steers nothing there \
        and changes no setting of any device (coexistence).
        """,
        subcommands: [XskCount.self, XskReflect.self]
    )
}

/// Options of the xsk subcommands.
struct XskOptions: ParsableArguments {
    @OptionGroup var pair: PairOption

    @Option(help: ArgumentHelp("Stop after N seconds (default: run until SIGINT/SIGTERM).", valueName: "N"))
    var seconds: Double?

    @Option(help: ArgumentHelp("Only this receive queue (default: every queue of the synthetic).", valueName: "Q"))
    var queue: UInt32?

    @Option(name: .customLong("udp-port"), help: ArgumentHelp("Steer only IPv4/IPv6 UDP to this port to the sockets; the rest takes the stack path (default: every frame but ARP and IPv6 neighbour discovery, which the stack keeps answering).", valueName: "PORT"))
    var udpPort: UInt16?

    @Flag(help: "Print socket events (bind, VF departure, rebind) to stderr.")
    var events = false

    @Flag(name: .customLong("no-zerocopy"), help: "Do not try zero-copy; bind in copy mode.")
    var noZeroCopy = false

    func validate() throws {
        if let seconds, !(seconds > 0 && seconds <= 86_400) { throw ValidationError("--seconds must be in (0, 86400]") }
        if let udpPort, udpPort == 0 { throw ValidationError("--udp-port must be 1..65535") }
        if let queue, queue >= 64 { throw ValidationError("--queue must be below 64") }
    }

    func open(_ common: CommonOptions) throws -> PairSocketSession {
        // No invocation lock here: the session takes it while it sets the pair up.
        let logger = try common.privileged("xsk")
        var options = XSKOptions()
        options.tryZeroCopy = !noZeroCopy
        let showEvents = events
        let session = try PairSocketSession(layout: try common.layout(), synthetic: pair.synthetic, queue: queue,
                                            udpPort: udpPort, options: options, verbose: common.verbose,
                                            logger: logger) { line in
            if showEvents { fputs("hnxdp: xsk: \(line)\n", stderr) }
        }
        XskSignals.install()
        return session
    }

    /// Opens the pair's sockets, runs `handler` on every frame until --seconds or a
    /// signal, closes everything and returns the bind mode and the counters.
    func session(_ common: CommonOptions, _ handler: (inout XSKFrame) -> XSKVerdict) throws -> (mode: XSKBindMode, counters: PairSocketCounters) {
        let session = try open(common)
        defer { session.close() }
        let mode = session.mode
        try run(session, handler)
        let counters = session.counters
        session.close()
        return (mode, counters)
    }

    /// Runs the session until --seconds or a signal.
    func run(_ session: PairSocketSession, _ handler: (inout XSKFrame) -> XSKVerdict) throws {
        let deadline = seconds.map { Date().addingTimeInterval($0) }
        var checks = 0
        try session.run(until: {
            if XskSignals.stop != 0 { return true }
            checks += 1
            if checks & 63 == 0, let deadline { return Date() >= deadline }
            return false
        }, handler)
    }
}

/// SIGINT/SIGTERM end the run loop cleanly (sockets closed, XDP removed when unused).
enum XskSignals {
    nonisolated(unsafe) static var stop: sig_atomic_t = 0
    static func install() {
        signal(SIGINT) { _ in XskSignals.stop = 1 }
        signal(SIGTERM) { _ in XskSignals.stop = 1 }
    }
}

/// `xsk count --json` and `xsk reflect --json` (docs/json.md), from the sockets'
/// counters: the mode, the VF binds and departures, and the counters the
/// command is about, under the names each command prints.
struct XskReport: Encodable {
    enum Command { case count, reflect }
    var command: Command
    var mode: XSKBindMode
    var counters: PairSocketCounters

    private enum Key: String, CodingKey {
        case mode, rebinds, departures
        case total, per_device, per_binding // count
        case received, sent, tx_dropped, tx_lost_at_switch // reflect
    }

    func encode(to encoder: Encoder) throws {
        let c = counters
        var out = encoder.container(keyedBy: Key.self)
        try out.encode(mode.rawValue, forKey: .mode)
        try out.encode(c.rebinds, forKey: .rebinds)
        try out.encode(c.departures, forKey: .departures)
        switch command {
        case .count:
            try out.encode(c.rxTotal, forKey: .total)
            try out.encode(c.rxPackets, forKey: .per_device)
            try out.encode(c.rxPerBinding, forKey: .per_binding)
        case .reflect:
            try out.encode(c.rxTotal, forKey: .received)
            try out.encode(c.txPackets, forKey: .sent)
            try out.encode(c.txDropped, forKey: .tx_dropped)
            try out.encode(c.txLostAtSwitch, forKey: .tx_lost_at_switch)
        }
    }
}

struct XskCount: ParsableCommand, JSONOutputCommand {
    static let configuration = CommandConfiguration(
        commandName: "count",
        abstract: "Count frames received on the pair's AF_XDP sockets, per device and in total.",
        discussion: "With --json, at the end: {\"mode\", \"total\", \"per_device\", \"per_binding\", \"rebinds\", \"departures\"} (docs/json.md)."
    )

    @OptionGroup var xsk: XskOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var common: CommonOptions

    func run() throws {
        let (mode, c) = try xsk.session(common) { _ in .drop }
        if output.json { return try JSONOutput.emit(XskReport(command: .count, mode: mode, counters: c)) }
        print("mode \(mode.rawValue)")
        print("total \(c.rxTotal)")
        for (dev, n) in c.rxPackets.sorted(by: { $0.key < $1.key }) { print("  \(dev) \(n)") }
        print("rebinds \(c.rebinds), departures \(c.departures)")
    }
}

struct XskReflect: ParsableCommand, JSONOutputCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflect",
        abstract: "Send every received frame back with MAC, IPv4/IPv6 addresses and UDP ports swapped.",
        discussion: "Replies leave through the device that carries the pair at that moment. With --json, the counters at the end (docs/json.md)."
    )

    @OptionGroup var xsk: XskOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var common: CommonOptions

    func run() throws {
        let (mode, c) = try xsk.session(common) { frame in
            FrameReflection.swap(UnsafeMutableRawBufferPointer(start: frame.bytes, count: frame.length))
            return .transmit(length: frame.length)
        }
        if output.json { return try JSONOutput.emit(XskReport(command: .reflect, mode: mode, counters: c)) }
        print("mode \(mode.rawValue): received \(c.rxTotal), sent \(c.txPackets), dropped \(c.txDropped), lost at switches \(c.txLostAtSwitch), rebinds \(c.rebinds), departures \(c.departures)")
    }
}
