// IPv6 headers: captured UDP and hop-by-hop + fragment packets, extension-header chains built
// by hand, hostile chains (too long, past the end, misplaced), truncations and round trips.
import Testing

@testable import Wire

@Suite struct IPv6Tests {
    typealias F = L3Frames

    static func parseFrame(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> IPv6Header {
        let eth = try EthernetHeader.parse(bytes)
        guard eth.etherType == EtherType.ipv6 else { throw WireError(.unsupported, "test") }
        return try IPv6Header.parse(UnsafeRawBufferPointer(rebasing: bytes[eth.headerLength...]))
    }

    static func parse(_ packet: [UInt8]) -> Result<IPv6Header, WireError> {
        F.withExactBuffer(packet) { bytes in Result { () throws(WireError) in try IPv6Header.parse(bytes) } }
    }

    /// A packet fd00::15 → fd00::2 whose payload is `payload`, first header `next`.
    static func packet(_ next: UInt8, _ payload: [UInt8], payloadLength: Int? = nil) -> [UInt8] {
        let length = payloadLength ?? payload.count
        var p: [UInt8] = [0x60, 0, 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), next, 64]
        p += [0xFD] + [UInt8](repeating: 0, count: 14) + [0x15]
        p += [0xFD] + [UInt8](repeating: 0, count: 14) + [0x02]
        return p + payload
    }

    /// An extension header in the RFC 8200 §4 generic format, `units` 8-octet units long.
    static func ext(_ next: UInt8, units: Int) -> [UInt8] {
        // PadN filling the rest, so that hop-by-hop and destination options are well formed.
        [next, UInt8(units - 1), 1, UInt8(units * 8 - 4)] + [UInt8](repeating: 0, count: units * 8 - 4)
    }

    static func fragmentHeader(_ next: UInt8, offset: Int, more: Bool, id: UInt32 = 0xDEAD_BEEF) -> [UInt8] {
        let field = UInt16(offset) | (more ? 1 : 0)
        return [
            next, 0, UInt8(field >> 8), UInt8(field & 0xFF), UInt8(id >> 24), UInt8((id >> 16) & 0xFF),
            UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF),
        ]
    }

    static let udp: [UInt8] = [0x30, 0x39, 0x00, 0x35, 0x00, 0x0A, 0x00, 0x00, 0xAB, 0xCD]

    // MARK: Captured

    @Test func udpSample() throws {
        let ip = try F.withExactBuffer(F.udp6) { try Self.parseFrame($0) }
        #expect(ip.trafficClass == 0)
        #expect(ip.flowLabel == 0x2410F)
        #expect(ip.payloadLength == 23)
        #expect(ip.nextHeader == IPProtocol.udp && ip.upperProtocol == IPProtocol.udp)
        #expect(ip.hopLimit == 64)
        #expect(ip.source == F.guest6 && ip.destination == F.peer6)
        #expect(ip.upperOffset == 40 && ip.upperLength == 23)
        #expect(ip.fragment == nil && !ip.isFragment)
    }

    @Test func hopByHopAndFragment() throws {
        let first = try F.withExactBuffer(F.v6Fragment1) { try Self.parseFrame($0) }
        #expect(first.nextHeader == IPProtocol.hopByHop)
        #expect(first.upperProtocol == IPProtocol.udp)
        #expect(first.upperOffset == 56)
        #expect(first.upperLength == 1440)
        #expect(first.fragment == IPv6FragmentInfo(offset: 0, moreFragments: true, identification: 0x072D_74A0))
        #expect(first.isFragment)
        #expect(first.flowLabel == 0xEED97)

        let second = try F.withExactBuffer(F.v6Fragment2) { try Self.parseFrame($0) }
        #expect(second.upperProtocol == IPProtocol.udp)
        #expect(second.upperOffset == 56)
        #expect(second.upperLength == 568)
        #expect(second.fragment == IPv6FragmentInfo(offset: 1440, moreFragments: false, identification: 0x072D_74A0))
    }

    /// Putting the fragments' data where their headers say rebuilds a datagram whose captured UDP
    /// checksum verifies.
    @Test func fragmentsReassemble() throws {
        var datagram = [UInt8](repeating: 0, count: 2008)
        for frame in [F.v6Fragment2, F.v6Fragment1] {
            let ip = try F.withExactBuffer(frame) { try Self.parseFrame($0) }
            let info = try #require(ip.fragment)
            let start = 14 + ip.upperOffset
            datagram.replaceSubrange(
                info.offset..<(info.offset + ip.upperLength), with: frame[start..<(start + ip.upperLength)])
        }
        #expect(datagram == F.v6FragmentedDatagram)
        let udp = try F.withExactBuffer(datagram) { try UDPHeader.parse($0) }
        #expect(udp.sourcePort == 40002 && udp.destinationPort == 9 && udp.length == 2008)
        #expect(datagram.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest6, destination: F.peer6) })
    }

    @Test(arguments: [F.udp6, F.v6Fragment1, F.v6Fragment2])
    func truncations(_ frame: [UInt8]) {
        F.expectTruncations(of: frame, essential: frame.count) { bytes throws(WireError) in
            _ = try Self.parseFrame(bytes)
        }
    }

    @Test func trailingPaddingIgnored() throws {
        let ip = try F.withExactBuffer(F.udp6 + [0, 0, 0]) { try Self.parseFrame($0) }
        #expect(ip.payloadLength == 23 && ip.upperLength == 23)
    }

    // MARK: Chains built by hand

    struct ChainCase: Sendable, CustomTestStringConvertible {
        let name: String
        let packet: [UInt8]
        let upperProtocol: UInt8
        let upperOffset: Int
        let fragment: IPv6FragmentInfo?
        var testDescription: String { name }
    }

    static let chains: [ChainCase] = [
        ChainCase(
            name: "destination options, routing, destination options",
            packet: packet(60, ext(43, units: 1) + ext(60, units: 3) + ext(17, units: 1) + udp),
            upperProtocol: 17, upperOffset: 80, fragment: nil),
        // AH: Payload Len 4 means (4 + 2) × 4 = 24 bytes (RFC 4302 §2.2).
        ChainCase(
            name: "authentication header",
            packet: packet(51, [6, 4, 0, 0] + [UInt8](repeating: 0xAA, count: 20) + [UInt8](repeating: 0, count: 20)),
            upperProtocol: 6, upperOffset: 64, fragment: nil),
        ChainCase(
            name: "ESP ends the walk", packet: packet(0, ext(50, units: 1) + [UInt8](repeating: 0x55, count: 16)),
            upperProtocol: 50, upperOffset: 48, fragment: nil),
        ChainCase(
            name: "no next header", packet: packet(60, ext(59, units: 1) + [1, 2, 3]),
            upperProtocol: 59, upperOffset: 48, fragment: nil),
        ChainCase(
            name: "atomic fragment", packet: packet(44, fragmentHeader(58, offset: 0, more: false) + [128, 0, 0, 0]),
            upperProtocol: 58, upperOffset: 48,
            fragment: IPv6FragmentInfo(offset: 0, moreFragments: false, identification: 0xDEAD_BEEF)),
        // Data of a later fragment is not headers: a destination-options "header" claiming 2 KiB
        // is not walked.
        ChainCase(
            name: "later fragment is not walked",
            packet: packet(44, fragmentHeader(60, offset: 1232, more: true) + [17, 0xFF, 0, 0, 0, 0, 0, 0]),
            upperProtocol: 60, upperOffset: 48,
            fragment: IPv6FragmentInfo(offset: 1232, moreFragments: true, identification: 0xDEAD_BEEF)),
        ChainCase(
            name: "eight extension headers",
            packet: packet(60, (0..<7).flatMap { _ in ext(60, units: 1) } + ext(17, units: 1) + udp),
            upperProtocol: 17, upperOffset: 104, fragment: nil),
    ]

    @Test(arguments: chains)
    func chain(_ c: ChainCase) throws {
        let ip = try Self.parse(c.packet).get()
        #expect(ip.upperProtocol == c.upperProtocol)
        #expect(ip.upperOffset == c.upperOffset)
        #expect(ip.upperLength == c.packet.count - c.upperOffset)
        #expect(ip.fragment == c.fragment)
        #expect(ip.isFragment == (c.fragment.map { !$0.isAtomic } ?? false))
        F.expectTruncations(of: c.packet, essential: c.packet.count) { bytes throws(WireError) in
            _ = try IPv6Header.parse(bytes)
        }
    }

    // MARK: Hostile chains

    struct BadCase: Sendable, CustomTestStringConvertible {
        let name: String
        let packet: [UInt8]
        let code: WireError.Code
        var testDescription: String { name }
    }

    static let bad: [BadCase] = [
        BadCase(
            name: "nine extension headers",
            packet: packet(60, (0..<8).flatMap { _ in ext(60, units: 1) } + ext(17, units: 1) + udp), code: .unsupported
        ),
        BadCase(
            name: "two hundred destination options headers",
            packet: packet(60, (0..<200).flatMap { _ in ext(60, units: 1) }), code: .unsupported),
        BadCase(
            name: "hop-by-hop longer than the payload", packet: packet(0, [17, 1, 1, 4, 0, 0, 0, 0]), code: .badLength),
        BadCase(name: "no room for the length octet", packet: packet(0, [17]), code: .badLength),
        BadCase(name: "empty payload announcing hop-by-hop", packet: packet(0, []), code: .badLength),
        BadCase(
            name: "routing header past the end, padding after",
            packet: packet(43, [17, 2, 0, 0, 0, 0, 0, 0], payloadLength: 8) + [UInt8](repeating: 0, count: 16),
            code: .badLength),
        BadCase(name: "fragment header cut short", packet: packet(44, [17, 0, 0, 0]), code: .badLength),
        BadCase(name: "AH past the end", packet: packet(51, [6, 4, 0, 0, 0, 0, 0, 0]), code: .badLength),
        BadCase(
            name: "hop-by-hop not first", packet: packet(60, ext(0, units: 1) + ext(17, units: 1) + udp),
            code: .malformed),
        BadCase(
            name: "hop-by-hop after a fragment header",
            packet: packet(44, fragmentHeader(0, offset: 0, more: true) + ext(17, units: 1) + udp), code: .malformed),
        BadCase(
            name: "two fragment headers",
            packet: packet(
                44, fragmentHeader(44, offset: 0, more: true) + fragmentHeader(17, offset: 0, more: true) + udp),
            code: .malformed),
        BadCase(name: "version 4", packet: [0x45] + packet(17, udp).dropFirst(), code: .unsupported),
        BadCase(name: "version 0", packet: [0x00] + packet(17, udp).dropFirst(), code: .unsupported),
        BadCase(name: "payload length past the buffer", packet: packet(17, udp, payloadLength: 11), code: .truncated),
        BadCase(
            name: "jumbogram", packet: packet(0, [17, 0, 0xC2, 4, 0, 1, 0, 0] + udp, payloadLength: 0), code: .badLength
        ),
    ]

    @Test(arguments: bad)
    func hostile(_ c: BadCase) {
        #expect(Self.parse(c.packet).code == c.code)
    }

    // MARK: Emit

    @Test(arguments: [F.udp6, F.v6Fragment1, F.v6Fragment2])
    func emitReproducesFixedHeader(_ frame: [UInt8]) throws {
        let ip = try F.withExactBuffer(frame) { try Self.parseFrame($0) }
        #expect(try F.emitted { b throws(WireError) in try ip.emit(into: b) } == Array(frame[14..<54]))
    }

    @Test func initMatchesLinux() throws {
        let ip = IPv6Header(
            source: F.guest6, destination: F.peer6, nextHeader: IPProtocol.udp, payloadLength: 23, flowLabel: 0x2410F)
        #expect(try F.emitted { b throws(WireError) in try ip.emit(into: b) } == Array(F.udp6[14..<54]))
    }

    @Test(
        arguments: [(0, 0, 0, 0), (0xFF, 0xF_FFFF, 255, 0xFFFF), (0xB8, 0x12345, 1, 1)]
            as [(UInt8, UInt32, UInt8, UInt16)])
    func roundTrip(_ trafficClass: UInt8, _ flowLabel: UInt32, _ hopLimit: UInt8, _ payloadLength: UInt16) throws {
        let ip = IPv6Header(
            source: IPv6Address(high: .max, low: .max), destination: .allNodes, nextHeader: IPProtocol.tcp,
            payloadLength: payloadLength, hopLimit: hopLimit, trafficClass: trafficClass, flowLabel: flowLabel)
        let bytes = try F.emitted { b throws(WireError) in try ip.emit(into: b) }
        #expect(bytes.count == IPv6Header.length)
        #expect(try Self.parse(bytes + [UInt8](repeating: 0, count: Int(payloadLength))).get() == ip)
    }

    @Test func emitRefuses() {
        var ip = IPv6Header(source: F.guest6, destination: F.peer6, nextHeader: IPProtocol.udp, payloadLength: 0)
        ip.flowLabel = 0x10_0000
        #expect(
            F.thrownCode { () throws(WireError) in _ = try F.emitted { b throws(WireError) in try ip.emit(into: b) } }
                == .malformed)
        ip.flowLabel = 1
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: 39, alignment: 1)
        defer { small.deallocate() }
        #expect(F.thrownCode { () throws(WireError) in _ = try ip.emit(into: small) } == .noSpace)
    }
}

extension Result where Failure == WireError {
    fileprivate var code: WireError.Code? {
        if case .failure(let e) = self { return e.code }
        return nil
    }
}
