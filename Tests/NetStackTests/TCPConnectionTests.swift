// The TCP state machine driven segment by segment: handshakes, data both ways, loss, close, resets.
import Testing
import Wire
@testable import NetStack

@Suite struct TCPHandshakeTests {
    @Test func synIsNotAnsweredUntilAccepted() {
        let h = TCPHarness(accept: false)
        #expect(h.conn.state == .synPending)
        #expect(h.sent.isEmpty)
        // A retransmitted SYN while the upstream dials stays unanswered.
        h.guest(seq: TCPHarness.guestISN, flags: [.syn])
        #expect(h.sent.isEmpty)
    }

    @Test func acceptSendsSynAckWithNegotiatedOptions() throws {
        let h = TCPHarness()
        let synAck = try #require(h.sent.first)
        #expect(synAck.flags == [.syn, .ack])
        #expect(synAck.seq == TCPHarness.ourISN)
        #expect(synAck.ack == TCPHarness.guestISN + 1)
        #expect(synAck.options.mss == 1460)
        #expect(synAck.options.windowScale != nil)
        #expect(synAck.options.sackPermitted)
        #expect(synAck.options.timestamp?.echo == 1)
        h.establish()
        #expect(h.conn.state == .established)
        #expect(h.events.contains(.established))
    }

    @Test func noWindowScaleWhenGuestOffersNone() throws {
        var o = TCPOptions()
        o.mss = 1400
        let h = TCPHarness(synOptions: o)
        let synAck = try #require(h.sent.first)
        #expect(synAck.options.windowScale == nil)
        #expect(!synAck.options.sackPermitted)
        #expect(synAck.options.timestamp == nil)
    }

    @Test func refuseAnswersWithRST() throws {
        let h = TCPHarness(accept: false)
        h.conn.refuse(emit: h.record)
        let rst = try #require(h.sent.first)
        #expect(rst.flags == [.rst, .ack])
        #expect(rst.ack == TCPHarness.guestISN + 1)
        #expect(h.conn.state == .closed)
    }

    @Test func lostSynAckIsRetransmittedThenGivenUp() {
        var cfg = TCPConfiguration()
        cfg.maxSYNRetransmissions = 2
        let h = TCPHarness(configuration: cfg)
        #expect(h.sent.count == 1)
        #expect(h.poll(after: .milliseconds(999)).isEmpty)
        let again = h.poll(after: .milliseconds(1))
        #expect(again.first?.flags == [.syn, .ack])
        #expect(h.poll(after: .seconds(2)).first?.flags == [.syn, .ack])
        h.poll(after: .seconds(4))
        #expect(h.conn.state == .closed)
        #expect(h.conn.closeReason == .timedOut)
    }

    @Test func badAckInSynReceivedDrawsRST() {
        let h = TCPHarness()
        let out = h.guest(ack: 12345)
        #expect(out.first?.flags == [.rst])
        #expect(out.first?.seq == 12345)
        #expect(h.conn.state == .synReceived)
    }

    @Test func activeOpenIntoGuest() throws {
        let h = TCPHarness(activeConfiguration: TCPConfiguration())
        let syn = try #require(h.poll().first)
        #expect(syn.flags == [.syn])
        #expect(syn.options.mss != nil && syn.options.sackPermitted && syn.options.windowScale != nil)
        var o = TCPOptions()
        o.mss = 1460
        o.windowScale = 7
        o.sackPermitted = true
        o.timestamp = TCPTimestamp(value: 77, echo: syn.options.timestamp?.value ?? 0)
        let out = h.guest(seq: 9000, ack: TCPHarness.ourISN + 1, flags: [.syn, .ack], options: o)
        #expect(h.conn.state == .established)
        #expect(out.first?.flags == [.ack])
        #expect(out.first?.ack == 9001)
        #expect(h.events.contains(.established))
    }

    @Test func activeOpenRefusedByGuest() {
        let h = TCPHarness(activeConfiguration: TCPConfiguration())
        h.poll()
        h.guest(seq: 0, ack: TCPHarness.ourISN + 1, flags: [.rst, .ack])
        #expect(h.conn.state == .closed)
        #expect(h.conn.closeReason == .refused)
    }
}

@Suite struct TCPDataTests {
    @Test func guestDataIsReadableAndAcknowledged() {
        let h = TCPHarness()
        h.establish()
        let data = bytes(1000)
        let out = h.guest(payload: data)
        #expect(h.events.contains(.readable))
        #expect(out.isEmpty, "one small segment: the ACK is delayed")
        let acks = h.poll(after: .milliseconds(40))
        #expect(acks.first?.ack == TCPHarness.guestISN + 1 + 1000)
        #expect(h.readAll() == data)
    }

    @Test func everySecondSegmentIsAckedAtOnce() {
        let h = TCPHarness()
        h.establish()
        h.guest(payload: bytes(1460))
        let out = h.guest(payload: bytes(1460, seed: 1))
        #expect(out.first?.ack == TCPHarness.guestISN + 1 + 2920)
    }

    @Test func outOfOrderIsSackedAndReassembled() throws {
        let h = TCPHarness()
        h.establish()
        let a = bytes(1000), b = bytes(1000, seed: 3), c = bytes(500, seed: 9)
        let base = h.guestSeq
        let dup = h.guest(seq: base &+ 1000, payload: b)
        let ack = try #require(dup.first)
        #expect(ack.ack == base, "duplicate ACK for the hole")
        #expect(ack.options.sackBlocks.first == SACKBlock(start: base &+ 1000, end: base &+ 2000))
        h.guest(seq: base &+ 2000, payload: c)
        let filled = h.guest(seq: base, payload: a)
        #expect(filled.last?.ack == base &+ 2500)
        #expect(filled.last?.options.sackBlocks.isEmpty == true)
        #expect(h.readAll() == a + b + c)
    }

    @Test func overlappingAndDuplicateSegmentsKeepBytesIntact() {
        let h = TCPHarness()
        h.establish()
        let data = bytes(3000)
        let base = h.guestSeq
        h.guest(seq: base, payload: Array(data[0..<1500]))
        h.guest(seq: base &+ 1000, payload: Array(data[1000..<2500]))   // overlaps
        h.guest(seq: base, payload: Array(data[0..<1500]))               // duplicate
        h.guest(seq: base &+ 2000, payload: Array(data[2000..<3000]))
        #expect(h.readAll() == data)
    }

    @Test func writeIsSegmentedByWindowAndAckFreesBuffer() {
        var cfg = TCPConfiguration()
        cfg.maxSegmentPayload = 1460
        let h = TCPHarness(configuration: cfg)
        h.establish()
        let data = bytes(20000)
        #expect(h.write(data) == 20000)
        let out = h.poll()
        // Initial window: 10 segments, each the MSS less the 12 bytes of timestamps (RFC 6691).
        #expect(out.count == 10)
        #expect(out.allSatisfy { $0.payload.count == 1448 })
        #expect(out.flatMap(\.payload) == Array(data[0..<14480]))
        #expect(out.first?.seq == TCPHarness.ourISN + 1)
        let more = h.guest(ack: TCPHarness.ourISN + 1 + 14480)
        #expect(h.events.contains(.writable))
        #expect(more.flatMap(\.payload) == Array(data[14480...]))
        #expect(more.last?.flags.contains(.psh) == true)
    }

    @Test func sendBufferAppliesBackpressure() {
        var cfg = TCPConfiguration()
        cfg.sendBufferSize = 4096
        let h = TCPHarness(configuration: cfg)
        h.establish()
        #expect(h.write(bytes(10000)) == 4096)
        #expect(h.conn.writableBytes == 0)
    }

    @Test func receiveWindowShrinksAsBufferFillsAndReopensAfterRead() throws {
        var cfg = TCPConfiguration()
        cfg.receiveBufferSize = 8192
        let h = TCPHarness(configuration: cfg)
        h.establish()
        h.guest(payload: bytes(4096))
        let ack = try #require(h.guest(payload: bytes(4096)).first)
        #expect(ack.window == 0)
        // A byte past the full window is dropped and re-ACKed.
        let drop = h.guest(payload: [1], advance: false)
        #expect(drop.first?.ack == TCPHarness.guestISN + 1 + 8192)
        _ = h.readAll()
        let update = h.poll()
        #expect(update.first.map { Int($0.window) > 0 } == true)
    }

    @Test func sequenceNumbersWrap() {
        let h = TCPHarness(guestISN: UInt32.max - 500, ourISN: UInt32.max - 100)
        h.establish()
        let data = bytes(3000)
        h.guest(payload: Array(data[0..<1500]))
        h.guest(payload: Array(data[1500...]))
        let got = h.readAll()
        #expect(got.count == data.count)
        #expect(got == data, "bytes differ")
        #expect(h.write(bytes(1000)) == 1000)
        let out = h.poll()
        #expect(out.first?.seq == UInt32.max - 99)
        h.guest(ack: (UInt32.max - 99) &+ 1000)
        #expect(h.conn.sendBuffer.isEmpty)
    }
}

@Suite struct TCPLossTests {
    @Test func timeoutRetransmitsFromUnacknowledged() throws {
        var cfg = TCPConfiguration()
        cfg.maxSegmentPayload = 1000
        cfg.localMSS = 1000
        var o = TCPOptions()
        o.mss = 1000
        let h = TCPHarness(configuration: cfg, synOptions: o)
        h.establish()
        h.write(bytes(3000))
        let first = h.poll()
        #expect(first.count == 3)
        h.guest(ack: TCPHarness.ourISN + 1 + 1000)  // first segment arrived, the rest lost
        let retx = h.poll(after: .seconds(2))
        let seg = try #require(retx.first)
        #expect(seg.seq == TCPHarness.ourISN + 1 + 1000)
        #expect(seg.payload == Array(bytes(3000)[1000..<2000]))
        #expect(h.conn.retransmittedSegments == 1)
    }

    @Test func threeDuplicateAcksTriggerFastRetransmit() throws {
        var cfg = TCPConfiguration()
        cfg.maxSegmentPayload = 1000
        cfg.localMSS = 1000
        var o = TCPOptions()
        o.mss = 1000
        let h = TCPHarness(configuration: cfg, synOptions: o)
        h.establish()
        h.write(bytes(8000))
        #expect(h.poll().count == 8)
        let una = TCPHarness.ourISN + 1
        h.guest(ack: una + 1000)
        h.guest(ack: una + 1000)
        h.guest(ack: una + 1000)
        let out = h.guest(ack: una + 1000)
        let r = try #require(out.first)
        #expect(r.seq == una + 1000)
        #expect(r.payload.count == 1000)
    }

    @Test func retransmissionsRunOutWithRST() {
        var cfg = TCPConfiguration()
        cfg.maxRetransmissions = 3
        let h = TCPHarness(configuration: cfg)
        h.establish()
        h.write(bytes(100))
        h.poll()
        for _ in 0..<4 { h.poll(after: .seconds(61)) }
        #expect(h.conn.state == .closed)
        #expect(h.conn.closeReason == .timedOut)
        #expect(h.sent.last?.flags.contains(.rst) == true)
    }

    @Test func zeroWindowIsProbedAndReopens() {
        let h = TCPHarness()
        h.establish()
        h.guest(ack: TCPHarness.ourISN + 1, window: 0)
        h.write(bytes(100))
        #expect(h.poll().isEmpty)
        let probe = h.poll(after: .seconds(2))
        #expect(probe.count == 1)
        #expect(probe.first?.payload.isEmpty == true)
        let data = h.guest(ack: TCPHarness.ourISN + 1, window: 1000)
        #expect(data.first?.payload == bytes(100))
    }
}

@Suite struct TCPCloseTests {
    @Test func passiveCloseFromGuest() throws {
        let h = TCPHarness()
        h.establish()
        let out = h.guest(flags: [.fin, .ack])
        #expect(h.conn.state == .closeWait)
        #expect(h.events.contains(.peerClosed))
        #expect(out.first?.ack == TCPHarness.guestISN + 2)
        #expect(h.conn.isReadClosed)
        h.write(bytes(10))
        h.conn.shutdownWrite()
        let fin = try #require(h.poll().last)
        #expect(fin.flags.contains(.fin))
        #expect(fin.payload == bytes(10))
        #expect(h.conn.state == .lastAck)
        h.guest(ack: fin.seq + 10 + 1)
        #expect(h.conn.state == .closed)
        #expect(h.conn.closeReason == .normal)
    }

    @Test func activeCloseThroughTimeWait() throws {
        var cfg = TCPConfiguration()
        cfg.timeWait = .seconds(5)
        let h = TCPHarness(configuration: cfg)
        h.establish()
        h.conn.shutdownWrite()
        let fin = try #require(h.poll().first)
        #expect(fin.flags.contains(.fin))
        #expect(h.conn.state == .finWait1)
        h.guest(ack: fin.seq + 1)
        #expect(h.conn.state == .finWait2)
        let ack = h.guest(flags: [.fin, .ack], payload: bytes(5))
        #expect(h.conn.state == .timeWait)
        #expect(ack.first?.ack == TCPHarness.guestISN + 1 + 5 + 1)
        // A retransmitted FIN in TIME-WAIT is re-acknowledged.
        let again = h.guest(seq: TCPHarness.guestISN + 1, flags: [.fin, .ack], payload: bytes(5), advance: false)
        #expect(again.first?.ack == TCPHarness.guestISN + 1 + 5 + 1)
        h.poll(after: .seconds(5))
        #expect(h.conn.state == .closed)
    }

    @Test func simultaneousCloseGoesThroughClosing() throws {
        let h = TCPHarness()
        h.establish()
        h.conn.shutdownWrite()
        let fin = try #require(h.poll().first)
        h.guest(ack: fin.seq, flags: [.fin, .ack])
        #expect(h.conn.state == .closing)
        h.guest(ack: fin.seq + 1)
        #expect(h.conn.state == .timeWait)
    }

    @Test func finAheadOfMissingDataWaitsForIt() {
        let h = TCPHarness()
        h.establish()
        let base = h.guestSeq
        h.guest(seq: base &+ 100, flags: [.fin, .ack], payload: bytes(50, seed: 1))
        #expect(h.conn.state == .established)
        h.guest(seq: base, payload: bytes(100))
        #expect(h.conn.state == .closeWait)
        #expect(h.readAll() == bytes(100) + bytes(50, seed: 1))
    }

    @Test func abortSendsRST() {
        let h = TCPHarness()
        h.establish()
        h.conn.abort(emit: h.record)
        #expect(h.sent.last?.flags.contains(.rst) == true)
        #expect(h.conn.state == .closed)
    }
}

@Suite struct TCPHostileTests {
    @Test func exactRSTResets() {
        let h = TCPHarness()
        h.establish()
        h.guest(flags: [.rst])
        #expect(h.conn.state == .closed)
        #expect(h.conn.closeReason == .reset)
    }

    @Test func inWindowButInexactRSTDrawsChallengeAck() {
        let h = TCPHarness()
        h.establish()
        let out = h.guest(seq: h.guestSeq &+ 100, flags: [.rst])
        #expect(h.conn.state == .established)
        #expect(out.first?.flags == [.ack])
        #expect(out.first?.ack == h.guestSeq)
    }

    @Test func outOfWindowRSTIsIgnoredSilently() {
        let h = TCPHarness()
        h.establish()
        let out = h.guest(seq: h.guestSeq &+ 100_000_000, flags: [.rst])
        #expect(out.isEmpty)
        #expect(h.conn.state == .established)
    }

    @Test func synInEstablishedDrawsChallengeAck() {
        let h = TCPHarness()
        h.establish()
        let out = h.guest(seq: h.guestSeq, flags: [.syn], advance: false)
        #expect(out.first?.flags == [.ack])
        #expect(h.conn.state == .established)
    }

    @Test func ackForUnsentDataIsNotTrusted() {
        let h = TCPHarness()
        h.establish()
        h.write(bytes(100))
        h.poll()
        let out = h.guest(ack: TCPHarness.ourISN + 1 + 5000)
        #expect(out.first?.flags == [.ack])
        #expect(h.conn.sendBuffer.count == 100, "nothing acknowledged")
    }

    @Test func synFinAndDataOnClosedAreHarmless() {
        let h = TCPHarness()
        h.establish()
        h.conn.abort(emit: h.record)
        let out = h.guest(flags: [.syn, .fin], payload: bytes(10))
        #expect(out.isEmpty)
        #expect(h.conn.state == .closed)
    }

    @Test func segmentWithoutAckIsDropped() {
        let h = TCPHarness()
        h.establish()
        h.guest(flags: [], payload: bytes(10), advance: false)
        #expect(h.readAll().isEmpty)
    }
}

@Suite struct TCPSACKRecoveryTests {
    @Test func scoreboardMergesAndFindsHoles() {
        var sb = SACKScoreboard()
        let una = SequenceNumber(1000)
        let max = SequenceNumber(9000)
        #expect(sb.add(start: SequenceNumber(3000), end: SequenceNumber(4000), una: una, max: max) == 1000)
        #expect(sb.add(start: SequenceNumber(6000), end: SequenceNumber(7000), una: una, max: max) == 1000)
        #expect(sb.add(start: SequenceNumber(3500), end: SequenceNumber(6500), una: una, max: max) == 2000)
        #expect(sb.ranges.count == 1)
        #expect(sb.nextHole(from: una)?.start == una && sb.nextHole(from: una)?.end == SequenceNumber(3000))
        #expect(sb.nextHole(from: SequenceNumber(3000)) == nil, "nothing is missing above the highest SACKed byte")
        // Blocks outside (una, max] are clipped or ignored.
        #expect(sb.add(start: SequenceNumber(100), end: SequenceNumber(500), una: una, max: max) == 0)
        sb.advance(to: SequenceNumber(5000))
        #expect(sb.sackedBytes == 2000)
    }

    @Test func recoveryResendsOnlyTheHoles() throws {
        var cfg = TCPConfiguration()
        cfg.maxSegmentPayload = 1000
        cfg.localMSS = 1000
        var o = TCPOptions()
        o.mss = 1000
        o.sackPermitted = true
        let h = TCPHarness(configuration: cfg, synOptions: o)
        h.establish()
        h.write(bytes(8000))
        #expect(h.poll().count == 8)
        let una = TCPHarness.ourISN + 1
        // Segments 2 and 3 lost; the guest holds 4..8.
        var sack = TCPOptions()
        _ = sack.sackBlocks.append(SACKBlock(start: una + 3000, end: una + 8000))
        let out = h.guest(ack: una + 1000, options: sack)
        let resent = out.filter { !$0.payload.isEmpty }
        #expect(resent.first?.seq == una + 1000)
        #expect(resent.allSatisfy { $0.seq < una + 3000 }, "SACKed data is not resent")
        // The hole's first part arrives: the rest of the hole follows, still nothing SACKed.
        let more = h.guest(ack: una + 2000, options: sack).filter { !$0.payload.isEmpty }
        #expect(more.first?.seq == una + 2000)
        #expect(more.allSatisfy { $0.seq < una + 3000 })
        h.guest(ack: una + 8000)
        #expect(h.conn.sendBuffer.isEmpty)
    }
}

@Suite struct TCPAfterCloseTests {
    /// RFC 1337: an RST in TIME-WAIT must not destroy the connection's unread bytes.
    @Test func rstInTimeWaitKeepsUnreadBytes() throws {
        let h = TCPHarness()
        h.establish()
        h.conn.shutdownWrite()
        let fin = try #require(h.poll().first)
        h.guest(ack: fin.seq + 1)
        h.guest(flags: [.fin, .ack], payload: bytes(100))
        #expect(h.conn.state == .timeWait)
        h.guest(seq: h.guestSeq, flags: [.rst], advance: false)
        #expect(h.conn.state == .timeWait)
        #expect(h.readAll() == bytes(100))
    }

    /// Reading after the guest's FIN sends no window update (the guest may have gone).
    @Test func noWindowUpdateAfterPeerFIN() {
        var cfg = TCPConfiguration()
        cfg.receiveBufferSize = 8192
        let h = TCPHarness(configuration: cfg)
        h.establish()
        h.guest(payload: bytes(8000))
        h.guest(flags: [.fin, .ack])
        _ = h.poll(after: .milliseconds(50))
        let before = h.sent.count
        _ = h.readAll()
        #expect(h.poll().count == 0)
        #expect(h.sent.count == before)
    }
}
