import CHnxdpShim
import CLibBPF
import Glibc

/// Who made a namespace's pins: the value of the pinned `hnxdp_meta` map
/// (`struct hnxdp_meta` in `bpf/hnxdp_shared.h`).
public struct PinMeta: Equatable, Sendable {
    /// The pin layout (ABI) number of the hnxdp that made the pins (`HNXDP_PIN_LAYOUT`).
    public var layout: UInt32
    /// That hnxdp's version.
    public var version: String

    public init(layout: UInt32, version: String) {
        self.layout = layout
        self.version = version
    }

    /// What this hnxdp writes into the pins it makes.
    public static var current: PinMeta { PinMeta(layout: PinMeta.thisLayout, version: HnxdpVersion.string) }

    /// This build's pin layout number.
    public static let thisLayout = UInt32(HNXDP_PIN_LAYOUT)

    /// The map value: pin_layout at offset 0, version NUL-padded at offset 8.
    public var value: hnxdp_meta {
        var meta = hnxdp_meta()
        meta.pin_layout = layout
        withUnsafeMutableBytes(of: &meta.version) { raw in
            for (i, byte) in version.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        return meta
    }

    /// Parses a value of any layout's size (the first two fields never move); nil when too short.
    public static func parse(_ bytes: [UInt8]) -> PinMeta? {
        guard bytes.count >= 8 else { return nil }
        // Host byte order, like every map value.
        let layout = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        let text = bytes.dropFirst(8).prefix(Int(HNXDP_META_VERSION_LEN)).prefix { $0 != 0 }
        let version = String(decoding: text, as: UTF8.self)
        return PinMeta(layout: layout, version: version.isEmpty ? "unknown" : version)
    }

    /// Reads the meta of a pinned `hnxdp_meta` map, whatever its value size.
    static func read(_ map: BPFDescriptor, path: String) throws -> PinMeta {
        let info = try map.info(bpf_map_info.self, what: "BPF map \(path)")
        let (type, keySize, valueSize) = (info.type, info.key_size, info.value_size)
        guard type == BPF_MAP_TYPE_ARRAY.rawValue, keySize == 4, valueSize >= 8, valueSize <= 4096 else {
            throw HnxdpError(.runtime, "pinned \(path) is not hnxdp's map \(HNXDP_MAP_META) (type \(type), key size \(keySize), value size \(valueSize)): refusing to use the pins; `hnxdp detach --all` removes this namespace's pins and puts the devices back from the write-ahead records")
        }
        var key: UInt32 = 0
        var value = [UInt8](repeating: 0, count: Int(valueSize))
        if bpf_map_lookup_elem(map.fd, &key, &value) != 0 {
            throw HnxdpError.system("read \(path)", errno: errno)
        }
        guard let meta = parse(value) else { throw HnxdpError(.runtime, "pinned \(path) holds no pin layout") }
        return meta
    }
}

/// What a binary may do with the pins it finds in its namespace (pure; see
/// `decide`). The pins record the layout number and version of the hnxdp that
/// made them; only the layout decides.
public enum PinCompatibility: Equatable, Sendable {
    /// Nothing is pinned: this hnxdp makes the pins.
    case nothingPinned
    /// Made by this hnxdp's layout and version.
    case current
    /// Made by another hnxdp version of the same layout: used as they are (logged).
    case otherVersion(PinMeta)
    /// Made by an hnxdp with another pin layout: refused; `hnxdp migrate`.
    case otherLayout(PinMeta)
    /// Every datapath pin but no `hnxdp_meta`: made before pins were versioned. Refused
    /// for use; `detach --all` and `migrate` may still read them to put devices back
    /// (their maps are those of pin layout 1).
    case unversioned

    /// Decides from the pinned meta (nil: no `hnxdp_meta` pin) and whether any other
    /// datapath pin exists. A pin set with a meta but missing pins is not decided here
    /// (the pin check reports it as incomplete).
    public static func decide(meta: PinMeta?, datapathPinsPresent: Bool,
                              this: PinMeta = .current) -> PinCompatibility {
        guard let meta else { return datapathPinsPresent ? .unversioned : .nothingPinned }
        if meta.layout != this.layout { return .otherLayout(meta) }
        return meta.version == this.version ? .current : .otherVersion(meta)
    }

    /// This hnxdp can use the pins (or make them).
    public var usable: Bool {
        switch self {
        case .nothingPinned, .current, .otherVersion: return true
        case .otherLayout, .unversioned: return false
        }
    }

    /// The maps may be read to put devices back (`detach --all`, `migrate`): every
    /// layout this hnxdp knows. Pins of another layout are never read, only removed.
    public var readableForUndo: Bool {
        switch self {
        case .otherLayout: return false
        default: return true
        }
    }

    /// The one line a command that would use unusable pins refuses with; nil when usable.
    public func refusal(directory: String, this: PinMeta = .current) -> String? {
        let who: String
        switch self {
        case .nothingPinned, .current, .otherVersion: return nil
        case .otherLayout(let meta): who = "hnxdp \(meta.version) (pin layout \(meta.layout))"
        case .unversioned: who = "an hnxdp from before pin versioning (no \(HNXDP_MAP_META))"
        }
        return "the pins in \(directory) were made by \(who); this is hnxdp \(this.version) (pin layout \(this.layout)), which cannot use them: run `hnxdp migrate` to put the devices back from their write-ahead records and attach the same pairs again with this hnxdp"
    }
}
