// The virtio-net header: a TSO4 super-frame and a NEEDS_CSUM frame read from a TAP (IFF_VNET_HDR,
// TUNSETOFFLOAD CSUM|TSO4|TSO6) checked against the frames they describe; both layouts; refusals.
import Testing

@testable import Wire

@Suite struct VirtioNetHeaderTests {
    typealias F = L3Frames

    /// Read from the TAP: a TCP segment of 7300 bytes (five of 1460) from 10.0.7.1:52738 to
    /// 10.0.7.2:8080. The TCP checksum field holds the pseudo-header sum, as NEEDS_CSUM says.
    static let tso4Header: [UInt8] = [0x01, 0x01, 0x36, 0x00, 0xB4, 0x05, 0x22, 0x00, 0x10, 0x00]
    static let tso4FrameHeaders: [UInt8] = [
        0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00, 0x45, 0x00,
        0x1C, 0xAC, 0xED, 0x22, 0x40, 0x00, 0x40, 0x06, 0x0F, 0x27, 0x0A, 0x00, 0x07, 0x01, 0x0A, 0x00,
        0x07, 0x02, 0xCE, 0x02, 0x1F, 0x90, 0xA5, 0xBE, 0x8F, 0xE0, 0x10, 0x00, 0x00, 0x01, 0x50, 0x18,
        0xFA, 0xF0, 0x3E, 0xA1, 0x00, 0x00,
    ]
    static var tso4Frame: [UInt8] { tso4FrameHeaders + (0..<7300).map { UInt8(truncatingIfNeeded: $0) } }

    /// The same data retransmitted as one 1460-byte segment: checksum offload without segmentation.
    static let csumHeader: [UInt8] = [0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x10, 0x00]
    static let csumFrameHeaders: [UInt8] = [
        0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00, 0x45, 0x00,
        0x05, 0xDC, 0xED, 0x2C, 0x40, 0x00, 0x40, 0x06, 0x25, 0xED, 0x0A, 0x00, 0x07, 0x01, 0x0A, 0x00,
        0x07, 0x02, 0xCE, 0x02, 0x1F, 0x90, 0xA5, 0xBE, 0x8F, 0xE0, 0x10, 0x00, 0x00, 0x01, 0x50, 0x10,
        0xFA, 0xF0, 0x27, 0xD1, 0x00, 0x00,
    ]
    static var csumFrame: [UInt8] { csumFrameHeaders + (0..<1460).map { UInt8(truncatingIfNeeded: $0) } }

    static func parse(_ bytes: [UInt8], size: Int) -> Result<VirtioNetHeader, WireError> {
        F.withExactBuffer(bytes) { b in Result { () throws(WireError) in try VirtioNetHeader.parse(b, size: size) } }
    }

    @Test func tso4Capture() throws {
        let v = try Self.parse(Self.tso4Header, size: VirtioNetHeader.legacySize).get()
        #expect(v.flags == .needsChecksum)
        #expect(v.gsoType == .tcpv4 && !v.gsoECN)
        #expect(v.headerLength == 54)
        #expect(v.gsoSize == 1460)
        #expect(v.checksumStart == 34 && v.checksumOffset == 16)
        #expect(v.numBuffers == 0)
        try Self.checkAgainstFrame(v, Self.tso4Frame, segments: 5)
    }

    @Test func needsChecksumCapture() throws {
        let v = try Self.parse(Self.csumHeader, size: VirtioNetHeader.legacySize).get()
        #expect(v.flags == .needsChecksum && v.gsoType == .none && v.gsoSize == 0 && v.headerLength == 0)
        try Self.checkAgainstFrame(v, Self.csumFrame, segments: 1)
    }

    /// The header's offsets agree with what the Ethernet and IPv4 parsers find in the frame, and
    /// completing the partial checksum the way a NIC would yields a TCP checksum that verifies.
    static func checkAgainstFrame(_ v: VirtioNetHeader, _ frame: [UInt8], segments: Int) throws {
        try v.validate(frameLength: frame.count)
        let eth = try F.withExactBuffer(frame) { try EthernetHeader.parse($0) }
        let ip = try F.withExactBuffer(frame[eth.headerLength...]) { try IPv4Header.parse($0) }
        #expect(ip.protocolNumber == IPProtocol.tcp)
        let tcpStart = eth.headerLength + ip.headerLength
        #expect(Int(v.checksumStart) == tcpStart)
        let tcpHeaderLength = Int(frame[tcpStart + 12] >> 4) * 4
        if v.gsoType != .none {
            #expect(Int(v.headerLength) == tcpStart + tcpHeaderLength)
            #expect(ip.payloadLength - tcpHeaderLength == segments * Int(v.gsoSize))
        }
        let pseudo = InternetChecksum.pseudoHeader(
            source: ip.source, destination: ip.destination, protocol: IPProtocol.tcp, length: ip.payloadLength)
        let field = Int(v.checksumStart) + Int(v.checksumOffset)
        #expect(UInt16(frame[field]) << 8 | UInt16(frame[field + 1]) == pseudo.folded)
        var completed = frame
        try completed.withUnsafeMutableBytes {
            try InternetChecksum.completePartial($0, start: Int(v.checksumStart), offset: Int(v.checksumOffset))
        }
        var sum = pseudo
        completed.withUnsafeBytes { sum.add(bytes: UnsafeRawBufferPointer(rebasing: $0[tcpStart...])) }
        #expect(sum.verifies)
    }

    @Test func v1LayoutCarriesNumBuffers() throws {
        let bytes = Self.tso4Header + [0x01, 0x00]
        let v1 = try Self.parse(bytes, size: VirtioNetHeader.v1Size).get()
        #expect(v1.numBuffers == 1 && v1.gsoType == .tcpv4)
        #expect(try F.emitted { b throws(WireError) in try v1.emit(into: b, size: 12) } == bytes)
        // The legacy layout neither reads nor writes the two extra bytes.
        let legacy = try Self.parse(bytes, size: VirtioNetHeader.legacySize).get()
        #expect(legacy.numBuffers == 0)
        var out = [UInt8](repeating: 0xEE, count: 12)
        let n = try out.withUnsafeMutableBytes { try v1.emit(into: $0, size: 10) }
        #expect(n == 10)
        #expect(out == Self.tso4Header + [0xEE, 0xEE])
    }

    @Test(arguments: [VirtioNetHeader.legacySize, VirtioNetHeader.v1Size])
    func plainFrame(_ size: Int) throws {
        let zero = VirtioNetHeader()
        #expect(
            try F.emitted { b throws(WireError) in try zero.emit(into: b, size: size) }
                == [UInt8](repeating: 0, count: size))
        #expect(try Self.parse([UInt8](repeating: 0, count: size), size: size).get() == zero)
    }

    @Test(arguments: [VirtioNetHeader.legacySize, VirtioNetHeader.v1Size])
    func roundTrip(_ size: Int) throws {
        var v = VirtioNetHeader()
        v.flags = [.needsChecksum, .dataValid, Flags(rawValue: 0x40)]
        v.gsoType = .udpL4
        v.gsoECN = true
        v.headerLength = 0x1234
        v.gsoSize = 0xFFFF
        v.checksumStart = 0x0102
        v.checksumOffset = 0x8006
        v.numBuffers = size == VirtioNetHeader.v1Size ? 0xABCD : 0
        let bytes = try F.emitted { b throws(WireError) in try v.emit(into: b, size: size) }
        #expect(Array(bytes[0..<10]) == [0x43, 0x85, 0x34, 0x12, 0xFF, 0xFF, 0x02, 0x01, 0x06, 0x80])
        #expect(try Self.parse(bytes, size: size).get() == v)
    }
    typealias Flags = VirtioNetHeader.Flags

    @Test(
        arguments: [
            (0x00, VirtioNetHeader.GSOType.none, false), (0x01, .tcpv4, false), (0x03, .udp, false),
            (0x04, .tcpv6, false),
            (0x05, .udpL4, false), (0x81, .tcpv4, true), (0x84, .tcpv6, true),
        ] as [(UInt8, VirtioNetHeader.GSOType, Bool)])
    func gsoTypes(_ raw: UInt8, _ type: VirtioNetHeader.GSOType, _ ecn: Bool) throws {
        var bytes = Self.tso4Header
        bytes[1] = raw
        let v = try Self.parse(bytes, size: 10).get()
        #expect(v.gsoType == type && v.gsoECN == ecn)
        #expect(try F.emitted { b throws(WireError) in try v.emit(into: b, size: 10) } == bytes)
    }

    /// 2 was TCPv4-with-ECN in an early draft; the rest were never assigned.
    @Test(arguments: [0x02, 0x06, 0x7F, 0x82, 0xFF] as [UInt8])
    func unknownGSOTypes(_ raw: UInt8) {
        var bytes = Self.tso4Header
        bytes[1] = raw
        #expect(F.code(of: bytes) { try VirtioNetHeader.parse($0, size: 10) } == .unsupported)
    }

    @Test(arguments: [0, 8, 11, 13, 20])
    func otherSizes(_ size: Int) {
        #expect(
            F.code(of: [UInt8](repeating: 0, count: 24)) { try VirtioNetHeader.parse($0, size: size) } == .unsupported)
        #expect(
            F.thrownCode { () throws(WireError) in
                _ = try F.emitted { b throws(WireError) in try VirtioNetHeader().emit(into: b, size: size) }
            } == .unsupported)
    }

    @Test(arguments: [VirtioNetHeader.legacySize, VirtioNetHeader.v1Size])
    func truncations(_ size: Int) {
        F.expectTruncations(of: Self.tso4Header + [0x01, 0x00], essential: size) { bytes throws(WireError) in
            _ = try VirtioNetHeader.parse(bytes, size: size)
        }
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
        defer { small.deallocate() }
        #expect(
            F.thrownCode { () throws(WireError) in _ = try VirtioNetHeader().emit(into: small, size: size) } == .noSpace
        )
    }

    @Test func validateAgainstFrame() throws {
        var v = try Self.parse(Self.tso4Header, size: 10).get()
        // The checksum field must lie inside the frame: 34 + 16 + 2 = 52 bytes at least.
        #expect(F.thrownCode { () throws(WireError) in try v.validate(frameLength: 51) } == .badLength)
        #expect(F.thrownCode { () throws(WireError) in try v.validate(frameLength: 52) } == nil)
        v.checksumStart = 0xFFFF
        v.checksumOffset = 0xFFFF
        #expect(F.thrownCode { () throws(WireError) in try v.validate(frameLength: 65535) } == .badLength)
        // Coalescing counts reuse the fields; they are not offsets then.
        v.flags.insert(.rscInfo)
        #expect(F.thrownCode { () throws(WireError) in try v.validate(frameLength: 60) } == nil)
        // A GSO frame needs a segment size.
        var gso = try Self.parse(Self.tso4Header, size: 10).get()
        gso.gsoSize = 0
        #expect(F.thrownCode { () throws(WireError) in try gso.validate(frameLength: 7354) } == .malformed)
        #expect(F.thrownCode { () throws(WireError) in try VirtioNetHeader().validate(frameLength: 0) } == nil)
    }
}
