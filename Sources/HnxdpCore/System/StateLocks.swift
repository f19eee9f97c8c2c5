import Glibc

/// hnxdp's run-time state outside bpffs (docs/architecture.md "Pins and state"):
///
///     <root>/<netns inode>.lock     invocation lock of the namespace (flock; holder's pid inside)
///     <root>/<netns inode>.run      instance lock of `hnxdp run` in the namespace
///     <root>/<netns inode>/pair-<synthetic ifindex>.json   write-ahead record of a pair (B21)
///
/// `root` is /run/hnxdp (tmpfs: it survives any crash of hnxdp and a bpffs
/// unmount; it goes with a reboot, which also resets every device setting it
/// protects). `HNXDP_STATE_DIR` overrides it.
public typealias StateDirectory = NamespaceTree<StateTree>
public enum StateTree: NamespaceTreeKind {
    public static let defaultRoot = "/run/hnxdp"
}

extension StateDirectory {
    /// The state directory of the pin layout's namespace; root from `HNXDP_STATE_DIR` or the default.
    public static func of(_ layout: PinLayout) -> StateDirectory {
        var root = defaultRoot
        if let env = getenv("HNXDP_STATE_DIR"), let s = String(validatingCString: env), s.hasPrefix("/") { root = s }
        return StateDirectory(root: root, netnsInode: layout.netnsInode)
    }

    public var invocationLockPath: String { "\(root)/\(netnsInode).lock" }
    public var instanceLockPath: String { "\(root)/\(netnsInode).run" }
    public func recordPath(synthetic ifindex: Int32) -> String { "\(namespaceDirectory)/pair-\(ifindex).json" }

    /// Takes the namespace's instance lock, held by whoever manages the pairs as a
    /// whole (`run`, `migrate`) so that two never do it at once; fails at once
    /// with `busy(holder's pid)` when another holds it.
    public func acquireInstance(what: String, busy: (Int32) -> HnxdpError) throws -> PidLock {
        do {
            return try PidLock.acquire(instanceLockPath, timeoutMs: nil, what: what)
        } catch let held as LockHeld {
            throw busy(held.pid)
        }
    }

    /// One AF_XDP application per pair (`XSKPairLock`).
    public func xskLockPath(synthetic ifindex: Int32) -> String { "\(root)/xsk-\(netnsInode)-\(ifindex).lock" }

    /// Synthetic ifindexes that have a record, sorted.
    public func recordedSynthetics() -> [Int32] {
        FileSystem.list(namespaceDirectory).compactMap { name -> Int32? in
            guard name.hasPrefix("pair-"), name.hasSuffix(".json") else { return nil }
            return Int32(name.dropFirst("pair-".count).dropLast(".json".count))
        }.sorted()
    }
}

/// An exclusive flock on a file that names its holder. The file is removed by
/// the last holder that finds nothing to protect, so a namespace leaves no
/// lock file behind; a waiter that finds its file replaced takes the new one.
public final class PidLock {
    public let path: String
    private var fd: Int32

    /// Who holds a lock: pid and command line ("hnxdp attach ..."), as the holder wrote them.
    public static func holder(of path: String) -> (pid: Int32, what: String)? {
        guard let text = try? HostEnvironment.readText(path) else { return nil }
        let parts = text.split(separator: " ", maxSplits: 1)
        guard let first = parts.first, let pid = Int32(first.trimming("\n")) else { return nil }
        return (pid, parts.count > 1 ? String(parts[1]).trimming("\n") : "")
    }

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Takes the lock at `path`. `timeoutMs` nil: fail at once when it is held
    /// (`held` is thrown). Otherwise waits up to `timeoutMs`, calling `waiting`
    /// with the holder once a second.
    public static func acquire(_ path: String, timeoutMs: UInt64?, what: String,
                               waiting: ((Int32, String) -> Void)? = nil) throws -> PidLock {
        let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !parent.isEmpty { try FileSystem.makeDirectories(parent) }
        let start = monotonicMilliseconds()
        var lastNotice: UInt64 = 0
        while true {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            if fd < 0 {
                // Another namespace's last holder removed the (empty) root meanwhile.
                if errno == ENOENT, !parent.isEmpty, monotonicMilliseconds() - start < 1000 {
                    try FileSystem.makeDirectories(parent)
                    continue
                }
                throw HnxdpError.system("open lock file \(path)", errno: errno)
            }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                // The file may have been removed by its last holder after we opened it.
                var mine = stat(), named = stat()
                if fstat(fd, &mine) == 0 && stat(path, &named) == 0 && mine.st_ino == named.st_ino {
                    let lock = PidLock(path: path, fd: fd)
                    lock.writeHolder(what)
                    return lock
                }
                close(fd)
                continue
            }
            let e = errno
            close(fd)
            if e != EWOULDBLOCK && e != EINTR { throw HnxdpError.system("lock \(path)", errno: e) }
            var holder = PidLock.holder(of: path) ?? (0, "")
            guard let timeoutMs else {
                // The holder writes its pid just after it took the lock: a moment to read it.
                for _ in 0..<50 where holder.pid == 0 {
                    usleep(2_000)
                    holder = PidLock.holder(of: path) ?? (0, "")
                }
                throw LockHeld(path: path, pid: holder.pid, what: holder.what)
            }
            let now = monotonicMilliseconds()
            if now - start >= timeoutMs {
                throw HnxdpError(.runtime, "gave up after \(timeoutMs / 1000) s waiting for \(describe(holder)) holding \(path); if that process is stopped (`kill -CONT`) or hung, end it and retry")
            }
            if now - lastNotice >= 1000, now - start >= 200 {
                lastNotice = now
                waiting?(holder.pid, holder.what)
            }
            usleep(20_000)
        }
    }

    static func describe(_ holder: (pid: Int32, what: String)) -> String {
        holder.pid == 0 ? "another hnxdp" : "hnxdp pid \(holder.pid)\(holder.what.isEmpty ? "" : " (\(holder.what))")"
    }

    private func writeHolder(_ what: String) {
        let text = Array("\(getpid()) \(what)\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Releases the lock; `removeFile` unlinks it first (while still held, so
    /// nobody can hold the removed file).
    public func release(removeFile: Bool = false) {
        guard fd >= 0 else { return }
        if removeFile { unlink(path) }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}

/// The lock is held by another process (only for acquisitions without a timeout).
public struct LockHeld: Error, CustomStringConvertible {
    public var path: String
    public var pid: Int32
    public var what: String
    public var description: String { "\(PidLock.describe((pid, what))) holds \(path)" }
}

/// Serialises the hnxdp invocations that change state in one network
/// namespace (attach, detach, xdp, each event batch of `run`). Per namespace,
/// so a stopped process blocks only its own namespace, and every wait is
/// bounded and says whom it waits for.
public final class InvocationLock {
    /// Default bound of a wait (`HNXDP_LOCK_TIMEOUT` seconds overrides it).
    public static var defaultTimeoutMs: UInt64 {
        if let env = getenv("HNXDP_LOCK_TIMEOUT"), let s = String(validatingCString: env), let v = UInt64(s), v <= 3600 {
            return v * 1000
        }
        return 30_000
    }

    private let lock: PidLock
    private let state: StateDirectory
    private let pins: PinLayout

    /// Takes the lock of `layout`'s namespace (default: the calling thread's, pins
    /// under `HNXDP_BPFFS` or the default root). `what` names the holder for waiters
    /// (default: this process's command line).
    public init(layout: PinLayout? = nil, what: String? = nil, timeoutMs: UInt64 = InvocationLock.defaultTimeoutMs,
                waiting: ((String) -> Void)? = nil) throws {
        let layout = try layout ?? PinLayout.current(root: getenv("HNXDP_BPFFS").flatMap { String(validatingCString: $0) }.flatMap { $0.isEmpty ? nil : $0 })
        let what = what ?? String(CommandLine.arguments.map { $0.split(separator: "/").last.map(String.init) ?? $0 }
            .joined(separator: " ").prefix(120))
        state = StateDirectory.of(layout)
        pins = layout
        let notify = waiting ?? { line in fputs("hnxdp: \(line)\n", stderr) }
        lock = try PidLock.acquire(state.invocationLockPath, timeoutMs: timeoutMs, what: what) { pid, holder in
            notify("waiting for \(PidLock.describe((pid, holder))) to finish with this network namespace (\(timeoutMs / 1000) s at most)")
        }
        // What a writer killed before its rename left (the state files themselves are intact).
        FileSystem.sweepStaleTemporaries(in: state.namespaceDirectory)
    }

    deinit {
        // Nothing left to protect in the namespace: no lock file, no state directory.
        var idle = state.recordedSynthetics().isEmpty && !FileSystem.exists(pins.namespaceDirectory)
        if idle && FileSystem.exists(state.instanceLockPath) {
            // A `run` that was killed leaves its (free) instance lock file.
            if let stale = try? PidLock.acquire(state.instanceLockPath, timeoutMs: nil, what: "cleanup") {
                stale.release(removeFile: true)
            } else {
                idle = false
            }
        }
        if idle {
            // Switch histories belong to pairs, and no pair is left without pins.
            for file in state.historyFiles() { _ = try? FileSystem.remove(file) }
            FileSystem.removeDirectoryIfEmpty(state.namespaceDirectory)
        }
        lock.release(removeFile: idle)
        if idle { FileSystem.removeDirectoryIfEmpty(state.root) }
    }
}

extension StringProtocol {
    /// The string without leading and trailing characters of `set`.
    func trimming(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
