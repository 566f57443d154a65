// Ethernet II and 802.1Q headers: captured frames, a tagged frame, stacked tags, truncations, round trips.
import Testing

@testable import Wire

@Suite struct EthernetTests {
    typealias F = L3Frames

    @Test func broadcastARPFrame() throws {
        let h = try F.withExactBuffer(F.arpRequestPadded) { try EthernetHeader.parse($0) }
        #expect(h.destination == .broadcast)
        #expect(h.source == F.guestMAC)
        #expect(h.etherType == EtherType.arp)
        #expect(h.vlanTag == nil && h.vlanID == nil && h.vlanPriority == nil)
        #expect(h.headerLength == 14)
    }

    @Test func unicastIPv6Frame() throws {
        let h = try F.withExactBuffer(F.udp6) { try EthernetHeader.parse($0) }
        #expect(h == EthernetHeader(destination: F.peerMAC, source: F.guestMAC, etherType: EtherType.ipv6))
    }

    @Test func taggedFrame() throws {
        let frame = F.udp4Tagged
        let h = try F.withExactBuffer(frame) { try EthernetHeader.parse($0) }
        #expect(h.vlanTag == 0xA064)
        #expect(h.vlanPriority == 5)
        #expect(h.vlanID == 100)
        #expect(h.etherType == EtherType.ipv4)
        #expect(h.headerLength == 18)
        // The payload starts after the tag: the IPv4 header inside parses from there.
        let ip = try F.withExactBuffer(frame[h.headerLength...]) { try IPv4Header.parse($0) }
        #expect(ip.source == F.guest4 && ip.protocolNumber == IPProtocol.udp)
    }

    @Test(arguments: [
        // 802.1ad outer tag.
        [0x88, 0xA8, 0x00, 0x0A, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00] as [UInt8],
        // Two 802.1Q tags.
        [0x81, 0x00, 0x00, 0x0A, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00],
        // An 802.1Q tag around an S-TAG.
        [0x81, 0x00, 0x00, 0x0A, 0x88, 0xA8, 0x00, 0x64, 0x08, 0x00],
    ])
    func stackedTagsAreUnsupported(_ tail: [UInt8]) {
        let frame = Array(F.udp4[0..<12]) + tail + F.udp4[14...]
        #expect(F.code(of: frame) { try EthernetHeader.parse($0) } == .unsupported)
    }

    @Test func lengthFieldPassesThrough() throws {
        // An 802.3 frame with an LLC header (an STP BPDU's framing): the type/length field is a
        // length, below 0x0600, for the caller to drop.
        let frame: [UInt8] = [
            0x01, 0x80, 0xC2, 0x00, 0x00, 0x00, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x26, 0x42, 0x42, 0x03,
        ]
        let h = try F.withExactBuffer(frame) { try EthernetHeader.parse($0) }
        #expect(h.etherType == 0x0026)
        #expect(h.etherType < EtherType.minimumType)
    }

    @Test func truncations() {
        F.expectTruncations(of: Array(F.arpRequest[0..<14]), essential: 14) { bytes throws(WireError) in
            _ = try EthernetHeader.parse(bytes)
        }
        F.expectTruncations(of: Array(F.udp4Tagged[0..<18]), essential: 18) { bytes throws(WireError) in
            _ = try EthernetHeader.parse(bytes)
        }
    }

    @Test(arguments: [F.arpRequestPadded, F.udp4, F.udp6, F.udp4Tagged, F.igmpRouterAlert])
    func emitReproducesCapturedHeader(_ frame: [UInt8]) throws {
        let h = try F.withExactBuffer(frame) { try EthernetHeader.parse($0) }
        let out = try F.emitted { b throws(WireError) in try h.emit(into: b) }
        #expect(out == Array(frame[0..<h.headerLength]))
    }

    @Test(arguments: [nil, 0x0001, 0xFFFF] as [UInt16?])
    func roundTrip(_ tag: UInt16?) throws {
        let h = EthernetHeader(destination: F.peerMAC, source: F.guestMAC, etherType: EtherType.ipv6, vlanTag: tag)
        let out = try F.emitted { b throws(WireError) in try h.emit(into: b) }
        #expect(out.count == h.headerLength)
        #expect(try F.withExactBuffer(out) { try EthernetHeader.parse($0) } == h)
    }

    @Test func emitNeedsSpace() {
        let tagged = EthernetHeader(destination: .broadcast, source: F.guestMAC, etherType: EtherType.arp, vlanTag: 7)
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: 17, alignment: 1)
        defer { small.deallocate() }
        #expect(F.thrownCode { () throws(WireError) in _ = try tagged.emit(into: small) } == .noSpace)
        var untagged = tagged
        untagged.vlanTag = nil
        #expect(F.thrownCode { () throws(WireError) in _ = try untagged.emit(into: small) } == nil)
    }
}
