import CHnxdpShim
import Glibc

/// How the datapath's programs are attached to a device's tc hooks.
public enum TcAttachMode: String, Sendable, CaseIterable, Codable {
    /// tcx links (Linux 6.6+): pinned links, ordered, no qdisc.
    case tcx
    /// A cls_bpf direct-action filter on the device's clsact qdisc (any kernel
    /// hnxdp supports); the filter's place is recorded in a pinned map.
    case classic
}

/// What the user asked for (`--tc-mode`, `HNXDP_TC_MODE`).
public enum TcModeRequest: String, Sendable, CaseIterable {
    case auto, tcx, classic

    /// `HNXDP_TC_MODE` when set and valid, else `.auto`. An invalid value is an error
    /// the CLI reports (see `parse`).
    public static func parse(_ text: String, source: String) throws -> TcModeRequest {
        guard let mode = TcModeRequest(rawValue: text) else {
            throw HnxdpError(.badInput, "\(source) must be auto, tcx or classic, got \(quoted(text))")
        }
        return mode
    }
}

/// What the running kernel offers hnxdp, probed once per process without
/// changing anything: the facts that choose the attachment and the object.
public struct KernelCapabilities: Sendable, Codable, Equatable {
    /// `uname -r`.
    public var release: String
    /// Kernel BTF (/sys/kernel/btf/vmlinux): CO-RE relocations need it.
    public var btf: Bool
    /// tcx hooks (Linux 6.6+).
    public var tcx: Bool
    /// The kfuncs the main object uses (bpf_cast_to_kern_ctx, bpf_rdonly_cast: Linux 6.2+).
    public var kfuncs: Bool

    public init(release: String, btf: Bool, tcx: Bool, kfuncs: Bool) {
        self.release = release
        self.btf = btf
        self.tcx = tcx
        self.kfuncs = kfuncs
    }

    nonisolated(unsafe) private static var cached: KernelCapabilities?

    /// The running kernel's capabilities (probed on first use).
    public static func current() -> KernelCapabilities {
        if let cached { return cached }
        var u = utsname()
        uname(&u)
        let release = FixedCString.string(u.release)
        let btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0
        // One parse of the kernel's BTF for both (each parse reads several MB: 5-10 ms).
        let kfuncs = btf && hnxdp_kernel_btf_has_funcs("bpf_cast_to_kern_ctx", "bpf_rdonly_cast") == 1
        let probed = KernelCapabilities(release: release, btf: btf, tcx: hnxdp_tcx_supported() == 1, kfuncs: kfuncs)
        cached = probed
        return probed
    }

    /// The embedded datapath object this kernel loads: the main one, or the
    /// variant without kfuncs (bpf/hnxdp_compat.bpf.c).
    public var datapathObject: String { kfuncs ? HNXDP_OBJ_DATAPATH : HNXDP_OBJ_DATAPATH_COMPAT }

    /// Refuses a kernel below hnxdp's floor, naming what is missing (exit 3).
    public func requireSupported() throws {
        if !btf {
            throw HnxdpError(.privilege, "this kernel (\(release)) has no BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF): hnxdp's datapath needs it (Linux 6.1 or later with BTF)")
        }
    }

    nonisolated(unsafe) private static var cachedTcx: Bool?

    /// The attachment for `request` on this kernel, probing only what that needs
    /// (one BPF_PROG_QUERY), not the whole `current()`: its kfunc probe parses the
    /// kernel's BTF (several MB, ~10-20 ms), which only loading the datapath needs,
    /// and every `attach` asks this.
    public static func attachMode(for request: TcModeRequest) throws -> TcAttachMode {
        if let cached { return try cached.mode(for: request) }
        let tcx = cachedTcx ?? (hnxdp_tcx_supported() == 1)
        cachedTcx = tcx
        switch request {
        case .auto: return tcx ? .tcx : .classic
        case .classic: return .classic
        case .tcx:
            if tcx { return .tcx }
            return try current().mode(for: request) // the refusal, naming the release
        }
    }

    /// The attachment for `request` on this kernel; tcx asked for where there is
    /// none is refused (exit 3) with the way out.
    public func mode(for request: TcModeRequest) throws -> TcAttachMode {
        switch request {
        case .auto: return tcx ? .tcx : .classic
        case .classic: return .classic
        case .tcx:
            guard tcx else {
                throw HnxdpError(.privilege, "this kernel (\(release)) has no tcx (Linux 6.6+): use --tc-mode classic or auto")
            }
            return .tcx
        }
    }
}
