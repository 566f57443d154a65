// A token bucket (RFC 2697's single-rate shape): tokens accrue at a rate up to a burst, and an
// event that costs n tokens passes only if n are there. Used for query, connection and byte
// rates; time is the caller's, in nanoseconds, so it is tested without a clock.

public struct TokenBucket: Sendable, Equatable {
    public let ratePerSecond: Double
    public let burst: Double
    public private(set) var tokens: Double
    private var updatedAt: UInt64?

    /// Starts full: a sandbox's first burst is not penalised for the time before it existed.
    public init(ratePerSecond: Double, burst: Double) {
        precondition(ratePerSecond > 0 && burst > 0, "a token bucket needs a positive rate and burst")
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        tokens = burst
    }

    /// Takes `n` tokens if the bucket holds them at `now`.
    public mutating func take(_ n: Double, now: UInt64) -> Bool {
        refill(now: now)
        guard tokens >= n else { return false }
        tokens -= n
        return true
    }

    /// How many tokens are there at `now`.
    public mutating func available(now: UInt64) -> Double {
        refill(now: now)
        return tokens
    }

    /// Nanoseconds from `now` until `n` tokens are there (0 when they already are); for pacing.
    public mutating func delay(until n: Double, now: UInt64) -> UInt64 {
        refill(now: now)
        guard tokens < n else { return 0 }
        return UInt64(((n - tokens) / ratePerSecond * 1e9).rounded(.up))
    }

    private mutating func refill(now: UInt64) {
        if let last = updatedAt, now > last {
            tokens = min(burst, tokens + Double(now - last) * ratePerSecond / 1e9)
        }
        if updatedAt == nil || now > updatedAt! { updatedAt = now }
    }
}
