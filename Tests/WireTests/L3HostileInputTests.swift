// Random and mutated input for the Ethernet, ARP, IPv4, IPv6, UDP and virtio-net parsers: each
// must either parse or throw, never trap or read outside its buffer (run under ASan to be sure).
import Testing

@testable import Wire

@Suite struct L3HostileInputTests {
    typealias F = L3Frames

    /// xorshift64*: reproducible, so a failure names a seed that finds it again.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
    }

    /// Runs every parser over `bytes`; with a well-formed result, checks what the parser promised.
    static func exercise(_ bytes: UnsafeRawBufferPointer) {
        if let eth = try? EthernetHeader.parse(bytes) {
            #expect(eth.headerLength <= bytes.count)
        }
        _ = try? ARPPacket.parse(bytes)
        if let ip = try? IPv4Header.parse(bytes, verifyChecksum: false) {
            #expect(ip.headerLength >= 20 && ip.headerLength <= Int(ip.totalLength))
            #expect(Int(ip.totalLength) <= bytes.count)
        }
        try? IPv4Header.forEachOption(bytes) { _, data in
            // Options lie inside the buffer: touching every byte is safe.
            var x: UInt8 = 0
            for b in data { x ^= b }
            _ = x
        }
        if let ip = try? IPv6Header.parse(bytes) {
            #expect(ip.upperOffset >= 40 && ip.upperLength >= 0)
            #expect(ip.upperOffset + ip.upperLength <= bytes.count)
        }
        if let udp = try? UDPHeader.parse(bytes) {
            #expect(Int(udp.length) <= bytes.count)
        }
        _ = UDPHeader.verifyChecksum(bytes, source: F.guest4, destination: F.peer4)
        _ = UDPHeader.verifyChecksum(bytes, source: F.guest6, destination: F.peer6)
        for size in [VirtioNetHeader.legacySize, VirtioNetHeader.v1Size] {
            if let v = try? VirtioNetHeader.parse(bytes, size: size) {
                try? v.validate(frameLength: bytes.count)
            }
        }
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomBytes(_ seed: UInt64) {
        var rng = Generator(state: 0x9E37_79B9_7F4A_7C15 &* seed)
        for _ in 0..<5_000 {
            let count = Int.random(in: 0...120, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Steer half the inputs past the version checks so the deeper paths run.
            if count > 0 && Bool.random(using: &rng) {
                bytes[0] = Bool.random(using: &rng) ? 0x60 : 0x40 | (bytes[0] & 0x0F)
            }
            F.withExactBuffer(bytes) { Self.exercise($0) }
        }
    }

    /// Captured packets with a few bytes changed, cut at a random point, or both.
    @Test(arguments: [1, 2] as [UInt64])
    func mutatedCaptures(_ seed: UInt64) {
        var rng = Generator(state: 0xD1B5_4A32_D192_ED03 &* seed)
        let samples: [[UInt8]] = [
            F.arpRequestPadded, F.icmpEcho, F.igmpRouterAlert, F.fragmentLast, F.udp4, F.udp6, F.udp4Tagged,
            F.v6Fragment2,
        ]
        for sample in samples {
            for _ in 0..<1_500 {
                var bytes = sample
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                let cut = Bool.random(using: &rng) ? Int.random(in: 0...bytes.count, using: &rng) : bytes.count
                let frame = Array(bytes[0..<cut])
                F.withExactBuffer(frame) { Self.exercise($0) }
                // And the same from where the network header starts.
                if frame.count > 14 { F.withExactBuffer(frame[14...]) { Self.exercise($0) } }
            }
        }
    }
}

/// Length fields that lie, one format at a time: each is a parse error with the code the
/// parser documents, read from an allocation of exactly the bytes given.
extension L3HostileInputTests {
    typealias Code = WireError.Code

    /// 20-byte IPv4 header (10.0.2.15 → 10.0.2.2, UDP, total length 28) and 8 more bytes.
    static let ipv4: [UInt8] = [
        0x45, 0x00, 0x00, 0x1C, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 0x0A, 0x00, 0x02, 0x0F,
        0x0A, 0x00, 0x02, 0x02, 0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
    ]

    static func with(_ bytes: [UInt8], _ changes: [Int: UInt8]) -> [UInt8] {
        var b = bytes
        for (offset, value) in changes { b[offset] = value }
        return b
    }

    /// A fixed IPv6 header with `payloadLength` and `nextHeader`, then `rest`.
    static func ipv6(nextHeader: UInt8, payloadLength: UInt16, _ rest: [UInt8]) -> [UInt8] {
        [0x60, 0, 0, 0, UInt8(payloadLength >> 8), UInt8(payloadLength & 0xFF), nextHeader, 64]
            + [UInt8](repeating: 0xFD, count: 32) + rest
    }

    @Test func ethernetAndARPCutShort() {
        let arp = F.arpRequest
        #expect(F.code(of: Array(arp[..<13])) { try EthernetHeader.parse($0) } == .truncated)
        // An 802.1Q tag promised by the type field but cut before the inner type.
        let tagged = Array(arp[..<12]) + [0x81, 0x00, 0x00, 0x05]
        #expect(F.code(of: tagged) { try EthernetHeader.parse($0) } == .truncated)
        #expect(F.code(of: Array(arp[14..<(14 + 27)])) { try ARPPacket.parse($0) } == .truncated)
        #expect(F.code(of: [UInt8](repeating: 0, count: 11)) { try VirtioNetHeader.parse($0, size: 12) } == .truncated)
    }

    @Test func ipv4LengthsThatLie() {
        func code(_ bytes: [UInt8]) -> Code? { F.code(of: bytes) { try IPv4Header.parse($0, verifyChecksum: false) } }
        #expect(code(Self.ipv4) == nil, "the unaltered header parses")
        #expect(code(Self.with(Self.ipv4, [2: 0x01, 3: 0x00])) == .truncated, "total length 256 in 28 bytes")
        #expect(code(Self.with(Self.ipv4, [0: 0x4F])) == .badLength, "IHL of 60 bytes past total length 28")
        #expect(code(Self.with(Self.ipv4, [0: 0x44])) == .badLength, "IHL below 5")
        #expect(code(Self.with(Self.ipv4, [6: 0x1F, 7: 0xFF])) == .badLength, "fragment ending past 65535")
        // IHL 6: one option word, whose option claims 16 bytes.
        let option = Self.with(Self.ipv4, [0: 0x46, 20: 0x07, 21: 0x10])
        #expect(F.code(of: option) { try IPv4Header.forEachOption($0) { _, _ in } } == .badOption)
    }

    @Test func ipv6LengthsThatLie() {
        func code(_ bytes: [UInt8]) -> Code? { F.code(of: bytes) { try IPv6Header.parse($0) } }
        #expect(code(Self.ipv6(nextHeader: IPProtocol.udp, payloadLength: 8, [UInt8](repeating: 0, count: 8))) == nil)
        #expect(code(Self.ipv6(nextHeader: IPProtocol.udp, payloadLength: 100, [UInt8](repeating: 0, count: 8))) == .truncated)
        // Hop-by-hop claiming 48 bytes, AH claiming 48, a Fragment header with 4 of its 8 bytes,
        // and an extension header whose length octet lies past the payload.
        let hbh = Self.ipv6(nextHeader: IPProtocol.hopByHop, payloadLength: 8, [IPProtocol.udp, 5, 0, 0, 0, 0, 0, 0])
        #expect(code(hbh) == .badLength)
        let ah = Self.ipv6(nextHeader: IPProtocol.ah, payloadLength: 8, [IPProtocol.udp, 10, 0, 0, 0, 0, 0, 0])
        #expect(code(ah) == .badLength)
        let fragment = Self.ipv6(nextHeader: IPProtocol.fragment, payloadLength: 4, [IPProtocol.udp, 0, 0, 1])
        #expect(code(fragment) == .badLength)
        let oneByte = Self.ipv6(nextHeader: IPProtocol.destinationOptions, payloadLength: 1, [IPProtocol.udp])
        #expect(code(oneByte) == .badLength)
    }

    @Test func udpTCPAndICMPLengthsThatLie() {
        let udp = Array(Self.ipv4[20...]) + [1, 2, 3, 4]
        #expect(F.code(of: Self.with(udp, [4: 0x01, 5: 0x00])) { try UDPHeader.parse($0) } == .badLength)
        #expect(F.code(of: Self.with(udp, [5: 0x04])) { try UDPHeader.parse($0) } == .badLength)
        #expect(F.code(of: Array(udp[..<7])) { try UDPHeader.parse($0) } == .truncated)
        #expect(!F.withExactBuffer(Self.with(udp, [4: 0x01, 5: 0x00])) {
            UDPHeader.verifyChecksum($0, source: F.guest4, destination: F.peer4)
        })
        #expect(!F.withExactBuffer(Self.with(udp, [4: 0x01, 5: 0x00])) {
            UDPHeader.verifyChecksum($0, source: F.guest6, destination: F.peer6)
        })

        var tcp = [UInt8](repeating: 0, count: 20)
        tcp[12] = 0x50
        #expect(F.code(of: tcp) { try TCPHeader.parse($0) } == nil)
        #expect(F.code(of: Self.with(tcp, [12: 0xF0])) { try TCPHeader.parse($0) } == .truncated)
        #expect(F.code(of: Self.with(tcp, [12: 0x40])) { try TCPHeader.parse($0) } == .badLength)
        // Data offset 6 words: a SACK option claiming one block (10 bytes) in a 4-byte area.
        #expect(F.code(of: Self.with(tcp, [12: 0x60]) + [0x05, 0x0A, 0, 0]) { try TCPHeader.parse($0) } == .badOption)
        #expect(F.code(of: Self.with(tcp, [12: 0x60]) + [0x08, 0x0A, 0, 0]) { try TCPHeader.parse($0) } == .badOption)

        let icmp: [UInt8] = [8, 0, 0, 0, 0, 1, 0]
        #expect(F.code(of: icmp) { try ICMPv4Message.parse($0, verifyChecksum: false) } == .truncated)
        #expect(F.code(of: icmp) { try ICMPv6Message.parse($0, source: F.guest6, destination: F.peer6, verifyChecksum: false) } == .truncated)
    }
}
