// IPv4 headers: a captured echo request, a header with a Router Alert option, three fragments,
// bogus lengths, hostile options and round trips.
import Testing

@testable import Wire

@Suite struct IPv4Tests {
    typealias F = L3Frames

    static func parseFrame(_ bytes: UnsafeRawBufferPointer, verifyChecksum: Bool = true) throws(WireError) -> IPv4Header
    {
        let eth = try EthernetHeader.parse(bytes)
        guard eth.etherType == EtherType.ipv4 else { throw WireError(.unsupported, "test") }
        return try IPv4Header.parse(
            UnsafeRawBufferPointer(rebasing: bytes[eth.headerLength...]), verifyChecksum: verifyChecksum)
    }

    static func parse(_ header: [UInt8], verifyChecksum: Bool = true) -> Result<IPv4Header, WireError> {
        F.withExactBuffer(header) { bytes in
            Result { () throws(WireError) in try IPv4Header.parse(bytes, verifyChecksum: verifyChecksum) }
        }
    }

    /// Recomputes the header checksum of an IPv4 packet in a byte array (IHL from byte 0).
    static func fixChecksum(_ packet: [UInt8]) -> [UInt8] {
        var p = packet
        let ihl = Int(p[0] & 0x0F) * 4
        p[10] = 0
        p[11] = 0
        let c = p.withUnsafeBytes { InternetChecksum.of(UnsafeRawBufferPointer(rebasing: $0[0..<min(ihl, $0.count)])) }
        p[10] = UInt8(c >> 8)
        p[11] = UInt8(c & 0xFF)
        return p
    }

    @Test func echoRequest() throws {
        let ip = try F.withExactBuffer(F.icmpEcho) { try Self.parseFrame($0) }
        #expect(ip.tos == 0)
        #expect(ip.totalLength == 84)
        #expect(ip.identification == 0x7C2C)
        #expect(!ip.dontFragment && !ip.moreFragments && ip.fragmentOffset == 0 && !ip.isFragment)
        #expect(ip.ttl == 64)
        #expect(ip.protocolNumber == IPProtocol.icmp)
        #expect(ip.checksum == 0xE66C)
        #expect(ip.source == F.guest4 && ip.destination == F.peer4)
        #expect(ip.headerLength == 20 && ip.payloadLength == 64)
        // The payload range is right: the ICMP message in it carries a checksum that verifies.
        let icmp = F.icmpEcho[(14 + ip.headerLength)..<(14 + ip.headerLength + ip.payloadLength)]
        var sum = InternetChecksum()
        Array(icmp).withUnsafeBytes { sum.add(bytes: $0) }
        #expect(sum.verifies)
        #expect(icmp.first == 8)
    }

    @Test func routerAlertOption() throws {
        let ip = try F.withExactBuffer(F.igmpRouterAlert) { try Self.parseFrame($0) }
        #expect(ip.headerLength == 24)
        #expect(ip.totalLength == 40 && ip.payloadLength == 16)
        #expect(ip.tos == 0xC0 && ip.ttl == 1 && ip.dontFragment)
        #expect(ip.protocolNumber == IPProtocol.igmp)
        #expect(ip.destination == IPv4Address(224, 0, 0, 22))
        var seen: [(UInt8, [UInt8])] = []
        try F.withExactBuffer(F.igmpRouterAlert[14...]) { bytes in
            try IPv4Header.forEachOption(bytes) { kind, data in seen.append((kind, Array(data))) }
        }
        #expect(seen.count == 1)
        #expect(seen.first?.0 == IPv4Header.Option.routerAlert)
        #expect(seen.first?.1 == [0, 0])
        // IGMP starts after the options: type 0x22, a v3 report.
        #expect(F.igmpRouterAlert[14 + ip.headerLength] == 0x22)
    }

    /// Ethernet pads short frames to 60 bytes; the padding is not part of the datagram.
    @Test func trailingPaddingIgnored() throws {
        let padded = F.igmpRouterAlert + [UInt8](repeating: 0, count: 6)
        let ip = try F.withExactBuffer(padded) { try Self.parseFrame($0) }
        #expect(ip.totalLength == 40 && ip.payloadLength == 16)
    }

    @Test func fragmentsReassemble() throws {
        let frames = [F.fragment1, F.fragment2, F.fragmentLast]
        let headers = try frames.map { f in try F.withExactBuffer(f) { try Self.parseFrame($0) } }
        #expect(headers.map(\.fragmentOffset) == [0, 1480, 2960])
        #expect(headers.map(\.moreFragments) == [true, true, false])
        #expect(headers.allSatisfy { $0.isFragment && $0.identification == 0x7C3A && !$0.dontFragment })
        #expect(headers.map(\.payloadLength) == [1480, 1480, 48])
        var message = [UInt8](repeating: 0, count: 3008)
        for (frame, h) in zip(frames, headers) {
            let start = 14 + h.headerLength
            message.replaceSubrange(
                h.fragmentOffset..<(h.fragmentOffset + h.payloadLength), with: frame[start..<(start + h.payloadLength)])
        }
        #expect(message == F.fragmentedEchoMessage)
        #expect(message.withUnsafeBytes { InternetChecksum.of($0) } == 0)
    }

    @Test(arguments: [F.icmpEcho, F.igmpRouterAlert, F.fragmentLast, F.fragment1, F.udp4])
    func truncations(_ frame: [UInt8]) {
        F.expectTruncations(of: frame, essential: frame.count) { bytes throws(WireError) in
            _ = try Self.parseFrame(bytes)
        }
    }

    @Test(arguments: 0...4)
    func ihlBelowFive(_ ihl: UInt8) {
        var packet = Array(F.icmpEcho[14...])
        packet[0] = 0x40 | ihl
        #expect(Self.parse(Self.fixChecksum(packet)).code == .badLength)
    }

    @Test func totalLengthBelowHeader() {
        var echo = Array(F.icmpEcho[14...])
        echo[2] = 0
        echo[3] = 19
        #expect(Self.parse(Self.fixChecksum(echo)).code == .badLength)
        var igmp = Array(F.igmpRouterAlert[14...])
        igmp[2] = 0
        igmp[3] = 23  // IHL says 24
        #expect(Self.parse(Self.fixChecksum(igmp)).code == .badLength)
        // Exactly the header, no payload, is fine.
        igmp[3] = 24
        #expect(Self.parse(Self.fixChecksum(igmp)).code == nil)
    }

    @Test func totalLengthPastBuffer() {
        var echo = Array(F.icmpEcho[14...])
        echo[3] += 1
        #expect(Self.parse(Self.fixChecksum(echo)).code == .truncated)
    }

    @Test(arguments: [0x00, 0x65, 0x55, 0xF5] as [UInt8])
    func otherVersions(_ versionIHL: UInt8) {
        var echo = Array(F.icmpEcho[14...])
        echo[0] = versionIHL
        #expect(Self.parse(Self.fixChecksum(echo)).code == .unsupported)
    }

    @Test func checksum() {
        var echo = Array(F.icmpEcho[14...])
        echo[8] -= 1  // TTL, without fixing the checksum
        #expect(Self.parse(echo).code == .badChecksum)
        #expect(Self.parse(echo, verifyChecksum: false).value?.ttl == 63)
    }

    /// A fragment whose data would end past 65535 bytes (the "ping of death").
    @Test func fragmentEndingPast65535() {
        var last = Array(F.fragmentLast[14...])
        last[6] = 0x1F
        last[7] = 0xFF  // offset 65528, 48 bytes of data
        #expect(Self.parse(Self.fixChecksum(last)).code == .badLength)
        last[7] = 0xF9  // offset 65480: ends at exactly 65528
        #expect(Self.parse(Self.fixChecksum(last)).value?.fragmentOffset == 65480)
    }

    /// The reserved flag must be sent as zero but is ignored on receipt.
    @Test func reservedFlagIgnored() {
        var echo = Array(F.icmpEcho[14...])
        echo[6] |= 0x80
        let ip = Self.parse(Self.fixChecksum(echo)).value
        #expect(ip?.dontFragment == false && ip?.moreFragments == false && ip?.fragmentOffset == 0)
    }

    // MARK: Options

    struct OptionCase: Sendable, CustomTestStringConvertible {
        let name: String
        let options: [UInt8]
        let expected: [[UInt8]]?  // kind followed by data, per option; nil when .badOption
        var testDescription: String { name }
    }

    @Test(arguments: [
        OptionCase(name: "router alert", options: [0x94, 0x04, 0x00, 0x00], expected: [[0x94, 0, 0]]),
        OptionCase(name: "padding only", options: [0x01, 0x01, 0x01, 0x00], expected: []),
        OptionCase(name: "end of list first", options: [0x00, 0x94, 0x00, 0x00], expected: []),
        OptionCase(
            name: "record route", options: [0x07, 0x07, 0x04, 0, 0, 0, 0, 0x00],
            expected: [[0x07, 0x04, 0, 0, 0, 0]]),
        OptionCase(
            name: "two options", options: [0x94, 0x04, 0x00, 0x00, 0x01, 0x44, 0x03, 0x05],
            expected: [[0x94, 0, 0], [0x44, 0x05]]),
        OptionCase(
            name: "forty-byte timestamp", options: [0x44, 40, 5, 0] + [UInt8](repeating: 0, count: 36),
            expected: [[0x44, 5, 0] + [UInt8](repeating: 0, count: 36)]),
        OptionCase(name: "zero length", options: [0x94, 0x00, 0x00, 0x00], expected: nil),
        OptionCase(name: "length one", options: [0x94, 0x01, 0x00, 0x00], expected: nil),
        OptionCase(name: "kind without length", options: [0x01, 0x01, 0x01, 0x94], expected: nil),
        OptionCase(name: "runs past header", options: [0x94, 0x08, 0x00, 0x00], expected: nil),
        OptionCase(name: "bad after good", options: [0x94, 0x04, 0x00, 0x00, 0x07, 0xFF, 0x00, 0x00], expected: nil),
    ])
    func options(_ c: OptionCase) throws {
        var packet: [UInt8] = [
            0x40 | UInt8(5 + c.options.count / 4), 0, 0, UInt8(20 + c.options.count), 0, 0, 0, 0, 64, 2, 0, 0,
        ]
        packet += [10, 0, 2, 15, 224, 0, 0, 22] + c.options
        packet = Self.fixChecksum(packet)
        // parse leaves options alone: only lengths and the checksum are its business.
        #expect(try Self.parse(packet).get().headerLength == packet.count)
        var seen: [[UInt8]] = []
        let code = F.withExactBuffer(packet) { bytes in
            F.thrownCode { () throws(WireError) in
                try IPv4Header.forEachOption(bytes) { kind, data in seen.append([kind] + Array(data)) }
            }
        }
        if let expected = c.expected {
            #expect(code == nil)
            #expect(seen == expected)
        } else {
            #expect(code == .badOption)
        }
    }

    @Test func forEachOptionChecksTheHeader() {
        func walk(_ header: [UInt8]) -> WireError.Code? {
            F.withExactBuffer(header) { bytes in
                F.thrownCode { () throws(WireError) in
                    try IPv4Header.forEachOption(bytes) { _, _ in Issue.record("no option expected") }
                }
            }
        }
        #expect(walk([0x46, 0, 0, 24] + [UInt8](repeating: 0, count: 16)) == .truncated)
        #expect(walk([0x44] + [UInt8](repeating: 0, count: 19)) == .badLength)
        #expect(walk([0x45] + [UInt8](repeating: 0, count: 18)) == .truncated)
        #expect(walk([0x65] + [UInt8](repeating: 0, count: 19)) == .unsupported)
        #expect(walk(Array(F.icmpEcho[14...])) == nil)
    }

    // MARK: Emit

    @Test(arguments: [F.icmpEcho, F.udp4, F.fragment2, F.fragmentLast])
    func emitReproducesCapture(_ frame: [UInt8]) throws {
        let ip = try F.withExactBuffer(frame) { try Self.parseFrame($0, verifyChecksum: false) }
        #expect(try F.emitted { b throws(WireError) in try ip.emit(into: b) } == Array(frame[14..<34]))
    }

    /// The initialiser's defaults are what Linux sends for a UDP socket: the captured header comes out.
    @Test func initMatchesLinux() throws {
        let ip = IPv4Header(
            source: F.guest4, destination: F.peer4, protocolNumber: IPProtocol.udp, payloadLength: 23,
            identification: 0x554F)
        #expect(try F.emitted { b throws(WireError) in try ip.emit(into: b) } == Array(F.udp4[14..<34]))
    }

    @Test func optionsAreDroppedOnEmit() throws {
        let ip = try F.withExactBuffer(F.igmpRouterAlert) { try Self.parseFrame($0) }
        let header = try F.emitted { b throws(WireError) in try ip.emit(into: b) }
        #expect(header.count == 20)
        let again = try Self.parse(header + F.igmpRouterAlert[(14 + 24)...]).get()
        #expect(again.headerLength == 20 && again.payloadLength == ip.payloadLength && again.totalLength == 36)
        var expected = ip
        expected.headerLength = 20
        expected.totalLength = 36
        expected.checksum = again.checksum
        #expect(again == expected)
    }

    @Test(
        arguments: [
            (0, false, false, 0, 0), (0xFF, true, false, 65528, 7), (0x10, false, true, 8, 65515),
            (0xB8, true, true, 1480, 1),
        ] as [(UInt8, Bool, Bool, Int, Int)])
    func roundTrip(_ tos: UInt8, _ df: Bool, _ mf: Bool, _ offset: Int, _ payload: Int) throws {
        var ip = IPv4Header(
            source: IPv4Address(raw: 0xFFFF_FFFF), destination: .any, protocolNumber: 0xFF, payloadLength: payload,
            ttl: 255, identification: 0xFFFF, dontFragment: df, tos: tos)
        ip.moreFragments = mf
        ip.fragmentOffset = offset
        let bytes = try F.emitted { b throws(WireError) in try ip.emit(into: b) }
        // Room for the payload the header announces, so the length check passes.
        let parsed = try Self.parse(bytes + [UInt8](repeating: 0, count: payload), verifyChecksum: true).get()
        ip.checksum = parsed.checksum
        #expect(parsed == ip)
    }

    @Test func emitRefusesWhatCannotBeEncoded() {
        let base = IPv4Header(
            source: F.guest4, destination: F.peer4, protocolNumber: IPProtocol.tcp, payloadLength: 100)
        var odd = base
        odd.fragmentOffset = 12
        #expect(
            F.thrownCode { () throws(WireError) in _ = try F.emitted { b throws(WireError) in try odd.emit(into: b) } }
                == .badLength)
        var far = base
        far.fragmentOffset = 65536
        #expect(
            F.thrownCode { () throws(WireError) in _ = try F.emitted { b throws(WireError) in try far.emit(into: b) } }
                == .badLength)
        var negative = base
        negative.totalLength = 10
        #expect(negative.payloadLength < 0)
        #expect(
            F.thrownCode { () throws(WireError) in
                _ = try F.emitted { b throws(WireError) in try negative.emit(into: b) }
            } == .badLength)
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: 19, alignment: 1)
        defer { small.deallocate() }
        #expect(F.thrownCode { () throws(WireError) in _ = try base.emit(into: small) } == .noSpace)
    }
}

extension Result where Failure == WireError {
    fileprivate var code: WireError.Code? {
        if case .failure(let e) = self { return e.code }
        return nil
    }
    fileprivate var value: Success? { try? get() }
}
