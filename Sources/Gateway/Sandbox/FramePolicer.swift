// Polices what a guest sends beyond plain flow traffic (see `FrameTriage`): replies, reassembly,
// upstream dials and refusals cost its shard far more per byte than bulk data, so past a
// per-sandbox rate such frames are dropped right after the read, unparsed, and a sandbox that
// keeps flooding has its device left unread for a while (the kernel then drops at the TAP's
// queue, at no cost to the shard or its other sandboxes).
import NetStack
import Wire

/// No I/O and no clock of its own: the driver feeds it kinds, rejections and time.
struct FramePolicer {
    struct Counters: Sendable, Equatable {
        /// Frames that were not plain flow traffic, whether let through or not.
        var suspect = 0
        /// Frames dropped unparsed over the rate, by `FrameTriage.Kind` (its raw value).
        var dropped = [Int](repeating: 0, count: FrameTriage.Kind.allCases.count)
        /// Times the device was left unread, and for how long in all.
        var pauses = 0
        var pausedNanoseconds: UInt64 = 0

        var droppedTotal: Int { dropped.reduce(0, +) }
    }

    /// The longest a device is left unread at once: a guest that stopped flooding gets its link
    /// back within this, and its TCP flows see it as a short loss.
    static let maxPause: UInt64 = 100_000_000
    /// The shortest pause worth a timer.
    static let minPause: UInt64 = 1_000_000

    let ratePerSecond: Int
    private var bucket: TokenBucket
    private(set) var counters = Counters()
    /// This turn's frames dropped here or refused by the stack.
    private var turnWasted = 0

    /// nil when `ratePerSecond` is 0 (no policing). The burst is one second's worth, so a guest's
    /// start (DHCP, ARP, NDP, a round of DNS and connections) is never cut.
    init?(ratePerSecond: Int) {
        guard ratePerSecond > 0 else { return nil }
        self.ratePerSecond = ratePerSecond
        bucket = TokenBucket(ratePerSecond: Double(ratePerSecond), burst: Double(max(ratePerSecond, 64)))
    }

    /// A frame just read, of `kind`: true when the stack is to see it.
    mutating func admit(_ kind: FrameTriage.Kind, now: UInt64) -> Bool {
        guard kind != .flow else { return true }
        counters.suspect += 1
        if bucket.take(1, now: now) { return true }
        counters.dropped[kind.rawValue] += 1
        turnWasted += 1
        return false
    }

    /// Frames that looked like flow traffic but that the stack refused (no such flow, bad
    /// checksum, a spoofed address): they cost what the suspect ones do, so they are charged too.
    mutating func charge(refused n: Int, now: UInt64) {
        guard n > 0 else { return }
        turnWasted += n
        let take = min(Double(n), bucket.available(now: now).rounded(.down))
        if take > 0 { _ = bucket.take(take, now: now) }
    }

    /// The end of a turn that read `frames`, `full` when it stopped at its budget (the device has
    /// more). Returns when to read the device again if it is to be left alone until then: the rate
    /// is spent and most of the turn was wasted, i.e. the guest floods. A guest moving bulk data
    /// is never paused, whatever its own rate did.
    mutating func endTurn(frames: Int, full: Bool, now: UInt64) -> UInt64? {
        let wasted = turnWasted
        turnWasted = 0
        guard full, wasted * 2 >= frames, bucket.available(now: now) < 1 else { return nil }
        // Back when a turn's worth of tokens is.
        let wait = min(max(bucket.delay(until: Double(min(frames, ratePerSecond)), now: now), Self.minPause), Self.maxPause)
        counters.pauses += 1
        counters.pausedNanoseconds += wait
        return now + wait
    }
}
