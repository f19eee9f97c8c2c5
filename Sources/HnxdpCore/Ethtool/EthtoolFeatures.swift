// EthtoolFeatures.swift - ethtool features (offloads) of one interface: get, set,
// bitmap helpers, and the feature intersection applied when a VF joins.
//
// Talks to the kernel only through SIOCETHTOOL on an ioctl socket of the
// current network namespace (C helpers in CHnxdpShim/ethtool.c). Never reads
// /sys/class/net: under `nsenter --net` /sys shows the host's devices.

import CHnxdpShim
import Glibc

/// The ethtool features of one device (`ethtool -k`), as 2 × 64-bit words per bitmap:
/// bit i lives in word i / 64, bit i % 64, and its name is `names[i]`.
///
/// Only the first `FeatureSet.wordCount` × 64 bits are represented (the kernel has
/// fewer); bits beyond are never reported nor changed.
public struct FeatureSet: Sendable, Equatable {
    /// Number of 64-bit words in every bitmap (bpf/hnxdp_shared.h HNXDP_FEATURE_WORDS).
    public static let wordCount = Int(HNXDP_FEATURE_WORDS)
    /// Number of feature bits a bitmap holds.
    public static let bitCount = wordCount * 64

    /// ETH_SS_FEATURES strings, index = bit ("tx-checksum-ip-generic", ...; "" for unused bits).
    public var names: [String]
    /// Bits the device lets user space change (hw_features).
    public var available: [UInt64]
    /// Bits user space asked for (wanted_features).
    public var requested: [UInt64]
    /// Bits currently enabled (features).
    public var active: [UInt64]
    /// Bits no device may change (NETIF_F_NEVER_CHANGE).
    public var neverChanged: [UInt64]

    /// A feature set; bitmaps are normalised to exactly `wordCount` words.
    public init(names: [String], available: [UInt64], requested: [UInt64], active: [UInt64], neverChanged: [UInt64]) {
        self.names = names
        self.available = FeatureSet.normalized(available)
        self.requested = FeatureSet.normalized(requested)
        self.active = FeatureSet.normalized(active)
        self.neverChanged = FeatureSet.normalized(neverChanged)
    }

    /// The bit number of a feature name; nil for an unknown (or empty) name.
    public func bit(named name: String) -> Int? {
        guard !name.isEmpty, let i = names.firstIndex(of: name), i < FeatureSet.bitCount else { return nil }
        return i
    }

    /// Whether the named feature is currently enabled (false for an unknown name).
    public func isActive(_ name: String) -> Bool {
        guard let i = bit(named: name) else { return false }
        return FeatureSet.test(i, in: active)
    }

    /// Whether the named feature can be changed on this device (false for an unknown name).
    public func isAvailable(_ name: String) -> Bool {
        guard let i = bit(named: name) else { return false }
        return FeatureSet.test(i, in: available)
    }

    /// Whether the named feature is requested (false for an unknown name).
    public func isRequested(_ name: String) -> Bool {
        guard let i = bit(named: name) else { return false }
        return FeatureSet.test(i, in: requested)
    }

    /// Bits an ETHTOOL_SFEATURES valid mask may hold: below the kernel's feature count
    /// (`names.count`) and not in `neverChanged`. The kernel refuses a request naming any other.
    public func settableBits() -> [UInt64] {
        (0..<FeatureSet.wordCount).map { w in
            let bitsHere = min(max(names.count - w * 64, 0), 64)
            let inRange: UInt64 = bitsHere == 64 ? ~0 : (UInt64(1) << UInt64(bitsHere)) - 1
            return inRange & ~neverChanged[w]
        }
    }

    /// Names of the active bits, in bit order.
    public func activeNames() -> [String] {
        FeatureSet.names(of: active, in: names)
    }

    /// Names of the bits set in `words`, in bit order; bits without a (non-empty) name are skipped.
    public static func names(of words: [UInt64], in names: [String]) -> [String] {
        var out: [String] = []
        for i in 0..<min(names.count, bitCount) where test(i, in: words) && !names[i].isEmpty {
            out.append(names[i])
        }
        return out
    }

    /// Words with the bits of the given feature names set; unknown names are ignored.
    public static func words(of selected: [String], in names: [String]) -> [UInt64] {
        var words = [UInt64](repeating: 0, count: wordCount)
        for name in selected where !name.isEmpty {
            if let i = names.firstIndex(of: name), i < bitCount { set(i, in: &words, to: true) }
        }
        return words
    }

    // MARK: Bitmap helpers (pure)

    /// Whether bit `i` is set; false for bits outside `words`.
    public static func test(_ i: Int, in words: [UInt64]) -> Bool {
        guard i >= 0, i / 64 < words.count else { return false }
        return words[i / 64] & (1 << UInt64(i % 64)) != 0
    }

    /// Sets or clears bit `i`, growing `words` if needed.
    public static func set(_ i: Int, in words: inout [UInt64], to value: Bool) {
        guard i >= 0 else { return }
        while words.count <= i / 64 { words.append(0) }
        let m: UInt64 = 1 << UInt64(i % 64)
        if value { words[i / 64] |= m } else { words[i / 64] &= ~m }
    }

    /// Exactly `wordCount` words: missing words are zero, extra words dropped.
    public static func normalized(_ words: [UInt64]) -> [UInt64] {
        (0..<wordCount).map { $0 < words.count ? words[$0] : 0 }
    }

    /// 32-bit ethtool blocks (block j = bits 32j..32j+31) to `wordCount` 64-bit words.
    /// Blocks beyond the words are dropped.
    public static func words(fromBlocks blocks: [UInt32]) -> [UInt64] {
        var words = [UInt64](repeating: 0, count: wordCount)
        for (j, block) in blocks.enumerated() where j / 2 < wordCount {
            words[j / 2] |= UInt64(block) << (j % 2 == 0 ? 0 : 32)
        }
        return words
    }

    /// 64-bit words to `count` 32-bit ethtool blocks; blocks beyond the words are zero.
    public static func blocks(fromWords words: [UInt64], count: Int) -> [UInt32] {
        (0..<max(count, 0)).map { j in
            guard j / 2 < words.count else { return 0 }
            return UInt32(truncatingIfNeeded: words[j / 2] >> (j % 2 == 0 ? 0 : 32))
        }
    }

    /// Names from the kernel's ETH_GSTRING_LEN-byte, NUL-padded records.
    public static func decodeNames(_ raw: [UInt8], count: Int, recordLength: Int = Int(HNXDP_ETHTOOL_NAME_LEN)) -> [String] {
        (0..<count).map { i in
            let start = i * recordLength
            guard start < raw.count else { return "" }
            let record = raw[start..<min(start + recordLength, raw.count)]
            let end = record.firstIndex(of: 0) ?? record.endIndex
            return String(decoding: record[record.startIndex..<end], as: UTF8.self)
        }
    }
}

/// Feature intersection for the join (behaviour B4): for each bit changeable on the synthetic,
/// wanted = synthetic.active && vf.active; bits not changeable on the synthetic are left as they are.
///
/// "Changeable" means in `available` and not in `neverChanged`. Bits are matched by name, not
/// by index (a name the VF does not report counts as inactive on the VF).
///
/// Returns `requested`: the synthetic's requested bits with every changeable bit set to its
/// wanted value; and `mask`: the changeable bits whose wanted value differs from the synthetic's
/// requested value, i.e. the bits that must change. Pass both to `Ethtool.setFeatures`; an
/// all-zero mask means there is nothing to do. Comparing with `requested` rather than `active`
/// also clears requests the kernel could not honour yet (requested but inactive because of a
/// dependency), so they cannot switch on by themselves while the VF is joined. Pure.
public func intersectFeatures(synthetic: FeatureSet, vf: FeatureSet) -> (requested: [UInt64], mask: [UInt64]) {
    var vfBit: [String: Int] = [:]
    for (i, name) in vf.names.enumerated() where !name.isEmpty && i < FeatureSet.bitCount {
        if vfBit[name] == nil { vfBit[name] = i }
    }
    var requested = FeatureSet.normalized(synthetic.requested)
    var mask = [UInt64](repeating: 0, count: FeatureSet.wordCount)
    for i in 0..<min(synthetic.names.count, FeatureSet.bitCount) {
        let name = synthetic.names[i]
        // Changeable: in hw_features and not NETIF_F_NEVER_CHANGE (the kernel refuses
        // those with EINVAL even when a driver lists them).
        guard !name.isEmpty, FeatureSet.test(i, in: synthetic.available),
              !FeatureSet.test(i, in: synthetic.neverChanged) else { continue }
        let vfActive = vfBit[name].map { FeatureSet.test($0, in: vf.active) } ?? false
        let wanted = FeatureSet.test(i, in: synthetic.active) && vfActive
        if wanted != FeatureSet.test(i, in: synthetic.requested) {
            FeatureSet.set(i, in: &mask, to: true)
        }
        FeatureSet.set(i, in: &requested, to: wanted)
    }
    return (requested, mask)
}

/// ethtool feature get/set through SIOCETHTOOL in the current network namespace.
public enum Ethtool {
    /// Driver name and bus of `ifname` (`ethtool -i`); nil when the device has no driver info.
    public static func driverInfo(of ifname: String) -> (driver: String, busInfo: String)? {
        var driver = [CChar](repeating: 0, count: 64), bus = [CChar](repeating: 0, count: 64)
        guard hnxdp_ethtool_driver(ifname, &driver, driver.count, &bus, bus.count) == 0 else { return nil }
        return (String(cString: driver), String(cString: bus))
    }

    /// The features of `ifname` (`ethtool -k`).
    /// Throws `.badInput` "interface vf0 not found" when there is no such interface.
    public static func features(of ifname: String) throws -> FeatureSet {
        let what = "ethtool get features of \(ifname)"
        try checkName(ifname)
        let fd = try openSocket(what)
        defer { close(fd) }
        return try readFeatures(fd: fd, ifname: ifname, what: what).set
    }

    /// Sets `requested` for the bits in `mask` (ETHTOOL_SFEATURES valid mask); returns the
    /// features afterwards. An all-zero mask changes nothing. Bits no device may change
    /// (`neverChanged`) and bits past the kernel's feature count are dropped from the mask,
    /// since the kernel would refuse the whole request for them.
    ///
    /// The kernel ignores bits that are not changeable on the device and may leave a bit
    /// different from the request because of dependencies between features (ETHTOOL_F_WISH):
    /// compare the returned set with what was asked for when it matters.
    public static func setFeatures(of ifname: String, requested: [UInt64], mask: [UInt64]) throws -> FeatureSet {
        try setFeaturesReporting(of: ifname, requested: requested, mask: mask).features
    }

    /// Like `setFeatures`, also returning the kernel's ETHTOOL_SFEATURES result bits
    /// (`unsupportedFlag`, `wishFlag`, `compatFlag`).
    public static func setFeaturesReporting(of ifname: String, requested: [UInt64], mask: [UInt64]) throws -> (features: FeatureSet, resultFlags: UInt32) {
        let what = "ethtool set features of \(ifname)"
        try checkName(ifname)
        let fd = try openSocket(what)
        defer { close(fd) }
        let (before, blocks) = try readFeatures(fd: fd, ifname: ifname, what: what)
        // The kernel rejects the whole request (EINVAL) if `valid` holds a NETIF_F_NEVER_CHANGE
        // bit or a bit past its feature count: drop those, they can never change anyway.
        let settable = before.settableBits()
        let validWords = (0..<FeatureSet.wordCount).map { w in
            (w < mask.count ? mask[w] : 0) & settable[w]
        }
        let valid = FeatureSet.blocks(fromWords: validWords, count: blocks)
        var resultFlags: UInt32 = 0
        if valid.contains(where: { $0 != 0 }) {
            let values = FeatureSet.blocks(fromWords: requested, count: blocks)
            let ret = valid.withUnsafeBufferPointer { v in
                values.withUnsafeBufferPointer { r in
                    hnxdp_ethtool_set_features(fd, ifname, UInt32(blocks), v.baseAddress, r.baseAddress, &resultFlags)
                }
            }
            try check(ret, ifname: ifname, what: what)
        }
        let after = try readFeatures(fd: fd, ifname: ifname, what: "ethtool get features of \(ifname)").set
        return (after, resultFlags)
    }

    /// ETHTOOL_SFEATURES result: some bits in the mask were not changeable and were ignored.
    public static let unsupportedFlag = UInt32(HNXDP_ETHTOOL_F_UNSUPPORTED)
    /// ETHTOOL_SFEATURES result: recorded, but the result differs from the request.
    public static let wishFlag = UInt32(HNXDP_ETHTOOL_F_WISH)
    /// ETHTOOL_SFEATURES result: done through the driver's legacy callbacks.
    public static let compatFlag = UInt32(HNXDP_ETHTOOL_F_COMPAT)

    // MARK: - Private

    /// Reads names and bitmaps; also returns the kernel's number of 32-bit blocks.
    private static func readFeatures(fd: Int32, ifname: String, what: String) throws -> (set: FeatureSet, blocks: Int) {
        var count: UInt32 = 0
        try check(hnxdp_ethtool_feature_count(fd, ifname, &count), ifname: ifname, what: what)
        guard count > 0 else { throw HnxdpError.system(what, errno: EOPNOTSUPP) }

        let recordLength = Int(HNXDP_ETHTOOL_NAME_LEN)
        var raw = [UInt8](repeating: 0, count: Int(count) * recordLength)
        var ret = raw.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                hnxdp_ethtool_feature_names(fd, ifname, count, $0)
            }
        }
        try check(ret, ifname: ifname, what: what)
        // Bits beyond what FeatureSet holds are neither reported nor changed.
        let names = FeatureSet.decodeNames(raw, count: min(Int(count), FeatureSet.bitCount), recordLength: recordLength)

        let blocks = (Int(count) + 31) / 32
        var available = [UInt32](repeating: 0, count: blocks)
        var requested = [UInt32](repeating: 0, count: blocks)
        var active = [UInt32](repeating: 0, count: blocks)
        var neverChanged = [UInt32](repeating: 0, count: blocks)
        var kernelBlocks: UInt32 = 0
        ret = hnxdp_ethtool_get_features(fd, ifname, UInt32(blocks), &available, &requested, &active, &neverChanged, &kernelBlocks)
        try check(ret, ifname: ifname, what: what)
        guard Int(kernelBlocks) == blocks else {
            // ETHTOOL_SFEATURES needs exactly the kernel's block count.
            throw HnxdpError(.runtime, "\(what): kernel reports \(kernelBlocks) feature blocks for \(count) features")
        }
        let set = FeatureSet(
            names: names,
            available: FeatureSet.words(fromBlocks: available),
            requested: FeatureSet.words(fromBlocks: requested),
            active: FeatureSet.words(fromBlocks: active),
            neverChanged: FeatureSet.words(fromBlocks: neverChanged)
        )
        return (set, blocks)
    }

    private static func checkName(_ ifname: String) throws {
        guard InterfaceName.isValid(ifname) else {
            throw HnxdpError(.badInput, "invalid interface name \"\(ifname)\" (1 to \(InterfaceName.maxLength) bytes, no '/', ':' or whitespace)")
        }
    }

    /// A socket for SIOCETHTOOL: AF_INET datagram like ethtool, AF_NETLINK as fallback.
    private static func openSocket(_ what: String) throws -> Int32 {
        while true {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            break
        }
        while true {
            let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 16 /* NETLINK_GENERIC */)
            if fd >= 0 { return fd }
            let code = errno
            if code == EINTR { continue }
            throw HnxdpError.system("\(what): open ioctl socket", errno: code)
        }
    }

    /// 0 or -errno from a C helper; ENODEV becomes "interface X not found".
    private static func check(_ ret: Int32, ifname: String, what: String) throws {
        guard ret < 0 else { return }
        let code = -ret
        if code == ENODEV { throw HnxdpError(.badInput, "interface \(ifname) not found") }
        throw HnxdpError.system(what, errno: code)
    }
}
