// The congestion window on its own: slow start and byte-counted congestion avoidance, the cap
// at what the receiver could use, and the cuts that loss responses make.
import Testing
@testable import NetStack

@Suite struct CongestionControlTests {
    static let mss = 1000

    /// RFC 5681 eq. 2 with RFC 3465's limit: an ACK adds what it acknowledged, at most one
    /// segment payload.
    @Test func slowStartGrowsByBytesAcknowledgedUpToOneSegmentPayload() {
        var cc = CongestionControl(initialWindow: 10_000, maxSegmentPayload: 1000)
        #expect(cc.ssthresh == Int.max)
        cc.acknowledged(600)
        #expect(cc.cwnd == 10_600)
        cc.acknowledged(5000)
        #expect(cc.cwnd == 11_600)
    }

    /// RFC 3465 §2.1: above ssthresh, one segment per cwnd's worth of bytes acknowledged,
    /// however the bytes were split into ACKs.
    @Test func congestionAvoidanceAddsOneSegmentPerWindowAcknowledged() {
        var cc = CongestionControl(initialWindow: 10_000, maxSegmentPayload: 64_000)
        cc.retransmitTimeout(flight: 20_000, mss: Self.mss)
        #expect(cc.ssthresh == 10_000)
        #expect(cc.cwnd == 1000)
        // Slow start back up to ssthresh, 1000 at a time (the ACKs acknowledge that much).
        for _ in 0..<9 { cc.acknowledged(1000) }
        #expect(cc.cwnd == 10_000)
        cc.acknowledged(4000)
        cc.acknowledged(4000)
        #expect(cc.cwnd == 10_000)
        cc.acknowledged(4000)
        #expect(cc.cwnd == 11_000)
        // 2000 carried over: 9000 more complete the next 11_000.
        cc.acknowledged(8999)
        #expect(cc.cwnd == 11_000)
        cc.acknowledged(1)
        #expect(cc.cwnd == 12_000)
    }

    /// The window never grows past twice what the receiver offered (or two segment payloads).
    @Test func windowIsCappedByWhatTheReceiverCouldUse() {
        var cc = CongestionControl(initialWindow: 10_000, maxSegmentPayload: 1000)
        cc.acknowledged(1000, mss: Self.mss, receiverWindow: 3000)
        #expect(cc.cwnd == 6000)
        cc.acknowledged(1000, mss: Self.mss, receiverWindow: 0)
        #expect(cc.cwnd == 4000, "two segment payloads, doubled, at the least")
    }

    /// RFC 5681 eq. 4: ssthresh is half the flight, but never below two segments.
    @Test(arguments: [(9000, 4500), (3000, 2000), (0, 2000)])
    func lossHalvesTheFlightForSsthresh(flight: Int, ssthresh: Int) {
        var timeout = CongestionControl(initialWindow: 10_000, maxSegmentPayload: 1000)
        timeout.retransmitTimeout(flight: flight, mss: Self.mss)
        #expect(timeout.ssthresh == ssthresh)
        #expect(timeout.cwnd == Self.mss, "the loss window is one segment")

        var fast = CongestionControl(initialWindow: 10_000, maxSegmentPayload: 1000)
        fast.enterFastRecovery(flight: flight, mss: Self.mss)
        #expect(fast.ssthresh == ssthresh)
        #expect(fast.cwnd == ssthresh + 3 * Self.mss)
    }

    /// RFC 6582 §3.2: inflation per duplicate ACK, deflation by a partial ACK, and the window
    /// a full ACK leaves: ssthresh, or the flight plus one segment when that is smaller.
    @Test func recoveryInflatesDeflatesAndExits() {
        var cc = CongestionControl(initialWindow: 10_000, maxSegmentPayload: 1000)
        cc.enterFastRecovery(flight: 8000, mss: Self.mss)
        #expect(cc.cwnd == 7000)
        cc.inflate(mss: Self.mss)
        #expect(cc.cwnd == 8000)
        cc.deflate(acked: 3000, mss: Self.mss)
        #expect(cc.cwnd == 6000)
        cc.deflate(acked: 50_000, mss: Self.mss)
        #expect(cc.cwnd == Self.mss, "never below one segment")

        var full = cc
        full.exitFastRecovery(flight: 6000, mss: Self.mss)
        #expect(full.cwnd == 4000)
        var little = cc
        little.exitFastRecovery(flight: 500, mss: Self.mss)
        #expect(little.cwnd == 2000)
        var none = cc
        none.exitFastRecovery(flight: 0, mss: Self.mss)
        #expect(none.cwnd == 2000)
    }

    /// The handshake's MSS restarts the initial window; ssthresh is untouched.
    @Test func restartSetsTheInitialWindow() {
        var cc = CongestionControl(initialWindow: 14_600, maxSegmentPayload: 1460)
        cc.restart(initialWindow: 5360)
        #expect(cc.cwnd == 5360)
        #expect(cc.ssthresh == Int.max)
    }
}

extension CongestionControl {
    /// An ACK of `acked` bytes from a receiver whose window is never the limit.
    fileprivate mutating func acknowledged(_ acked: Int) {
        acknowledged(acked, mss: CongestionControlTests.mss, receiverWindow: 1 << 20)
    }
}
