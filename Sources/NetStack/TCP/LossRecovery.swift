// Loss recovery on the send side: NewReno fast retransmit and recovery (RFC 5681, RFC 6582), SACK hole
// resends (RFC 6675), early retransmit (RFC 5827), the tail loss probe's timing (RFC 8985 §7).
import Wire

/// It decides and the connection sends. Its inputs are the send sequence space after each ACK
/// (`sndUna`, `sndMax`) and the guest's MSS; it moves the congestion window it is handed.
struct LossRecovery {
    /// Between entering fast recovery and the ACK of everything then outstanding.
    private(set) var inFastRecovery = false
    /// RFC 6582's "recover": SND.MAX when recovery or the last timeout began. Duplicate ACKs
    /// below it belong to a loss already answered.
    private(set) var recover: SequenceNumber
    private var duplicateACKs = 0
    private(set) var scoreboard = SACKScoreboard()
    /// Next sequence number recovery considers for a hole retransmission.
    private var holeCursor = SequenceNumber(0)
    /// Bytes of holes recovery may resend now: packet conservation, refilled by what each ACK
    /// reports delivered (RFC 6675's pipe, kept as a running budget).
    private var budget = 0
    /// When the hole at SND.UNA was last resent in this recovery; a retransmission that is
    /// itself lost shows as SACKs still arriving long after it (RFC 8985's idea, simplified).
    private var headRetransmittedAt: UInt64 = 0
    /// Fast recoveries entered, for the layer above's statistics.
    private(set) var fastRecoveries = 0

    init(iss: SequenceNumber) { recover = iss }

    /// Records the guest's SACK blocks; returns the bytes they newly cover.
    mutating func addSACKBlocks(_ blocks: SACKBlocks, sndUna: SequenceNumber, sndMax: SequenceNumber) -> Int {
        var newlySacked = 0
        for b in blocks {
            newlySacked += scoreboard.add(
                start: SequenceNumber(b.start), end: SequenceNumber(b.end), una: sndUna, max: sndMax)
        }
        return newlySacked
    }

    /// An ACK moved SND.UNA forward (to `sndUna`), acknowledging `delivered` bytes of data.
    /// Returns true for a partial acknowledgment in recovery: the owner resends the segment at
    /// SND.UNA next (RFC 6582 §3.2 step 3).
    mutating func newlyAcknowledged(
        delivered: Int, newlySacked: Int, sndUna: SequenceNumber, sndMax: SequenceNumber, mss: Int,
        receiverWindow: Int, congestion: inout CongestionControl
    ) -> Bool {
        scoreboard.advance(to: sndUna)
        guard inFastRecovery else {
            duplicateACKs = 0
            congestion.acknowledged(delivered, mss: mss, receiverWindow: receiverWindow)
            return false
        }
        if sndUna >= recover {
            congestion.exitFastRecovery(flight: sndMax - sndUna, mss: mss)
            inFastRecovery = false
            duplicateACKs = 0
            return false
        }
        congestion.deflate(acked: delivered, mss: mss)
        budget += delivered + newlySacked
        return true
    }

    /// An ACK of SND.UNA again while data is outstanding (RFC 5681 §2's duplicate ACK). Returns
    /// true when the third one starts fast retransmit (RFC 6582 §3.2 step 2): only if it covers
    /// more than `recover`, so a loss already answered is not answered twice.
    mutating func duplicateACK(
        newlySacked: Int, sndUna: SequenceNumber, sndMax: SequenceNumber, mss: Int,
        congestion: inout CongestionControl
    ) -> Bool {
        duplicateACKs += 1
        if duplicateACKs == 3 && !inFastRecovery && sndUna - 1 >= recover {
            enterFastRecovery(sndUna: sndUna, sndMax: sndMax, mss: mss, congestion: &congestion)
            return true
        }
        if inFastRecovery {
            congestion.inflate(mss: mss)
            budget += newlySacked
        }
        return false
    }

    /// Loss detection on every ACK, after the cumulative part is processed. Returns true when
    /// it starts fast retransmit: the owner resends the segment at SND.UNA next.
    mutating func detectLoss(
        newlySacked: Int, sndUna: SequenceNumber, sndMax: SequenceNumber, mss: Int, srtt: UInt64, now: UInt64,
        congestion: inout CongestionControl
    ) -> Bool {
        // SACKs still arriving long after the hole at SND.UNA was resent: that retransmission
        // was lost too; consider the holes again from the start.
        if inFastRecovery && newlySacked > 0 && holeCursor > sndUna
            && now - headRetransmittedAt > max(2 * srtt, 5_000_000)
        {
            holeCursor = sndUna
            budget = max(budget, mss)
        }
        // RFC 6675 §5 IsLost: more than three segments' worth delivered above a hole at SND.UNA
        // means the hole is lost, duplicate ACK count or not. With little in flight there
        // cannot be three segments above a hole: then a hole with everything after it SACKed
        // is lost too (early retransmit, RFC 5827).
        let flight = sndMax - sndUna
        let threshold = min(3 * mss, max(1, flight - min(flight, mss)))
        guard !inFastRecovery, sndUna >= recover, !scoreboard.isEmpty, scoreboard.sackedBytes >= threshold else {
            return false
        }
        enterFastRecovery(sndUna: sndUna, sndMax: sndMax, mss: mss, congestion: &congestion)
        return true
    }

    /// RFC 6582 §3.2 step 2: fast retransmit, and recovery until SND.MAX is acknowledged.
    private mutating func enterFastRecovery(
        sndUna: SequenceNumber, sndMax: SequenceNumber, mss: Int, congestion: inout CongestionControl
    ) {
        congestion.enterFastRecovery(flight: sndMax - sndUna, mss: mss)
        recover = sndMax
        inFastRecovery = true
        fastRecoveries += 1
        holeCursor = sndUna
        budget = max(mss, min(congestion.maxSegmentPayload, scoreboard.sackedBytes))
    }

    /// The retransmission timer expired: recovery ends, and duplicate ACKs for what was
    /// outstanding start none (RFC 6582 §3.2 step 4).
    mutating func retransmitTimeout(
        sndUna: SequenceNumber, sndMax: SequenceNumber, mss: Int, congestion: inout CongestionControl
    ) {
        congestion.retransmitTimeout(flight: sndMax - sndUna, mss: mss)
        inFastRecovery = false
        duplicateACKs = 0
        recover = sndMax
    }

    /// The next hole to resend in recovery, at most `maxLength` bytes and within the budget;
    /// nil once the budget is spent, no hole is left, or the hole lies past `bufferEnd` (the
    /// sequence number after the last byte the send buffer holds).
    mutating func nextHole(
        sndUna: SequenceNumber, bufferEnd: SequenceNumber, maxLength: Int, now: UInt64
    ) -> (start: SequenceNumber, length: Int)? {
        guard inFastRecovery else { return nil }
        if holeCursor < sndUna { holeCursor = sndUna }
        guard budget > 0, let hole = scoreboard.nextHole(from: holeCursor) else { return nil }
        let length = min(hole.end - hole.start, budget, maxLength, bufferEnd - hole.start)
        guard length > 0 else { return nil }
        if hole.start == sndUna { headRetransmittedAt = now }
        holeCursor = hole.start + length
        budget -= length
        return (hole.start, length)
    }

    /// When a tail loss probe is due (RFC 8985 §7.2): two smoothed round trips (at least 10 ms)
    /// from `now`, and never after the RTO. None during recovery, which has its own means, or
    /// before the first RTT sample.
    func probeDeadline(now: UInt64, srtt: UInt64, retransmitAt: UInt64?) -> UInt64? {
        guard !inFastRecovery, srtt > 0 else { return nil }
        let pto = max(2 * srtt, 10_000_000)
        return retransmitAt.map { min($0, now + pto) } ?? now + pto
    }
}
