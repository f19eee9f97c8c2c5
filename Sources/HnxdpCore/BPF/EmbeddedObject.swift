import CHnxdpShim
import CLibBPF
// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc

/// libbpf's own messages. libbpf prints warnings to stderr by default, among them the
/// kernel's extended acks for errors hnxdp expects and handles (a tc query of a
/// device without clsact, a clsact that exists): captured instead, kept for the
/// next error message, and printed only with `--verbose`.
public enum LibBPFMessages {
    /// Routes libbpf's messages through hnxdp's capture; call once at start.
    public static func capture(verbose: Bool) { hnxdp_libbpf_capture(verbose ? 1 : 0) }
}

/// One of the BPF objects compiled from `bpf/*.bpf.c` at build time and
/// embedded in the binary, loaded into the kernel. Maps and programs are
/// handed out as their own descriptors, so they outlive the object.
public final class EmbeddedObject {
    public let name: String
    private let object: OpaquePointer

    /// Opens and loads the embedded `name.bpf.o` (e.g. "hnxdp", "hnxdp_xsk", "hnxdp_gen").
    /// `configure` runs between open and load (set map sizes, initial values).
    public init(_ name: String, verbose: Bool = false, configure: ((OpaquePointer) throws -> Void)? = nil) throws {
        hnxdp_libbpf_capture(verbose ? 1 : 0)
        guard let b64 = EmbeddedBPFObjects.base64[name], let data = Data(base64Encoded: b64) else {
            throw HnxdpError(.runtime, "embedded BPF object \(name).bpf.o is missing from this build")
        }
        let bytes = [UInt8](data)
        let opened: OpaquePointer? = bytes.withUnsafeBytes { raw in bpf_object__open_mem(raw.baseAddress, raw.count, nil) }
        guard let opened else { throw HnxdpError.system("open BPF object \(name).bpf.o", errno: errno) }
        do {
            try configure?(opened)
            let rc = bpf_object__load(opened)
            if rc != 0 {
                var e = HnxdpError.system("load BPF object \(name).bpf.o", errno: -rc)
                let detail = String(cString: hnxdp_libbpf_last_message())
                if !detail.isEmpty { e.message += " [libbpf: \(detail)]" }
                if -rc == EPERM { e.kind = .privilege }
                throw e
            }
        } catch {
            bpf_object__close(opened)
            throw error
        }
        self.name = name
        self.object = opened
    }

    deinit { bpf_object__close(object) }

    /// Sets the one load-time constant (`const volatile`) that `section` holds in an
    /// opened, not yet loaded object.
    public static func setConstant<T: FixedWidthInteger>(in object: OpaquePointer, section: String, _ value: T) throws {
        guard let map = bpf_object__find_map_by_name(object, section) else {
            throw HnxdpError(.runtime, "BPF object lacks the constant section \(section)")
        }
        var size = 0
        guard bpf_map__initial_value(map, &size) != nil, size == MemoryLayout<T>.size else {
            throw HnxdpError(.runtime, "BPF constant section \(section) is \(size) bytes, \(MemoryLayout<T>.size) expected")
        }
        var v = value
        let rc = bpf_map__set_initial_value(map, &v, size)
        if rc != 0 { throw HnxdpError.system("set the BPF constant \(section)", errno: -rc) }
    }

    nonisolated(unsafe) private static var mapTypeCache: [String: [String: UInt32]] = [:]

    /// The map types the embedded `name.bpf.o` declares, by map name: read from the
    /// ELF without loading anything, so pinned maps can be checked against the
    /// build that is running.
    public static func declaredMapTypes(_ name: String) throws -> [String: UInt32] {
        if let cached = mapTypeCache[name] { return cached }
        guard let b64 = EmbeddedBPFObjects.base64[name], let data = Data(base64Encoded: b64) else {
            throw HnxdpError(.runtime, "embedded BPF object \(name).bpf.o is missing from this build")
        }
        let bytes = [UInt8](data)
        let opened: OpaquePointer? = bytes.withUnsafeBytes { raw in bpf_object__open_mem(raw.baseAddress, raw.count, nil) }
        guard let opened else { throw HnxdpError.system("open BPF object \(name).bpf.o", errno: errno) }
        defer { bpf_object__close(opened) }
        var types: [String: UInt32] = [:]
        var map = bpf_object__next_map(opened, nil)
        while let m = map {
            types[String(cString: bpf_map__name(m))] = bpf_map__type(m).rawValue
            map = bpf_object__next_map(opened, m)
        }
        mapTypeCache[name] = types
        return types
    }

    /// A descriptor of the map `mapName` of this object.
    public func map(_ mapName: String) throws -> BPFDescriptor {
        try descriptor(of: "map", mapName, bpf_object__find_map_by_name(object, mapName).map { bpf_map__fd($0) })
    }

    /// A descriptor of the program `programName` of this object.
    public func program(_ programName: String) throws -> BPFDescriptor {
        try descriptor(of: "program", programName, bpf_object__find_program_by_name(object, programName).map { bpf_program__fd($0) })
    }

    /// A descriptor of our own (dup) of the loaded object's map or program fd.
    private func descriptor(of kind: String, _ objectName: String, _ fd: Int32?) throws -> BPFDescriptor {
        guard let fd else {
            throw HnxdpError(.runtime, "BPF object \(name) lacks \(kind) \(objectName)")
        }
        let own = dup(fd)
        if own < 0 { throw HnxdpError.system("dup fd of \(kind) \(objectName)", errno: errno) }
        return BPFDescriptor(own)
    }
}
