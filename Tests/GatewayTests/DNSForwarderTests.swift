// The DNS forwarder on a real event loop against fake resolvers on 127.0.0.1: local names,
// denied names, forwarding under the guest's ID, failover, SERVFAIL, TC, malformed queries, caps.
import Foundation
import Gateway
import GatewayTestSupport
import Synchronization
import Testing
import Wire

/// A forwarder on its own loop thread, and a way to ask it and wait.
final class ForwarderHarness: Sendable {
    let loop: EventLoop
    let forwarder: LoopBound<DNSForwarder>

    init(_ configuration: DNSConfiguration) throws {
        loop = try EventLoop(name: "dns-test")
        loop.startThread()
        let l = loop
        forwarder = try loop.submitAndWait { LoopBound(DNSForwarder(loop: l, configuration: configuration), loop: l) }
    }

    /// Hands `query` to the forwarder; the reply, or nil when none came within `timeout`.
    func ask(_ query: [UInt8], _ context: DNSQueryContext = ForwarderHarness.context, timeout: Double = 5) -> [UInt8]? {
        let inbox = Inbox()
        let done = DispatchSemaphore(value: 0)
        let f = forwarder
        loop.submit {
            _ = query.withUnsafeBytes { bytes in
                f.value.handle(query: bytes, context: context) { reply in
                    inbox.append(reply)
                    done.signal()
                }
            }
        }
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return inbox.items.first
    }

    /// Hands `query` over without waiting; replies land in `replies`.
    func send(_ query: [UInt8], _ context: DNSQueryContext = ForwarderHarness.context, replies: Inbox) {
        let f = forwarder
        try! loop.submitAndWait {
            _ = query.withUnsafeBytes { bytes in
                f.value.handle(query: bytes, context: context) { reply in replies.append(reply) }
            }
        }
    }

    var counters: DNSForwarder.Counters {
        let f = forwarder
        return try! loop.submitAndWait { f.value.counters }
    }

    var outstanding: Int {
        let f = forwarder
        return try! loop.submitAndWait { f.value.outstandingCount }
    }

    func shutdown() {
        let f = forwarder
        try? loop.submitAndWait { f.value.close() }
        loop.stop()
    }

    static let context = DNSQueryContext(gatewayIPv4: IPv4Address(10, 0, 2, 2), gatewayIPv6: IPv6Address("fd00::2")!)
}

/// Replies collected on the loop thread, read from the test's.
final class Inbox: Sendable {
    private let storage = Mutex<[[UInt8]]>([])
    func append(_ reply: [UInt8]) { storage.withLock { $0.append(reply) } }
    var items: [[UInt8]] { storage.withLock { $0 } }
}

func makeQuery(id: UInt16, _ name: String, _ type: DNSRecordType = .a, edns: UInt16? = nil) -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: 512)
    let n = buffer.withUnsafeMutableBytes {
        try! DNSQueryBuilder.emit(id: id, name: name, type: type, ednsPayloadSize: edns, into: $0)
    }
    return Array(buffer[..<n])
}

/// A reply as its parts, read while the bytes are alive.
struct Reply {
    var id: UInt16
    var header: DNSHeader
    var code: DNSResponseCode
    var question: String?
    var a: [IPv4Address] = []
    var aaaa: [IPv6Address] = []
    var answerCount: Int
    var edns: UInt16?
    var size: Int

    init(_ bytes: [UInt8]) throws {
        (id, header, code, question, a, aaaa, answerCount, edns) = try bytes.withUnsafeBytes { b in
            let m = try DNSMessage.parse(b)
            var a: [IPv4Address] = []
            var aaaa: [IPv6Address] = []
            var count = 0
            for r in m.answers {
                count += 1
                if case .a(let x) = r.data { a.append(x) }
                if case .aaaa(let x) = r.data { aaaa.append(x) }
            }
            return (m.header.id, m.header, m.responseCode, m.question?.name.text, a, aaaa, count, m.edns?.udpPayloadSize)
        }
        size = bytes.count
    }
}

@Suite(.serialized)
struct DNSForwarderTests {
    @Test func localNamesAnswerWithTheGatewayAddresses() throws {
        var config = DNSConfiguration(upstreams: [])
        config.localNames = ["host.gateway.internal", "gw.sandbox.test"]
        let h = try ForwarderHarness(config)
        defer { h.shutdown() }

        let a = try Reply(#require(h.ask(makeQuery(id: 0x1234, "host.gateway.internal"))))
        #expect(a.id == 0x1234)
        #expect(a.header.isResponse && a.header.authoritative && a.header.recursionDesired)
        #expect(a.code == .noError)
        #expect(a.question == "host.gateway.internal")
        #expect(a.a == [IPv4Address(10, 0, 2, 2)])
        #expect(a.edns == nil)

        let aaaa = try Reply(#require(h.ask(makeQuery(id: 7, "HOST.Gateway.INTERNAL.", .aaaa, edns: 1232))))
        #expect(aaaa.id == 7)
        #expect(aaaa.aaaa == [IPv6Address("fd00::2")!])
        #expect(aaaa.answerCount == 1)
        #expect(aaaa.edns == 1232)

        let any = try Reply(#require(h.ask(makeQuery(id: 8, "gw.sandbox.test", .any))))
        #expect(any.a == [IPv4Address(10, 0, 2, 2)] && any.aaaa == [IPv6Address("fd00::2")!])

        // The name exists; other types have no data.
        let mx = try Reply(#require(h.ask(makeQuery(id: 9, "host.gateway.internal", .mx))))
        #expect(mx.code == .noError && mx.answerCount == 0)

        // A sandbox without IPv6: AAAA has no data, but the name still exists.
        let v4only = DNSQueryContext(gatewayIPv4: IPv4Address(10, 0, 2, 2))
        let none = try Reply(#require(h.ask(makeQuery(id: 10, "host.gateway.internal", .aaaa), v4only)))
        #expect(none.code == .noError && none.answerCount == 0)

        let c = h.counters
        #expect(c.queries == 5 && c.localAnswers == 5 && c.forwarded == 0 && c.servfail == 0)
    }

    @Test func deniedSuffixesAreNXDOMAIN() throws {
        let resolver = try FakeResolver(.table(["xblocked.test": [IPv4Address(192, 0, 2, 1)]]))
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream]))
        defer { h.shutdown() }
        var context = ForwarderHarness.context
        context.policy = try DNSPolicy(deniedSuffixes: ["blocked.test", "host.gateway.internal"])

        for name in ["x.blocked.test", "blocked.test", "A.B.BLOCKED.Test.", "host.gateway.internal"] {
            let r = try Reply(#require(h.ask(makeQuery(id: 99, name), context)))
            #expect(r.code == .nameError, "\(name)")
            #expect(r.id == 99 && r.answerCount == 0)
        }
        // Not under the suffix: forwarded and answered.
        let allowed = try Reply(#require(h.ask(makeQuery(id: 100, "xblocked.test"), context)))
        #expect(allowed.code == .noError && allowed.a == [IPv4Address(192, 0, 2, 1)])
        #expect(resolver.queries.count == 1)
        let c = h.counters
        #expect(c.denied == 4 && c.forwarded == 1 && c.answered == 1)
    }

    @Test func forwardedAnswerCarriesTheGuestsID() throws {
        let resolver = try FakeResolver(.table(["example.test": [IPv4Address(192, 0, 2, 10), IPv4Address(192, 0, 2, 11)]]))
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream]))
        defer { h.shutdown() }

        for _ in 0..<8 {
            let r = try Reply(#require(h.ask(makeQuery(id: 0xBEEF, "Example.Test"))))
            #expect(r.id == 0xBEEF)
            #expect(r.code == .noError)
            #expect(r.a == [IPv4Address(192, 0, 2, 10), IPv4Address(192, 0, 2, 11)])
            #expect(!r.header.truncated)
        }
        let missing = try Reply(#require(h.ask(makeQuery(id: 3, "missing.test"))))
        #expect(missing.code == .nameError && missing.id == 3)

        // Upstream saw fresh IDs, not the guest's, and otherwise the guest's question.
        let ids = resolver.queries.prefix(8).map { UInt16($0[0]) << 8 | UInt16($0[1]) }
        #expect(ids.count == 8)
        #expect(Set(ids).count > 1)
        #expect(ids.filter { $0 == 0xBEEF }.count <= 1)
        #expect(Array(resolver.queries[0][2...]) == Array(makeQuery(id: 0, "Example.Test")[2...]))
        let c = h.counters
        #expect(c.forwarded == 9 && c.answered == 9 && h.outstanding == 0)
    }

    @Test func decoysAreDroppedAndCounted() throws {
        let resolver = try FakeResolver(.decoysThenTable(["example.test": [IPv4Address(192, 0, 2, 10)]]))
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream]))
        defer { h.shutdown() }
        let r = try Reply(#require(h.ask(makeQuery(id: 0x4242, "example.test"))))
        #expect(r.id == 0x4242 && r.a == [IPv4Address(192, 0, 2, 10)])
        // Wrong ID, wrong question, wrong port.
        #expect(eventually { h.counters.unmatchedResponses == 3 })
        #expect(h.counters.answered == 1)
    }

    @Test func failsOverFromADeadUpstream() throws {
        let dead = try FakeResolver(.silent)
        let live = try FakeResolver(.table(["example.test": [IPv4Address(192, 0, 2, 20)]]))
        defer { dead.stop(); live.stop() }
        let h = try ForwarderHarness(
            DNSConfiguration(upstreams: [dead.upstream, live.upstream], attemptTimeout: .milliseconds(300))
        )
        defer { h.shutdown() }

        let start = Date()
        let r = try Reply(#require(h.ask(makeQuery(id: 0x0101, "example.test"))))
        let elapsed = Date().timeIntervalSince(start)
        #expect(r.id == 0x0101 && r.a == [IPv4Address(192, 0, 2, 20)])
        #expect(elapsed >= 0.29 && elapsed < 2, "took \(elapsed) s")
        #expect(dead.queries.count == 1 && live.queries.count == 1)
        // Each attempt had its own ID.
        #expect(dead.queries[0][0..<2] != live.queries[0][0..<2])
        let c = h.counters
        #expect(c.upstreamTimeouts == 1 && c.answered == 1 && c.servfail == 0)
    }

    @Test func upstreamsOfBothFamilies() throws {
        let dead = try FakeResolver(.silent, ipv6: true)
        let live6 = try FakeResolver(.table(["six.test": [IPv4Address(192, 0, 2, 66)]]), ipv6: true)
        let live4 = try FakeResolver(.table(["four.test": [IPv4Address(192, 0, 2, 44)]]))
        defer { dead.stop(); live6.stop(); live4.stop() }
        let h = try ForwarderHarness(DNSConfiguration(
            upstreams: [dead.upstream, live6.upstream, live4.upstream], attemptTimeout: .milliseconds(200)
        ))
        defer { h.shutdown() }
        let six = try Reply(#require(h.ask(makeQuery(id: 61, "six.test"))))
        #expect(six.id == 61 && six.a == [IPv4Address(192, 0, 2, 66)])
        // NXDOMAIN is an answer: no failover to the IPv4 upstream.
        let four = try Reply(#require(h.ask(makeQuery(id: 62, "four.test"))))
        #expect(four.code == .nameError && live4.queries.isEmpty)
        #expect(dead.queries.count == 2 && live6.queries.count == 2)
        #expect(h.counters.upstreamTimeouts == 2)

        let v4first = try ForwarderHarness(DNSConfiguration(upstreams: [live4.upstream, live6.upstream]))
        defer { v4first.shutdown() }
        #expect(try Reply(#require(v4first.ask(makeQuery(id: 63, "four.test")))).a == [IPv4Address(192, 0, 2, 44)])
    }

    @Test func allUpstreamsDeadIsSERVFAIL() throws {
        let first = try FakeResolver(.silent)
        let second = try FakeResolver(.silent)
        defer { first.stop(); second.stop() }
        let h = try ForwarderHarness(
            DNSConfiguration(upstreams: [first.upstream, second.upstream], attemptTimeout: .milliseconds(200))
        )
        defer { h.shutdown() }

        let start = Date()
        let r = try Reply(#require(h.ask(makeQuery(id: 0x0202, "example.test", edns: 1232))))
        let elapsed = Date().timeIntervalSince(start)
        #expect(r.id == 0x0202 && r.code == .serverFailure && r.question == "example.test")
        #expect(r.edns != nil)
        #expect(elapsed >= 0.39 && elapsed < 2, "took \(elapsed) s")
        #expect(first.queries.count == 1 && second.queries.count == 1)
        let c = h.counters
        #expect(c.upstreamTimeouts == 2 && c.servfail == 1 && h.outstanding == 0)
    }

    @Test func noUpstreamsIsSERVFAIL() throws {
        let h = try ForwarderHarness(DNSConfiguration(upstreams: []))
        defer { h.shutdown() }
        let r = try Reply(#require(h.ask(makeQuery(id: 5, "example.test"))))
        #expect(r.code == .serverFailure && r.id == 5)
    }

    @Test func servfailAndRefusedMoveOnToTheNextUpstream() throws {
        let failing = try FakeResolver(.fail(.serverFailure))
        let refusing = try FakeResolver(.fail(.refused))
        let live = try FakeResolver(.table(["example.test": [IPv4Address(192, 0, 2, 30)]]))
        defer { failing.stop(); refusing.stop(); live.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [failing.upstream, refusing.upstream, live.upstream]))
        defer { h.shutdown() }
        let r = try Reply(#require(h.ask(makeQuery(id: 11, "example.test"))))
        #expect(r.a == [IPv4Address(192, 0, 2, 30)] && r.id == 11)
        #expect(failing.queries.count == 1 && refusing.queries.count == 1 && live.queries.count == 1)

        // With nowhere left to go, the last upstream's answer is relayed as it is.
        let only = try ForwarderHarness(DNSConfiguration(upstreams: [refusing.upstream]))
        defer { only.shutdown() }
        let refused = try Reply(#require(only.ask(makeQuery(id: 12, "example.test"))))
        #expect(refused.code == .refused && refused.id == 12)
        #expect(only.counters.servfail == 0)
    }

    @Test func oversizeAnswersAreTruncated() throws {
        let resolver = try FakeResolver(.huge(count: 100))
        defer { resolver.stop() }
        let h = try ForwarderHarness(DNSConfiguration(upstreams: [resolver.upstream]))
        defer { h.shutdown() }

        // Classic UDP: 512 bytes at most.
        let plain = try Reply(#require(h.ask(makeQuery(id: 0x0303, "big.test"))))
        #expect(plain.header.truncated)
        #expect(plain.id == 0x0303 && plain.answerCount == 0 && plain.question == "big.test" && plain.edns == nil)
        #expect(plain.size <= 512)

        // EDNS 4096 over UDP, on a link that carries 1232: still too big, and the reply keeps EDNS.
        let edns = try Reply(#require(h.ask(makeQuery(id: 0x0304, "big.test", edns: 4096))))
        #expect(edns.header.truncated && edns.answerCount == 0 && edns.edns == 1232)
        // The forwarder asked upstream for no more than the guest can take.
        let asked = try resolver.queries[1].withUnsafeBytes { try DNSMessage.parse($0).edns?.udpPayloadSize }
        #expect(asked == 1232)

        // The retry over TCP gets everything, and no OPT record the guest did not send.
        var tcp = ForwarderHarness.context
        tcp.maxReplySize = DNSQueryContext.tcpReplySize
        let full = try Reply(#require(h.ask(makeQuery(id: 0x0305, "big.test"), tcp)))
        #expect(!full.header.truncated && full.answerCount == 100 && full.a.count == 100 && full.edns == nil)
        #expect(full.id == 0x0305)
        #expect(full.header.additionalCount == 0)
        let added = try resolver.queries[2].withUnsafeBytes { try DNSMessage.parse($0).edns?.udpPayloadSize }
        #expect(added == 4096)

        // Small enough: passed through whole.
        let small = try FakeResolver(.huge(count: 10))
        defer { small.stop() }
        let h2 = try ForwarderHarness(DNSConfiguration(upstreams: [small.upstream]))
        defer { h2.shutdown() }
        let fits = try Reply(#require(h2.ask(makeQuery(id: 0x0306, "small.test"))))
        #expect(!fits.header.truncated && fits.answerCount == 10)
        #expect(h.counters.truncated == 2 && h2.counters.truncated == 0)
    }

    @Test func malformedQueries() throws {
        let h = try ForwarderHarness(DNSConfiguration(upstreams: []))
        defer { h.shutdown() }

        // Too short for a header: dropped, no reply.
        #expect(h.ask([0x12, 0x34, 0x01, 0x00, 0x00], timeout: 0.3) == nil)
        #expect(h.ask([], timeout: 0.3) == nil)
        // A response is never answered.
        var response = makeQuery(id: 1, "example.test")
        response[2] |= 0x80
        #expect(h.ask(response, timeout: 0.3) == nil)
        #expect(h.counters.dropped == 3)

        // A header promising a question that is not there: FORMERR with the guest's ID.
        let headerOnly: [UInt8] = [0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        let formerr = try #require(h.ask(headerOnly))
        #expect(formerr.count == 12)
        let fh = try formerr.withUnsafeBytes { try DNSHeader.parse($0) }
        #expect(fh.id == 0xABCD && fh.isResponse && fh.rcode == 1 && fh.recursionDesired && fh.questionCount == 0)

        // Every truncation of a good query: FORMERR or dropped, never anything else.
        let good = makeQuery(id: 0x7777, "example.test", edns: 1232)
        for cut in 0..<good.count {
            let reply = h.ask(Array(good[..<cut]), timeout: cut < 12 ? 0.05 : 5)
            if cut < 12 {
                #expect(reply == nil)
            } else {
                let r = try Reply(#require(reply))
                #expect(r.code == .formatError && r.id == 0x7777)
            }
        }

        // No question at all.
        let noQuestion: [UInt8] = [0x00, 0x09, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]
        let nq = try Reply(#require(h.ask(noQuestion)))
        #expect(nq.code == .formatError && nq.id == 9)
        // Two questions (RFC 9619).
        var two = makeQuery(id: 10, "a.test")
        two[5] = 2
        two += makeQuery(id: 0, "b.test")[12...]
        #expect(try Reply(#require(h.ask(two))).code == .formatError)
        // A compression loop in the name.
        let loop: [UInt8] = [0, 11, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        #expect(try Reply(#require(h.ask(loop))).code == .formatError)
        // STATUS is not implemented.
        var status = makeQuery(id: 12, "example.test")
        status[2] = status[2] & 0x87 | 2 << 3
        #expect(try Reply(#require(h.ask(status))).code == .notImplemented)
        // EDNS version 1: BADVERS, whose high bits ride in our OPT record.
        var v1 = makeQuery(id: 13, "example.test", edns: 1232)
        v1[v1.count - 5] = 1
        let badvers = try Reply(#require(h.ask(v1)))
        #expect(badvers.code == .badVersion && badvers.id == 13)

        let c = h.counters
        #expect(c.formatErrors == 1 + (good.count - 12) + 3)
        #expect(c.unsupported == 2)
    }

    @Test func outstandingCaps() throws {
        let dead = try FakeResolver(.silent)
        defer { dead.stop() }
        var config = DNSConfiguration(upstreams: [dead.upstream], attemptTimeout: .seconds(5))
        config.maxOutstanding = 3
        config.maxOutstandingPerClient = 2
        let h = try ForwarderHarness(config)
        defer { h.shutdown() }
        let replies = Inbox()
        var sandbox1 = ForwarderHarness.context
        sandbox1.client = 1
        var sandbox2 = ForwarderHarness.context
        sandbox2.client = 2

        h.send(makeQuery(id: 1, "a.test"), sandbox1, replies: replies)
        h.send(makeQuery(id: 2, "b.test"), sandbox1, replies: replies)
        #expect(h.outstanding == 2 && replies.items.isEmpty)
        // Sandbox 1 is at its own cap: SERVFAIL at once.
        h.send(makeQuery(id: 3, "c.test"), sandbox1, replies: replies)
        #expect(try replies.items.map(Reply.init).map { [$0.id: $0.code] } == [[3: .serverFailure]])
        // Sandbox 2 still gets in, up to the forwarder's cap.
        h.send(makeQuery(id: 4, "d.test"), sandbox2, replies: replies)
        #expect(h.outstanding == 3)
        h.send(makeQuery(id: 5, "e.test"), sandbox2, replies: replies)
        #expect(replies.items.count == 2)
        let c = h.counters
        #expect(c.overCapacity == 2 && c.servfail == 2 && c.forwarded == 3)

        // A sandbox going away takes its queries with it, without replies.
        let f = h.forwarder
        try h.loop.submitAndWait { f.value.forget(client: 1) }
        #expect(h.outstanding == 1)
        h.send(makeQuery(id: 6, "f.test"), sandbox1, replies: replies)
        #expect(h.outstanding == 2 && replies.items.count == 2)
    }
}

struct DNSPolicyTests {
    func denies(_ policy: DNSPolicy, _ name: String) -> Bool {
        makeQuery(id: 0, name).withUnsafeBytes { policy.denies(try! DNSMessage.parse($0).question!.name) }
    }

    @Test func suffixes() throws {
        let p = try DNSPolicy(deniedSuffixes: ["blocked.test", "Ads.Example"])
        #expect(denies(p, "blocked.test"))
        #expect(denies(p, "x.blocked.test"))
        #expect(denies(p, "a.b.c.BLOCKED.TEST."))
        #expect(denies(p, "tracker.ads.example"))
        #expect(!denies(p, "xblocked.test"))
        #expect(!denies(p, "blocked.test.evil"))
        #expect(!denies(p, "test"))
        #expect(!denies(p, "example"))
        #expect(!denies(p, "ads.example.org"))
        #expect(!denies(DNSPolicy.none, "blocked.test"))
        let all = try DNSPolicy(deniedSuffixes: ["."])
        #expect(denies(all, "anything.at.all") && denies(all, "."))
    }

    @Test(arguments: ["", "a..b", String(repeating: "x", count: 64) + ".test"])
    func badSuffixes(suffix: String) {
        #expect(throws: GatewayError.self) { try DNSPolicy(deniedSuffixes: ["ok.test", suffix]) }
    }
}
