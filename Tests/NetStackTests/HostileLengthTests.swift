// Frames whose length fields lie, fed to a whole stack: each is one counted malformed drop, with
// nothing sent back and the stack still answering afterwards.
import Testing
import Wire

@testable import NetStack

@Suite struct HostileLengthTests {
    static let config = StackConfiguration()
    static let vnet = 10
    static let l3 = vnet + EthernetHeader.minimumLength

    static func udp4() -> [UInt8] {
        Guest.ipv4Frame(
            to: config.gatewayIPv4, protocolNumber: IPProtocol.udp,
            l4: Datagram.udp(from: Guest.ipv4, to: config.gatewayIPv4, dstPort: 9, payload: [1, 2, 3, 4]),
            checksumAt: nil)
    }

    /// An IPv6 packet from the guest to the gateway: the fixed header with `payloadLength` as
    /// given, whatever the bytes after it hold.
    static func ipv6(nextHeader: UInt8, payloadLength: UInt16, hopLimit: UInt8 = 64, rest: [UInt8]) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: IPv6Header.length + rest.count)
        packet.withUnsafeMutableBytes { b in
            b.setBE32(0x6000_0000, 0)
            b.setBE16(payloadLength, 4)
            b.setU8(nextHeader, 6)
            b.setU8(hopLimit, 7)
            b.setIPv6(Guest.ipv6, 8)
            b.setIPv6(config.gatewayIPv6, 24)
        }
        packet.replaceSubrange(IPv6Header.length..., with: rest)
        return Datagram.frame(packet, etherType: EtherType.ipv6)
    }

    static func setBE16(_ frame: inout [UInt8], _ value: UInt16, at offset: Int) {
        frame[offset] = UInt8(value >> 8)
        frame[offset + 1] = UInt8(value & 0xFF)
    }

    /// Each frame, and what in it lies.
    static let frames: [(String, [UInt8])] = {
        var out: [(String, [UInt8])] = []
        out.append(("virtio-net header cut short", [UInt8](repeating: 0, count: vnet - 1)))
        out.append(("Ethernet header cut short", Array(udp4()[..<(l3 - 1)])))
        let arp = Guest.arpRequest(for: config.gatewayIPv4)
        out.append(("ARP cut short", Array(arp[..<(arp.count - 1)])))

        var f = udp4()
        setBE16(&f, 0x0FFF, at: l3 + 2)
        out.append(("IPv4 total length past the frame", f))
        f = udp4()
        f[l3] = 0x4F
        out.append(("IPv4 header length past the total length", f))
        f = udp4()
        setBE16(&f, 0x0FFF, at: l3 + 20 + 4)
        out.append(("UDP length past the IP payload", f))
        f = udp4()
        setBE16(&f, 4, at: l3 + 20 + 4)
        out.append(("UDP length shorter than its header", f))

        // The checksum vouched for (DATA_VALID), so the TCP parser is what sees the lie.
        f = Guest.tcp(to: config.gatewayIPv4, dstPort: 80, seq: 1, flags: [.syn])
        f[0] = VirtioNetHeader.Flags.dataValid.rawValue
        f[l3 + 20 + 12] = 0xF0
        out.append(("TCP data offset past the segment", f))

        out.append((
            "ICMP shorter than its header",
            Guest.ipv4Frame(to: config.gatewayIPv4, protocolNumber: IPProtocol.icmp, l4: [8, 0, 0, 0], checksumAt: nil)
        ))
        out.append(("IPv6 payload length past the frame", ipv6(nextHeader: IPProtocol.udp, payloadLength: 0x0FFF, rest: [0, 0, 0, 0])))
        // Hop-by-hop options claiming (5 + 1) × 8 bytes in an 8-byte payload.
        out.append((
            "IPv6 extension header past the payload",
            ipv6(nextHeader: IPProtocol.hopByHop, payloadLength: 8, rest: [IPProtocol.udp, 5, 0, 0, 0, 0, 0, 0])
        ))
        // A Fragment header needs 8 bytes; the payload holds 4.
        out.append((
            "IPv6 Fragment header cut short",
            ipv6(nextHeader: IPProtocol.fragment, payloadLength: 4, rest: [IPProtocol.udp, 0, 0, 1])
        ))
        // A Neighbor Solicitation whose option claims 16 bytes with 8 present.
        var ns: [UInt8] = [135, 0, 0, 0, 0, 0, 0, 0]
        withUnsafeBytes(of: config.gatewayIPv6.high.bigEndian) { ns += $0 }
        withUnsafeBytes(of: config.gatewayIPv6.low.bigEndian) { ns += $0 }
        ns += [1, 2, 0x52, 0x54, 0, 0x12, 0x34, 0x56]
        let nsChecked: [UInt8] = ns.withUnsafeMutableBytes { b in
            ICMPv6Message.fillChecksum(b, source: Guest.ipv6, destination: config.gatewayIPv6)
            return Array(b)
        }
        out.append((
            "NDP option past the message",
            // Hop limit 255, as RFC 4861 §7.1.1 requires, so only the option is wrong.
            ipv6(nextHeader: IPProtocol.icmpv6, payloadLength: UInt16(nsChecked.count), hopLimit: 255, rest: nsChecked)
        ))
        return out
    }()

    @Test(arguments: frames.map(\.0))
    func lyingLengthIsOneCountedDrop(_ name: String) throws {
        let frame = try #require(Self.frames.first { $0.0 == name }?.1)
        let s = Stack(configuration: Self.config)
        s.receive(frame)
        #expect(s.counters.malformed == 1, "\(name): \(s.counters)")
        #expect(s.counters.framesOut == 0, "\(name): nothing is answered")
        // Still alive and answering: an ARP request for the gateway gets its reply.
        s.receive(Guest.arpRequest(for: Self.config.gatewayIPv4))
        #expect(s.counters.arpReplies == 1)
    }

    /// Every cut of each frame, in an allocation of exactly its size: counted, never a trap.
    @Test func everyCutOfEveryLyingFrameIsCounted() {
        let s = Stack(configuration: Self.config)
        var fed = 0
        for (_, frame) in Self.frames {
            for n in 0...frame.count {
                let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 1)
                defer { bytes.deallocate() }
                _ = bytes.initializeMemory(as: UInt8.self, from: frame[..<n])
                s.receive(frame: UnsafeRawBufferPointer(bytes), now: 1_000_000_000)
                fed += 1
            }
        }
        let c = s.counters
        #expect(c.malformed + c.badChecksum + c.notForUs + c.unsupported == fed)
    }
}
