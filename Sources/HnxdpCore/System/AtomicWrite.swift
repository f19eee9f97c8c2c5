import Glibc

extension FileSystem {
    /// Writes `bytes` to `path` durably and atomically: a new file (mode `mode`)
    /// is written and fsynced next to it, then renamed over `path`, so a reader
    /// sees the old content or the new, never part of one. Used by every state
    /// file hnxdp keeps (write-ahead records, switch history).
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws {
        let tmp = "\(path).\(getpid()).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        if fd < 0 { throw HnxdpError.system("create \(tmp)", errno: errno) }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let e = errno
                close(fd)
                unlink(tmp)
                throw HnxdpError.system("write \(tmp)", errno: e)
            }
            written += n
        }
        fsync(fd)
        close(fd)
        if rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw HnxdpError.system("rename \(tmp) to \(path)", errno: e)
        }
    }
}

extension FileSystem {
    /// Removes the temporary files of `writeAtomically` that a process killed
    /// between writing and renaming left in `directory` (`<name>.<pid>.tmp` of a
    /// pid that no longer exists). The file they were to replace is intact.
    public static func sweepStaleTemporaries(in directory: String) {
        for name in list(directory) where name.hasSuffix(".tmp") {
            let parts = name.split(separator: ".")
            guard parts.count >= 3, let pid = Int32(parts[parts.count - 2]), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink("\(directory)/\(name)")
        }
    }
}
