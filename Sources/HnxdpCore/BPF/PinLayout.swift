import Glibc

/// A directory tree with one directory per network namespace, named by the
/// namespace's inode: hnxdp's pins (`PinLayout`, in bpffs) and its run-time
/// state (`StateDirectory`, in /run). Pins and state are global to the mount
/// namespace while ifindexes are per network namespace, hence the namespace
/// level. `Kind` only tells the two apart (and gives the default root), so a
/// state directory is never passed where pins are meant.
public struct NamespaceTree<Kind: NamespaceTreeKind>: Sendable, Equatable {
    public let root: String
    public let netnsInode: UInt64

    public init(root: String, netnsInode: UInt64) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        self.netnsInode = netnsInode
    }

    public static var defaultRoot: String { Kind.defaultRoot }
    /// `<root>/<netns inode>`.
    public var namespaceDirectory: String { "\(root)/\(netnsInode)" }
}

public protocol NamespaceTreeKind: Sendable {
    static var defaultRoot: String { get }
}

/// Where hnxdp pins its objects (docs/architecture.md "Pins and state"):
///
///     <root>/<netns inode>/hnxdp_*              maps and programs of the namespace
///     <root>/<netns inode>/<synthetic ifindex>/ link pins of one pair
///     <root>/kernel/<netns inode>/<ifindex>/    XDP pins of a pair the kernel made
///
/// Directories are mode 0700. The default root is overridden by `--bpffs DIR` or `HNXDP_BPFFS`.
public typealias PinLayout = NamespaceTree<PinTree>
public enum PinTree: NamespaceTreeKind {
    public static let defaultRoot = "/sys/fs/bpf/hnxdp"
}

extension PinLayout {
    /// The layout for the calling thread's network namespace.
    public static func current(root: String? = nil) throws -> PinLayout {
        PinLayout(root: root ?? defaultRoot, netnsInode: try NetworkNamespace.currentInode())
    }

    public func pairDirectory(synthetic ifindex: Int32) -> String { "\(namespaceDirectory)/\(ifindex)" }
    public func objectPath(_ name: String) -> String { "\(namespaceDirectory)/\(name)" }
    public func linkPath(synthetic ifindex: Int32, _ name: String) -> String {
        "\(pairDirectory(synthetic: ifindex))/\(name)"
    }

    /// Where the XDP objects of pairs the kernel made (coexistence: `KernelPair`) are
    /// pinned: `<root>/kernel/<netns inode>/<synthetic ifindex>/`, apart from the
    /// namespace directory, whose datapath pins appear and go all at once.
    public var kernelPairs: PinLayout { PinLayout(root: "\(root)/kernel", netnsInode: netnsInode) }

    /// Synthetic ifindexes that have a pair directory (link pins), sorted.
    public func pairDirectories() -> [Int32] {
        FileSystem.list(namespaceDirectory).compactMap { Int32($0) }.sorted()
    }
}

/// The network namespace hnxdp runs in.
public enum NetworkNamespace {
    /// Inode of /proc/self/ns/net: the namespace's identity for pin paths.
    public static func currentInode() throws -> UInt64 {
        var st = stat()
        if stat("/proc/self/ns/net", &st) != 0 {
            throw HnxdpError.system("stat /proc/self/ns/net", errno: errno)
        }
        return UInt64(st.st_ino)
    }
}

/// Small file-system helpers with errors that name the path.
public enum FileSystem {
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Entry names of a directory, without "." and ".."; [] when it does not exist.
    public static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// mkdir -p with mode 0700 for the directories it creates; returns those it created.
    /// A parent removed meanwhile (another namespace's last detach removes an empty
    /// root) is made again.
    @discardableResult
    public static func makeDirectories(_ path: String) throws -> [String] {
        var created: [String] = []
        var attempts = 0
        var current = ""
        var components = path.split(separator: "/")[...]
        while let component = components.popFirst() {
            current += "/" + component
            if isDirectory(current) { continue }
            if mkdir(current, 0o700) != 0 {
                let e = errno
                if e == EEXIST && isDirectory(current) { continue }
                if e == ENOENT && attempts < 10 {
                    attempts += 1
                    current = ""
                    components = path.split(separator: "/")[...]
                    continue
                }
                throw HnxdpError.system("create directory \(current)", errno: e)
            }
            created.append(current)
        }
        return created
    }

    /// Removes a file or pin; false when it did not exist.
    @discardableResult
    public static func remove(_ path: String) throws -> Bool {
        if unlink(path) != 0 {
            let e = errno
            if e == ENOENT { return false }
            throw HnxdpError.system("remove \(path)", errno: e)
        }
        return true
    }

    /// Removes a directory and everything in it (pins, subdirectories); errors are ignored.
    public static func removeTree(_ path: String) {
        for name in list(path) {
            let child = "\(path)/\(name)"
            if isDirectory(child) { removeTree(child) } else { unlink(child) }
        }
        rmdir(path)
    }

    /// Removes an empty directory; false when it does not exist or is not empty.
    @discardableResult
    public static func removeDirectoryIfEmpty(_ path: String) -> Bool {
        rmdir(path) == 0
    }
}
