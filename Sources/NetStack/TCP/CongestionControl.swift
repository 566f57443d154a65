// The congestion window and slow-start threshold of RFC 5681, grown by bytes acknowledged
// (RFC 3465) and cut by the loss responses `LossRecovery` and the retransmission timer choose.

/// Windows in bytes; `mss` is the guest's MSS (SMSS) at every call.
struct CongestionControl {
    private(set) var cwnd: Int
    private(set) var ssthresh = Int.max
    /// Bytes acknowledged in congestion avoidance since cwnd last grew.
    private var bytesAckedInAvoidance = 0
    /// The most one ACK may add in slow start (RFC 3465's L): a whole GSO segment.
    let maxSegmentPayload: Int

    init(initialWindow: Int, maxSegmentPayload: Int) {
        cwnd = initialWindow
        self.maxSegmentPayload = maxSegmentPayload
    }

    /// The handshake settled the guest's MSS: the initial window is counted in its segments.
    mutating func restart(initialWindow: Int) {
        cwnd = initialWindow
    }

    /// New data acknowledged outside recovery: slow start below ssthresh (RFC 5681 eq. 2),
    /// congestion avoidance above it. `receiverWindow` is the largest window the guest offered.
    mutating func acknowledged(_ acked: Int, mss: Int, receiverWindow: Int) {
        if cwnd < ssthresh {
            cwnd += min(acked, maxSegmentPayload)
        } else {
            // Congestion avoidance by bytes acknowledged (RFC 3465 §2.1): one ACK for a 64 KB GSO
            // segment must count as much as the 45 ACKs its pieces would have drawn.
            bytesAckedInAvoidance += acked
            if bytesAckedInAvoidance >= cwnd {
                bytesAckedInAvoidance -= cwnd
                cwnd += mss
            }
        }
        // No point in a window the receiver could never use.
        cwnd = min(cwnd, max(receiverWindow, 2 * maxSegmentPayload) * 2)
    }

    /// Loss found by duplicate ACKs or SACK (RFC 6582 §3.2 step 2): halve, then inflate by the
    /// three segments that have left the network.
    mutating func enterFastRecovery(flight: Int, mss: Int) {
        ssthresh = Self.threshold(flight: flight, mss: mss)
        cwnd = ssthresh + 3 * mss
    }

    /// Each further duplicate ACK in recovery: one more segment has left the network.
    mutating func inflate(mss: Int) {
        cwnd += mss
    }

    /// A partial acknowledgment in recovery (RFC 6582 §3.2 step 3): deflate by what it
    /// acknowledged, add back one segment.
    mutating func deflate(acked: Int, mss: Int) {
        cwnd = max(cwnd - acked + mss, mss)
    }

    /// A full acknowledgment ends recovery (RFC 6582 §3.2 step 3): ssthresh, or
    /// FlightSize plus one segment when less is in flight, so no burst follows.
    mutating func exitFastRecovery(flight: Int, mss: Int) {
        cwnd = min(ssthresh, max(flight, mss) + mss)
    }

    /// The retransmission timer expired (RFC 5681 §3.1 eq. 4 and the loss window).
    mutating func retransmitTimeout(flight: Int, mss: Int) {
        ssthresh = Self.threshold(flight: flight, mss: mss)
        cwnd = mss
    }

    /// RFC 5681 eq. 4: half the flight, at least two segments.
    private static func threshold(flight: Int, mss: Int) -> Int { max(flight / 2, 2 * mss) }
}
