import CHnxdpShim
import CLibBPF
import Glibc

/// What BPF_OBJ_GET_INFO_BY_FD fills in (`BPFDescriptor.info`): a zeroed value to start from.
public protocol BPFObjectInfo { init() }
extension bpf_prog_info: BPFObjectInfo {}
extension bpf_map_info: BPFObjectInfo {}
extension bpf_link_info: BPFObjectInfo {}

/// An owned file descriptor for a BPF object (map, program, link); closed on deinit.
public final class BPFDescriptor {
    public let fd: Int32
    public init(_ fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    /// Opens a pinned object ("bpf_obj_get"); nil when the pin does not exist.
    public static func openPinned(_ path: String) throws -> BPFDescriptor? {
        let fd = bpf_obj_get(path)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return nil }
            throw HnxdpError.system("open pinned BPF object \(path)", errno: e)
        }
        return BPFDescriptor(fd)
    }

    /// The kernel's description of this object (BPF_OBJ_GET_INFO_BY_FD): a
    /// `bpf_prog_info`, `bpf_map_info` or `bpf_link_info`, as the object is.
    /// `what` names the object in the error.
    public func info<Info: BPFObjectInfo>(_: Info.Type, what: String) throws -> Info {
        var info = Info()
        var len = UInt32(MemoryLayout<Info>.size)
        let rc = withUnsafeMutableBytes(of: &info) { bpf_obj_get_info_by_fd(fd, $0.baseAddress, &len) }
        if rc != 0 { throw HnxdpError.system("read info of \(what)", errno: errno) }
        return info
    }

    /// The kernel's name and type of this map or program.
    public func identity(program: Bool) throws -> (name: String, type: UInt32) {
        if program {
            let info = try info(bpf_prog_info.self, what: "BPF program")
            return (FixedCString.string(info.name), info.type)
        }
        let info = try info(bpf_map_info.self, what: "BPF map")
        return (FixedCString.string(info.name), info.type)
    }

    /// Refuses a pinned object that is not the expected one: its kernel name must be
    /// `expectedName` (as the kernel truncates it, to 15 bytes) and its type `expectedType`.
    public func requireIdentity(path: String, program: Bool, expectedName: String, expectedType: UInt32) throws {
        let (name, type) = try identity(program: program)
        let want = String(decoding: Array(expectedName.utf8.prefix(Int(BPF_OBJ_NAME_LEN) - 1)), as: UTF8.self)
        if name != want || type != expectedType {
            throw HnxdpError(.runtime, "pinned \(path) is not hnxdp's \(program ? "program" : "map") \(expectedName) (kernel name '\(name)', type \(type); expected type \(expectedType)): refusing to use it; `hnxdp detach --all` removes this namespace's pins and puts the devices back from the write-ahead records")
        }
    }

    /// What kind of BPF object the descriptor refers to.
    public enum Kind: Equatable, Sendable { case map, program, link, other }

    /// The kind of this object, from its anonymous inode's name (bpf-map, bpf-prog,
    /// bpf-link): the one check that cannot mistake one kind's info for another's.
    public func objectKind() throws -> Kind {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        if n < 0 { throw HnxdpError.system("read the kind of BPF object fd \(fd)", errno: errno) }
        let target = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch target {
        case "anon_inode:bpf-map": return .map
        case "anon_inode:bpf-prog": return .program
        case "anon_inode:bpf-link": return .link
        default: return .other
        }
    }

    /// The kernel's id of this program.
    public func programID() throws -> UInt32 {
        try info(bpf_prog_info.self, what: "BPF program").id
    }

    /// The name of the loaded program with this id, nil when it is gone.
    public static func programName(id: UInt32) -> String? {
        let fd = bpf_prog_get_fd_by_id(id)
        if fd < 0 { return nil }
        let program = BPFDescriptor(fd)
        return try? program.identity(program: true).name
    }

    /// A new one-entry ARRAY map holding `value` at key 0 (a record to pin).
    public static func createArray<V>(name: String, value: V) throws -> BPFDescriptor {
        let fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, 4, UInt32(MemoryLayout<V>.size), 1, nil)
        if fd < 0 { throw HnxdpError.system("create BPF map \(name)", errno: errno) }
        let map = BPFDescriptor(fd)
        var key: UInt32 = 0
        var v = value
        let rc = withUnsafeBytes(of: &key) { kp in withUnsafeBytes(of: &v) { vp in bpf_map_update_elem(fd, kp.baseAddress, vp.baseAddress, 0) } }
        if rc != 0 { throw HnxdpError.system("write BPF map \(name)", errno: errno) }
        return map
    }

    /// Pins this object at `path`.
    public func pin(at path: String) throws {
        if bpf_obj_pin(fd, path) != 0 {
            throw HnxdpError.system("pin BPF object at \(path)", errno: errno)
        }
    }
}

/// A BPF map with typed, fixed-width keys and values. The sizes are checked
/// against the kernel's when the map is opened, so a layout mismatch between
/// `bpf/hnxdp_shared.h` and a pinned map from another build is an error, not
/// memory corruption.
public final class BPFMap<Key, Value> {
    public let name: String
    public let descriptor: BPFDescriptor
    public let maxEntries: UInt32
    public let perCPU: Bool
    private let possibleCPUs: Int

    public var fd: Int32 { descriptor.fd }

    public init(name: String, descriptor: BPFDescriptor) throws {
        let info = try descriptor.info(bpf_map_info.self, what: "BPF map \(name)")
        let (type, keySize, valueSize, maxEntries) = (info.type, info.key_size, info.value_size, info.max_entries)
        let perCPU = [BPF_MAP_TYPE_PERCPU_ARRAY.rawValue, BPF_MAP_TYPE_PERCPU_HASH.rawValue,
                      BPF_MAP_TYPE_LRU_PERCPU_HASH.rawValue].contains(type)
        guard Int(keySize) == MemoryLayout<Key>.size else {
            throw HnxdpError(.runtime, "BPF map \(name): key size \(keySize) in the kernel, \(MemoryLayout<Key>.size) expected; pins from another hnxdp build? run `hnxdp detach --all`")
        }
        // Devmaps report their value size but Swift may model only part; check when a full type is given.
        guard Int(valueSize) == MemoryLayout<Value>.size else {
            throw HnxdpError(.runtime, "BPF map \(name): value size \(valueSize) in the kernel, \(MemoryLayout<Value>.size) expected; pins from another hnxdp build? run `hnxdp detach --all`")
        }
        self.name = name
        self.descriptor = descriptor
        self.maxEntries = maxEntries
        self.perCPU = perCPU
        self.possibleCPUs = perCPU ? Int(max(libbpf_num_possible_cpus(), 1)) : 1
    }

    /// The value for `key`, or nil when the key does not exist (not an error).
    public func lookup(_ key: Key) throws -> Value? {
        precondition(!perCPU, "use lookupPerCPU on per-CPU map \(name)")
        var k = key
        var v = try zeroValue()
        let rc = withUnsafeMutableBytes(of: &v) { vp in
            withUnsafeBytes(of: &k) { kp in bpf_map_lookup_elem(fd, kp.baseAddress, vp.baseAddress) }
        }
        if rc != 0 {
            let e = errno
            if e == ENOENT { return nil }
            throw HnxdpError.system("look up key in BPF map \(name)", errno: e)
        }
        return v
    }

    /// One value per possible CPU, or nil when the key does not exist.
    public func lookupPerCPU(_ key: Key) throws -> [Value]? {
        precondition(perCPU, "use lookup on map \(name)")
        var k = key
        let stride = (MemoryLayout<Value>.size + 7) & ~7
        var buffer = [UInt8](repeating: 0, count: stride * possibleCPUs)
        let rc = buffer.withUnsafeMutableBytes { vp in
            withUnsafeBytes(of: &k) { kp in bpf_map_lookup_elem(fd, kp.baseAddress, vp.baseAddress) }
        }
        if rc != 0 {
            let e = errno
            if e == ENOENT { return nil }
            throw HnxdpError.system("look up key in BPF map \(name)", errno: e)
        }
        return buffer.withUnsafeBytes { raw in
            (0..<possibleCPUs).map { cpu in raw.loadUnaligned(fromByteOffset: cpu * stride, as: Value.self) }
        }
    }

    /// Writes `value` for `key` (on every CPU for per-CPU maps).
    public func update(_ key: Key, _ value: Value) throws {
        var k = key
        let rc: Int32
        if perCPU {
            let stride = (MemoryLayout<Value>.size + 7) & ~7
            var buffer = [UInt8](repeating: 0, count: stride * possibleCPUs)
            buffer.withUnsafeMutableBytes { raw in
                for cpu in 0..<possibleCPUs { raw.storeBytes(of: value, toByteOffset: cpu * stride, as: Value.self) }
            }
            rc = buffer.withUnsafeBytes { vp in
                withUnsafeBytes(of: &k) { kp in bpf_map_update_elem(fd, kp.baseAddress, vp.baseAddress, UInt64(BPF_ANY)) }
            }
        } else {
            var v = value
            rc = withUnsafeBytes(of: &v) { vp in
                withUnsafeBytes(of: &k) { kp in bpf_map_update_elem(fd, kp.baseAddress, vp.baseAddress, UInt64(BPF_ANY)) }
            }
        }
        if rc != 0 { throw HnxdpError.system("update BPF map \(name)", errno: errno) }
    }

    /// Deletes `key`; returns false when it was not there.
    @discardableResult
    public func delete(_ key: Key) throws -> Bool {
        var k = key
        let rc = withUnsafeBytes(of: &k) { kp in bpf_map_delete_elem(fd, kp.baseAddress) }
        if rc != 0 {
            let e = errno
            if e == ENOENT { return false }
            throw HnxdpError.system("delete key from BPF map \(name)", errno: e)
        }
        return true
    }

    /// Every entry, read with BPF_MAP_LOOKUP_BATCH (a few system calls for the whole
    /// map instead of two per entry); per-CPU maps give one value per possible CPU.
    /// An ARRAY gives all its `maxEntries` slots. nil when the kernel has no batch
    /// lookup for this map type (e.g. DEVMAP): the caller reads entry by entry.
    /// Not atomic, like `keys()` followed by lookups.
    public func batchEntries() throws -> [(key: Key, values: [Value])]? {
        let keySize = MemoryLayout<Key>.size
        let stride = perCPU ? (MemoryLayout<Value>.size + 7) & ~7 : MemoryLayout<Value>.size
        let valueBytes = stride * possibleCPUs
        var chunk = Int(min(maxEntries, 1024))
        var result: [(key: Key, values: [Value])] = []
        // The batch cursor: a u32 bucket or index for hash and array maps; room for a key too.
        var inBatch = [UInt8](repeating: 0, count: max(keySize, 8))
        var outBatch = inBatch
        var first = true
        while true {
            var keys = [UInt8](repeating: 0, count: chunk * keySize)
            var values = [UInt8](repeating: 0, count: chunk * valueBytes)
            var count = UInt32(chunk)
            let rc = keys.withUnsafeMutableBytes { kp in
                values.withUnsafeMutableBytes { vp in
                    outBatch.withUnsafeMutableBytes { op in
                        inBatch.withUnsafeMutableBytes { ip in
                            bpf_map_lookup_batch(fd, first ? nil : ip.baseAddress, op.baseAddress, kp.baseAddress, vp.baseAddress, &count, nil)
                        }
                    }
                }
            }
            let e = errno
            if rc != 0 && e == ENOSPC && count == 0 && chunk < Int(maxEntries) * 2 + 2 {
                chunk *= 2 // a hash bucket with more entries than fit: again, larger
                continue
            }
            if rc != 0 && e != ENOENT {
                // 524: the kernel's ENOTSUPP, no batch operations for this map type.
                if first && (e == EINVAL || e == EOPNOTSUPP || e == 524) { return nil }
                throw HnxdpError.system("read BPF map \(name) in batches", errno: e)
            }
            keys.withUnsafeBytes { kr in
                values.withUnsafeBytes { vr in
                    for i in 0..<Int(min(count, UInt32(chunk))) {
                        let key = kr.loadUnaligned(fromByteOffset: i * keySize, as: Key.self)
                        let perEntry = (0..<possibleCPUs).map { cpu in
                            vr.loadUnaligned(fromByteOffset: i * valueBytes + cpu * stride, as: Value.self)
                        }
                        result.append((key, perEntry))
                    }
                }
            }
            if rc != 0 { break } // ENOENT: that was the last batch
            inBatch = outBatch
            first = false
            if result.count > Int(maxEntries) { break }
        }
        return result
    }

    /// Every entry of a map with one value per key (not per-CPU), in no order:
    /// BPF_MAP_LOOKUP_BATCH where the kernel has it (a few system calls for the
    /// whole map, not two per entry), else key by key. Not atomic: an entry removed
    /// meanwhile is simply not there.
    public func entries() throws -> [(key: Key, value: Value)] {
        if let batch = try batchEntries() { return batch.compactMap { e in e.values.first.map { (e.key, $0) } } }
        var result: [(key: Key, value: Value)] = []
        for key in try keys() {
            if let value = try lookup(key) { result.append((key, value)) }
        }
        return result
    }

    /// All keys (hash maps); snapshot, order unspecified.
    public func keys() throws -> [Key] {
        var result: [Key] = []
        var current: Key? = nil
        while true {
            var next = try zeroKey()
            let rc: Int32
            if var c = current {
                rc = withUnsafeMutableBytes(of: &next) { np in
                    withUnsafeBytes(of: &c) { cp in bpf_map_get_next_key(fd, cp.baseAddress, np.baseAddress) }
                }
            } else {
                rc = withUnsafeMutableBytes(of: &next) { np in bpf_map_get_next_key(fd, nil, np.baseAddress) }
            }
            if rc != 0 {
                let e = errno
                if e == ENOENT { break }
                throw HnxdpError.system("iterate BPF map \(name)", errno: e)
            }
            result.append(next)
            current = next
            if result.count > Int(maxEntries) { break }
        }
        return result
    }

    private func zeroValue() throws -> Value {
        UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Value>.size, alignment: 8).withZeroed(as: Value.self)
    }

    private func zeroKey() throws -> Key {
        UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Key>.size, alignment: 8).withZeroed(as: Key.self)
    }
}

extension UnsafeMutableRawPointer {
    /// Reads a zero-filled `T` from this fresh allocation and frees it. For plain C structs only.
    fileprivate func withZeroed<T>(as type: T.Type) -> T {
        defer { deallocate() }
        memset(self, 0, MemoryLayout<T>.size)
        return load(as: T.self)
    }
}
