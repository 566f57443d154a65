// UDP: captured datagrams over IPv4 and IPv6 with their checksums verified and recomputed,
// a frame rebuilt byte for byte, bogus length fields and truncations.
import Testing

@testable import Wire

@Suite struct UDPTests {
    typealias F = L3Frames

    static let payload: [UInt8] = Array("hello, gateway\n".utf8)

    /// Ethernet → IPv4 or IPv6 → UDP, with the datagram bounded by the IP layer as the stack does.
    static func parseFrame(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> (UDPHeader, Range<Int>) {
        let eth = try EthernetHeader.parse(bytes)
        let ipStart = eth.headerLength
        let ipBytes = UnsafeRawBufferPointer(rebasing: bytes[ipStart...])
        let range: Range<Int>
        switch eth.etherType {
        case EtherType.ipv4:
            let ip = try IPv4Header.parse(ipBytes)
            guard ip.protocolNumber == IPProtocol.udp else { throw WireError(.unsupported, "test") }
            range = (ipStart + ip.headerLength)..<(ipStart + Int(ip.totalLength))
        case EtherType.ipv6:
            let ip = try IPv6Header.parse(ipBytes)
            guard ip.upperProtocol == IPProtocol.udp else { throw WireError(.unsupported, "test") }
            range = (ipStart + ip.upperOffset)..<(ipStart + ip.upperOffset + ip.upperLength)
        default:
            throw WireError(.unsupported, "test")
        }
        return (try UDPHeader.parse(UnsafeRawBufferPointer(rebasing: bytes[range])), range)
    }

    static func datagram(_ frame: [UInt8]) throws -> [UInt8] {
        let (_, range) = try F.withExactBuffer(frame) { try parseFrame($0) }
        return Array(frame[range])
    }

    @Test func overIPv4() throws {
        let (udp, range) = try F.withExactBuffer(F.udp4) { try Self.parseFrame($0) }
        #expect(udp == UDPHeader(sourcePort: 40000, destinationPort: 53, length: 23, checksum: 0xB46F))
        #expect(udp.payloadLength == 15)
        #expect(Array(F.udp4[(range.lowerBound + 8)...]) == Self.payload)
        let d = Array(F.udp4[range])
        #expect(d.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest4, destination: F.peer4) })
        // The same bytes to another address fail: the pseudo-header is covered.
        #expect(
            !d.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest4, destination: IPv4Address(10, 0, 2, 3)) }
        )
    }

    @Test func overIPv6() throws {
        let (udp, range) = try F.withExactBuffer(F.udp6) { try Self.parseFrame($0) }
        #expect(udp == UDPHeader(sourcePort: 40001, destinationPort: 5353, length: 23, checksum: 0xBDB2))
        #expect(Array(F.udp6[(range.lowerBound + 8)...]) == Self.payload)
        let d = Array(F.udp6[range])
        #expect(d.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest6, destination: F.peer6) })
        #expect(!d.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest6, destination: .loopback) })
    }

    @Test func taggedFrame() throws {
        let (udp, _) = try F.withExactBuffer(F.udp4Tagged) { try Self.parseFrame($0) }
        #expect(udp.destinationPort == 53)
    }

    /// Every single-bit error in the datagram is caught, over both families.
    @Test func corruptionIsDetected() throws {
        for (frame, v6) in [(F.udp4, false), (F.udp6, true)] {
            let d = try Self.datagram(frame)
            for bit in 0..<(d.count * 8) {
                var bad = d
                bad[bit / 8] ^= 1 << (bit % 8)
                // Flipping the length field makes it impossible for the buffer: also a failure.
                let ok = bad.withUnsafeBytes {
                    v6
                        ? UDPHeader.verifyChecksum($0, source: F.guest6, destination: F.peer6)
                        : UDPHeader.verifyChecksum($0, source: F.guest4, destination: F.peer4)
                }
                #expect(!ok, "bit \(bit) of the \(v6 ? "IPv6" : "IPv4") datagram")
            }
        }
    }

    @Test func zeroChecksum() throws {
        var d4 = try Self.datagram(F.udp4)
        d4[6] = 0
        d4[7] = 0
        #expect(d4.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest4, destination: F.peer4) })
        var d6 = try Self.datagram(F.udp6)
        d6[6] = 0
        d6[7] = 0
        #expect(!d6.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest6, destination: F.peer6) })
    }

    @Test func fillReproducesCapturedChecksums() throws {
        var d4 = try Self.datagram(F.udp4)
        d4[6] = 0x12
        d4[7] = 0x34
        d4.withUnsafeMutableBytes { UDPHeader.fillChecksum($0, source: F.guest4, destination: F.peer4) }
        #expect(d4 == (try Self.datagram(F.udp4)))
        var d6 = try Self.datagram(F.udp6)
        d6[6] = 0
        d6[7] = 0
        d6.withUnsafeMutableBytes { UDPHeader.fillChecksum($0, source: F.guest6, destination: F.peer6) }
        #expect(d6 == (try Self.datagram(F.udp6)))
    }

    /// A datagram whose checksum computes to 0 goes out as 0xFFFF (RFC 768), which still verifies.
    @Test(arguments: [false, true])
    func computedZeroIsSentAsAllOnes(_ v6: Bool) {
        var d: [UInt8] = [0x9C, 0x40, 0x00, 0x35, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
        // Choose the last payload word so that the whole sum folds to 0xFFFF.
        var sum =
            v6
            ? InternetChecksum.pseudoHeader(source: F.guest6, destination: F.peer6, nextHeader: 17, length: d.count)
            : InternetChecksum.pseudoHeader(source: F.guest4, destination: F.peer4, protocol: 17, length: d.count)
        d.withUnsafeBytes { sum.add(bytes: $0) }
        let word = 0xFFFF - sum.folded
        d[10] = UInt8(word >> 8)
        d[11] = UInt8(word & 0xFF)
        d.withUnsafeMutableBytes {
            if v6 {
                UDPHeader.fillChecksum($0, source: F.guest6, destination: F.peer6)
            } else {
                UDPHeader.fillChecksum($0, source: F.guest4, destination: F.peer4)
            }
        }
        #expect(d[6] == 0xFF && d[7] == 0xFF)
        #expect(
            d.withUnsafeBytes {
                v6
                    ? UDPHeader.verifyChecksum($0, source: F.guest6, destination: F.peer6)
                    : UDPHeader.verifyChecksum($0, source: F.guest4, destination: F.peer4)
            })
        // A 0 in the field sums just as well here, but means "none": fine over IPv4, never over IPv6.
        d[6] = 0
        d[7] = 0
        #expect(
            d.withUnsafeBytes {
                v6
                    ? UDPHeader.verifyChecksum($0, source: F.guest6, destination: F.peer6)
                    : UDPHeader.verifyChecksum($0, source: F.guest4, destination: F.peer4)
            } == !v6)
    }

    /// The whole captured IPv4 frame, rebuilt from values: Ethernet, IPv4, UDP, payload, checksum.
    @Test func buildFrameLikeLinux() throws {
        let udp = UDPHeader(sourcePort: 40000, destinationPort: 53, payloadLength: Self.payload.count)
        let ip = IPv4Header(
            source: F.guest4, destination: F.peer4, protocolNumber: IPProtocol.udp,
            payloadLength: Int(udp.length), identification: 0x554F)
        let eth = EthernetHeader(destination: F.peerMAC, source: F.guestMAC, etherType: EtherType.ipv4)
        var frame = [UInt8](repeating: 0, count: 57)
        try frame.withUnsafeMutableBytes { b in
            var n = try eth.emit(into: b)
            n += try ip.emit(into: b.slice(n, b.count - n))
            let start = n
            n += try udp.emit(into: b.slice(n, b.count - n))
            b.slice(n, Self.payload.count).copyBytes(from: Self.payload)
            UDPHeader.fillChecksum(b.slice(start, Int(udp.length)), source: ip.source, destination: ip.destination)
        }
        #expect(frame == F.udp4)
    }

    // MARK: Lengths

    @Test func lengthFieldBounds() {
        let header: [UInt8] = [0x9C, 0x40, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]
        for length in 0..<8 {
            var d = header
            d[5] = UInt8(length)
            #expect(F.code(of: d) { try UDPHeader.parse($0) } == .badLength, "length \(length)")
            #expect(!d.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest4, destination: F.peer4) })
        }
        var long = header
        long[5] = 9
        #expect(F.code(of: long) { try UDPHeader.parse($0) } == .badLength)
        long[4] = 0xFF
        long[5] = 0xFF
        #expect(F.code(of: long) { try UDPHeader.parse($0) } == .badLength)
        #expect(!long.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest6, destination: F.peer6) })
        // Exactly the header: an empty datagram.
        #expect(F.code(of: header) { try UDPHeader.parse($0) } == nil)
    }

    /// A length field shorter than the IP payload bounds the datagram; the rest is ignored, by
    /// the checksum too.
    @Test func lengthShorterThanBuffer() throws {
        let d = try Self.datagram(F.udp4) + [0xEE, 0xEE, 0xEE]
        let udp = try F.withExactBuffer(d) { try UDPHeader.parse($0) }
        #expect(udp.length == 23 && udp.payloadLength == 15)
        #expect(d.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: F.guest4, destination: F.peer4) })
    }

    @Test(arguments: [F.udp4, F.udp6, F.udp4Tagged])
    func truncations(_ frame: [UInt8]) {
        F.expectTruncations(of: frame, essential: frame.count) { bytes throws(WireError) in
            _ = try Self.parseFrame(bytes)
        }
    }

    @Test func datagramTruncations() throws {
        // Fewer than 8 bytes is a short read; 8 or more with a length beyond them is a bad field.
        let d = try Self.datagram(F.udp4)
        for n in 0..<d.count {
            #expect(F.code(of: Array(d[0..<n])) { try UDPHeader.parse($0) } == (n < 8 ? .truncated : .badLength))
        }
    }

    @Test(
        arguments: [(0, 0, 8, 0), (0xFFFF, 1, 0xFFFF, 0xFFFF), (53, 40000, 23, 0xB46F)]
            as [(UInt16, UInt16, UInt16, UInt16)])
    func roundTrip(_ source: UInt16, _ destination: UInt16, _ length: UInt16, _ checksum: UInt16) throws {
        let udp = UDPHeader(sourcePort: source, destinationPort: destination, length: length, checksum: checksum)
        let bytes = try F.emitted { b throws(WireError) in try udp.emit(into: b) }
        #expect(bytes.count == 8)
        let padded = bytes + [UInt8](repeating: 0, count: Int(length) - 8)
        #expect(try F.withExactBuffer(padded) { try UDPHeader.parse($0) } == udp)
    }

    @Test func emitReproducesCapture() throws {
        for frame in [F.udp4, F.udp6] {
            let d = try Self.datagram(frame)
            let udp = try F.withExactBuffer(d) { try UDPHeader.parse($0) }
            #expect(try F.emitted { b throws(WireError) in try udp.emit(into: b) } == Array(d[0..<8]))
        }
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: 7, alignment: 1)
        defer { small.deallocate() }
        let udp = UDPHeader(sourcePort: 1, destinationPort: 2, payloadLength: 0)
        #expect(F.thrownCode { () throws(WireError) in _ = try udp.emit(into: small) } == .noSpace)
    }
}
