// The forwarder's retry over TCP: a guest that asked over TCP gets the whole answer even when the
// upstream's UDP answer was truncated, and the truncated answer when the TCP exchange fails.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

@Suite(.serialized)
struct DNSTCPRetryTests {
    static var tcpGuest: DNSQueryContext {
        var c = ForwarderHarness.context
        c.maxReplySize = DNSQueryContext.tcpReplySize
        return c
    }

    @Test func truncatedUDPAnswerIsFetchedOverTCP() throws {
        let resolver = try FakeResolver(.large(count: 400), tcp: true)
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream]))
        defer { h.shutdown() }

        let bytes = try #require(h.ask(makeQuery(id: 0x5150, "big.test"), Self.tcpGuest))
        let r = try Reply(bytes)
        #expect(r.id == 0x5150 && r.code == .noError && !r.header.truncated)
        #expect(r.a.count == 400 && r.a.first == FakeResolver.largeAddress(0) && r.a.last == FakeResolver.largeAddress(399))
        #expect(r.size > 4096)
        // The OPT record the forwarder added for upstream does not reach a guest that sent none.
        #expect(r.edns == nil && r.header.additionalCount == 0)
        // UDP first (asking for 4096), then the same query, same ID, over TCP.
        #expect(resolver.queries.count == 1 && resolver.tcpQueries.count == 1)
        #expect(resolver.queries.first == resolver.tcpQueries.first)
        let c = h.counters
        #expect(c.tcpRetries == 1 && c.tcpRetryFailures == 0 && c.answered == 1 && c.truncated == 0)
        #expect(h.outstanding == 0)
    }

    @Test func udpGuestGetsTCAndNoRetry() throws {
        let resolver = try FakeResolver(.large(count: 400), tcp: true)
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream]))
        defer { h.shutdown() }
        // The guest can take 1232 bytes and we asked for no more: TC goes to the guest, which
        // retries over TCP itself.
        let r = try Reply(#require(h.ask(makeQuery(id: 1, "big.test", edns: 1232))))
        #expect(r.header.truncated && r.answerCount == 0)
        #expect(resolver.tcpQueries.isEmpty && h.counters.tcpRetries == 0)
    }

    @Test func refusedTCPFallsBackToTheTruncatedAnswer() throws {
        // No TCP listener on the upstream's port: connect is refused at once.
        let resolver = try FakeResolver(.large(count: 400))
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream], attemptTimeout: .seconds(3)))
        defer { h.shutdown() }
        let start = Date()
        let r = try Reply(#require(h.ask(makeQuery(id: 0x0A0A, "big.test", edns: 1232), Self.tcpGuest)))
        #expect(Date().timeIntervalSince(start) < 2)
        #expect(r.id == 0x0A0A && r.header.truncated && r.code == .noError && r.question == "big.test")
        #expect(r.edns != nil)
        let c = h.counters
        #expect(c.tcpRetries == 1 && c.tcpRetryFailures == 1 && c.servfail == 0 && h.outstanding == 0)
    }

    @Test func silentTCPTimesOutToTheTruncatedAnswer() throws {
        let resolver = try FakeResolver(.large(count: 400), tcp: true, tcpBehavior: .silent)
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream], attemptTimeout: .milliseconds(300)))
        defer { h.shutdown() }
        let start = Date()
        let r = try Reply(#require(h.ask(makeQuery(id: 77, "big.test"), Self.tcpGuest)))
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.29 && elapsed < 2, "took \(elapsed) s")
        #expect(r.id == 77 && r.header.truncated)
        #expect(resolver.tcpQueries.count == 1)
        let c = h.counters
        #expect(c.tcpRetryFailures == 1 && c.upstreamTimeouts == 1 && h.outstanding == 0)
    }

    @Test func forgettingTheClientCancelsTheTCPExchange() throws {
        let resolver = try FakeResolver(.large(count: 400), tcp: true, tcpBehavior: .silent)
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream], attemptTimeout: .milliseconds(300)))
        defer { h.shutdown() }
        let replies = Inbox()
        h.send(makeQuery(id: 9, "big.test"), Self.tcpGuest, replies: replies)
        #expect(eventually { resolver.tcpQueries.count == 1 })
        let f = h.forwarder
        try h.loop.submitAndWait { f.value.forget(client: ForwarderHarness.context.client) }
        #expect(h.outstanding == 0)
        usleep(500_000)
        #expect(replies.items.isEmpty)
        #expect(h.counters.tcpRetryFailures == 0)
    }

    @Test func droppedInputIsReported() throws {
        let h = try ForwarderHarness(DNSConfiguration(upstreams: []))
        defer { h.shutdown() }
        let f = h.forwarder
        func accepted(_ bytes: [UInt8]) -> Bool {
            try! h.loop.submitAndWait { bytes.withUnsafeBytes { f.value.handle(query: $0, context: Self.tcpGuest) { _ in } } }
        }
        #expect(!accepted([1, 2, 3]))
        var response = makeQuery(id: 1, "example.test")
        response[2] |= 0x80
        #expect(!accepted(response))
        #expect(accepted(makeQuery(id: 2, "host.gateway.internal")))
        #expect(accepted([0, 3, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]))  // FORMERR is a reply
    }
}
