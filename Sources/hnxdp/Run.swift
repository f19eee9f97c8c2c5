import ArgumentParser
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import HnxdpCore
import Logging

struct Run: ParsableCommand {
    /// Read when --config is not given and it exists.
    static let defaultConfig = "/etc/hnxdp/hnxdp.conf"

    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "The transparent-mode control plane: follow VFs as they come and go.",
        discussion: """
        Listens to rtnetlink link notifications. A VF that appears with a managed synthetic's \
        MAC is joined after the settle delay; when it leaves, everything is undone and traffic \
        stays on the synthetic path; a VF that returns is joined again; a flapping VF is held \
        down until stable. While joined, MTU, up/down, promiscuous and all-multicast on the \
        synthetic are passed to the VF, offload changes are re-intersected, and changes made \
        directly on the VF are put back. Adopts the pairs an earlier run or `attach` left \
        pinned. SIGINT/SIGTERM exit 0 and leave the datapath in place; `hnxdp detach --all` \
        removes it.

        SIGHUP (`systemctl reload`) reads --config again, the command line still over it, \
        and logs one line saying what changed; joined pairs are not touched. settle-ms, \
        hold-down-ms and flap-threshold apply at once (a settle or hold-down already \
        running keeps its deadline); newly listed synthetics are managed; a synthetic no \
        longer listed stays managed, with a warning (pinned pairs are always adopted). \
        transparent is not changed at run time (a warning says so): restart to change it. \
        A file that does not parse is logged as an error and the settings in use stay.

        Without --synthetic, the devices of the --synthetic-driver drivers (default virtio_net: \
        KVM's paravirtual NIC, next to which a passthrough VF with the same MAC is what hnxdp is \
        for; never a net_failover standby, nor hv_netvsc or net_failover devices, which the kernel \
        pairs itself) and already pinned pairs are managed, also when they appear later. A VF is a device with the synthetic's MAC and no master; a PCI \
        function is preferred, and a tie joins nothing (pair one with `hnxdp attach`).

        Metrics (off by default): --metrics-listen serves Prometheus metrics at \
        http://ADDRESS:PORT/metrics on a loopback address only (127.0.0.0/8 or [::1]; \
        anything else is refused); --metrics-textfile writes them every 5 s to a .prom file \
        for node_exporter's textfile collector (replaced atomically, removed when run exits). \
        Per pair: packets and bytes received and sent on the VF and on the synthetic, \
        fallbacks, drops, switches and state, read from the pinned maps at each scrape or \
        write (they survive a restart of run); departure reaction and join duration \
        histograms; build info. Names and labels: docs/metrics.md.

        Config file (--config): `key = value` lines with keys synthetic (repeatable), \
        synthetic-driver (repeatable), settle-ms, \
        hold-down-ms, flap-threshold, transparent (on|off), metrics-listen, metrics-textfile; \
        command-line options override it (metrics settings apply at start only). \
        Without --config, \(Run.defaultConfig) is read when it exists (the Debian package \
        installs a commented example there); `--config /dev/null` reads no file.

        Under systemd (Type=notify), run tells the service manager READY=1 once the start-up \
        resync is done, RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 on \
        SIGINT/SIGTERM, and pings WATCHDOG=1 every WATCHDOG_USEC/2 (sd_notify protocol, \
        NOTIFY_SOCKET a path or an @abstract address).
        """
    )

    @Option(help: ArgumentHelp("Read settings from FILE (key = value lines; default: \(Run.defaultConfig) when it exists).", valueName: "FILE"))
    var config: String?

    @Option(help: ArgumentHelp("Manage this synthetic interface (repeatable; default: every eligible one).", valueName: "IF"))
    var synthetic: [String] = []

    @Option(name: .customLong("synthetic-driver"), help: ArgumentHelp("Without --synthetic, manage the devices of this driver as synthetics (repeatable; default: virtio_net).", valueName: "DRIVER"))
    var syntheticDriver: [String] = []

    @Option(name: .customLong("settle-ms"), parsing: .unconditional, help: ArgumentHelp("Wait after a VF appears before joining it (default 2000).", valueName: "N"))
    var settleMs: UInt64?

    @Option(name: .customLong("hold-down-ms"), parsing: .unconditional, help: ArgumentHelp("Flap window and how long a flapping VF must stay before it is joined (default 5000).", valueName: "N"))
    var holdDownMs: UInt64?

    @Option(name: .customLong("flap-threshold"), parsing: .unconditional, help: ArgumentHelp("Departures within the hold-down window that hold a VF down (default 3).", valueName: "N"))
    var flapThreshold: Int?

    @Option(help: ArgumentHelp("on: join VFs (default); off: only report them, change nothing.", valueName: "on|off"))
    var transparent: String?

    @Option(name: .customLong("metrics-listen"), help: ArgumentHelp("Serve Prometheus metrics at http://ADDRESS:PORT/metrics; loopback only, e.g. 127.0.0.1:9469 or [::1]:9469 (default: off).", valueName: "ADDRESS:PORT"))
    var metricsListen: String?

    @Option(name: .customLong("metrics-textfile"), help: ArgumentHelp("Write Prometheus metrics to PATH (absolute, ending in .prom) every 5 s, for node_exporter's textfile collector (default: off).", valueName: "PATH"))
    var metricsTextfile: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        for name in synthetic { try validateInterfaceName(name, option: "--synthetic") }
        do {
            for driver in syntheticDriver { try RunConfig.validateSyntheticDriver(driver) }
            if let metricsListen { _ = try MetricsListenAddress.parse(metricsListen) }
            if let metricsTextfile { _ = try MetricsSettings.validateTextfile(metricsTextfile, option: "--metrics-textfile") }
        } catch let error as HnxdpError {
            throw ValidationError(error.message)
        }
        if let transparent, transparent != "on" && transparent != "off" {
            throw ValidationError("--transparent must be on or off, got '\(transparent)'")
        }
        if let settleMs, settleMs > 600_000 { throw ValidationError("--settle-ms \(settleMs) is above the 600000 ms limit") }
        if let holdDownMs, holdDownMs > 3_600_000 { throw ValidationError("--hold-down-ms \(holdDownMs) is above the 3600000 ms limit") }
        if let flapThreshold, flapThreshold < 1 || flapThreshold > 1000 { throw ValidationError("--flap-threshold must be from 1 to 1000") }
    }

    /// The config file in use: --config, else the default one when it exists.
    var configFile: String? {
        if let config { return config }
        var st = stat()
        return stat(Run.defaultConfig, &st) == 0 ? Run.defaultConfig : nil
    }

    func settings(file: String?) throws -> RunSettings {
        var s = RunSettings()
        if let config = file {
            var st = stat()
            guard stat(config, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR,
                  let data = FileManager.default.contents(atPath: config) else {
                throw HnxdpError(.badInput, "cannot read config file \(quoted(config)) (missing, a directory or unreadable)")
            }
            s = try RunConfig.parse(bytes: [UInt8](data), file: config)
        }
        if !synthetic.isEmpty { s.synthetics = synthetic }
        if !syntheticDriver.isEmpty { s.syntheticDrivers = syntheticDriver }
        if let settleMs { s.timing.settleMs = settleMs }
        if let holdDownMs { s.timing.holdDownMs = holdDownMs }
        if let flapThreshold { s.timing.flapThreshold = flapThreshold }
        if let transparent { s.transparent = transparent == "on" }
        if let metricsListen { s.metrics.listen = try MetricsListenAddress.parse(metricsListen) }
        if let metricsTextfile { s.metrics.textfile = try MetricsSettings.validateTextfile(metricsTextfile, option: "--metrics-textfile") }
        return s
    }

    func run() throws {
        let file = configFile
        let settings = try settings(file: file)
        let logger = try common.privileged("run", defaultLogLevel: .info)
        let layout = try common.layout()
        // Before anything changes: a port in use or a directory that takes no file stops here.
        let metrics = settings.metrics.isOn ? try MetricsService(settings: settings.metrics, layout: layout, logger: logger) : nil
        let plane = try ControlPlane(settings: settings, layout: layout, logger: logger, tcMode: try common.tcMode)
        if let file {
            let command = self
            plane.reloadSource = (description: quoted(file), read: { try command.settings(file: file) })
        }
        do {
            plane.notifier = try ServiceNotifier.fromEnvironment(warn: { logger.warning("\($0)") })
        } catch {
            logger.error("no service notifications: \(error)")
        }
        plane.observations = metrics?.observations
        metrics?.start()
        defer { metrics?.stop() }
        try plane.run()
    }
}
