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
    private let inotify: Inotify
    private let state: StateDirectory
    private var namespaceWatch: Int32 = -1

    init(_ state: StateDirectory) throws {
        self.state = state
        _ = try FileSystem.makeDirectories(state.root)
        inotify = try Inotify()
        if inotify.watch(state.root, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR) < 0 {
            throw HnxdpError.system("watch \(state.root)", errno: errno)
        }
        watchNamespaceDirectory()
    }

    var fileDescriptor: Int32 { inotify.fileDescriptor }

    /// Reads every pending notification; true when there was one.
    func drain() -> Bool {
        let any = inotify.drain { watch, mask in
            if watch == namespaceWatch && mask & UInt32(IN_IGNORED) != 0 { namespaceWatch = -1 }
        }
        if any && namespaceWatch < 0 { watchNamespaceDirectory() }
        return any
    }

    private func watchNamespaceDirectory() {
        namespaceWatch = inotify.watch(state.namespaceDirectory, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_CREATE | IN_ONLYDIR)
    }
}
