// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A JSON file in a namespace's state directory (a pair's write-ahead record, its
/// switch history, a migration's plan): versioned, and tied to its namespace by
/// SO_NETNS_COOKIE, so a later namespace that gets the same inode never inherits it.
protocol NamespaceStateFile: Codable {
    static var currentVersion: Int { get }
    var version: Int { get }
    /// The namespace's cookie when the file was written; 0 where the kernel has none.
    var netnsCookie: UInt64 { get }
}

/// How every state file is read and written: the one place that knows the
/// checks (version, namespace) and the format (sorted keys, one line, atomic).
enum StateFile {
    /// What a state file holds for this namespace: nil when there is no file, or
    /// it is another namespace's (same inode, other cookie; removed when
    /// `removeStale`). A file that does not decode, has another version or fails
    /// `belongs` is `unreadable`: thrown, or nil when that is nil (a reader that
    /// can do without it).
    static func load<T: NamespaceStateFile>(_ type: T.Type, at path: String,
                                            cookie: UInt64 = NetworkNamespace.currentCookie(),
                                            belongs: (T) -> Bool = { _ in true },
                                            unreadable: HnxdpError?, removeStale: Bool) throws -> T? {
        guard FileSystem.exists(path) else { return nil }
        guard let text = try? HostEnvironment.readText(path),
              let value = try? JSONDecoder().decode(T.self, from: Data(text.utf8)),
              value.version == T.currentVersion, belongs(value) else {
            if let unreadable { throw unreadable }
            return nil
        }
        if value.netnsCookie != 0, cookie != 0, value.netnsCookie != cookie {
            if removeStale { try FileSystem.remove(path) }
            return nil
        }
        return value
    }

    /// Writes `value` durably and atomically at `path` (`FileSystem.writeAtomically`),
    /// making its directory first: a reader sees the old file or the new, never part of one.
    static func save<T: Encodable>(_ value: T, at path: String) throws {
        let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !parent.isEmpty { try FileSystem.makeDirectories(parent) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try FileSystem.writeAtomically(path, Array(try encoder.encode(value)) + [UInt8(ascii: "\n")])
    }
}
