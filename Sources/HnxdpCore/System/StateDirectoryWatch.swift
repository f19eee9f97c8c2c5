import Glibc

/// Notifications (inotify) of changes in a network namespace's state
/// directory: its pairs' write-ahead records and switch histories. Every change
/// of a pair's VF ends with a write there (`PairLifecycle`: a join saves the
/// record after it stores the pair entry; a leave and a detach remove it after
/// the entry changed), so a process following a pair another process changes
/// (an `hnxdp xsk` beside `hnxdp run`) reads the pinned entry again only when
/// told, never on a timer.
///
/// The namespace directory comes and goes with its records; the root (where
/// the locks live) stays. The root is watched for the directory's return, the
/// directory for its files.
final class StateDirectoryWatch {
    let fileDescriptor: Int32
    private let state: StateDirectory
    private var namespaceWatch: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 4096)

    init(_ state: StateDirectory) throws {
        self.state = state
        _ = try FileSystem.makeDirectories(state.root)
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0 { throw HnxdpError.system("inotify_init1", errno: errno) }
        if inotify_add_watch(fd, state.root, UInt32(IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)) < 0 {
            let e = errno
            close(fd)
            throw HnxdpError.system("watch \(state.root)", errno: e)
        }
        fileDescriptor = fd
        watchNamespaceDirectory()
    }

    deinit { close(fileDescriptor) }

    /// Reads every pending notification; true when there was one.
    func drain() -> Bool {
        var any = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
            if n <= 0 { break } // EAGAIN: nothing more
            any = true
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= n {
                let event = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: inotify_event.self) }
                if event.wd == namespaceWatch && event.mask & UInt32(IN_IGNORED) != 0 { namespaceWatch = -1 }
                offset += MemoryLayout<inotify_event>.size + Int(event.len)
            }
        }
        if any && namespaceWatch < 0 { watchNamespaceDirectory() }
        return any
    }

    private func watchNamespaceDirectory() {
        namespaceWatch = inotify_add_watch(fileDescriptor, state.namespaceDirectory,
                                           UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_CREATE | IN_ONLYDIR))
    }
}
