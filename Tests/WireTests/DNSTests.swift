// DNS parsing and building against a dig-style query and a resolver's compressed response:
// truncations, pointer loops, label and name bounds, lying counts, builder round trips and TC.
import Testing
@testable import Wire

@Suite struct DNSTests {
    /// dig example.com A from 10.0.2.15 to the gateway's resolver 10.0.2.3: RD and AD set,
    /// EDNS with a 1232-byte payload and a client cookie (option 10).
    static let digQueryFrame: [UInt8] = [
        0x52, 0x55, 0x0A, 0x00, 0x02, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00, 0x45, 0x00,
        0x00, 0x50, 0x4D, 0x2E, 0x40, 0x00, 0x40, 0x11, 0xD5, 0x5D, 0x0A, 0x00, 0x02, 0x0F, 0x0A, 0x00,
        0x02, 0x03, 0xB2, 0x6E, 0x00, 0x35, 0x00, 0x3C, 0x04, 0xAA, 0x1A, 0x2B, 0x01, 0x20, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, 0x65, 0x78, 0x61, 0x6D, 0x70, 0x6C, 0x65, 0x03, 0x63,
        0x6F, 0x6D, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x29, 0x04, 0xD0, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x0C, 0x00, 0x0A, 0x00, 0x08, 0x3C, 0x8A, 0x1F, 0x2E, 0x9B, 0x7D, 0x4A, 0x10,
    ]
    /// The resolver's answer to www.github.com A: a CNAME whose target points into the
    /// question (0xC010), an A record owned by that same pointer, and an OPT record.
    static let githubResponseFrame: [UInt8] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0A, 0x00, 0x02, 0x02, 0x08, 0x00, 0x45, 0x00,
        0x00, 0x65, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x22, 0x77, 0x0A, 0x00, 0x02, 0x03, 0x0A, 0x00,
        0x02, 0x0F, 0x00, 0x35, 0xB2, 0x6E, 0x00, 0x51, 0x21, 0x8A, 0xBE, 0xEF, 0x81, 0x80, 0x00, 0x01,
        0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x03, 0x77, 0x77, 0x77, 0x06, 0x67, 0x69, 0x74, 0x68, 0x75,
        0x62, 0x03, 0x63, 0x6F, 0x6D, 0x00, 0x00, 0x01, 0x00, 0x01, 0xC0, 0x0C, 0x00, 0x05, 0x00, 0x01,
        0x00, 0x00, 0x0E, 0x10, 0x00, 0x02, 0xC0, 0x10, 0xC0, 0x10, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x3C, 0x00, 0x04, 0x8C, 0x52, 0x79, 0x04, 0x00, 0x00, 0x29, 0x04, 0xD0, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ]
    static func payload(_ frame: [UInt8]) throws -> [UInt8] { try SampleFrame.udpPayload(frame) }

    /// Parses and drops the result (a message must not outlive its bytes; see `with`).
    static func parse(_ bytes: [UInt8]) throws(WireError) {
        let result: Result<Void, WireError> = bytes.withUnsafeBytes { b in
            do throws(WireError) {
                _ = try DNSMessage.parse(b)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Runs `body` on the parsed message while its bytes are alive.
    static func with<R>(_ bytes: [UInt8], _ body: (DNSMessage) throws -> R) throws -> R {
        try bytes.withUnsafeBytes { b in try body(try DNSMessage.parse(b)) }
    }

    // MARK: Parsing real messages

    @Test func digQuery() throws {
        let q = try Self.payload(Self.digQueryFrame)
        try Self.with(q) { m in
            #expect(m.header.id == 0x1A2B)
            #expect(!m.header.isResponse)
            #expect(m.header.opcode == .query)
            #expect(m.header.recursionDesired)
            #expect(m.header.authenticData)
            #expect(!m.header.truncated)
            #expect(m.header.questionCount == 1 && m.header.additionalCount == 1)
            let question = try #require(m.question)
            #expect(question.type == .a && question.qclass == .internet)
            #expect(question.name.text == "example.com")
            #expect(question.name.matches("example.com"))
            #expect(question.name.matches("EXAMPLE.com."))
            #expect(!question.name.matches("example.org"))
            #expect(!question.name.matches("www.example.com"))
            #expect(question.name.wireLength == 13 && question.name.labelCount == 2)
            let edns = try #require(m.edns)
            #expect(edns.udpPayloadSize == 1232 && edns.version == 0 && !edns.dnssecOK)
            #expect(edns.options.count == 12 && edns.options.uncheckedBE16(0) == 10)
            #expect(m.responseCode == .noError)
            #expect(m.endOffset == q.count)
            #expect(Array(m.questions).count == 1)
            #expect(Array(m.answers).isEmpty)
            #expect(Array(m.additionals).map(\.type) == [.opt])
        }
    }

    @Test func compressedResponse() throws {
        let r = try Self.payload(Self.githubResponseFrame)
        try Self.with(r) { m in
            #expect(m.header.isResponse && m.header.recursionAvailable && m.header.recursionDesired)
            #expect(m.header.id == 0xBEEF)
            let answers = Array(m.answers)
            try #require(answers.count == 2)
            #expect(answers[0].name.text == "www.github.com")
            #expect(answers[0].type == .cname && answers[0].ttl == 3600)
            guard case .cname(let target) = answers[0].data else {
                Issue.record("not a CNAME")
                return
            }
            #expect(target.text == "github.com")
            #expect(target.offset == 44 && target.wireLength == 12)
            #expect(answers[1].name == target)
            #expect(answers[1].data == .a(IPv4Address(140, 82, 121, 4)))
            #expect(answers[1].description == "github.com 60 A 140.82.121.4")
            #expect(m.edns?.udpPayloadSize == 1232)
            #expect(Array(m.authorities).isEmpty)
        }
    }

    /// Every strict prefix of each message throws: the counts promise what is cut off.
    @Test(arguments: [DNSTests.digQueryFrame, DNSTests.githubResponseFrame])
    func everyTruncationThrows(_ frame: [UInt8]) throws {
        let bytes = try Self.payload(frame)
        for n in 0..<bytes.count {
            #expect(throws: WireError.self, "prefix of \(n) bytes") { try Self.parse(Array(bytes[0..<n])) }
        }
        try Self.parse(bytes)
    }

    @Test func countsPromisingMoreThanExist() throws {
        var r = try Self.payload(Self.githubResponseFrame)
        r[7] = 3  // ANCOUNT 3, two present (the OPT record is read as the third answer)
        expectError(.malformed) { try Self.parse(r) }
        r[7] = 2
        r[11] = 2  // ARCOUNT 2, one present
        expectError(.truncated) { try Self.parse(r) }
        var q = try Self.payload(Self.digQueryFrame)
        q[5] = 0xFF  // QDCOUNT 255
        expectError(.truncated) { try Self.parse(q) }
    }

    // MARK: Hostile names

    /// A message with one question whose name section is `name` (QTYPE A, QCLASS IN follow).
    static func query(name: [UInt8], prefix: [UInt8] = []) -> [UInt8] {
        [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00] + prefix + name + [0x00, 0x01, 0x00, 0x01]
    }

    @Test func selfPointer() {
        expectError(.compressionLoop) { try Self.parse(Self.query(name: [0xC0, 0x0C])) }
    }

    @Test func forwardPointer() {
        expectError(.compressionLoop) { try Self.parse(Self.query(name: [0xC0, 0x20])) }
        // Past the end of the message entirely.
        expectError(.compressionLoop) { try Self.parse(Self.query(name: [0xFF, 0xFF])) }
    }

    @Test func twoPointerLoop() {
        // Answer owner at 34 points back to 14, 14 points to 12, 12 points to 14.
        let loop: [UInt8] = [
            0x12, 0x34, 0x81, 0x80, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
            0xC0, 0x0E, 0xC0, 0x0C,  // 12: -> 14, 14: -> 12
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xC0, 0x0E, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04, 10, 0, 2, 3,
        ]
        expectError(.compressionLoop) { try Self.parse(loop) }
    }

    /// A label that contains a pointer's bytes: reading must not cycle 13 → 12 → 15 → 13.
    @Test func pointerIntoLabelLoop() {
        let bytes: [UInt8] = [
            0x12, 0x34, 0x81, 0x80, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
            0x02, 0xC0, 0x0C, 0xC0, 0x0D, 0x00,  // 12: label (C0 0C), 15: -> 13
            0xC0, 0x0D, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04, 10, 0, 2, 3,  // 18: owner -> 13
        ]
        expectError(.compressionLoop) { try Self.parse(bytes) }
    }

    /// A chain of pointers each pointing at the one before, hidden in an opaque record's data,
    /// and a second record whose owner enters the chain at its far end.
    static func pointerChain(enteringAt k: Int) -> [UInt8] {
        // Record 1 at 12: root owner, unknown type, RDATA from 23: "a" then 200 pointers.
        var rdata: [UInt8] = [0x01, 0x61, 0x00]
        for i in 0..<200 {
            let target = i == 0 ? 23 : 26 + 2 * (i - 1)
            rdata += [0xC0 | UInt8(target >> 8), UInt8(truncatingIfNeeded: target)]
        }
        var msg: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00]
        msg += [0x00, 0xFF, 0x00, 0x00, 0x01, 0, 0, 0, 60, UInt8(rdata.count >> 8), UInt8(truncatingIfNeeded: rdata.count)] + rdata
        let entry = 26 + 2 * k
        msg += [0xC0 | UInt8(entry >> 8), UInt8(truncatingIfNeeded: entry), 0x00, 0x01, 0x00, 0x01, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]
        return msg
    }

    @Test func longPointerChainHitsHopLimit() throws {
        // 1 + 200 hops: over the limit of 127 although every pointer points backwards.
        expectError(.compressionLoop) { try Self.parse(Self.pointerChain(enteringAt: 199)) }
        // 1 + 100 hops is within it, and the owner reads as "a".
        try Self.with(Self.pointerChain(enteringAt: 99)) { m in
            #expect(Array(m.answers).last?.name.text == "a")
        }
    }

    @Test func labelOf64Bytes() {
        expectError(.malformed) { try Self.parse(Self.query(name: [0x40] + Array(repeating: 0x61, count: 64) + [0x00])) }
        // 63 is the most a label may hold.
        #expect(throws: Never.self) { try Self.parse(Self.query(name: [0x3F] + Array(repeating: 0x61, count: 63) + [0x00])) }
        // The reserved 10 label type.
        expectError(.malformed) { try Self.parse(Self.query(name: [0x80, 0x00])) }
    }

    static func name(labelLengths: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for n in labelLengths { out += [UInt8(n)] + Array(repeating: 0x62, count: n) }
        return out + [0]
    }

    @Test func nameOf256Bytes() throws {
        // 3 × 64 + 63 + 1 = 256 octets: one too many. 3 × 64 + 62 + 1 = 255: the maximum.
        expectError(.malformed) { try Self.parse(Self.query(name: Self.name(labelLengths: [63, 63, 63, 62]))) }
        let longest = Self.query(name: Self.name(labelLengths: [63, 63, 63, 61]))
        try Self.with(longest) { m in #expect(m.question?.name.wireLength == 255) }
    }

    @Test func nameOver255ThroughPointers() {
        // Question: 200 octets of labels; answer owner: 60 more octets then a pointer to it.
        let q = Self.name(labelLengths: [63, 63, 63, 7])  // 4 × 1 + 196 + 1 = 201
        var msg: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00] + q + [0, 1, 0, 1]
        msg += [60] + Array(repeating: 0x63, count: 60) + [0xC0, 0x0C]
        msg += [0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]
        expectError(.malformed) { try Self.parse(msg) }
    }

    @Test func hostileRecords() throws {
        // Offsets in the response: CNAME RDLENGTH 42–43, A record type 48–49, A RDLENGTH
        // 56–57, A data 58–61, OPT record 62–72.
        let r = try Self.payload(Self.githubResponseFrame)
        // A record with RDLENGTH 5 (and five bytes of data).
        var bad = Array(r[0..<62]) + [9] + Array(r[62...])
        bad[57] = 5
        expectError(.malformed) { try Self.parse(bad) }
        // RDLENGTH past the end.
        bad = r
        bad[57] = 0xF0
        expectError(.truncated) { try Self.parse(bad) }
        // CNAME data whose name ends before RDLENGTH does.
        bad = r
        bad[43] = 3
        expectError(.malformed) { try Self.parse(bad) }
        // OPT in the answer section.
        bad = r
        bad[49] = 41
        expectError(.malformed) { try Self.parse(bad) }
        // Two OPT records.
        bad = r + [0x00, 0x00, 0x29, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        bad[11] = 2
        expectError(.malformed) { try Self.parse(bad) }
        // OPT not owned by the root.
        bad = r
        bad[62] = 0xC0
        bad.insert(0x0C, at: 63)
        expectError(.malformed) { try Self.parse(bad) }
        // An EDNS option whose length (bytes 42–43 of the query) runs past the OPT data.
        var q = try Self.payload(Self.digQueryFrame)
        q[43] = 9
        expectError(.badOption) { try Self.parse(q) }
        // An EDNS option header cut short.
        q = try Self.payload(Self.digQueryFrame)
        q[39] = 2
        q.removeLast(10)
        expectError(.badOption) { try Self.parse(q) }
    }

    @Test func shortHeader() {
        for n in 0..<12 { expectError(.truncated) { try Self.parse(Array(repeating: 0, count: n)) } }
    }

    // MARK: Names to and from text

    @Test func textExtraction() throws {
        // Labels "a.b" (with a dot), "c d" (a space) and "\" (a backslash).
        let bytes: [UInt8] = [3, 0x61, 0x2E, 0x62, 3, 0x63, 0x20, 0x64, 1, 0x5C, 0]
        try bytes.withUnsafeBytes { b in
            let (name, end) = try DNSName.parse(b, at: 0)
            #expect(end == bytes.count)
            #expect(name.text == #"a\.b.c\032d.\\"#)
            #expect(name.matches(#"a\.b.c\032d.\\"#))
            #expect(!name.matches("a.b.c d.\\"))
            var small = [UInt8](repeating: 0, count: 5)
            small.withUnsafeMutableBytes { out -> Void in
                #expect(throws: WireError(.noSpace, "dns")) { _ = try name.copyText(into: out) }
            }
            var wire = [UInt8](repeating: 0, count: 32)
            let n = try wire.withUnsafeMutableBytes { try name.copyWire(into: $0) }
            #expect(Array(wire[0..<n]) == bytes)
        }
        let root: [UInt8] = [0]
        try root.withUnsafeBytes { b in
            let name = try DNSName.parse(b, at: 0).name
            #expect(name.isRoot && name.text == "." && name.matches(".") && name.matches(""))
        }
    }

    @Test(arguments: ["a..b", ".a", "..", String(repeating: "x", count: 64) + ".com", "a\\", "a\\25", "a\\256"])
    func encodeRejects(_ text: String) {
        var buffer = [UInt8](repeating: 0, count: 300)
        buffer.withUnsafeMutableBytes { out -> Void in
            #expect(throws: WireError(.malformed, "dns")) { _ = try DNSName.encode(text, into: out, at: 0) }
        }
    }

    @Test func encodeLengthBounds() throws {
        let label63 = String(repeating: "a", count: 63)
        let ok = [label63, label63, label63, String(repeating: "b", count: 61)].joined(separator: ".")
        let tooLong = [label63, label63, label63, String(repeating: "b", count: 62)].joined(separator: ".")
        var buffer = [UInt8](repeating: 0, count: 300)
        try buffer.withUnsafeMutableBytes { out throws -> Void in
            #expect(try DNSName.encode(ok, into: out, at: 0) == 255)
            #expect(try DNSName.encode(ok + ".", into: out, at: 0) == 255)
            #expect(throws: WireError(.malformed, "dns")) { _ = try DNSName.encode(tooLong, into: out, at: 0) }
            #expect(throws: WireError(.noSpace, "dns")) {
                _ = try DNSName.encode("example.com", into: UnsafeMutableRawBufferPointer(rebasing: out[0..<12]), at: 0)
            }
            #expect(try DNSName.encode("example.com", into: UnsafeMutableRawBufferPointer(rebasing: out[0..<13]), at: 0) == 13)
        }
    }

    // MARK: Round trips

    @Test func headerRoundTrip() throws {
        let h = DNSHeader(
            id: 0xCAFE, isResponse: true, opcode: .update, authoritative: true, truncated: true, recursionDesired: false,
            recursionAvailable: true, reservedBit: true, authenticData: false, checkingDisabled: true, rcode: 5,
            questionCount: 1, answerCount: 2, authorityCount: 3, additionalCount: 4
        )
        var buffer = [UInt8](repeating: 0, count: 12)
        _ = try buffer.withUnsafeMutableBytes { try h.emit(into: $0) }
        let back = try buffer.withUnsafeBytes { try DNSHeader.parse($0) }
        #expect(back == h)
        for frame in [Self.digQueryFrame, Self.githubResponseFrame] {
            let bytes = Array(try Self.payload(frame)[0..<12])
            var out = [UInt8](repeating: 0, count: 12)
            let h2 = try bytes.withUnsafeBytes { try DNSHeader.parse($0) }
            _ = try out.withUnsafeMutableBytes { try h2.emit(into: $0) }
            #expect(out == bytes)
        }
    }

    /// Each record written uncompressed parses back equal; names compare across messages.
    @Test func recordRoundTrip() throws {
        let r = try Self.payload(Self.githubResponseFrame)
        try Self.with(r) { m in
            for record in Array(m.answers) + Array(m.additionals) {
                var out = [UInt8](repeating: 0, count: 64)
                let n = try out.withUnsafeMutableBytes { try record.emit(into: $0) }
                try out.withUnsafeBytes { b in
                    let (back, end) = try DNSResourceRecord.parse(b, at: 0)
                    #expect(end == n)
                    #expect(back == record)
                }
            }
            let q = try #require(m.question)
            var out = [UInt8](repeating: 0, count: 64)
            let n = try out.withUnsafeMutableBytes { try q.emit(into: $0) }
            #expect(n == 20)
            let back = try out.withUnsafeBytes { b in try DNSQuestion.parse(b, at: 0).question == q }
            #expect(back)
        }
    }

    // MARK: Builders

    @Test func queryBuilder() throws {
        var out = [UInt8](repeating: 0, count: 512)
        let n = try out.withUnsafeMutableBytes {
            try DNSQueryBuilder.emit(id: 0x1A2B, name: "example.com", type: .a, ednsPayloadSize: 1232, into: $0)
        }
        // The dig sample without its AD bit and cookie option.
        var expected = try Self.payload(Self.digQueryFrame)
        expected.removeLast(12)
        expected[3] = 0x00
        expected[expected.count - 1] = 0
        #expect(Array(out[0..<n]) == expected)
        #expect(throws: WireError(.noSpace, "dns")) {
            try out.withUnsafeMutableBytes {
                _ = try DNSQueryBuilder.emit(id: 1, name: "example.com", type: .a, ednsPayloadSize: 1232, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(n - 1)]))
            }
        }
    }

    /// Built from the same query, the response is byte for byte the resolver's: CNAME target
    /// compressed to a pointer into the question, A record owned by the same pointer.
    @Test func responseBuilderMatchesResolver() throws {
        var query = [UInt8](repeating: 0, count: 512)
        let qn = try query.withUnsafeMutableBytes {
            try DNSQueryBuilder.emit(id: 0xBEEF, name: "www.github.com", type: .a, ednsPayloadSize: 4096, into: $0)
        }
        let expected = try Self.payload(Self.githubResponseFrame)
        var out = [UInt8](repeating: 0, count: 1500)
        let n = try Array(query[0..<qn]).withUnsafeBytes { qb in
            let q = try DNSMessage.parse(qb)
            return try out.withUnsafeMutableBytes { ob in
                var b = try DNSResponseBuilder(respondingTo: q, into: ob)
                let github = try #require(try b.appendCNAME("github.com", ttl: 3600))
                #expect(github.offset == 16)
                let appended = b.appendA(IPv4Address(140, 82, 121, 4), ttl: 60, owner: github)
                #expect(appended)
                return b.finish()
            }
        }
        #expect(Array(out[0..<n]) == expected)
    }

    @Test func responseAnswersRoundTrip() throws {
        let q = try Self.payload(Self.digQueryFrame)
        var out = [UInt8](repeating: 0, count: 1500)
        let n = try q.withUnsafeBytes { qb in
            let query = try DNSMessage.parse(qb)
            return try out.withUnsafeMutableBytes { ob in
                var b = try DNSResponseBuilder(respondingTo: query, into: ob, authoritative: true)
                let appended = b.appendA(IPv4Address(93, 184, 215, 14), ttl: 300)
                #expect(appended)
                let appendedAAAA = b.appendAAAA(try #require(IPv6Address("2606:2800:21f:cb07:6820:80da:af6b:8b2c")), ttl: 300)
                #expect(appendedAAAA)
                let alias = try #require(try b.appendCNAME("edge.example.net", ttl: 30))
                let appendedAlias = b.appendA(IPv4Address(192, 0, 2, 7), ttl: 30, owner: alias)
                #expect(appendedAlias)
                _ = try b.appendPTR("host.example.com", ttl: 30)
                return b.finish()
            }
        }
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.header.id == 0x1A2B && m.header.isResponse && m.header.authoritative && m.header.recursionDesired)
            #expect(m.header.recursionAvailable && !m.header.truncated && m.responseCode == .noError)
            #expect(m.question?.name.text == "example.com")
            let answers = Array(m.answers)
            #expect(answers.map(\.name.text) == ["example.com", "example.com", "example.com", "edge.example.net", "example.com"])
            #expect(answers[0].data == .a(IPv4Address(93, 184, 215, 14)))
            #expect(answers[1].data == .aaaa(IPv6Address("2606:2800:21f:cb07:6820:80da:af6b:8b2c")!))
            #expect(answers[2].description == "example.com 30 CNAME edge.example.net")
            #expect(answers[4].description == "example.com 30 PTR host.example.com")
            // "host.example.com" ends in a pointer to the question's "example.com".
            #expect(answers[4].rdata.count == 7)
            #expect(m.edns?.udpPayloadSize == 1232)
            // Every owner is a pointer.
            #expect(m.bytes.uncheckedBE16(m.answerOffset) == 0xC00C)
        }
    }

    @Test(arguments: [DNSResponseCode.nameError, .serverFailure, .refused, .formatError])
    func errorResponses(_ code: DNSResponseCode) throws {
        let q = try Self.payload(Self.digQueryFrame)
        var out = [UInt8](repeating: 0, count: 512)
        let n = try q.withUnsafeBytes { qb in
            try out.withUnsafeMutableBytes { try DNSResponseBuilder.emitError(code, respondingTo: try DNSMessage.parse(qb), into: $0) }
        }
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.responseCode == code)
            #expect(m.header.answerCount == 0 && m.question?.name.text == "example.com")
            #expect(m.header.isResponse && m.header.id == 0x1A2B)
        }
    }

    @Test func extendedResponseCode() throws {
        let q = try Self.payload(Self.digQueryFrame)
        var out = [UInt8](repeating: 0, count: 512)
        let n = try q.withUnsafeBytes { qb in
            try out.withUnsafeMutableBytes { try DNSResponseBuilder.emitError(.badVersion, respondingTo: try DNSMessage.parse(qb), into: $0) }
        }
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.header.rcode == 0 && m.edns?.extendedRcode == 1 && m.responseCode == .badVersion)
        }
    }

    /// Without EDNS the limit is 512: 30 A records fit after the 29-byte header and question,
    /// the 31st does not, and the response becomes header and question with TC set.
    @Test func truncationAt512() throws {
        var query = [UInt8](repeating: 0, count: 512)
        let qn = try query.withUnsafeMutableBytes { try DNSQueryBuilder.emit(id: 7, name: "example.com", type: .a, into: $0) }
        var out = [UInt8](repeating: 0, count: 4096)
        let n = try Array(query[0..<qn]).withUnsafeBytes { qb in
            let q = try DNSMessage.parse(qb)
            return try out.withUnsafeMutableBytes { ob in
                var b = try DNSResponseBuilder(respondingTo: q, into: ob)
                #expect(b.limit == 512)
                for i in 0..<30 { let appended = b.appendA(IPv4Address(10, 0, 0, UInt8(i)), ttl: 60); #expect(appended) }
                #expect(!b.isTruncated && b.count == 29 + 30 * 16)
                let appended = b.appendA(IPv4Address(10, 0, 1, 0), ttl: 60)
                #expect(!appended)
                #expect(b.isTruncated)
                let appendedName = try b.appendCNAME("x.example", ttl: 1)
                #expect(appendedName == nil)
                return b.finish()
            }
        }
        #expect(n == 29)
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.header.truncated && m.header.answerCount == 0 && m.edns == nil)
        }
    }

    /// With the client's EDNS size (1232 here) the limit moves, and our OPT record's 11 bytes
    /// are kept free: (1232 − 29 − 11) / 16 = 74 records.
    @Test func truncationAtEDNSSize() throws {
        let q = try Self.payload(Self.digQueryFrame)
        var out = [UInt8](repeating: 0, count: 4096)
        let n = try q.withUnsafeBytes { qb in
            let query = try DNSMessage.parse(qb)
            return try out.withUnsafeMutableBytes { ob in
                var b = try DNSResponseBuilder(respondingTo: query, into: ob)
                #expect(b.limit == 1232)
                var fitted = 0
                while b.appendA(IPv4Address(10, 0, 0, 1), ttl: 60) { fitted += 1 }
                #expect(fitted == 74)
                return b.finish()
            }
        }
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.header.truncated && m.header.answerCount == 0 && m.edns != nil && n == 40)
        }
        // An explicit limit (TCP) takes them all.
        let n2 = try q.withUnsafeBytes { qb in
            let query = try DNSMessage.parse(qb)
            return try out.withUnsafeMutableBytes { ob in
                var b = try DNSResponseBuilder(respondingTo: query, into: ob, limit: 4096)
                for _ in 0..<100 { let appended = b.appendA(IPv4Address(10, 0, 0, 1), ttl: 60); #expect(appended) }
                return b.finish()
            }
        }
        try Self.with(Array(out[0..<n2])) { m in #expect(!m.header.truncated && m.header.answerCount == 100) }
    }

    /// A CNAME whose target does not fit truncates too.
    @Test func truncationOnName() throws {
        var query = [UInt8](repeating: 0, count: 512)
        let qn = try query.withUnsafeMutableBytes { try DNSQueryBuilder.emit(id: 7, name: "example.com", type: .a, into: $0) }
        var out = [UInt8](repeating: 0, count: 512)
        try Array(query[0..<qn]).withUnsafeBytes { qb in
            let q = try DNSMessage.parse(qb)
            try out.withUnsafeMutableBytes { ob in
                var b = try DNSResponseBuilder(respondingTo: q, into: ob, limit: 60)
                let long = String(repeating: "a", count: 40) + ".org"
                let appended = try b.appendCNAME(long, ttl: 1)
                #expect(appended == nil)
                #expect(b.isTruncated && b.finish() == 29)
            }
        }
    }

    @Test func emitTruncatedCopy() throws {
        let r = try Self.payload(Self.githubResponseFrame)
        var out = [UInt8](repeating: 0, count: 512)
        let n = try r.withUnsafeBytes { rb in
            try out.withUnsafeMutableBytes { try DNSResponseBuilder.emitTruncated(try DNSMessage.parse(rb), into: $0) }
        }
        #expect(n == 32)
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.header.truncated && m.header.id == 0xBEEF && m.header.answerCount == 0)
            #expect(m.question?.name.text == "www.github.com")
        }
    }

    @Test func builderNeedsRoomForQuestion() throws {
        let q = try Self.payload(Self.digQueryFrame)
        var out = [UInt8](repeating: 0, count: 20)
        try q.withUnsafeBytes { qb in
            let query = try DNSMessage.parse(qb)
            out.withUnsafeMutableBytes { ob -> Void in
                #expect(throws: WireError(.noSpace, "dns")) { _ = try DNSResponseBuilder(respondingTo: query, into: ob) }
            }
        }
    }
}

// MARK: - OPT records and relay edits

extension DNSTests {
    /// A written OPT record parses back to the same fields and options.
    @Test func ednsRoundTrip() throws {
        let options: [UInt8] = [0x00, 0x0A, 0x00, 0x02, 0xAB, 0xCD]
        try options.withUnsafeBytes { opts in
            let opt = DNSEDNS(udpPayloadSize: 1232, extendedRcode: 1, version: 0, dnssecOK: true, reservedFlags: 0x10, options: opts)
            #expect(opt.encodedLength == DNSEDNS.fixedLength + 6)
            var out = [UInt8](repeating: 0xEE, count: 64)
            let n = try out.withUnsafeMutableBytes { try opt.emit(into: $0) }
            #expect(n == opt.encodedLength)
            #expect(Array(out[0..<11]) == [0, 0, 41, 0x04, 0xD0, 0x01, 0x00, 0x80, 0x10, 0x00, 0x06])
            try out.withUnsafeBytes { b in
                let (record, end) = try DNSResourceRecord.parse(b, at: 0)
                #expect(end == n)
                #expect(try DNSEDNS(record) == opt)
            }
        }
    }

    /// Every buffer shorter than the record is refused with `.noSpace`, none written past.
    @Test func ednsEmitShortBuffers() throws {
        let opt = DNSEDNS(udpPayloadSize: 512)
        for size in 0..<DNSEDNS.fixedLength {
            var out = [UInt8](repeating: 0xEE, count: size)
            expectError(.noSpace) { _ = try out.withUnsafeMutableBytes { try opt.emit(into: $0) } }
        }
    }

    /// An OPT record cut anywhere, or whose option overruns its RDATA, is an error.
    @Test func ednsHostileInput() throws {
        var query = [UInt8](repeating: 0, count: 512)
        let n = try query.withUnsafeMutableBytes {
            try DNSQueryBuilder.emit(id: 7, name: "example.com", type: .a, ednsPayloadSize: 1232, into: $0)
        }
        for cut in DNSHeader.length..<n { #expect(throws: WireError.self) { try Self.parse(Array(query[0..<cut])) } }
        // RDLENGTH 4 holding an option that claims 8 bytes of data.
        var overrun = Array(query[0..<n])
        overrun[n - 1] = 4
        overrun += [0x00, 0x0A, 0x00, 0x08]
        expectError(.badOption) { try Self.parse(overrun) }
    }

    /// Header edits change the fields asked for and no other byte; a short buffer is refused.
    @Test func headerEdit() throws {
        var bytes = try Self.payload(Self.githubResponseFrame)
        let original = bytes
        try bytes.withUnsafeMutableBytes { b in
            try DNSHeader.edit(b) { header in
                header.id = 0x1234
                header.rcode = UInt8(DNSResponseCode.serverFailure.rawValue)
            }
        }
        #expect(Array(bytes[0..<2]) == [0x12, 0x34])
        #expect(bytes[3] & 0x0F == 2 && bytes[3] & 0xF0 == original[3] & 0xF0 && bytes[2] == original[2])
        #expect(bytes[4...] == original[4...])
        for size in 0..<DNSHeader.length {
            var short = Array(original[0..<size])
            expectError(.truncated) { try short.withUnsafeMutableBytes { b in try DNSHeader.edit(b) { $0.id = 1 } } }
        }
    }

    /// The dig query relayed with another payload size keeps its cookie option and its length.
    @Test func replaceOPT() throws {
        let q = try Self.payload(Self.digQueryFrame)
        var out = [UInt8](repeating: 0, count: 512)
        let n = try Self.with(q) { m in
            var opt = try #require(m.edns)
            opt.udpPayloadSize = 4096
            return try out.withUnsafeMutableBytes { try m.emit(into: $0, replacingOPTWith: opt) }
        }
        #expect(n == q.count)
        var expected = q
        expected[q.count - 20] = 0x10
        expected[q.count - 19] = 0x00
        #expect(Array(out[0..<n]) == expected)
        try Self.with(Array(out[0..<n])) { m in
            let edns = try #require(m.edns)
            #expect(edns.udpPayloadSize == 4096 && edns.options.count == 12 && m.header.additionalCount == 1)
        }
    }

    /// Taking the OPT record out and putting one in again keep ARCOUNT in step.
    @Test func removeAndAddOPT() throws {
        let q = try Self.payload(Self.digQueryFrame)
        var bare = [UInt8](repeating: 0, count: 512)
        let n = try Self.with(q) { m in try bare.withUnsafeMutableBytes { try m.emit(into: $0, replacingOPTWith: nil) } }
        #expect(n == q.count - DNSEDNS.fixedLength - 12)
        bare.removeSubrange(n...)
        try Self.with(bare) { m in
            #expect(m.edns == nil && m.header.additionalCount == 0 && m.endOffset == n)
            #expect(m.question?.name.text == "example.com")
        }
        var again = [UInt8](repeating: 0, count: 512)
        let m2 = try Self.with(bare) { m in
            try again.withUnsafeMutableBytes { try m.emit(into: $0, replacingOPTWith: DNSEDNS(udpPayloadSize: 1400)) }
        }
        #expect(m2 == n + DNSEDNS.fixedLength)
        try Self.with(Array(again[0..<m2])) { m in
            #expect(m.header.additionalCount == 1 && m.edns?.udpPayloadSize == 1400 && m.edns?.options.count == 0)
        }
        // Without an OPT record, nil copies the message as it is.
        let same = try Self.with(bare) { m in try again.withUnsafeMutableBytes { try m.emit(into: $0, replacingOPTWith: nil) } }
        #expect(Array(again[0..<same]) == bare)
    }

    /// Too small a buffer is `.noSpace` at every size; records after the OPT record that would
    /// have to move are `.unsupported`, and stay put when the record keeps its length.
    @Test func optEditBounds() throws {
        let q = try Self.payload(Self.digQueryFrame)
        try Self.with(q) { m in
            let opt = DNSEDNS(udpPayloadSize: 1400)
            let needed = q.count - 12
            for size in 0..<needed {
                var out = [UInt8](repeating: 0, count: size)
                expectError(.noSpace) { _ = try out.withUnsafeMutableBytes { try m.emit(into: $0, replacingOPTWith: opt) } }
            }
        }
        // OPT, then an A record owned by the root.
        var query = [UInt8](repeating: 0, count: 512)
        let n = try query.withUnsafeMutableBytes {
            try DNSQueryBuilder.emit(id: 7, name: "example.com", type: .a, ednsPayloadSize: 1232, into: $0)
        }
        var trailing = Array(query[0..<n]) + [0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 2, 3]
        trailing[11] = 2
        try Self.with(trailing) { m in
            var out = [UInt8](repeating: 0, count: 512)
            expectError(.unsupported) { _ = try out.withUnsafeMutableBytes { try m.emit(into: $0, replacingOPTWith: nil) } }
            let k = try out.withUnsafeMutableBytes { try m.emit(into: $0, replacingOPTWith: DNSEDNS(udpPayloadSize: 4096)) }
            #expect(k == trailing.count && Array(out[(k - 15)..<k]) == Array(trailing[(k - 15)...]))
        }
    }

    /// The dig query with its question name turned into a pointer to offset 0: the labels then
    /// run through the header, past the question and on into the OPT record (a fuzzer found
    /// it). A relay that rewrote the ID or took the OPT record out would send on another name,
    /// or one that runs off the end.
    static let nameThroughHeaderAndOPT: [UInt8] = [
        0x1A, 0x2B, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x07, 0x65, 0x78, 0x61, 0x6D, 0x70, 0x6C, 0x65, 0x03, 0x63, 0x6F, 0x6D, 0xC0, 0x00,  // 12: example.com -> 0
        0x00, 0x01, 0x00, 0x01,
        0x00, 0x00, 0x29, 0x04, 0xF7, 0xEC, 0xFF, 0xFF, 0x00, 0x00, 0x0C,  // 30: OPT
        0x00, 0x0A, 0x00, 0x08, 0x3C, 0x8A, 0x1F, 0x2E, 0x9B, 0x7D, 0x4A, 0x10,
    ]
    /// An answer owner pointing back at a label (the last RDATA byte of the answer before it)
    /// that spans the owner's own record and ends on the OPT record's root byte.
    static let ownerEndingInOPT: [UInt8] = [
        0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01,
        0x01, 0x61, 0x00, 0x00, 0x01, 0x00, 0x01,  // 12: a. A IN
        0xC0, 0x0C, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x01, 0x0C,  // 19: TXT, RDATA 31: 12
        0xC0, 0x1F, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x00,  // 32: owner -> 31
        0x00, 0x00, 0x29, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 44: OPT
    ]

    /// Whatever parses keeps its question and records through the relay's edits: a new ID, the
    /// OPT record resized, the OPT record taken out.
    static func expectRelayEditsKeepMeaning(_ bytes: [UInt8]) throws {
        guard let texts = try? with(bytes, { m in [m.question?.description] + m.answers.map { $0.name.text } }) else { return }
        var edited: [[UInt8]] = []
        var out = [UInt8](repeating: 0, count: bytes.count + 64)
        try with(bytes) { m in
            for opt in [DNSEDNS(udpPayloadSize: 4096), nil] {
                guard let n = try? out.withUnsafeMutableBytes({ try m.emit(into: $0, replacingOPTWith: opt) }) else { continue }
                edited.append(Array(out[0..<n]))
            }
        }
        var newID = bytes
        try newID.withUnsafeMutableBytes { b in try DNSHeader.edit(b) { $0.id ^= 0xFFFF } }
        edited.append(newID)
        for copy in edited {
            let again = try with(copy) { m in [m.question?.description] + m.answers.map { $0.name.text } }
            #expect(again == texts)
        }
    }

    @Test func namesReadingHeaderOrLaterRecordsAreRefused() throws {
        expectError(.malformed) { try Self.parse(Self.nameThroughHeaderAndOPT) }
        expectError(.malformed) { try Self.parse(Self.ownerEndingInOPT) }
        // A pointer to the header is refused even where the name it reads ends there.
        expectError(.malformed) { try Self.parse(Self.query(name: [0xC0, 0x04])) }
        for message in [Self.nameThroughHeaderAndOPT, Self.ownerEndingInOPT] {
            try Self.expectRelayEditsKeepMeaning(message)
        }
        try Self.expectRelayEditsKeepMeaning(try Self.payload(Self.digQueryFrame))
        try Self.expectRelayEditsKeepMeaning(try Self.payload(Self.githubResponseFrame))
    }

    /// A truncated copy can carry our OPT record in place of the response's.
    @Test func emitTruncatedWithOPT() throws {
        let r = try Self.payload(Self.githubResponseFrame)
        var out = [UInt8](repeating: 0, count: 512)
        let n = try r.withUnsafeBytes { rb in
            try out.withUnsafeMutableBytes {
                try DNSResponseBuilder.emitTruncated(
                    try DNSMessage.parse(rb), into: $0, edns: DNSEDNS(udpPayloadSize: 1232, extendedRcode: 1))
            }
        }
        #expect(n == 32 + DNSEDNS.fixedLength)
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.header.truncated && m.header.answerCount == 0 && m.header.additionalCount == 1)
            #expect(m.edns?.udpPayloadSize == 1232 && m.edns?.extendedRcode == 1)
        }
    }
}
