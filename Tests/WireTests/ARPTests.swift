// ARP over Ethernet: Linux's request padded to 60 bytes, the reply built from it, refusals.
import Testing

@testable import Wire

@Suite struct ARPTests {
    typealias F = L3Frames

    static func parseFrame(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> ARPPacket {
        let eth = try EthernetHeader.parse(bytes)
        guard eth.etherType == EtherType.arp else { throw WireError(.unsupported, "test") }
        return try ARPPacket.parse(UnsafeRawBufferPointer(rebasing: bytes[eth.headerLength...]))
    }

    @Test func linuxRequest() throws {
        let arp = try F.withExactBuffer(F.arpRequestPadded) { try Self.parseFrame($0) }
        #expect(arp.operation == .request)
        #expect(arp.senderMAC == F.guestMAC)
        #expect(arp.senderIP == F.guest4)
        #expect(arp.targetMAC == .zero)
        #expect(arp.targetIP == F.peer4)
        #expect(!arp.isAnnouncement && !arp.isProbe)
    }

    /// The reply the stack would build reproduces, byte for byte, the one Linux sent.
    @Test func replyMatchesCapture() throws {
        let request = try F.withExactBuffer(F.arpRequestPadded) { try Self.parseFrame($0) }
        let reply = request.reply(with: F.peerMAC)
        let eth = EthernetHeader(destination: request.senderMAC, source: F.peerMAC, etherType: EtherType.arp)
        let bytes = try F.emitted { b throws(WireError) in
            let n = try eth.emit(into: b)
            return try n + reply.emit(into: UnsafeMutableRawBufferPointer(rebasing: b[n...]))
        }
        #expect(bytes == F.arpReply)
        #expect(try F.withExactBuffer(F.arpReply) { try Self.parseFrame($0) } == reply)
    }

    @Test func emitReproducesCapture() throws {
        let arp = try F.withExactBuffer(F.arpRequest[14...]) { try ARPPacket.parse($0) }
        #expect(try F.emitted { b throws(WireError) in try arp.emit(into: b) } == Array(F.arpRequest[14...]))
    }

    @Test func probeAndAnnouncement() throws {
        let probe = ARPPacket(
            operation: .request, senderMAC: F.guestMAC, senderIP: .any, targetMAC: .zero, targetIP: F.guest4)
        #expect(probe.isProbe && !probe.isAnnouncement)
        let announce = ARPPacket(
            operation: .request, senderMAC: F.guestMAC, senderIP: F.guest4, targetMAC: .zero, targetIP: F.guest4)
        #expect(announce.isAnnouncement && !announce.isProbe)
    }

    @Test func truncations() {
        // The padded frame: everything past the 42 bytes of header and packet is padding.
        F.expectTruncations(of: F.arpRequestPadded, essential: 42) { bytes throws(WireError) in
            _ = try Self.parseFrame(bytes)
        }
    }

    /// (offset into the ARP packet, replacement bytes): hardware type, protocol type, lengths, opcodes.
    @Test(
        arguments: [
            (0, [0x00, 0x06]),  // IEEE 802 hardware type
            (2, [0x86, 0xDD]),  // IPv6 protocol type
            (4, [0x08]),  // 8-byte hardware address
            (5, [0x10]),  // 16-byte protocol address
            (6, [0x00, 0x03]),  // RARP request
            (6, [0x00, 0x08]),  // InARP request
            (6, [0x00, 0x00]),
        ] as [(Int, [UInt8])])
    func refusesOtherKinds(_ offset: Int, _ patch: [UInt8]) {
        var packet = Array(F.arpRequest[14...])
        packet.replaceSubrange(offset..<(offset + patch.count), with: patch)
        #expect(F.code(of: packet) { try ARPPacket.parse($0) } == .unsupported)
    }

    @Test func roundTripAndSpace() throws {
        let arp = ARPPacket(
            operation: .reply, senderMAC: MACAddress(raw: 0xFFFF_FFFF_FFFE), senderIP: IPv4Address(raw: 0xFFFF_FFFF),
            targetMAC: MACAddress(raw: 1), targetIP: IPv4Address(raw: 1))
        let bytes = try F.emitted { b throws(WireError) in try arp.emit(into: b) }
        #expect(bytes.count == ARPPacket.length)
        #expect(try F.withExactBuffer(bytes) { try ARPPacket.parse($0) } == arp)
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: 27, alignment: 1)
        defer { small.deallocate() }
        #expect(F.thrownCode { () throws(WireError) in _ = try arp.emit(into: small) } == .noSpace)
    }
}
