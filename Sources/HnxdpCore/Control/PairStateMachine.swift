/// Timing of the transparent-mode control plane (B2, B16).
public struct PairTiming: Equatable, Sendable {
    /// Wait after a VF appears before joining it (B2; FreeBSD's hw.hn.vf_xpnt_attwait).
    public var settleMs: UInt64 = 2000
    /// A VF that left this many times within `holdDownMs` is held down (B16).
    public var flapThreshold: Int = 3
    /// Flap window, and how long a held-down VF must stay before it is joined.
    public var holdDownMs: UInt64 = 5000

    public init(settleMs: UInt64 = 2000, flapThreshold: Int = 3, holdDownMs: UInt64 = 5000) {
        self.settleMs = settleMs
        self.flapThreshold = flapThreshold
        self.holdDownMs = holdDownMs
    }
}

/// What the control plane believes about one synthetic interface's VF.
public enum PairPhase: Equatable, Sendable {
    /// No VF: synthetic path.
    case idle
    /// A VF was seen; it is joined at `deadline` if it is still there (B2).
    case settling(vf: Int32, deadline: UInt64)
    /// The VF is joined: datapath through it.
    case active(vf: Int32)
    /// The VF flapped; it is joined only once present until `deadline` (B16).
    case heldDown(vf: Int32?, deadline: UInt64)
    /// Transparent mode off (B3): the VF is only reported.
    case disabled(vf: Int32?)

    /// The pair state this phase is published as in the pair entry.
    public var state: PairState {
        switch self {
        case .idle: return .idle
        case .settling: return .settling
        case .active: return .active
        case .heldDown: return .heldDown
        case .disabled: return .disabled
        }
    }

    /// The name `dump` shows.
    public var name: String { state.name }

    /// The VF this phase is about, if any.
    public var vf: Int32? {
        switch self {
        case .idle: return nil
        case .settling(let vf, _), .active(let vf): return vf
        case .heldDown(let vf, _), .disabled(let vf): return vf
        }
    }
}

/// The per-pair state machine of `hnxdp run`: pure, driven by VF
/// arrivals/departures and the clock (milliseconds, monotonic), answering
/// with the actions the control plane must carry out.
public struct PairStateMachine: Equatable, Sendable {
    public enum Event: Equatable, Sendable {
        /// A VF for this synthetic exists (appeared, or seen at start).
        case vfPresent(Int32)
        /// That VF is gone (deleted, or no longer matches).
        case vfGone(Int32)
        /// Time passed.
        case tick
        /// Joining the VF failed; try again after the hold-down.
        case joinFailed(Int32)
    }

    public enum Action: Equatable, Sendable {
        /// Join this VF now (B4..B9).
        case join(Int32)
        /// The joined VF left: undo everything (B13).
        case leave(Int32)
        /// The phase changed: publish it (map state, log line).
        case phaseChanged(from: String, to: String)
        /// Transparent mode off (B3): the VF seen for this synthetic changed; report it only.
        case reported(vf: Int32?)
    }

    public private(set) var phase: PairPhase
    /// Changed only by `retime` (a `run` reload).
    public private(set) var timing: PairTiming
    public let transparent: Bool
    /// Departure times within the flap window, oldest first.
    public private(set) var departures: [UInt64] = []

    public init(timing: PairTiming, transparent: Bool = true, adopted: PairPhase = .idle) {
        self.timing = timing
        self.transparent = transparent
        self.phase = transparent ? adopted : .disabled(vf: adopted.vf)
    }

    /// New timing (SIGHUP reload): used from the next event on. A deadline already
    /// running (settling, held down) keeps the value it was set with.
    public mutating func retime(_ timing: PairTiming) {
        self.timing = timing
    }

    /// The next time `tick` has something to do, if any.
    public var deadline: UInt64? {
        switch phase {
        case .settling(_, let d): return d
        case .heldDown(_, let d): return d
        default: return nil
        }
    }

    public mutating func handle(_ event: Event, now: UInt64) -> [Action] {
        let before = phase
        var actions: [Action] = []
        departures.removeAll { now >= $0 + timing.holdDownMs }

        if !transparent {
            switch event {
            case .vfPresent(let vf): phase = .disabled(vf: vf)
            case .vfGone(let vf) where phase.vf == vf: phase = .disabled(vf: nil)
            default: break
            }
            return before.vf != phase.vf ? [.reported(vf: phase.vf)] : []
        }

        switch (phase, event) {
        case (.idle, .vfPresent(let vf)):
            phase = flapping ? .heldDown(vf: vf, deadline: now + timing.holdDownMs)
                             : .settling(vf: vf, deadline: now + timing.settleMs)

        case (.settling(let current, _), .vfPresent(let vf)) where vf != current:
            // A different VF replaced the one we waited for: start over.
            phase = .settling(vf: vf, deadline: now + timing.settleMs)
        case (.settling(let current, _), .vfGone(let vf)) where vf == current:
            departures.append(now)
            phase = .idle
        case (.settling(let vf, let deadline), .tick) where now >= deadline:
            actions.append(.join(vf))
            phase = .active(vf: vf)

        case (.active(let current), .vfGone(let vf)) where vf == current:
            departures.append(now)
            actions.append(.leave(vf))
            phase = flapping ? .heldDown(vf: nil, deadline: now + timing.holdDownMs) : .idle
        case (.active(let current), .vfPresent(let vf)) where vf != current:
            // A second VF with the same MAC while one is joined: keep the joined one.
            break
        case (.active(let current), .joinFailed(let vf)) where vf == current:
            phase = .heldDown(vf: vf, deadline: now + timing.holdDownMs)

        case (.heldDown(let current, _), .vfPresent(let vf)) where vf != current:
            // Stability is measured from the latest arrival.
            phase = .heldDown(vf: vf, deadline: now + timing.holdDownMs)
        case (.heldDown(let current, _), .vfGone(let vf)) where vf == current:
            departures.append(now)
            phase = .heldDown(vf: nil, deadline: now + timing.holdDownMs)
        case (.heldDown(let vf, let deadline), .tick) where now >= deadline:
            if let vf {
                actions.append(.join(vf))
                phase = .active(vf: vf)
            } else {
                phase = .idle
            }

        default:
            break
        }
        return transition(from: before, actions)
    }

    /// True when the VF left `flapThreshold` times within the hold-down window.
    public var flapping: Bool { departures.count >= timing.flapThreshold }

    private func transition(from before: PairPhase, _ actions: [Action]) -> [Action] {
        if before.name == phase.name { return actions }
        return [.phaseChanged(from: before.name, to: phase.name)] + actions
    }
}
