import CHnxdpShim

/// How a value of the pinned pair map (`hnxdp_pairs`, `struct hnxdp_pair` in
/// bpf/hnxdp_shared.h) is laid out, as this build compiled it, and what its
/// states are numbered: printed by `dump --json` (`pair_map`) for tools that
/// read the pinned map directly (the integration tests poll it every few ms)
/// instead of repeating the header's offsets.
public struct PairMapLayout: Encodable, Equatable, Sendable {
    public struct Field: Encodable, Equatable, Sendable {
        /// Bytes from the start of the value.
        public var offset: Int
        /// Bytes; an unsigned integer in the machine's byte order.
        public var size: Int
    }

    /// The map's name, also its pin file name in the namespace directory.
    public var name: String
    /// Bytes of the key: the synthetic's ifindex (u32).
    public var key_size: Int
    /// Bytes of a value.
    public var value_size: Int
    /// The scalar fields of a value, by their name in the header.
    public var fields: [String: Field]
    /// `state`'s values by name, as `dump` prints them.
    public var states: [String: UInt32]

    /// The layout this build uses.
    public static let current: PairMapLayout = {
        func field<T: FixedWidthInteger>(_ path: KeyPath<hnxdp_pair, T>) -> Field {
            Field(offset: MemoryLayout<hnxdp_pair>.offset(of: path)!, size: MemoryLayout<T>.size)
        }
        let fields: [String: Field] = [
            "syn_ifindex": field(\.syn_ifindex), "vf_ifindex": field(\.vf_ifindex), "state": field(\.state),
            "flags": field(\.flags), "slot": field(\.slot), "mtu": field(\.mtu),
            "saved_syn_mtu": field(\.saved_syn_mtu), "saved_vf_mtu": field(\.saved_vf_mtu),
            "saved_gso_max_size": field(\.saved_gso_max_size), "saved_gso_max_segs": field(\.saved_gso_max_segs),
            "saved_gso_ipv4_max_size": field(\.saved_gso_ipv4_max_size), "gso_max_size": field(\.gso_max_size),
            "gso_max_segs": field(\.gso_max_segs), "gso_ipv4_max_size": field(\.gso_ipv4_max_size),
            "switches": field(\.switches), "feature_count": field(\.feature_count), "last_switch_ns": field(\.last_switch_ns),
        ]
        return PairMapLayout(name: HNXDP_MAP_PAIRS, key_size: MemoryLayout<UInt32>.size,
                             value_size: MemoryLayout<hnxdp_pair>.size, fields: fields,
                             states: Dictionary(uniqueKeysWithValues: PairState.allCases.map { ($0.name, $0.rawValue) }))
    }()
}
