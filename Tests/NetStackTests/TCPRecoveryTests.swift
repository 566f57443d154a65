// Loss recovery timing and windows: tail loss probes, early retransmit, the RTO's backoff and
// cap, and the congestion window a NewReno recovery leaves behind.
import Testing
import Wire
@testable import NetStack

/// A connection with 1000-byte segments, so sequence numbers and windows count in thousands.
/// With `timestamps` each segment carries 12 bytes of options and so 988 bytes of data.
private func harness(sack: Bool = false, timestamps: Bool = false, configure: (inout TCPConfiguration) -> Void = { _ in }) -> TCPHarness {
    var cfg = TCPConfiguration()
    cfg.maxSegmentPayload = 1000
    cfg.localMSS = 1000
    configure(&cfg)
    var o = TCPOptions()
    o.mss = 1000
    o.sackPermitted = sack
    if timestamps { o.timestamp = TCPTimestamp(value: 1, echo: 0) }
    let h = TCPHarness(configuration: cfg, synOptions: o)
    h.establish()
    return h
}

private func sack(_ start: UInt32, _ end: UInt32) -> TCPOptions {
    var o = TCPOptions()
    _ = o.sackBlocks.append(SACKBlock(start: start, end: end))
    return o
}

@Suite struct TCPRecoveryTests {
    static let una = TCPHarness.ourISN + 1

    /// A retransmission, like any segment, fits the MSS less the options it carries (RFC 6691):
    /// without offloads nothing cuts it afterwards, and the link drops what exceeds its MTU.
    @Test func retransmissionsLeaveRoomForTheTimestampOption() throws {
        let h = harness(sack: true, timestamps: true)
        h.write(bytes(10 * 988))
        let flight = h.poll()
        #expect(flight.count == 10 && flight.allSatisfy { $0.payload.count <= 988 })
        // The first two segments are lost; the guest SACKs what follows, three times over.
        var resent: [SentSegment] = []
        for k in 1...3 {
            resent += h.guest(ack: Self.una, options: sack(Self.una + 2 * 988, Self.una + UInt32(988 * (k + 2))))
        }
        #expect(resent.contains { !$0.payload.isEmpty }, "recovery resent the hole")
        for s in resent {
            #expect(s.payload.count <= 988, "\(s.payload.count) bytes and 12 of options on a 1000-byte MSS")
        }
    }

    /// While the guest's out-of-order bytes wait for a hole to fill, every segment to the guest
    /// carries SACK blocks: its data shrinks to leave them room within the MSS.
    @Test func dataLeavesRoomForTheSACKBlocksItCarries() throws {
        let h = harness(sack: true, timestamps: true)
        // The guest's first 100 bytes are lost; the 100 after them arrive.
        var ts = TCPOptions()
        ts.timestamp = TCPTimestamp(value: 2, echo: 0)
        h.guest(seq: h.guestSeq &+ 100, options: ts, payload: bytes(100), advance: false)
        h.write(bytes(5 * 988))
        let flight = h.poll().filter { !$0.payload.isEmpty }
        #expect(!flight.isEmpty)
        for s in flight {
            #expect(!s.options.sackBlocks.isEmpty, "the segment reports the out-of-order bytes")
            #expect(s.payload.count + s.options.encodedLength <= 1000, "\(s.payload.count) bytes and \(s.options.encodedLength) of options on a 1000-byte MSS")
        }
    }

    /// The guest got our FIN, but its ACK came only after the retransmission timeout went back
    /// to SND.UNA and resent the first segment alone: that ACK still acknowledges the FIN, and no
    /// second FIN goes out past the first.
    @Test func finAcknowledgedAfterTheTimeoutRewindCounts() throws {
        let h = harness()
        h.write(bytes(2000))
        h.conn.shutdownWrite()
        #expect(h.poll().last?.flags.contains(.fin) == true)
        let resent = h.poll(after: .seconds(2))
        #expect(resent.count == 1 && resent.first?.seq == Self.una && resent.first?.flags.contains(.fin) == false)
        let answer = h.guest(ack: Self.una + 2001)
        #expect(h.conn.state == .finWait2)
        #expect(!answer.contains { $0.flags.contains(.fin) }, "a FIN after the one acknowledged")
    }

    /// RFC 8985 §7: with nothing acknowledged for two RTTs, the last segment is sent again
    /// before the RTO would fire, so a lost tail shows as a hole the next ACK reports.
    @Test func tailLossProbeResendsTheLastSegmentBeforeTheRTO() throws {
        let h = harness(sack: true, timestamps: true)
        // One exchange gives an RTT sample of 50 ms: the probe is due 100 ms after sending,
        // the RTO (at its 200 ms floor) later.
        h.write(bytes(100))
        let first = try #require(h.poll().first)
        let sentAt = try #require(first.options.timestamp).value
        h.now += 50_000_000
        var echo = TCPOptions()
        echo.timestamp = TCPTimestamp(value: 2, echo: sentAt)
        h.guest(ack: Self.una + 100, options: echo)
        #expect(h.conn.sendBuffer.isEmpty)

        h.write(bytes(3 * 988, seed: 1))
        let flight = h.poll()
        #expect(flight.count == 3)
        let last = try #require(flight.last)

        #expect(h.poll(after: .milliseconds(99)).isEmpty, "no probe before two RTTs")
        let probe = h.poll(after: .milliseconds(1))
        #expect(probe.count == 1)
        #expect(probe.first?.seq == last.seq)
        #expect(probe.first?.payload == last.payload)
        #expect(h.conn.tailProbes == 1)
        #expect(h.conn.retransmitTimeouts == 0)
    }

    /// RFC 5827: with too little in flight for three duplicate ACKs, one ACK that SACKs
    /// everything after a hole is enough to resend the hole at once.
    @Test func earlyRetransmitWithTwoSegmentsInFlight() throws {
        let h = harness(sack: true)
        h.write(bytes(2000))
        #expect(h.poll().count == 2)
        // The first segment is lost, the second arrives: one duplicate ACK that SACKs it.
        let out = h.guest(ack: Self.una, options: sack(Self.una + 1000, Self.una + 2000))
        let resent = try #require(out.first { !$0.payload.isEmpty })
        #expect(resent.seq == Self.una)
        #expect(resent.payload == Array(bytes(2000)[..<1000]))
        #expect(h.conn.fastRecoveries == 1)
        #expect(h.conn.retransmitTimeouts == 0)
    }

    /// RFC 6298 §5.5: each timeout doubles the RTO, and §2.5's upper bound caps it.
    @Test func rtoBacksOffExponentiallyUpToMaxRTO() {
        let h = harness {
            $0.minRTO = .seconds(1)
            $0.maxRTO = .seconds(8)
            $0.maxRetransmissions = 20
        }
        h.write(bytes(100))
        #expect(h.poll().count == 1)
        // The handshake took no time, so its RTT sample leaves the RTO at its floor: one second.
        for (n, gap) in [1, 2, 4, 8, 8, 8].enumerated() {
            let early = h.poll(after: .seconds(gap) - .milliseconds(1))
            #expect(early.isEmpty, "timeout \(n + 1) fires no earlier than \(gap) s")
            let resent = h.poll(after: .milliseconds(1))
            #expect(resent.count == 1, "timeout \(n + 1) fires after \(gap) s")
            #expect(resent.first?.seq == Self.una)
            #expect(resent.first?.payload == bytes(100))
        }
        #expect(h.conn.retransmitTimeouts == 6)
        #expect(h.conn.state == .established)
    }

    /// Eight segments out, the second lost: the third, fourth and fifth draw the duplicate ACKs
    /// that start NewReno recovery with 7000 in flight (ssthresh 3500, cwnd 3500 + 3 × 1000).
    private func recoveringFromSecondSegmentLoss() -> TCPHarness {
        let h = harness()
        h.write(bytes(8000))
        #expect(h.poll().count == 8)
        h.guest(ack: Self.una + 1000)
        for _ in 0..<3 { h.guest(ack: Self.una + 1000) }
        #expect(h.conn.fastRecoveries == 1)
        #expect(h.conn.ssthresh == 3500)
        #expect(h.conn.cwnd == 6500)
        return h
    }

    /// RFC 6582 §3.2 step 3: the ACK that covers everything outstanding when recovery began
    /// deflates the window to ssthresh when enough is still in flight.
    @Test func fullAckDeflatesCwndToSsthresh() {
        let h = recoveringFromSecondSegmentLoss()
        // New data goes out as further duplicate ACKs (6, 7, 8, then two new segments)
        // inflate the window one segment each.
        h.write(bytes(4000, seed: 1))
        for _ in 0..<5 { h.guest(ack: Self.una + 1000) }
        #expect(h.conn.cwnd == 11_500)
        #expect(h.conn.sndNxt - h.conn.sndUna == 11_000)
        // The full ACK leaves 4000 in flight: cwnd is min(ssthresh, 4000 + 1000) = ssthresh.
        h.guest(ack: Self.una + 8000)
        #expect(h.conn.cwnd == 3500)
        #expect(h.conn.ssthresh == 3500)
    }

    /// The same step with little left in flight: cwnd is FlightSize + one segment, so the end
    /// of recovery does not release a burst of ssthresh bytes at once.
    @Test func fullAckWithLittleInFlightDeflatesBelowSsthresh() {
        let h = recoveringFromSecondSegmentLoss()
        h.guest(ack: Self.una + 8000)
        #expect(h.conn.sndUna == h.conn.sndNxt)
        #expect(h.conn.cwnd == 2000)
        #expect(h.conn.ssthresh == 3500)
    }
}
