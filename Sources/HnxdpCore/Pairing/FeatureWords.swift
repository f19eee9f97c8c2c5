import CHnxdpShim

/// Conversions between the fixed-width feature words of `struct hnxdp_pair`
/// (a C array imported as a tuple) and `[UInt64]`.
enum FeatureWords {
    static let count = Int(HNXDP_FEATURE_WORDS)

    static func array(_ t: (UInt64, UInt64)) -> [UInt64] { [t.0, t.1] }

    static func tuple(_ a: [UInt64]) -> (UInt64, UInt64) {
        (a.count > 0 ? a[0] : 0, a.count > 1 ? a[1] : 0)
    }

    static func and(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        (0..<count).map { (a.count > $0 ? a[$0] : 0) & (b.count > $0 ? b[$0] : 0) }
    }

    static func xor(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        (0..<count).map { (a.count > $0 ? a[$0] : 0) ^ (b.count > $0 ? b[$0] : 0) }
    }

    static func isZero(_ a: [UInt64]) -> Bool { a.allSatisfy { $0 == 0 } }
}
