import CLibBPF
import Glibc

/// Every failure hnxdp reports. The CLI prints `description` as one line on
/// stderr and exits with `exitCode` (docs/behaviour.md: 1 runtime, 2 bad input,
/// 3 missing privilege or kernel feature).
public struct HnxdpError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Equatable, Sendable {
        /// Bad usage or bad input: unknown interface, MAC mismatch, not eligible, invalid config.
        case badInput
        /// Missing privilege or kernel feature.
        case privilege
        /// Anything that went wrong while doing the work.
        case runtime
    }

    public var kind: Kind
    public var message: String
    /// errno of the failing system call, when there was one.
    public var errno: Int32?

    public init(_ kind: Kind, _ message: String, errno: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.errno = errno
    }

    /// A failed system call: "`operation`: EPERM (Operation not permitted)",
    /// or a failed libbpf call: "`operation`: LIBBPF_ERRNO__FORMAT (BPF object format invalid)".
    /// EPERM/EACCES become `.privilege`, everything else `.runtime`.
    public static func system(_ operation: String, errno code: Int32) -> HnxdpError {
        let kind: Kind = (code == EPERM || code == EACCES) ? .privilege : .runtime
        return HnxdpError(kind, "\(operation): \(errnoName(code)) (\(errnoText(code)))", errno: code)
    }

    public var exitCode: Int32 {
        switch kind {
        case .badInput: return 2
        case .privilege: return 3
        case .runtime: return 1
        }
    }

    public var description: String { message }
}

/// libbpf's own error codes (enum libbpf_errno in <bpf/libbpf.h>), from
/// LIBBPF_ERRNO__LIBELF (4000) on, in order.
private let libbpfErrnoNames = ["LIBELF", "FORMAT", "KVERSION", "ENDIAN", "INTERNAL", "RELOC", "LOAD",
                                "VERIFY", "PROG2BIG", "KVER", "PROGTYPE", "WRNGPID", "INVSEQ", "NLPARSE"]

/// Symbolic name of an errno value ("EPERM") or of a libbpf error code
/// ("LIBBPF_ERRNO__FORMAT"), for error lines people can search for.
public func errnoName(_ code: Int32) -> String {
    let libbpfIndex = Int(code) - Int(LIBBPF_ERRNO__LIBELF.rawValue)
    if libbpfErrnoNames.indices.contains(libbpfIndex) { return "LIBBPF_ERRNO__" + libbpfErrnoNames[libbpfIndex] }
    switch code {
    case EPERM: return "EPERM"
    case ENOENT: return "ENOENT"
    case ESRCH: return "ESRCH"
    case EINTR: return "EINTR"
    case EIO: return "EIO"
    case ENXIO: return "ENXIO"
    case E2BIG: return "E2BIG"
    case EBADF: return "EBADF"
    case EAGAIN: return "EAGAIN"
    case ENOMEM: return "ENOMEM"
    case EACCES: return "EACCES"
    case EFAULT: return "EFAULT"
    case EBUSY: return "EBUSY"
    case EEXIST: return "EEXIST"
    case ENODEV: return "ENODEV"
    case ENOTDIR: return "ENOTDIR"
    case EINVAL: return "EINVAL"
    case ENOSPC: return "ENOSPC"
    case ERANGE: return "ERANGE"
    case ENOTSUP: return "EOPNOTSUPP"
    case EAFNOSUPPORT: return "EAFNOSUPPORT"
    case EADDRINUSE: return "EADDRINUSE"
    case ENOBUFS: return "ENOBUFS"
    case ETIMEDOUT: return "ETIMEDOUT"
    case ENOSYS: return "ENOSYS"
    default: return "errno \(code)"
    }
}

/// What an errno value or libbpf error code means ("Operation not permitted",
/// "BPF object format invalid"): libbpf_strerror knows both.
public func errnoText(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    if libbpf_strerror(code, &buffer, buffer.count) != 0 { return String(cString: strerror(code)) }
    return String(cString: buffer)
}
