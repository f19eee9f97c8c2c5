import ArgumentParser
import Glibc
import HnxdpCore
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `--json`, the same on every command that prints JSON (docs/json.md): the
/// command's result is JSON on stdout and a failure is one JSON object on
/// stderr (`JSONOutput`), with the same exit code. What the JSON of a command
/// holds is said in its discussion and in docs/json.md.
struct JSONOption: ParsableArguments {
    @Flag(help: "Print the result as JSON on stdout, and a failure as one JSON object on stderr (see docs/json.md).")
    var json = false
}

/// A command with `--json` (`JSONOption`).
protocol JSONOutputCommand {
    var output: JSONOption { get }
}

/// The one way commands print JSON results and errors (docs/json.md, "Errors").
enum JSONOutput {
    /// Set once the command line is parsed (or, when it cannot be, when it names --json).
    nonisolated(unsafe) static var errorsAsJSON = false

    /// Whether raw arguments ask for JSON: for usage errors, before a command exists.
    static func requested(_ arguments: [String]) -> Bool {
        arguments.dropFirst().prefix { $0 != "--" }.contains("--json")
    }

    /// One compact line, keys sorted.
    static func line<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Prints a command's result: one JSON object on one line on stdout.
    static func emit<T: Encodable>(_ value: T) throws {
        print(try line(value))
    }

    struct Failure: Encodable {
        var error: String
        var exit_code: Int32
        var version = HnxdpVersion.string
        var schema_version = HnxdpVersion.jsonSchema
    }

    /// The failure line on stderr: {"error": "...", "exit_code": N, ...}.
    static func errorLine(_ message: String, code: Int32) -> String {
        let text = message.hasSuffix("\n") ? String(message.dropLast()) : message
        return (try? line(Failure(error: text, exit_code: code))) ?? "{\"error\":\"unprintable error\",\"exit_code\":\(code)}"
    }
}

extension DeviceName {
    /// `link` as a command's JSON result names it.
    init(_ link: LinkInfo) { self.init(name: link.name, ifindex: link.ifindex) }
}

/// One pair of `attach --json`: what was done to it.
struct AttachedPair: Encodable {
    /// "attached", or "already-attached" (nothing changed).
    var result: String
    var synthetic: DeviceName
    var vf: DeviceName
    /// Always "vf": once attached, frames sent on the synthetic leave through the VF.
    let datapath = "vf"
    var mtu: UInt32
    var mtu_fallback: Bool
    @ExplicitNull var gso_max_size: UInt32?
    @ExplicitNull var gso_max_segs: UInt32?
    var features_turned_off: [String]

    init(_ r: JoinResult) {
        result = r.alreadyAttached ? "already-attached" : "attached"
        synthetic = DeviceName(r.synthetic)
        vf = DeviceName(r.vf)
        mtu = r.mtu
        mtu_fallback = r.mtuFallback
        gso_max_size = r.gsoMaxSize
        gso_max_segs = r.gsoMaxSegs
        features_turned_off = r.featuresTurnedOff
    }
}

/// `attach --json` of one pair: the version keys and the pair's keys in one object.
struct AttachResult: Encodable {
    var pair: AttachedPair

    private enum CodingKeys: String, CodingKey { case version, schema_version }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(HnxdpVersion.string, forKey: .version)
        try c.encode(HnxdpVersion.jsonSchema, forKey: .schema_version)
        try pair.encode(to: encoder)
    }
}

/// `attach --pairs FILE --json`: every pair, in the list's order.
struct AttachManyResult: Encodable {
    var version = HnxdpVersion.string
    var schema_version = HnxdpVersion.jsonSchema
    var pairs: [AttachedPair]
}

/// `detach --json`.
struct DetachResult: Encodable {
    struct Pair: Encodable {
        var synthetic: DeviceName
        @ExplicitNull var vf: DeviceName?
        var state: String
        var switches: UInt32
    }
    var version = HnxdpVersion.string
    var schema_version = HnxdpVersion.jsonSchema
    var result = "detached"
    /// The pairs detached, as they were just before.
    var pairs: [Pair]
    /// No hnxdp pins are left in the namespace.
    var pins_removed: Bool
}
