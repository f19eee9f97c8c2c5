import CHnxdpShim

/// A pair's state as its map entry stores it (`enum hnxdp_pair_state` in
/// bpf/hnxdp_shared.h), with the one name `dump`, `status`, `monitor`, the
/// metrics and `run`'s log show for it. A value this build does not know (an
/// entry written by another version) is kept as it is: `.unknown(raw)`.
public enum PairState: Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// No VF joined: the synthetic's own path.
    case idle
    /// A VF was seen; waiting for the settle delay.
    case settling
    /// A VF is joined: the datapath goes through it.
    case active
    /// The VF flapped: not joined until it is stable.
    case heldDown
    /// Transparent mode off: reported only.
    case disabled
    case unknown(UInt32)

    /// Every state the header defines, in its order.
    public static let allCases: [PairState] = [.idle, .settling, .active, .heldDown, .disabled]

    public init(rawValue: UInt32) {
        self = PairState.allCases.first { $0.rawValue == rawValue } ?? .unknown(rawValue)
    }

    /// The number in the map entry.
    public var rawValue: UInt32 {
        switch self {
        case .idle: return UInt32(HNXDP_STATE_IDLE.rawValue)
        case .settling: return UInt32(HNXDP_STATE_SETTLING.rawValue)
        case .active: return UInt32(HNXDP_STATE_ACTIVE.rawValue)
        case .heldDown: return UInt32(HNXDP_STATE_HELD_DOWN.rawValue)
        case .disabled: return UInt32(HNXDP_STATE_DISABLED.rawValue)
        case .unknown(let raw): return raw
        }
    }

    /// "idle", "settling", "active", "held-down", "disabled" (or "unknown(N)").
    public var name: String {
        switch self {
        case .idle: return "idle"
        case .settling: return "settling"
        case .active: return "active"
        case .heldDown: return "held-down"
        case .disabled: return "disabled"
        case .unknown(let raw): return "unknown(\(raw))"
        }
    }

    public var description: String { name }
}

/// `struct hnxdp_pair.flags` (HNXDP_PAIR_F_* in bpf/hnxdp_shared.h).
public struct PairFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Transparent mode is on for this pair.
    public static let transparent = PairFlags(rawValue: UInt32(HNXDP_PAIR_F_TRANSPARENT))
    /// The VF was admin up before the join.
    public static let vfWasUp = PairFlags(rawValue: UInt32(HNXDP_PAIR_F_VF_WAS_UP))
    /// The VF refused the MTU; the synthetic fell back to the VF's.
    public static let mtuFallback = PairFlags(rawValue: UInt32(HNXDP_PAIR_F_MTU_FALLBACK))
    /// Made by `attach`, not by `run`.
    public static let explicit = PairFlags(rawValue: UInt32(HNXDP_PAIR_F_EXPLICIT))
    /// gso_ipv4_max_size was saved and changed.
    public static let hasGSOIPv4 = PairFlags(rawValue: UInt32(HNXDP_PAIR_F_HAS_GSO_IPV4))
}

extension hnxdp_pair {
    /// `state`, typed.
    public var pairState: PairState {
        get { PairState(rawValue: state) }
        set { state = newValue.rawValue }
    }

    /// `flags`, typed.
    public var pairFlags: PairFlags {
        get { PairFlags(rawValue: flags) }
        set { flags = newValue.rawValue }
    }
}
