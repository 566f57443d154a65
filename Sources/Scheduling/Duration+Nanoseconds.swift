// The one conversion from `Duration` to the UInt64 nanosecond clocks that the stack, the event
// loop and the relays count time on.

extension Duration {
    /// Whole nanoseconds, negative spans as zero, for arithmetic on a UInt64 monotonic clock.
    public var nanoseconds: UInt64 {
        let (s, a) = components
        return UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, a / 1_000_000_000))
    }
}
