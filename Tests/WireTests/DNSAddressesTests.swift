// The addresses an answer gives for its question: CNAME chains followed (pointers included),
// the shortest TTL along the chain kept, and records for names outside the chain ignored.
import Testing
@testable import Wire

@Suite struct DNSAddressesTests {
    static func name(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in text.split(separator: ".") { out += [UInt8(label.utf8.count)] + Array(label.utf8) }
        return out + [0]
    }

    static func record(_ owner: String, type: UInt16, ttl: UInt32, data: [UInt8]) -> [UInt8] {
        name(owner) + [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
            + [UInt8(ttl >> 24), UInt8(ttl >> 16 & 0xFF), UInt8(ttl >> 8 & 0xFF), UInt8(ttl & 0xFF)]
            + [UInt8(data.count >> 8), UInt8(data.count & 0xFF)] + data
    }

    static func response(question: String, qtype: UInt16 = 1, answers: [[UInt8]]) -> [UInt8] {
        [0x12, 0x34, 0x81, 0x80, 0, 1, 0, UInt8(answers.count), 0, 0, 0, 0]
            + name(question) + [UInt8(qtype >> 8), UInt8(qtype & 0xFF), 0, 1] + answers.joined()
    }

    static func resolved(_ bytes: [UInt8]) throws -> [DNSMessage.ResolvedAddress] {
        try bytes.withUnsafeBytes { b in try DNSMessage.parse(b).resolvedAddresses() }
    }

    @Test func compressedCNAMEChain() throws {
        // www.github.com CNAME github.com (TTL 3600), github.com A 140.82.121.4 (TTL 60).
        let payload = try DNSTests.payload(DNSTests.githubResponseFrame)
        let got = try Self.resolved(payload)
        #expect(got == [.init(address: .v4(IPv4Address(140, 82, 121, 4)), ttl: 60)])
    }

    @Test func chainKeepsShortestTTLAndIgnoresStrangers() throws {
        let bytes = Self.response(question: "Pypi.Test", answers: [
            Self.record("pypi.test", type: 5, ttl: 30, data: Self.name("cdn.test")),
            Self.record("cdn.test", type: 5, ttl: 300, data: Self.name("edge.cdn.test")),
            Self.record("EDGE.cdn.test", type: 1, ttl: 600, data: [198, 18, 0, 10]),
            Self.record("edge.cdn.test", type: 28, ttl: 20, data: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]),
            // Owned by a name nobody asked about: an upstream cannot vouch for it.
            Self.record("bank.test", type: 1, ttl: 600, data: [198, 18, 0, 66]),
        ])
        let got = try Self.resolved(bytes)
        #expect(got.count == 2)
        #expect(got.contains(.init(address: .v4(IPv4Address(198, 18, 0, 10)), ttl: 30)))
        #expect(got.contains { $0.ttl == 20 && $0.address != .v4(IPv4Address(198, 18, 0, 10)) })
        #expect(!got.contains { $0.address == .v4(IPv4Address(198, 18, 0, 66)) })
    }

    @Test func cnameLoopEnds() throws {
        let bytes = Self.response(question: "a.test", answers: [
            Self.record("a.test", type: 5, ttl: 60, data: Self.name("b.test")),
            Self.record("b.test", type: 5, ttl: 60, data: Self.name("a.test")),
            Self.record("b.test", type: 1, ttl: 60, data: [198, 18, 0, 1]),
        ])
        #expect(try Self.resolved(bytes) == [.init(address: .v4(IPv4Address(198, 18, 0, 1)), ttl: 60)])
    }

    @Test func longChainIsCut() throws {
        var answers: [[UInt8]] = []
        for i in 0..<40 { answers.append(Self.record("n\(i).test", type: 5, ttl: 60, data: Self.name("n\(i + 1).test"))) }
        answers.append(Self.record("n40.test", type: 1, ttl: 60, data: [198, 18, 0, 40]))
        answers.append(Self.record("n3.test", type: 1, ttl: 60, data: [198, 18, 0, 3]))
        let got = try Self.resolved(Self.response(question: "n0.test", answers: answers))
        #expect(got == [.init(address: .v4(IPv4Address(198, 18, 0, 3)), ttl: 60)])
    }
}
