import CHnxdpShim
import Glibc

/// Checks on the environment hnxdp needs: privileges and a BPF filesystem.
public enum HostEnvironment {
    private static let capNetAdmin = 12
    private static let capSysAdmin = 21
    private static let capPerfmon = 38
    private static let capBPF = 39

    /// Effective capability mask of this process (from /proc/self/status, which is per process under nsenter too).
    public static func effectiveCapabilities() -> UInt64? {
        guard let text = try? readText("/proc/self/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("CapEff:") {
            return UInt64(line.dropFirst("CapEff:".count).trimming(" \t"), radix: 16)
        }
        return nil
    }

    /// Throws `.privilege` unless this process may load BPF programs and configure interfaces.
    /// `forWriting` false (dump/status) needs only the BPF capability to read pinned maps.
    public static func requirePrivileges(_ command: String, forWriting: Bool = true) throws {
        guard let caps = effectiveCapabilities() else { return }
        func has(_ bit: Int) -> Bool { caps & (UInt64(1) << UInt64(bit)) != 0 }
        let bpf = has(capSysAdmin) || (has(capBPF) && has(capPerfmon))
        let net = has(capNetAdmin)
        if !bpf || (forWriting && !net) {
            throw HnxdpError(.privilege, "hnxdp \(command): needs CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); run it as root")
        }
    }

    /// Makes sure `root`'s parent is a BPF filesystem; mounts bpffs on /sys/fs/bpf when it is absent there.
    public static func requireBPFFS(root: String) throws {
        let parent = root.split(separator: "/").dropLast().reduce("") { $0 + "/" + $1 }
        let base = parent.isEmpty ? "/" : parent
        if isBPFFS(base) || isBPFFS(root) { return }
        if base == "/sys/fs/bpf" {
            // `ip netns exec` gives its command a private mount namespace with a fresh
            // /sys: a bpffs mounted there (and every pin in it) vanishes when we exit,
            // and with the pins the datapath. Refuse instead of pretending.
            // (PID 1's namespace may be unreadable in a sandbox; the parent's tells as well:
            // `ip netns exec` unshares the mount namespace right before it execs us.)
            let own = namespaceInode("/proc/self/ns/mnt")
            let reference = namespaceInode("/proc/1/ns/mnt") ?? namespaceInode("/proc/\(getppid())/ns/mnt")
            if let own, let reference, own != reference {
                throw HnxdpError(.privilege, "no BPF filesystem at /sys/fs/bpf in this private mount namespace (as under `ip netns exec`): pins made here would vanish; run `nsenter --net=/run/netns/NAME hnxdp ...` instead")
            }
            if mount("bpf", base, "bpf", 0, "mode=0700") == 0 { return }
            let e = errno
            throw HnxdpError(e == EPERM ? .privilege : .runtime,
                             "no BPF filesystem at /sys/fs/bpf and mounting one failed (\(errnoName(e))); run `mount -t bpf bpf /sys/fs/bpf`")
        }
        throw HnxdpError(.badInput, "\(base) is not on a BPF filesystem (bpffs); mount one there or choose another --bpffs")
    }

    static func namespaceInode(_ path: String) -> UInt64? {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    public static func isBPFFS(_ path: String) -> Bool {
        hnxdp_is_bpffs(path) == 1
    }

    static func readText(_ path: String, limit: Int? = nil) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw HnxdpError.system("open \(path)", errno: errno) }
        defer { close(fd) }
        return try readText(fd: fd, what: path, limit: limit)
    }

    /// Everything left to read on `fd` (a file, a pipe), as text; `what` names it in
    /// errors. More than `limit` bytes (when given) is an error, not read to the end.
    static func readText(fd: Int32, what path: String, limit: Int? = nil) throws -> String {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HnxdpError.system("read \(path)", errno: errno)
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
            if let limit, data.count > limit { throw HnxdpError(.badInput, "\(path) is larger than \(limit) bytes") }
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Per-device IPv6 settings under /proc/sys/net/ipv6/conf (of the calling
/// process's network namespace, which is the one hnxdp runs in).
public enum IPv6DeviceSettings {
    /// What B24 switches off on a joined VF: address autoconfiguration and
    /// router advertisements, so the VF takes no addresses of its own.
    public static let hygieneKeys = ["autoconf", "accept_ra"]

    static func path(_ device: String, _ key: String) -> String { "/proc/sys/net/ipv6/conf/\(device)/\(key)" }

    /// The setting's value ("1"), or nil where the device has no IPv6 (disabled, or gone).
    public static func read(_ device: String, _ key: String) -> String? {
        guard let text = try? HostEnvironment.readText(path(device, key)) else { return nil }
        return text.trimming(" \n")
    }

    public static func write(_ device: String, _ key: String, _ value: String) throws {
        let p = path(device, key)
        let fd = open(p, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw HnxdpError.system("open \(p)", errno: errno) }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        if bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) != bytes.count {
            throw HnxdpError.system("write \(value) to \(p)", errno: errno)
        }
    }

    /// The hygiene settings of `device` as they are now (only those it has).
    public static func hygiene(of device: String) -> [String: String] {
        var values: [String: String] = [:]
        for key in hygieneKeys { if let v = read(device, key) { values[key] = v } }
        return values
    }
}

/// A fixed-size C string field (`char name[N]`, imported as a tuple) as a
/// string: its bytes up to the first NUL.
enum FixedCString {
    static func string<T>(_ field: T) -> String {
        withUnsafeBytes(of: field) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
