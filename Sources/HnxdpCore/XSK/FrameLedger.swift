/// Who holds each UMEM frame. Every frame is in exactly one place: free (in
/// the ledger's pool), in a socket's fill ring, with the application (received
/// and not yet released), or on a socket's TX ring until its completion comes
/// back. Every move is checked, so a frame can be neither lost nor handed out
/// twice; when a socket goes away (its device left), `reclaim` takes back
/// everything it held. Pure bookkeeping: no system calls, unit tested.
public struct FrameLedger: Sendable {
    /// Where a frame is.
    public enum Holder: Equatable, Sendable, CustomStringConvertible {
        case free
        case fill(socket: Int)
        case application
        case transmit(socket: Int)

        public var description: String {
            switch self {
            case .free: return "free"
            case .fill(let s): return "fill ring of socket \(s)"
            case .application: return "the application"
            case .transmit(let s): return "TX ring of socket \(s)"
            }
        }
    }

    /// A move the ledger refused: the frame was not where the caller said.
    public struct Violation: Error, Equatable, CustomStringConvertible {
        public var address: UInt64
        public var found: Holder?
        public var expected: String
        public var description: String {
            if let found { return "UMEM frame at \(address) is with \(found), expected \(expected)" }
            return "UMEM address \(address) is outside the UMEM"
        }
    }

    public let frameSize: UInt64
    public let frameCount: Int
    // Encoded holders: 0 free, 1 application, 2 + 2s fill(s), 3 + 2s transmit(s).
    private var holders: [UInt32]
    private var freeFrames: [UInt32]
    // Frames per encoded holder (index = code); sockets 0..<maxSockets.
    private var heldCounts = [Int](repeating: 0, count: 2 + 2 * FrameLedger.maxSockets)

    /// Socket slots a ledger tracks (a pair socket uses two: synthetic and VF).
    public static let maxSockets = 8

    public init(frameCount: Int, frameSize: UInt32) {
        precondition(frameCount > 0 && frameSize > 0)
        self.frameSize = UInt64(frameSize)
        self.frameCount = frameCount
        holders = [UInt32](repeating: 0, count: frameCount)
        freeFrames = (0..<UInt32(frameCount)).reversed().map { $0 }
    }

    /// Frames in the free pool.
    public var freeCount: Int { freeFrames.count }

    /// Number of frames with `holder`.
    public func count(_ holder: Holder) -> Int {
        if holder == .free { return freeFrames.count }
        return heldCounts[Int(Self.encode(holder))]
    }

    /// Where the frame containing `address` is (nil: outside the UMEM).
    public func holder(of address: UInt64) -> Holder? {
        guard let i = index(address) else { return nil }
        return Self.decode(holders[i])
    }

    /// Base address of the frame containing `address`.
    public func frameBase(_ address: UInt64) -> UInt64 { address / frameSize * frameSize }

    /// Takes up to `max` free frames for the fill ring of `socket`; returns their base addresses.
    public mutating func takeForFill(socket: Int, max: Int, into out: inout [UInt64]) {
        let n = min(max, freeFrames.count)
        let code = Self.encode(.fill(socket: socket))
        for _ in 0..<n {
            let i = freeFrames.removeLast()
            holders[Int(i)] = code
            out.append(UInt64(i) * frameSize)
        }
        heldCounts[Int(code)] += n
    }

    /// Takes one free frame for the application (e.g. to build a frame to send); nil when none is free.
    public mutating func takeForApplication() -> UInt64? {
        guard let i = freeFrames.popLast() else { return nil }
        holders[Int(i)] = 1
        heldCounts[1] += 1
        return UInt64(i) * frameSize
    }

    /// A frame came off the RX ring of `socket`: fill(socket) -> application.
    public mutating func received(_ address: UInt64, socket: Int) throws {
        try move(address, from: .fill(socket: socket), to: .application)
    }

    /// The application gives a frame back to the fill ring of `socket` (recycling without the pool).
    public mutating func refill(_ address: UInt64, socket: Int) throws {
        try move(address, from: .application, to: .fill(socket: socket))
    }

    /// The application puts a frame on the TX ring of `socket`.
    public mutating func transmit(_ address: UInt64, socket: Int) throws {
        try move(address, from: .application, to: .transmit(socket: socket))
    }

    /// A completion came back from `socket`: the frame is free again.
    public mutating func completed(_ address: UInt64, socket: Int) throws {
        try move(address, from: .transmit(socket: socket), to: .free)
    }

    /// The application releases a frame to the pool.
    public mutating func release(_ address: UInt64) throws {
        try move(address, from: .application, to: .free)
    }

    /// A frame reserved for a ring that did not take it goes back to the pool
    /// (e.g. the fill ring was fuller than its free count said).
    public mutating func unfill(_ address: UInt64, socket: Int) throws {
        try move(address, from: .fill(socket: socket), to: .free)
    }

    /// The socket is gone: every frame in its fill ring or on its TX ring is
    /// free again (the kernel let go of them when the socket was closed).
    /// Returns how many frames came back.
    @discardableResult
    public mutating func reclaim(socket: Int) -> Int {
        let fill = Self.encode(.fill(socket: socket)), tx = Self.encode(.transmit(socket: socket))
        guard heldCounts[Int(fill)] + heldCounts[Int(tx)] > 0 else { return 0 }
        var n = 0
        for i in 0..<holders.count where holders[i] == fill || holders[i] == tx {
            holders[i] = 0
            freeFrames.append(UInt32(i))
            n += 1
        }
        heldCounts[Int(fill)] = 0
        heldCounts[Int(tx)] = 0
        return n
    }

    /// Checks the invariant: every frame counted exactly once.
    public func isConsistent() -> Bool {
        var counts = [Int](repeating: 0, count: heldCounts.count)
        for h in holders where h != 0 { counts[Int(h)] += 1 }
        let freeSet = Set(freeFrames)
        guard freeSet.count == freeFrames.count else { return false }
        for i in freeFrames where holders[Int(i)] != 0 { return false }
        let zeros = holders.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
        return zeros == freeFrames.count && Array(counts.dropFirst()) == Array(heldCounts.dropFirst())
    }

    private func index(_ address: UInt64) -> Int? {
        let i = address / frameSize
        return i < UInt64(frameCount) ? Int(i) : nil
    }

    private mutating func move(_ address: UInt64, from: Holder, to: Holder) throws {
        guard let i = index(address) else {
            throw Violation(address: address, found: nil, expected: from.description)
        }
        let fromCode = Self.encode(from)
        guard holders[i] == fromCode else {
            throw Violation(address: address, found: Self.decode(holders[i]), expected: from.description)
        }
        let toCode = Self.encode(to)
        holders[i] = toCode
        if fromCode != 0 { heldCounts[Int(fromCode)] -= 1 }
        if toCode == 0 { freeFrames.append(UInt32(i)) } else { heldCounts[Int(toCode)] += 1 }
    }

    private static func encode(_ h: Holder) -> UInt32 {
        switch h {
        case .free: return 0
        case .application: return 1
        case .fill(let s):
            precondition(s >= 0 && s < maxSockets, "socket slot \(s) out of range")
            return 2 + 2 * UInt32(s)
        case .transmit(let s):
            precondition(s >= 0 && s < maxSockets, "socket slot \(s) out of range")
            return 3 + 2 * UInt32(s)
        }
    }

    private static func decode(_ c: UInt32) -> Holder {
        switch c {
        case 0: return .free
        case 1: return .application
        default: return c % 2 == 0 ? .fill(socket: Int((c - 2) / 2)) : .transmit(socket: Int((c - 3) / 2))
        }
    }
}
