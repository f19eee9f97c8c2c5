import CHnxdpShim
import Glibc

/// Link-layer multicast lists (B11): the joined VF receives every multicast
/// address the synthetic has, or all-multicast when it cannot take the list.
public enum MulticastList {
    /// Parses /proc/net/dev_mcast ("ifindex name users global hexaddr" lines) into
    /// address lists by ifindex. Pure; malformed lines are skipped.
    public static func parse(_ text: String) -> [Int32: Set<[UInt8]>] {
        var result: [Int32: Set<[UInt8]>] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 5, let ifindex = Int32(fields[0]), fields[4].count == 12 else { continue }
            let hex = Array(fields[4].utf8)
            var mac: [UInt8] = []
            for i in stride(from: 0, to: 12, by: 2) {
                guard let b = UInt8(String(decoding: hex[i..<i + 2], as: UTF8.self), radix: 16) else { break }
                mac.append(b)
            }
            if mac.count == 6 { result[ifindex, default: []].insert(mac) }
        }
        return result
    }

    /// The current lists of this network namespace (/proc/self/net follows the caller's namespace).
    public static func current() -> [Int32: Set<[UInt8]>] {
        parse(String(decoding: snapshot(), as: UTF8.self))
    }

    /// The raw bytes of /proc/self/net/dev_mcast: cheap to compare with the previous
    /// read, so the periodic check parses nothing while nothing changes.
    public static func snapshot() -> [UInt8] {
        let fd = open("/proc/self/net/dev_mcast", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    /// What to add to and remove from the VF so it has every address of the
    /// synthetic; only addresses hnxdp added earlier (`added`) are ever removed,
    /// never the VF's own. Pure.
    public static func plan(synthetic: Set<[UInt8]>, vf: Set<[UInt8]>, added: Set<[UInt8]>) -> (add: [[UInt8]], remove: [[UInt8]]) {
        let add = synthetic.subtracting(vf).sorted { $0.lexicographicallyPrecedes($1) }
        let remove = added.subtracting(synthetic).intersection(vf).sorted { $0.lexicographicallyPrecedes($1) }
        return (add, remove)
    }

    /// Adds or deletes one address on a device.
    public static func set(_ mac: [UInt8], on ifname: String, add: Bool) throws {
        precondition(mac.count == 6)
        let rc = mac.withUnsafeBufferPointer { hnxdp_link_multicast(ifname, $0.baseAddress, add ? 1 : 0) }
        if rc < 0 {
            throw HnxdpError.system("\(add ? "add" : "delete") multicast \(LinkInfo.formatMAC(mac)) on \(ifname)", errno: -rc)
        }
    }
}
