// RFC 6298 arithmetic on its own: SRTT/RTTVAR from samples, the RTO's bounds and backoff, and
// which segments Karn's rule lets be timed.
import Testing
@testable import NetStack

@Suite struct RTTEstimatorTests {
    static let ms: UInt64 = 1_000_000

    /// Initial RTO 1 s, bounds 200 ms and 60 s, as in `TCPConfiguration`'s defaults.
    private func estimator(minRTO: UInt64 = 200 * ms, maxRTO: UInt64 = 60_000 * ms) -> RTTEstimator {
        RTTEstimator(initialRTO: 1_000 * Self.ms, minRTO: minRTO, maxRTO: maxRTO)
    }

    @Test func configurationGivesTheInitialRTOAndBounds() {
        var cfg = TCPConfiguration()
        cfg.initialRTO = .milliseconds(1500)
        cfg.minRTO = .milliseconds(300)
        cfg.maxRTO = .seconds(9)
        let e = RTTEstimator(cfg)
        #expect(e.rto == 1_500 * Self.ms)
        #expect(e.minRTO == 300 * Self.ms)
        #expect(e.maxRTO == 9_000 * Self.ms)
    }

    /// RFC 6298 §2.2: the first sample R gives SRTT = R and RTTVAR = R/2; §2.3: each later one
    /// RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|, then SRTT = 7/8 SRTT + 1/8 R'; RTO = SRTT + 4 RTTVAR.
    @Test(arguments: [
        ([100], (srtt: 100_000, rttvar: 50_000, rto: 300_000)),
        ([100, 200], (srtt: 112_500, rttvar: 62_500, rto: 362_500)),
        ([100, 200, 112], (srtt: 112_437, rttvar: 47_000, rto: 300_437)),
    ])
    func samplesAreSmoothed(samplesMs: [UInt64], expectedUs: (srtt: UInt64, rttvar: UInt64, rto: UInt64)) {
        var e = estimator()
        for s in samplesMs { e.add(sample: s * Self.ms) }
        #expect(e.srtt / 1000 == expectedUs.srtt)
        #expect(e.rttvar / 1000 == expectedUs.rttvar)
        #expect(e.rto / 1000 == expectedUs.rto)
    }

    /// RFC 6298 §2.4 and §2.5: the RTO stays within its configured bounds.
    @Test(arguments: [(UInt64(1), UInt64(200)), (UInt64(30_000), UInt64(60_000))])
    func rtoIsClampedToItsBounds(sampleMs: UInt64, rtoMs: UInt64) {
        var e = estimator()
        e.add(sample: sampleMs * Self.ms)
        #expect(e.rto == rtoMs * Self.ms)
    }

    /// RFC 6298 §5.5: each timeout doubles the RTO, up to the maximum.
    @Test func backOffDoublesUpToTheMaximum() {
        var e = estimator(maxRTO: 5_000 * Self.ms)
        var seen: [UInt64] = []
        for _ in 0..<4 {
            e.backOff()
            seen.append(e.rto / Self.ms)
        }
        #expect(seen == [2_000, 4_000, 5_000, 5_000])
        // The next sample computes the RTO afresh.
        e.add(sample: 100 * Self.ms)
        #expect(e.rto == 300 * Self.ms)
    }

    /// The persist timer's interval: the RTO doubled per probe, at most ten times, capped.
    @Test func backedOffIntervalsForThePersistTimer() {
        let e = estimator(maxRTO: 600_000 * Self.ms)
        #expect(e.backedOff(0) == 1_000 * Self.ms)
        #expect(e.backedOff(3) == 8_000 * Self.ms)
        #expect(e.backedOff(10) == 600_000 * Self.ms, "1024 s is above the cap")
        let uncapped = estimator(maxRTO: UInt64.max)
        #expect(uncapped.backedOff(10) == 1_024_000 * Self.ms)
        #expect(uncapped.backedOff(30) == 1_024_000 * Self.ms, "no more than ten doublings")
    }

    /// The timed segment yields a sample when an ACK covers it, once.
    @Test func timedSegmentSamplesWhenAcknowledged() {
        var e = estimator()
        e.startTiming(SequenceNumber(1000), sentAt: 10 * Self.ms)
        e.acknowledged(SequenceNumber(1000), now: 50 * Self.ms)
        #expect(e.srtt == 0, "an ACK that does not cover the timed byte is no sample")
        #expect(e.isTiming)
        e.acknowledged(SequenceNumber(1001), now: 90 * Self.ms)
        #expect(e.srtt == 80 * Self.ms)
        #expect(!e.isTiming)
        e.acknowledged(SequenceNumber(2000), now: 500 * Self.ms)
        #expect(e.srtt == 80 * Self.ms, "one sample per timed segment")
    }

    /// Karn's rule: a retransmitted segment is not timed, and a timeout abandons the timing.
    @Test func karnsRuleTimesOnlyNewSegments() {
        var e = estimator()
        e.sending(SequenceNumber(1000), highestSent: SequenceNumber(3000), now: 0)
        #expect(!e.isTiming, "below the highest sequence sent: a retransmission")
        e.sending(SequenceNumber(3000), highestSent: SequenceNumber(3000), now: 10 * Self.ms)
        #expect(e.isTiming)
        // A second new segment does not replace the one being timed.
        e.sending(SequenceNumber(4000), highestSent: SequenceNumber(4000), now: 20 * Self.ms)
        e.acknowledged(SequenceNumber(3001), now: 70 * Self.ms)
        #expect(e.srtt == 60 * Self.ms)

        e.sending(SequenceNumber(5000), highestSent: SequenceNumber(5000), now: 100 * Self.ms)
        e.backOff()
        #expect(!e.isTiming)
        e.acknowledged(SequenceNumber(6000), now: 900 * Self.ms)
        #expect(e.srtt == 60 * Self.ms, "the ACK of a resent segment is no sample")
    }

    /// Wrapping sequence numbers: the timed segment just below 2^32 is covered by an ACK past it.
    @Test func timingAcrossTheSequenceWrap() {
        var e = estimator()
        e.startTiming(SequenceNumber(UInt32.max - 10), sentAt: 0)
        e.acknowledged(SequenceNumber(5), now: 40 * Self.ms)
        #expect(e.srtt == 40 * Self.ms)
    }

    /// RFC 7323 §4: a timestamp echo is a sample of our millisecond clock's age; an echo of the
    /// current millisecond counts as 1 ms, and one a minute old or more is ignored.
    @Test func timestampEchoSamples() {
        var e = estimator()
        let now: UInt64 = 5_000 * Self.ms + 300_000
        e.add(timestampEcho: 4_970, now: now)
        #expect(e.srtt == 30 * Self.ms)
        var same = estimator()
        same.add(timestampEcho: 5_000, now: now)
        #expect(same.srtt == 1 * Self.ms)
        var stale = estimator()
        stale.add(timestampEcho: 5_000 &+ 1, now: now)
        #expect(stale.srtt == 0, "an echo from the future wraps to about 49 days")
        #expect(RTTEstimator.timestampClock(now) == 5_000)
        #expect(RTTEstimator.timestampClock(UInt64(UInt32.max) * Self.ms + 7 * Self.ms) == 6)
    }
}
