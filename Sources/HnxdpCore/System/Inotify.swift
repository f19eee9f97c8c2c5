import Glibc

/// One inotify instance (non-blocking, close-on-exec): watches added by path,
/// notifications read until none is waiting. For poll(2) beside other descriptors.
final class Inotify {
    let fileDescriptor: Int32
    private var buffer = [UInt8](repeating: 0, count: 4096)

    init() throws {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0 { throw HnxdpError.system("inotify_init1", errno: errno) }
        fileDescriptor = fd
    }

    deinit { close(fileDescriptor) }

    /// Adds (or, for a path already watched, replaces) a watch; its descriptor, or -1
    /// with errno set (ENOENT: nothing there to watch yet).
    @discardableResult
    func watch(_ path: String, _ mask: Int32) -> Int32 {
        inotify_add_watch(fileDescriptor, path, UInt32(bitPattern: mask))
    }

    /// Reads every waiting notification, handing each (watch, mask) to `event`;
    /// true when there was one.
    @discardableResult
    func drain(_ event: (_ watch: Int32, _ mask: UInt32) -> Void = { _, _ in }) -> Bool {
        var any = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
            if n <= 0 { return any } // EAGAIN: nothing more
            any = true
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= n {
                let e = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: inotify_event.self) }
                event(e.wd, e.mask)
                offset += MemoryLayout<inotify_event>.size + Int(e.len)
            }
        }
    }
}
