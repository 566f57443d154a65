// Loss recovery on its own, fed ACKs as sequence numbers: when fast retransmit starts and ends,
// what it does to the congestion window, which holes it resends, and when a tail loss probe is due.
import Testing
import Wire
@testable import NetStack

/// 1000-byte segments; the ISS is 0, so the first data byte is 1.
@Suite struct LossRecoveryTests {
    static let mss = 1000
    static let ms: UInt64 = 1_000_000

    private static func seq(_ n: Int) -> SequenceNumber { SequenceNumber(0) + n }

    private static func blocks(_ ranges: (Int, Int)...) -> SACKBlocks {
        var b = SACKBlocks()
        for r in ranges { _ = b.append(SACKBlock(start: UInt32(r.0), end: UInt32(r.1))) }
        return b
    }

    private struct Hole: Equatable {
        var start: Int
        var length: Int
    }

    private struct Sender {
        var recovery = LossRecovery(iss: SequenceNumber(0))
        var congestion: CongestionControl
        var una = LossRecoveryTests.seq(1)
        var max: SequenceNumber

        init(inFlight: Int, maxSegmentPayload: Int = 1000) {
            congestion = CongestionControl(initialWindow: 10_000, maxSegmentPayload: maxSegmentPayload)
            max = una + inFlight
        }

        mutating func duplicateACK(newlySacked: Int = 0) -> Bool {
            recovery.duplicateACK(
                newlySacked: newlySacked, sndUna: una, sndMax: max, mss: LossRecoveryTests.mss,
                congestion: &congestion)
        }

        /// An ACK up to `ack`; returns true for a partial acknowledgment in recovery.
        mutating func ack(_ ack: Int, newlySacked: Int = 0) -> Bool {
            let delivered = LossRecoveryTests.seq(ack) - una
            una = LossRecoveryTests.seq(ack)
            return recovery.newlyAcknowledged(
                delivered: delivered, newlySacked: newlySacked, sndUna: una, sndMax: max, mss: LossRecoveryTests.mss,
                receiverWindow: 1 << 20, congestion: &congestion)
        }

        mutating func sack(_ ranges: SACKBlocks) -> Int {
            recovery.addSACKBlocks(ranges, sndUna: una, sndMax: max)
        }

        mutating func detectLoss(newlySacked: Int, srtt: UInt64 = 0, now: UInt64 = 0) -> Bool {
            recovery.detectLoss(
                newlySacked: newlySacked, sndUna: una, sndMax: max, mss: LossRecoveryTests.mss, srtt: srtt, now: now,
                congestion: &congestion)
        }

        /// The holes recovery resends now, in order, until it stops.
        mutating func holes(now: UInt64 = 0) -> [Hole] {
            var out: [Hole] = []
            while let h = recovery.nextHole(sndUna: una, bufferEnd: max, maxLength: 1000, now: now) {
                out.append(Hole(start: h.start - LossRecoveryTests.seq(0), length: h.length))
            }
            return out
        }
    }

    /// RFC 6582 §3.2 step 2: the third duplicate ACK, not the first two, starts fast
    /// retransmit; later ones inflate the window.
    @Test func thirdDuplicateACKStartsFastRecovery() {
        var s = Sender(inFlight: 8000)
        let resend = (0..<3).map { _ in s.duplicateACK() }
        #expect(resend == [false, false, true], "the third resends the head")
        #expect(s.recovery.inFastRecovery)
        #expect(s.recovery.fastRecoveries == 1)
        #expect(s.recovery.recover == s.max)
        #expect(s.congestion.ssthresh == 4000)
        #expect(s.congestion.cwnd == 7000)
        let fourth = s.duplicateACK()
        #expect(!fourth)
        #expect(s.congestion.cwnd == 8000)
        #expect(s.recovery.fastRecoveries == 1)
    }

    /// RFC 6582 §3.2 step 3: a partial ACK keeps recovery going and asks for the next hole;
    /// the full ACK ends it with cwnd at ssthresh or the flight plus a segment.
    @Test func partialThenFullAcknowledgment() {
        var s = Sender(inFlight: 8000)
        for _ in 0..<4 { _ = s.duplicateACK() }
        #expect(s.congestion.cwnd == 8000)
        let partial = s.ack(3001)
        #expect(partial, "a partial ACK resends the next segment")
        #expect(s.recovery.inFastRecovery)
        #expect(s.congestion.cwnd == 6000)
        let full = s.ack(8001)
        #expect(!full)
        #expect(!s.recovery.inFastRecovery)
        #expect(s.congestion.cwnd == 2000, "nothing left in flight: one segment more than that")
        #expect(s.congestion.ssthresh == 4000)
        // Out of recovery, ACKs are ordinary again: slow start, duplicates counted from zero.
        s.max = s.una + 4000
        let ordinary = s.ack(9001)
        #expect(!ordinary)
        #expect(s.congestion.cwnd == 3000)
        let resend = (0..<3).map { _ in s.duplicateACK() }
        #expect(resend == [false, false, true])
        #expect(s.recovery.fastRecoveries == 2)
    }

    /// RFC 6582 §3.2 step 4: a timeout ends recovery, and duplicate ACKs for what was
    /// outstanding then start no other.
    @Test func retransmitTimeoutEndsRecoveryAndGuardsAgainstAnother() {
        var s = Sender(inFlight: 8000)
        for _ in 0..<3 { _ = s.duplicateACK() }
        #expect(s.recovery.inFastRecovery)
        s.recovery.retransmitTimeout(sndUna: s.una, sndMax: s.max, mss: Self.mss, congestion: &s.congestion)
        #expect(!s.recovery.inFastRecovery)
        #expect(s.congestion.cwnd == Self.mss)
        #expect(s.congestion.ssthresh == 4000)
        let resend = (0..<5).map { _ in s.duplicateACK() }
        #expect(!resend.contains(true))
        #expect(!s.recovery.inFastRecovery)
        #expect(s.recovery.fastRecoveries == 1)
        // Nor does SACK-based detection before SND.UNA passes what was outstanding.
        let lost = s.detectLoss(newlySacked: s.sack(Self.blocks((1001, 8001))))
        #expect(!lost)
    }

    /// RFC 5827: with two segments in flight no third duplicate ACK can come; one that SACKs
    /// everything after the hole starts recovery.
    @Test func earlyRetransmitWithTwoSegmentsInFlight() {
        var s = Sender(inFlight: 2000)
        let sacked = s.sack(Self.blocks((1001, 2001)))
        #expect(sacked == 1000)
        let lost = s.detectLoss(newlySacked: sacked)
        #expect(lost)
        #expect(s.recovery.inFastRecovery)
        #expect(s.holes() == [Hole(start: 1, length: 1000)], "the budget is one segment")
    }

    /// RFC 6675 §5: with much in flight, three segments' worth SACKed above the hole, not less.
    @Test func sackedBytesAboveTheHoleStartRecovery() {
        var s = Sender(inFlight: 10_000)
        let twoSegments = s.detectLoss(newlySacked: s.sack(Self.blocks((2001, 4001))))
        #expect(!twoSegments)
        #expect(!s.recovery.inFastRecovery)
        let threeSegments = s.detectLoss(newlySacked: s.sack(Self.blocks((4001, 5001))))
        #expect(threeSegments)
        #expect(s.recovery.inFastRecovery)
    }

    /// SACK blocks outside (SND.UNA, SND.MAX] add nothing.
    @Test func sackBlocksOutsideTheFlightAreIgnored() {
        var s = Sender(inFlight: 4000)
        let outside = s.sack(Self.blocks((0, 1), (5001, 9001)))
        #expect(outside == 0)
        #expect(s.recovery.scoreboard.isEmpty)
        let clipped = s.sack(Self.blocks((3001, 6001)))
        #expect(clipped == 1000, "clipped at SND.MAX")
    }

    /// Holes go out lowest first, skipping what the guest holds, none above the highest
    /// SACKed byte, none past the bytes buffered.
    @Test func holesAreResentInOrder() {
        var s = Sender(inFlight: 10_000, maxSegmentPayload: 64_000)
        let lost = s.detectLoss(newlySacked: s.sack(Self.blocks((2001, 3001), (4001, 10_001))))
        #expect(lost)
        // Budget: the 7000 bytes SACKed; the holes take 3000 of it.
        let holes = s.holes()
        #expect(holes == [Hole(start: 1, length: 1000), Hole(start: 1001, length: 1000), Hole(start: 3001, length: 1000)])

        var unbuffered = Sender(inFlight: 10_000, maxSegmentPayload: 64_000)
        _ = unbuffered.detectLoss(newlySacked: unbuffered.sack(Self.blocks((2001, 10_001))))
        #expect(unbuffered.recovery.inFastRecovery)
        let hole = unbuffered.recovery.nextHole(
            sndUna: unbuffered.una, bufferEnd: unbuffered.una, maxLength: 1000, now: 0)
        #expect(hole == nil)
    }

    /// A budget spent stays spent until ACKs report more delivered.
    @Test func budgetRefillsWithWhatACKsReportDelivered() {
        var s = Sender(inFlight: 10_000)
        let lost = s.detectLoss(newlySacked: s.sack(Self.blocks((3001, 10_001))))
        #expect(lost)
        #expect(s.holes() == [Hole(start: 1, length: 1000)])
        // A duplicate ACK in recovery adds what it newly SACKed.
        _ = s.duplicateACK(newlySacked: 500)
        #expect(s.holes() == [Hole(start: 1001, length: 500)])
        // A partial ACK adds what it delivered.
        let partial = s.ack(1001)
        #expect(partial)
        #expect(s.holes() == [Hole(start: 1501, length: 1000)])
    }

    /// A hole resend that is itself lost: SACKs still arriving long after it send the holes
    /// again from SND.UNA.
    @Test func lostHoleRetransmissionIsResentAfterTwoRoundTrips() {
        var s = Sender(inFlight: 4000)
        let lost = s.detectLoss(newlySacked: s.sack(Self.blocks((1001, 4001))), now: 100 * Self.ms)
        #expect(lost)
        #expect(s.holes(now: 100 * Self.ms) == [Hole(start: 1, length: 1000)])
        // New data sent in recovery and SACKed: 3 ms after the resend is too soon (5 ms floor).
        s.max = s.una + 5000
        _ = s.detectLoss(newlySacked: s.sack(Self.blocks((4001, 4501))), srtt: 1 * Self.ms, now: 103 * Self.ms)
        #expect(s.holes(now: 103 * Self.ms).isEmpty)
        _ = s.detectLoss(newlySacked: s.sack(Self.blocks((4501, 5001))), srtt: 1 * Self.ms, now: 106 * Self.ms)
        #expect(s.holes(now: 106 * Self.ms) == [Hole(start: 1, length: 1000)])
    }

    /// RFC 8985 §7.2: the probe is due two smoothed RTTs on (at least 10 ms), never after the
    /// RTO; none before an RTT sample or during recovery.
    @Test func tailLossProbeDeadline() {
        var s = Sender(inFlight: 3000)
        let now: UInt64 = 1_000 * Self.ms
        #expect(s.recovery.probeDeadline(now: now, srtt: 0, retransmitAt: nil) == nil)
        #expect(s.recovery.probeDeadline(now: now, srtt: 30 * Self.ms, retransmitAt: nil) == now + 60 * Self.ms)
        #expect(s.recovery.probeDeadline(now: now, srtt: 2 * Self.ms, retransmitAt: nil) == now + 10 * Self.ms)
        #expect(
            s.recovery.probeDeadline(now: now, srtt: 30 * Self.ms, retransmitAt: now + 40 * Self.ms)
                == now + 40 * Self.ms)
        for _ in 0..<3 { _ = s.duplicateACK() }
        #expect(s.recovery.probeDeadline(now: now, srtt: 30 * Self.ms, retransmitAt: nil) == nil)
    }
}
