// A connection's events come out in the order they happened, with repeats that say nothing new
// left out, and never more than the log holds.
import Testing

@testable import NetStack

@Suite struct TCPEventLogTests {
    private func log(_ events: [TCPEvent]) -> [TCPEvent] {
        var l = TCPEventLog()
        for e in events { l.record(e) }
        return Array(l)
    }

    @Test func eventsComeOutInOrder() {
        #expect(log([.established, .writable, .readable, .peerClosed, .closed]) == [.established, .writable, .readable, .peerClosed, .closed])
        #expect(log([.readable, .peerClosed, .writable, .closed]) == [.readable, .peerClosed, .writable, .closed])
        #expect(TCPEventLog().isEmpty)
    }

    @Test func repeatsSinceTheLastOneOffEventAreLeftOut() {
        #expect(log([.readable, .readable]) == [.readable])
        #expect(log([.readable, .writable, .readable, .writable]) == [.readable, .writable])
        #expect(log([.readable, .peerClosed, .readable]) == [.readable, .peerClosed, .readable])
    }

    @Test func theLongestPossibleLogFits() {
        // Each one-off event at most once, with readable and writable repeated around them.
        var l = TCPEventLog()
        var expected: [TCPEvent] = []
        for oneOff in [TCPEvent.established, .peerClosed, .closed] {
            for _ in 0..<10 {
                l.record(.writable)
                l.record(.readable)
            }
            l.record(oneOff)
            expected += [.writable, .readable, oneOff]
        }
        l.record(.readable)
        l.record(.writable)
        expected += [.readable, .writable]
        #expect(Array(l) == expected)
        #expect(l.count == 11)
    }

    @Test func aConnectionReportsItsHandshakeThenData() {
        let h = TCPHarness()
        h.establish()
        _ = h.guest(payload: Array(repeating: 1, count: 100))
        _ = h.guest(flags: [.fin, .ack])
        #expect(h.events == [.established, .writable, .readable, .peerClosed])
    }
}
