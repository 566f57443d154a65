// The retransmission timeout of RFC 6298: smoothed round-trip time and its variation from samples
// (timestamp echoes, or one timed segment at a time under Karn's rule), and the RTO's backoff.
import Scheduling

/// Times in nanoseconds. A value stored inline in its connection; nothing here allocates.
struct RTTEstimator {
    /// SRTT; zero until the first sample (a sample of zero leaves it there).
    private(set) var srtt: UInt64 = 0
    /// RTTVAR.
    private(set) var rttvar: UInt64 = 0
    /// The current RTO: computed from each sample within [minRTO, maxRTO], doubled by each timeout.
    private(set) var rto: UInt64
    let minRTO: UInt64
    let maxRTO: UInt64
    /// Without timestamps, one segment at a time is timed: its sequence number and when it left.
    private var timed: (seq: SequenceNumber, sentAt: UInt64)?

    init(initialRTO: UInt64, minRTO: UInt64, maxRTO: UInt64) {
        rto = initialRTO
        self.minRTO = minRTO
        self.maxRTO = maxRTO
    }

    init(_ configuration: TCPConfiguration) {
        self.init(
            initialRTO: configuration.initialRTO.nanoseconds, minRTO: configuration.minRTO.nanoseconds,
            maxRTO: configuration.maxRTO.nanoseconds)
    }

    /// True while a segment is being timed.
    var isTiming: Bool { timed != nil }

    /// Folds one measured round trip in (RFC 6298 §2, alpha 1/8, beta 1/4, the clock granularity
    /// G folded into the minimum).
    mutating func add(sample: UInt64) {
        if srtt == 0 {
            srtt = sample
            rttvar = sample / 2
        } else {
            let diff = srtt > sample ? srtt - sample : sample - srtt
            rttvar = (3 * rttvar + diff) / 4
            srtt = (7 * srtt + sample) / 8
        }
        rto = min(max(srtt + 4 * rttvar, minRTO), maxRTO)
    }

    /// The retransmission timer expired (RFC 6298 §5.5): double the RTO up to the maximum, and
    /// stop timing, since the timed segment is about to be sent again (Karn's rule).
    mutating func backOff() {
        rto = min(rto * 2, maxRTO)
        timed = nil
    }

    /// The RTO doubled `n` times (at most ten), capped at the maximum: the persist timer's interval.
    func backedOff(_ n: Int) -> UInt64 {
        min(rto << UInt64(min(n, 10)), maxRTO)
    }

    /// Times the segment starting at `seq`, replacing any segment timed so far.
    mutating func startTiming(_ seq: SequenceNumber, sentAt now: UInt64) {
        timed = (seq, now)
    }

    /// A segment starting at `seq` goes out. It is timed when nothing else is and it carries new
    /// data: a segment below the highest ever sent is a retransmission, and its ACK would not
    /// say which transmission it answers (Karn's rule).
    mutating func sending(_ seq: SequenceNumber, highestSent: SequenceNumber, now: UInt64) {
        if timed == nil && seq >= highestSent { timed = (seq, now) }
    }

    /// An ACK up to `ack` arrived: when it covers the timed segment, that round trip is a sample.
    mutating func acknowledged(_ ack: SequenceNumber, now: UInt64) {
        if let t = timed, ack > t.seq {
            add(sample: now - t.sentAt)
            timed = nil
        }
    }

    mutating func stopTiming() { timed = nil }

    /// A timestamp echo gives a sample with every ACK (RFC 7323 §4). An echo a minute or more
    /// old is not one of ours: the clock wraps, or the guest echoes nonsense.
    mutating func add(timestampEcho echo: UInt32, now: UInt64) {
        let elapsedMs = Self.timestampClock(now) &- echo
        if elapsedMs < 60_000 { add(sample: UInt64(max(elapsedMs, 1)) * 1_000_000) }
    }

    /// TSval: our clock in milliseconds, modulo 2^32.
    static func timestampClock(_ now: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: now / 1_000_000)
    }
}
