// The receive path's bypass of the ring: in-order bytes go to the layer above's receiver while
// nothing waits before them, the rest is buffered, and the stream's order and window hold.
import Testing
import Wire
@testable import NetStack

@Suite struct DirectReceiveTests {
    /// A receiver that takes at most `limit` bytes per call (nil: everything), recording them.
    final class Sink {
        var taken: [UInt8] = []
        var calls = 0
        var limit: Int?
        /// Whether each offer ended one of the guest's writes (PSH).
        var pushed: [Bool] = []
        func take(_ bytes: UnsafeRawBufferPointer, _ push: Bool) -> Int {
            calls += 1
            pushed.append(push)
            let n = min(bytes.count, limit ?? bytes.count)
            taken += bytes[..<n]
            return n
        }
    }

    private func harness(_ sink: Sink) -> TCPHarness {
        let h = TCPHarness()
        h.establish()
        h.conn.directReceiver = { sink.take($0, $1) }
        return h
    }

    @Test func inOrderBytesGoStraightThroughAndAreAcknowledgedWithTheWholeWindow() throws {
        let sink = Sink()
        let h = harness(sink)
        let buffered = TCPHarness()
        buffered.establish()
        let a = bytes(1460), b = bytes(1460, seed: 5)
        h.guest(payload: a)
        let out = h.guest(payload: b)
        buffered.guest(payload: a)
        let bufferedOut = buffered.guest(payload: b)
        #expect(sink.taken == a + b)
        #expect(sink.taken.count == 2920)
        #expect(h.conn.receiveBuffer.isEmpty)
        #expect(!h.events.contains(.readable), "nothing buffered: nothing for the layer above to read")
        let ack = try #require(out.first)
        #expect(ack.ack == TCPHarness.guestISN + 1 + 2920)
        let bufferedAck = try #require(bufferedOut.first)
        #expect(ack.window > bufferedAck.window, "bytes that never entered the ring take no window")
    }

    @Test func whatTheReceiverLeavesIsBufferedAndLaterBytesQueueBehindIt() {
        let sink = Sink()
        sink.limit = 600
        let h = harness(sink)
        let a = bytes(1000), b = bytes(800, seed: 3)
        h.guest(payload: a)
        #expect(sink.taken == Array(a[..<600]))
        #expect(h.events.contains(.readable))
        // 400 bytes wait in the ring: the next segment must not pass them.
        h.guest(payload: b)
        #expect(sink.calls == 1)
        #expect(sink.taken + h.readAll() == a + b)
        // With the ring empty again, the receiver has the next bytes.
        let c = bytes(300, seed: 7)
        h.guest(payload: c)
        #expect(sink.calls == 2)
        #expect(sink.taken == Array(a[..<600]) + c)
    }

    @Test func aReceiverThatTakesNothingLeavesTheStreamToTheRing() {
        let sink = Sink()
        sink.limit = 0
        let h = harness(sink)
        let a = bytes(1200)
        h.guest(payload: a)
        #expect(sink.taken.isEmpty)
        #expect(h.events.contains(.readable))
        #expect(h.readAll() == a)
    }

    @Test func bytesHeldOutOfOrderKeepTheFillingSegmentInTheRing() {
        let sink = Sink()
        let h = harness(sink)
        let a = bytes(1000), b = bytes(1000, seed: 3)
        let base = h.guestSeq
        h.guest(seq: base &+ 1000, payload: b)
        h.guest(seq: base, payload: a)
        #expect(sink.calls == 0, "out-of-order bytes lie in the ring: the hole's bytes must join them there")
        #expect(h.readAll() == a + b)
        // In order again and the ring empty: straight through.
        h.guestSeq = base &+ 2000
        let c = bytes(500, seed: 9)
        h.guest(payload: c)
        #expect(sink.taken == c)
    }

    @Test func theReceiverLearnsWhichSegmentsEndAWrite() {
        let sink = Sink()
        let h = harness(sink)
        h.guest(payload: bytes(1000))
        h.guest(flags: [.ack, .psh], payload: bytes(200, seed: 1))
        #expect(sink.pushed == [false, true])
    }

    @Test func finAfterBytesTakenDirectlyEndsTheStreamWithNothingToRead() {
        let sink = Sink()
        let h = harness(sink)
        let a = bytes(700)
        h.guest(flags: [.ack, .fin, .psh], payload: a)
        #expect(sink.taken == a)
        #expect(h.events.contains(.peerClosed))
        #expect(h.conn.isReadClosed)
    }

    @Test func theStackHandsAFlowsBytesToTheReceiverSetForIt() throws {
        var cfg = StackConfiguration()
        cfg.offloads = false
        let s = Stack(configuration: cfg)
        let (id, ourSeq) = try s.establishedEgressFlow()
        let dst = IPv4Address(127, 0, 0, 1)
        let sink = Sink()
        s.tcpSetDirectReceiver(id) { sink.take($0, $1) }
        let hello = Array("hello".utf8)
        s.receive(Guest.tcp(to: dst, dstPort: 8080, seq: 101, ack: ourSeq, flags: [.ack], payload: hello))
        #expect(sink.taken == hello)
        #expect(s.counters.tcpBytesTakenDirectly == 5)
        #expect(s.tcpReadableBytes(id) == 0)
        // Taken away again: the next bytes wait in the ring for a read.
        s.tcpSetDirectReceiver(id, nil)
        let more = Array("again".utf8)
        s.receive(Guest.tcp(to: dst, dstPort: 8080, seq: 106, ack: ourSeq, flags: [.ack], payload: more))
        #expect(s.tcpReadableBytes(id) == 5)
        #expect(sink.taken == hello)
    }
}
