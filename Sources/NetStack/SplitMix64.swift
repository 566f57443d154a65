// A small seeded generator for fault injection: the same seed gives the same decisions on
// every run and machine, which SystemRandomNumberGenerator cannot.

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): a 64-bit counter stepped by the golden-ratio gamma, then mixed. Statistically
/// sound for drawing fault decisions; not for anything secret.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `p` (0 never, 1 always): one draw, 53 bits of resolution.
    public mutating func chance(_ p: Double) -> Bool {
        Double(next() >> 11) * 0x1p-53 < p
    }

    /// A value in `0..<bound`; `bound` must be positive. The modulo bias is below 2⁻⁴⁸ for the
    /// frame sizes this picks among, far under what a fault test can notice.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "empty range")
        return Int(next() % UInt64(bound))
    }
}
