// Length fields that lie in the messages above the transport: NDP options, DHCP options, DNS
// names, records and EDNS options, and the vectors of a TLS ClientHello. Each is a parse error
// (or "not a ClientHello"), read from an allocation of exactly the bytes given.
import Testing

@testable import Wire

@Suite struct MessageHostileInputTests {
    typealias F = L3Frames

    // MARK: NDP

    /// Neighbor Solicitation for fd00::2 (24 bytes) followed by `options`.
    static func solicitation(_ options: [UInt8]) -> [UInt8] {
        [135, 0, 0, 0, 0, 0, 0, 0, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2] + options
    }

    /// Router Advertisement (16 bytes) followed by `options`.
    static func advertisement(_ options: [UInt8]) -> [UInt8] {
        [134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0] + options
    }

    @Test func ndpOptionsThatLie() {
        func ns(_ bytes: [UInt8]) -> WireError.Code? { F.code(of: bytes) { try NeighborSolicitation.parse($0) } }
        func ra(_ bytes: [UInt8]) -> WireError.Code? { F.code(of: bytes) { try RouterAdvertisement.parse($0) } }
        let mac: [UInt8] = [0x52, 0x54, 0, 0x12, 0x34, 0x56]
        #expect(ns(Self.solicitation([1, 1] + mac)) == nil, "a well-formed option parses")
        #expect(ns(Array(Self.solicitation([])[..<23])) == .truncated)
        #expect(ns(Self.solicitation([1, 0] + mac)) == .badOption, "length 0")
        #expect(ns(Self.solicitation([1, 2] + mac)) == .badOption, "16 bytes claimed, 8 present")
        #expect(ns(Self.solicitation([1])) == .badOption, "no length octet")
        #expect(F.code(of: Array(Self.solicitation([])[..<23])) { try NeighborAdvertisement.parse($0) } == .truncated)
        #expect(ra(Self.advertisement([])) == nil)
        #expect(ra(Array(Self.advertisement([])[..<15])) == .truncated)
        #expect(ra(Self.advertisement([5, 2] + [UInt8](repeating: 0, count: 14))) == .badOption, "MTU of 16 bytes")
        #expect(ra(Self.advertisement([3, 3] + [UInt8](repeating: 0, count: 22))) == .badOption, "prefix of 24 bytes")
        #expect(ra(Self.advertisement([25, 2] + [UInt8](repeating: 0, count: 14))) == .badOption, "RDNSS of 16 bytes")
        #expect(ra(Self.advertisement([25, 4] + [UInt8](repeating: 0, count: 14))) == .badOption, "RDNSS past the end")
    }

    // MARK: DHCP

    /// A BOOTREQUEST header (240 bytes, magic cookie included) followed by `options`.
    static func dhcp(_ options: [UInt8], overload file: [UInt8]? = nil) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: DHCPMessage.headerLength)
        b[0] = 1
        b[1] = 1
        b[2] = 6
        b[236] = 0x63
        b[237] = 0x82
        b[238] = 0x53
        b[239] = 0x63
        if let file { b.replaceSubrange(108..<(108 + file.count), with: file) }
        return b + options
    }

    @Test func dhcpOptionsThatLie() {
        func code(_ bytes: [UInt8]) -> WireError.Code? { F.code(of: bytes) { try DHCPMessage.parse($0) } }
        #expect(code(Self.dhcp([53, 1, 1, 255])) == nil)
        #expect(code(Array(Self.dhcp([])[..<239])) == .truncated)
        #expect(code(Self.dhcp([53, 1, 1, 12, 10, 0x61, 0x62])) == .badOption, "host name of 10 bytes with 2")
        #expect(code(Self.dhcp([53, 1, 1, 50])) == .badOption, "no length octet")
        #expect(code(Self.dhcp([53, 1, 1, 50, 3, 10, 0, 2, 255])) == .badOption, "an address of 3 bytes")
        // Option 52 puts options in 'file'; the one there claims 200 bytes of its 128.
        #expect(code(Self.dhcp([52, 1, 1, 255], overload: [12, 200, 0x61])) == .badOption)
    }

    // MARK: DNS

    static let header: [UInt8] = [0x12, 0x34, 0x01, 0x00]
    static let question: [UInt8] = [3, 0x77, 0x77, 0x77, 0, 0, 1, 0, 1]

    /// A message with the given counts and body.
    static func dns(qd: UInt8 = 1, an: UInt8 = 0, ar: UInt8 = 0, _ body: [UInt8]) -> [UInt8] {
        header + [0, qd, 0, an, 0, 0, 0, ar] + body
    }

    @Test func dnsLengthsThatLie() {
        func code(_ bytes: [UInt8]) -> WireError.Code? { F.code(of: bytes) { try DNSMessage.parse($0) } }
        let answer: [UInt8] = [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 2, 2]
        #expect(code(Self.dns(an: 1, Self.question + answer)) == nil)
        #expect(code(Array(Self.dns(Self.question)[..<11])) == .truncated, "header cut short")
        #expect(code(Self.dns([63, 0x61, 0x62, 0x63])) == .truncated, "label of 63 bytes with 3")
        #expect(code(Self.dns(Array(Self.question[..<7]))) == .truncated, "type and class cut short")
        #expect(code(Self.dns(an: 5, Self.question + answer)) == .truncated, "5 answers counted, 1 present")
        var long = answer
        long[11] = 0xFF
        #expect(code(Self.dns(an: 1, Self.question + long)) == .truncated, "RDATA length past the end")
        var short = answer
        short[11] = 3
        #expect(code(Self.dns(an: 1, Self.question + Array(short[..<15]))) == .malformed, "an A record of 3 bytes")
        #expect(code(Self.dns([0xC0, 0x20, 0, 1, 0, 1])) == .compressionLoop, "a pointer forward")
        #expect(code(Self.dns([0xC0])) == .truncated, "a pointer cut in half")
        // OPT with 8 bytes of RDATA, whose one option claims 50.
        let opt: [UInt8] = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 8, 0, 10, 0, 50, 1, 2, 3, 4]
        #expect(code(Self.dns(ar: 1, Self.question + opt)) == .badOption)
    }

    // MARK: TLS ClientHello

    typealias Peek = ServerNamePeekTests

    static func hello(_ body: [UInt8]) -> TLSClientHello.Peek {
        F.withExactBuffer(Peek.records(body)) { TLSClientHello.peek($0) }
    }

    @Test func clientHelloVectorsThatLie() {
        #expect(Self.hello(Peek.helloBody(extensions: Peek.sniExtension("a.test"))) == .serverName("a.test"))
        // Host name of 200 bytes with 5; server name list of 40 with 10; extensions of 256 with 4.
        let name: [UInt8] = [0, 0, 0, 10, 0, 8, 0, 0, 200, 0x61, 0x2E, 0x63, 0x6F, 0x6D]
        #expect(Self.hello(Peek.helloBody(extensions: name)) == .notClientHello)
        let list: [UInt8] = [0, 0, 0, 10, 0, 40, 0, 0, 5, 0x61, 0x2E, 0x63, 0x6F, 0x6D]
        #expect(Self.hello(Peek.helloBody(extensions: list)) == .notClientHello)
        #expect(Self.hello(Peek.helloBody(extensions: nil) + [1, 0, 0, 0, 0, 0]) == .notClientHello)
        // Cipher suites of 0xFFFF bytes, session id of 200.
        let suites: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0, 0xFF, 0xFF, 0x13, 0x01]
        #expect(Self.hello(suites) == .notClientHello)
        let session: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [200, 1, 2]
        #expect(Self.hello(session) == .notClientHello)
        // Body shorter than legacy_version and random.
        #expect(Self.hello([3, 3, 7]) == .notClientHello)
    }

    /// Every prefix and every single-byte change of a real ClientHello, DHCP and DNS message:
    /// an answer or an error, never a trap or a read past the bytes.
    @Test func everyPrefixAndByteOfRealMessages() throws {
        let dhcp = try DHCPTests.payload(DHCPTests.udhcpcDiscoverFrame)
        let dns = try DNSTests.payload(DNSTests.githubResponseFrame)
        for n in 0...dhcp.count { _ = F.code(of: Array(dhcp[..<n])) { try DHCPMessage.parse($0) } }
        for n in 0...dns.count { _ = F.code(of: Array(dns[..<n])) { try DNSMessage.parse($0) } }
        for i in 0..<dns.count {
            for value: UInt8 in [0x00, 0x3F, 0xC0, 0xFF] {
                var b = dns
                b[i] = value
                _ = F.code(of: b) { try DNSMessage.parse($0) }
            }
        }
        let hello = Peek.pythonHello
        for i in 5..<hello.count {
            for value: UInt8 in [0x00, 0xFF] {
                var b = hello
                b[i] = value
                _ = F.withExactBuffer(b) { ServerNamePeek.peek($0) }
            }
        }
    }
}
