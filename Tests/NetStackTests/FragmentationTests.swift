// Fragments through the whole stack: the guest's fragmented pings and UDP reach their handlers,
// and datagrams to the guest larger than the MTU leave as fragments that reassemble exactly.
import Testing
import Wire
@testable import NetStack

/// An IP packet the stack sent, with its virtio-net header and Ethernet header split off.
struct SentPacket {
    var vnet: [UInt8]
    var eth: EthernetHeader
    var frameLength: Int
    var ip: [UInt8]
}

extension Stack {
    func sentPackets() -> [SentPacket] {
        var out: [SentPacket] = []
        let v = configuration.vnetHeaderSize
        output.drain { f in
            let b = Array(f.bytes)
            let eth = b.withUnsafeBytes { try! EthernetHeader.parse($0.uncheckedSlice(v, $0.count - v)) }
            out.append(SentPacket(vnet: Array(b[..<v]), eth: eth, frameLength: b.count, ip: Array(b[(v + 14)...])))
        }
        return out
    }

    /// Teaches the stack the guest's MAC for both families, as its first frames would.
    func learnGuest() {
        neighbors.learn(.v4(Guest.ipv4), mac: Guest.mac, now: 0)
        neighbors.learn(.v6(Guest.ipv6), mac: Guest.mac, now: 0)
    }
}

@Suite struct GuestFragmentTests {
    let config = StackConfiguration()
    static let t0: UInt64 = 1_000_000_000

    @Test func pingToTheGatewayInThreeFragmentsIsAnswered() throws {
        let s = Stack(configuration: config)
        let payload = pattern(4000, seed: 9)
        let icmp = Datagram.echoRequestV4(identifier: 0x77, sequence: 3, payload: payload)
        let fragments = Datagram.ipv4Fragments(icmp, pieces: Piece.split(icmp.count, size: 1480), to: config.gatewayIPv4, protocolNumber: IPProtocol.icmp)
        #expect(fragments.count == 3)
        for f in fragments.reversed() { s.receive(Datagram.frame(f, etherType: EtherType.ipv4), now: Self.t0) }
        #expect(s.counters.echoReplies == 1)

        // The reply is as large, so it comes back in fragments too; put them together.
        let sent = s.sentPackets()
        #expect(sent.count == 3)
        var r = IPv4Reassembler()
        var whole: IPv4Reassembler.Reassembled?
        for p in sent {
            #expect(p.ip.count <= config.mtu)
            #expect(p.eth.destination == Guest.mac)
            whole = try r.add(packet: p.ip, now: Self.t0)
        }
        let w = try #require(whole)
        #expect(w.header.source == config.gatewayIPv4 && w.header.destination == Guest.ipv4)
        let m = try w.payload.withUnsafeBytes { try ICMPv4Message.parse($0) }
        #expect(m.type == ICMPv4Message.echoReply && m.identifier == 0x77 && m.sequence == 3)
        #expect(Array(w.payload[8...]) == payload)
    }

    @Test func pingToTheGatewayInThreeIPv6FragmentsIsAnswered() throws {
        let s = Stack(configuration: config)
        let payload = pattern(4000, seed: 4)
        let icmp = Datagram.echoRequestV6(from: Guest.ipv6, to: config.gatewayIPv6, identifier: 5, sequence: 6, payload: payload)
        let fragments = Datagram.ipv6Fragments(icmp, pieces: Piece.split(icmp.count, size: 1448), to: config.gatewayIPv6, nextHeader: IPProtocol.icmpv6)
        #expect(fragments.count == 3)
        for f in shuffled(fragments, seed: 3) { s.receive(Datagram.frame(f, etherType: EtherType.ipv6), now: Self.t0) }
        #expect(s.counters.echoReplies == 1)
        let sent = s.sentPackets()
        #expect(sent.count == 3)
        var r = IPv6Reassembler()
        var whole: IPv6Reassembler.Reassembled?
        for p in sent {
            #expect(p.ip.count <= config.mtu)
            whole = try r.add(packet: p.ip, now: Self.t0)
        }
        let w = try #require(whole)
        let m = try w.payload.withUnsafeBytes { try ICMPv6Message.parse($0, source: config.gatewayIPv6, destination: Guest.ipv6) }
        #expect(m.type == ICMPv6Message.echoReply && m.restOfHeader == 5 << 16 | 6)
        #expect(Array(w.payload[8...]) == payload)
    }

    @Test func fragmentedUDPReachesTheUDPEventIntact() throws {
        let s = Stack(configuration: config)
        let remote = IPv4Address(192, 0, 2, 53)
        let payload = pattern(5000, seed: 1)
        let udp = Datagram.udp(from: Guest.ipv4, to: remote, srcPort: 33333, dstPort: 53, payload: payload)
        for f in Datagram.ipv4Fragments(udp, pieces: Piece.split(udp.count, size: 1480), to: remote, protocolNumber: IPProtocol.udp) {
            s.receive(Datagram.frame(f, etherType: EtherType.ipv4), now: Self.t0)
        }
        let ev = s.events()
        #expect(ev.count == 1)
        guard case .udp(let key, let got)? = ev.first else {
            Issue.record("no UDP event: \(ev)")
            return
        }
        #expect(key == FlowKey(guestAddress: .v4(Guest.ipv4), guestPort: 33333, remoteAddress: .v4(remote), remotePort: 53))
        #expect(got == payload)
    }

    @Test func corruptedFragmentFailsTheChecksumOfTheWhole() throws {
        let s = Stack(configuration: config)
        let remote = IPv4Address(192, 0, 2, 53)
        var udp = Datagram.udp(from: Guest.ipv4, to: remote, dstPort: 53, payload: pattern(3000))
        let good = udp
        udp[2000] ^= 0x10
        let pieces = Piece.split(udp.count, size: 1480)
        let bad = Datagram.ipv4Fragments(udp, pieces: pieces, to: remote, protocolNumber: IPProtocol.udp)
        for f in bad { s.receive(Datagram.frame(f, etherType: EtherType.ipv4), now: Self.t0) }
        #expect(s.events().isEmpty)
        #expect(s.counters.badChecksum == 1, "reassembled datagrams are always checked, whatever the vnet header said")
        for f in Datagram.ipv4Fragments(good, pieces: pieces, to: remote, protocolNumber: IPProtocol.udp, identification: 2) {
            s.receive(Datagram.frame(f, etherType: EtherType.ipv4), now: Self.t0)
        }
        #expect(s.events().count == 1)
    }

    @Test func pollExpiresPartialDatagrams() throws {
        let s = Stack(configuration: config)
        #expect(s.nextDeadline == nil)
        let udp = Datagram.udp(from: Guest.ipv4, to: IPv4Address(192, 0, 2, 1), dstPort: 9, payload: pattern(3000))
        let f = Datagram.ipv4Fragments(udp, pieces: Piece.split(udp.count, size: 1480), to: IPv4Address(192, 0, 2, 1), protocolNumber: IPProtocol.udp)
        s.receive(Datagram.frame(f[0], etherType: EtherType.ipv4), now: Self.t0)
        let u6 = Datagram.udp(from: Guest.ipv6, to: config.gatewayIPv6, dstPort: 9, payload: pattern(3000))
        let f6 = Datagram.ipv6Fragments(u6, pieces: Piece.split(u6.count, size: 1448), to: config.gatewayIPv6, nextHeader: IPProtocol.udp)
        s.receive(Datagram.frame(f6[1], etherType: EtherType.ipv6), now: Self.t0 + 5)
        #expect(s.nextDeadline == Self.t0 + 30_000_000_000)
        s.poll(now: Self.t0 + 30_000_000_000)
        #expect(s.ipv4Reassembler.datagramsInProgress == 0 && s.ipv6Reassembler.datagramsInProgress == 1)
        #expect(s.nextDeadline == Self.t0 + 5 + 30_000_000_000)
        s.poll(now: Self.t0 + 31_000_000_000)
        #expect(s.ipv6Reassembler.bufferedBytes == 0 && s.nextDeadline == nil)
    }
}

@Suite struct FragmentationTests {
    static let t0: UInt64 = 1_000_000_000

    static func key(_ v6: Bool) -> FlowKey {
        v6 ? FlowKey(guestAddress: .v6(Guest.ipv6), guestPort: 40000, remoteAddress: .v6(IPv6Address("2001:db8::53")!), remotePort: 53)
            : FlowKey(guestAddress: .v4(Guest.ipv4), guestPort: 40000, remoteAddress: .v4(IPv4Address(192, 0, 2, 53)), remotePort: 53)
    }

    struct Setup: CustomStringConvertible, Sendable {
        var vnet: Int
        var offloads: Bool
        var v6: Bool
        var description: String { "vnet \(vnet), offloads \(offloads), \(v6 ? "IPv6" : "IPv4")" }
    }

    static let setups: [Setup] = [
        Setup(vnet: 0, offloads: false, v6: false), Setup(vnet: 10, offloads: true, v6: false), Setup(vnet: 12, offloads: false, v6: false),
        Setup(vnet: 0, offloads: false, v6: true), Setup(vnet: 10, offloads: true, v6: true),
    ]

    @Test(arguments: setups)
    func largeUDPDatagramLeavesAsFragmentsThatReassemble(_ setup: Setup) throws {
        let config = StackConfiguration(vnetHeaderSize: setup.vnet, offloads: setup.offloads)
        let s = Stack(configuration: config)
        s.learnGuest()
        let key = Self.key(setup.v6)
        let payload = pattern(4000, seed: 42)
        payload.withUnsafeBytes { s.sendUDP(key, payload: $0) }
        let sent = s.sentPackets()
        #expect(sent.count == 3)
        var ids: Set<UInt32> = []
        var v4 = IPv4Reassembler()
        var v6 = IPv6Reassembler()
        var datagram: [UInt8]?
        for (i, p) in sent.enumerated() {
            #expect(p.frameLength - setup.vnet <= 1514, "fits a 1500-byte MTU")
            #expect(p.vnet.allSatisfy { $0 == 0 }, "no partial checksum, no GSO on a fragment")
            #expect(p.eth.destination == Guest.mac)
            if setup.v6 {
                let h = try p.ip.withUnsafeBytes { try IPv6Header.parse($0) }
                let info = try #require(h.fragment)
                #expect(info.moreFragments == (i < 2))
                #expect(info.offset % 8 == 0 && info.offset == i * 1448)
                ids.insert(info.identification)
                if let w = try v6.add(packet: p.ip, now: Self.t0) {
                    #expect(w.header.upperProtocol == IPProtocol.udp)
                    datagram = w.payload
                }
            } else {
                let h = try p.ip.withUnsafeBytes { try IPv4Header.parse($0) }
                #expect(!h.dontFragment)
                #expect(h.moreFragments == (i < 2))
                #expect(h.fragmentOffset == i * 1480)
                ids.insert(UInt32(h.identification))
                datagram = try v4.add(packet: p.ip, now: Self.t0)?.payload ?? datagram
            }
        }
        #expect(ids.count == 1, "one identification for all fragments")
        let d = try #require(datagram)
        #expect(d.count == 8 + 4000)
        let udp = try d.withUnsafeBytes { try UDPHeader.parse($0) }
        #expect(udp.sourcePort == 53 && udp.destinationPort == 40000 && udp.checksum != 0)
        let ok = d.withUnsafeBytes { b in
            switch (key.remoteAddress, key.guestAddress) {
            case (.v4(let src), .v4(let dst)): UDPHeader.verifyChecksum(b, source: src, destination: dst)
            case (.v6(let src), .v6(let dst)): UDPHeader.verifyChecksum(b, source: src, destination: dst)
            default: false
            }
        }
        #expect(ok, "checksum computed over the whole datagram")
        #expect(Array(d[8...]) == payload)
    }

    @Test(arguments: [(1472, 1), (1473, 2), (2952, 2), (2953, 3)])
    func fragmentsOnlyWhatExceedsTheMTU(_ size: Int, _ frames: Int) throws {
        let s = Stack(configuration: StackConfiguration(vnetHeaderSize: 0, offloads: false))
        s.learnGuest()
        pattern(size).withUnsafeBytes { s.sendUDP(Self.key(false), payload: $0) }
        let sent = s.sentPackets()
        #expect(sent.count == frames)
        #expect(sent.allSatisfy { $0.frameLength <= 1514 })
    }

    @Test func successiveDatagramsGetDistinctIdentifications() throws {
        let s = Stack(configuration: StackConfiguration())
        s.learnGuest()
        var ids: [UInt16] = []
        for _ in 0..<3 {
            pattern(3000).withUnsafeBytes { s.sendUDP(Self.key(false), payload: $0) }
            let first = try #require(s.sentPackets().first)
            ids.append(try first.ip.withUnsafeBytes { try IPv4Header.parse($0) }.identification)
        }
        #expect(Set(ids).count == 3)
    }

    @Test func largestDatagramsGoOutAndLargerAreDropped() throws {
        let s = Stack(configuration: StackConfiguration())
        s.learnGuest()
        pattern(65_507).withUnsafeBytes { s.sendUDP(Self.key(false), payload: $0) }
        var v4 = IPv4Reassembler()
        var got: [UInt8]?
        for p in s.sentPackets() { got = try v4.add(packet: p.ip, now: Self.t0)?.payload ?? got }
        #expect(got?.count == 65_515)
        pattern(65_508).withUnsafeBytes { s.sendUDP(Self.key(false), payload: $0) }
        #expect(s.sentPackets().isEmpty)
        pattern(65_527).withUnsafeBytes { s.sendUDP(Self.key(true), payload: $0) }
        var v6 = IPv6Reassembler()
        got = nil
        for p in s.sentPackets() { got = try v6.add(packet: p.ip, now: Self.t0)?.payload ?? got }
        #expect(got?.count == 65_535)
        pattern(65_528).withUnsafeBytes { s.sendUDP(Self.key(true), payload: $0) }
        #expect(s.sentPackets().isEmpty)
        #expect(s.counters.outputDropped == 2)
    }

    @Test func smallDatagramsKeepTheOffloadPath() throws {
        let s = Stack(configuration: StackConfiguration())
        s.learnGuest()
        pattern(100).withUnsafeBytes { s.sendUDP(Self.key(false), payload: $0) }
        let p = try #require(s.sentPackets().first)
        let vnet = try p.vnet.withUnsafeBytes { try VirtioNetHeader.parse($0, size: 10) }
        #expect(vnet.flags.contains(.needsChecksum))
        #expect(try p.ip.withUnsafeBytes { try IPv4Header.parse($0) }.dontFragment)
    }
}
