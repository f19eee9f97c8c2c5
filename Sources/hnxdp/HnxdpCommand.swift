import ArgumentParser
import Glibc
import HnxdpCore
import Logging

/// `hnxdp`: makes a VF and its synthetic interface one interface.
@main
struct HnxdpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hnxdp",
        abstract: "Transparent-VF datapath: a VF and its synthetic interface as one interface (eBPF tcx).",
        discussion: """
        A synthetic (paravirtual) interface and an SR-IOV VF with the same MAC become one \
        interface, the synthetic: frames the VF receives appear on the synthetic, frames sent on \
        the synthetic leave through the VF while it exists and has carrier, offloads and GSO limits \
        are intersected, the MTU and admin state are passed down. Everything is pinned under \
        /sys/fs/bpf/hnxdp/<netns inode>/ and keeps working when hnxdp is not running.

        Exit codes: 0 success, 1 runtime failure, 2 bad usage or input, 3 missing privilege or kernel feature.
        Run under `nsenter --net=/run/netns/NAME` to act in another network namespace.
        """,
        version: "hnxdp \(HnxdpVersion.string)",
        subcommands: [Attach.self, Detach.self, Migrate.self, Run.self, Dump.self, Status.self, Monitor.self, Probe.self, Capture.self, Xsk.self, Xdp.self, Gen.self, Udev.self]
    )

    /// Parses, runs, and maps every failure to one stderr line and the documented exit code.
    static func main() {
        do {
            LibBPFMessages.capture(verbose: false)
            JSONOutput.errorsAsJSON = JSONOutput.requested(CommandLine.arguments)
            var command = try parseAsRoot()
            JSONOutput.errorsAsJSON = (command as? JSONOutputCommand)?.output.json ?? false
            try command.run()
        } catch let error as HnxdpError {
            fail(error.message, code: error.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version.
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            if error is ExitCode { Glibc.exit(code.rawValue) }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid usage"
            fail("\(message) (see `hnxdp --help`)", code: 2)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        if JSONOutput.errorsAsJSON {
            fputs(JSONOutput.errorLine(message, code: code) + "\n", stderr)
            Glibc.exit(code)
        }
        var line = "hnxdp: " + message
        if !line.hasSuffix("\n") { line += "\n" }
        fputs(line, stderr)
        Glibc.exit(code)
    }
}

/// Options every command takes.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("bpffs directory for hnxdp's pins (default: $HNXDP_BPFFS or /sys/fs/bpf/hnxdp).", valueName: "DIR"))
    var bpffs: String?

    @Flag(name: .shortAndLong, help: "Log what is being done (and libbpf's messages) to stderr.")
    var verbose = false

    @Option(name: .customLong("tc-mode"), help: ArgumentHelp("How new pairs attach to the devices' tc hooks: auto (tcx where the kernel has it, Linux 6.6+, else classic), tcx, or classic (clsact qdisc + cls_bpf filter). Default: $HNXDP_TC_MODE or auto. A pair keeps the attachment it has.", valueName: "MODE"))
    var tcModeOption: String?

    /// --tc-mode, else $HNXDP_TC_MODE, else auto.
    var tcMode: TcModeRequest {
        get throws {
            if let tcModeOption { return try TcModeRequest.parse(tcModeOption, source: "--tc-mode") }
            if let env = getenv("HNXDP_TC_MODE"), let s = String(validatingCString: env), !s.isEmpty {
                return try TcModeRequest.parse(s, source: "HNXDP_TC_MODE")
            }
            return .auto
        }
    }

    func validate() throws {
        do { _ = try tcMode } catch let e as HnxdpError { throw ValidationError(e.message) }
        if let bpffs, !bpffs.hasPrefix("/") {
            throw ValidationError("--bpffs must be an absolute path, got \(quoted(bpffs))")
        }
        if bpffs == nil, let env = getenv("HNXDP_BPFFS"), let s = String(validatingCString: env), !s.isEmpty, !s.hasPrefix("/") {
            throw ValidationError("HNXDP_BPFFS must be an absolute path, got \(quoted(s))")
        }
    }

    /// The pin root: --bpffs, else $HNXDP_BPFFS, else the default.
    var root: String {
        if let bpffs { return bpffs }
        if let env = getenv("HNXDP_BPFFS"), let s = String(validatingCString: env), !s.isEmpty { return s }
        return PinLayout.defaultRoot
    }

    func layout() throws -> PinLayout { try PinLayout.current(root: root) }

    /// Attaching and detaching pairs in this namespace, as these options say.
    func lifecycle(_ logger: Logger) throws -> PairLifecycle {
        PairLifecycle(layout: try layout(), logger: logger, verbose: verbose, tcMode: try tcMode)
    }

    /// The logger `hnxdp.LABEL`; the first one sets up logging (messages below
    /// `defaultLevel` only with --verbose).
    func logger(_ label: String, defaultLevel: Logger.Level = .warning) -> Logger {
        LoggingBootstrap.once(verbose: verbose, defaultLevel: defaultLevel)
        return Logger(label: "hnxdp.\(label)")
    }

    /// How a command that changes devices, pins or programs starts: it needs root
    /// (`hnxdp COMMAND: needs ...`, exit 3), a BPF filesystem at the pin root unless
    /// `needsBPFFS` is false (commands that only take pins away), and logs as
    /// `hnxdp.WORD`, WORD the command's first word ("xdp" for "xdp attach").
    @discardableResult
    func privileged(_ command: String, needsBPFFS: Bool = true, defaultLogLevel: Logger.Level = .warning) throws -> Logger {
        try HostEnvironment.requirePrivileges(command)
        if needsBPFFS { try HostEnvironment.requireBPFFS(root: root) }
        return logger(String(command.prefix { $0 != " " }), defaultLevel: defaultLogLevel)
    }

    /// `privileged`, then `body` holding the invocation lock: one hnxdp command
    /// changes the namespace's pairs at a time.
    func locked<T>(_ command: String, needsBPFFS: Bool = true, _ body: (Logger) throws -> T) throws -> T {
        let logger = try privileged(command, needsBPFFS: needsBPFFS)
        let lock = try InvocationLock()
        defer { withExtendedLifetime(lock) {} }
        return try body(logger)
    }
}

enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    static func once(verbose: Bool, defaultLevel: Logger.Level = .warning) {
        if done { return }
        done = true
        LibBPFMessages.capture(verbose: verbose)
        let level: Logger.Level = verbose ? .debug : defaultLevel
        // Under systemd (stderr is the journal) lines carry an sd-daemon priority
        // instead of a timestamp; elsewhere a millisecond timestamp (LogFormat).
        let journald = LogFormat.stderrIsJournal()
        LoggingSystem.bootstrap { label in
            var handler = HnxdpLogHandler(label: label, journald: journald)
            handler.logLevel = level
            return handler
        }
    }
}

/// Refuses an interface name the kernel could never have (`InterfaceName`).
func validateInterfaceName(_ name: String, option: String) throws {
    if !InterfaceName.isValid(name) {
        throw ValidationError("\(option) '\(name)' is not a valid interface name")
    }
}
