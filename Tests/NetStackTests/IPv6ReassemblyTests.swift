// IPv6 reassembly: Fragment headers in any order, with extension headers before and after the
// Fragment header; overlaps, tiny first fragments, oversize packets and timeouts are dropped.
import Testing
import Wire
@testable import NetStack

@Suite struct IPv6ReassemblyTests {
    static let dst = Datagram.gatewayV6
    static let t0: UInt64 = 7_000_000_000

    static func udp(_ n: Int = 4000) -> [UInt8] { Datagram.udp(from: Guest.ipv6, to: dst, dstPort: 53, payload: pattern(n, seed: 3)) }

    /// Destination Options header with one PadN option filling its 8 bytes.
    static func destinationOptions(next: UInt8) -> [UInt8] { [next, 0, 1, 4, 0, 0, 0, 0] }
    static func hopByHop(next: UInt8) -> [UInt8] { [next, 0, 1, 4, 0, 0, 0, 0] }

    @Test(arguments: [0, 1, 2, 3, 4] as [UInt64])
    func reassemblesInAnyOrder(_ seed: UInt64) throws {
        let d = Self.udp()
        var packets = Datagram.ipv6Fragments(d, pieces: Piece.split(d.count, size: 1448), to: Self.dst, nextHeader: IPProtocol.udp)
        #expect(packets.count == 3)
        packets = seed == 0 ? packets : seed == 1 ? packets.reversed() : shuffled(packets, seed: seed)
        var r = IPv6Reassembler()
        var whole: IPv6Reassembler.Reassembled?
        for (i, p) in packets.enumerated() {
            whole = try r.add(packet: p, now: Self.t0)
            #expect((whole != nil) == (i == 2))
        }
        let w = try #require(whole)
        #expect(w.payload == d && w.upperOffset == 0 && w.upperLength == d.count)
        #expect(w.header.fragment == nil && w.header.upperProtocol == IPProtocol.udp)
        #expect(w.header.payloadLength == UInt16(d.count))
        #expect(w.payload.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: Guest.ipv6, destination: Self.dst) })
        #expect(r.datagramsInProgress == 0 && r.bufferedBytes == 0 && r.counters.completed == 1)
    }

    @Test func extensionHeadersBeforeAndAfterTheFragmentHeader() throws {
        let u = Self.udp(3000)
        let fragmentable = Self.destinationOptions(next: IPProtocol.udp) + u
        let packets = Datagram.ipv6Fragments(
            fragmentable, pieces: Piece.split(fragmentable.count, size: 1440), to: Self.dst, nextHeader: IPProtocol.destinationOptions,
            before: Self.hopByHop(next: IPProtocol.fragment), firstNextHeader: IPProtocol.hopByHop)
        var r = IPv6Reassembler()
        var whole: IPv6Reassembler.Reassembled?
        for p in packets.reversed() { whole = try r.add(packet: p, now: Self.t0) }
        let w = try #require(whole)
        #expect(w.payload == fragmentable)
        #expect(w.upperOffset == 8, "past the Destination Options header")
        #expect(w.header.upperProtocol == IPProtocol.udp)
        #expect(Array(w.payload[w.upperOffset...]) == u)
        #expect(w.header.payloadLength == UInt16(8 + fragmentable.count), "hop-by-hop stays, fragment header goes")

        // The stack delivers it like an unfragmented datagram.
        let s = Stack(configuration: StackConfiguration())
        for p in packets { s.receive(Datagram.frame(p, etherType: EtherType.ipv6)) }
        let ev = s.events()
        guard case .udp(let key, let payload)? = ev.first else {
            Issue.record("expected a UDP event, got \(ev)")
            return
        }
        #expect(key.guestAddress == .v6(Guest.ipv6) && key.remotePort == 53)
        #expect(payload == pattern(3000, seed: 3))
    }

    @Test func exactDuplicatesPassOverlapsDrop() throws {
        let d = Self.udp()
        let p = Datagram.ipv6Fragments(d, pieces: Piece.split(d.count, size: 1448), to: Self.dst, nextHeader: IPProtocol.udp)
        var r = IPv6Reassembler()
        _ = try r.add(packet: p[0], now: Self.t0)
        _ = try r.add(packet: p[0], now: Self.t0)
        _ = try r.add(packet: p[1], now: Self.t0)
        let completed = try r.add(packet: p[2], now: Self.t0)
        #expect(completed?.payload == d)
        #expect(r.counters.duplicates == 1)

        let overlap = Datagram.ipv6Fragments(d, pieces: [Piece(offset: 1440, length: 1448, more: true)], to: Self.dst, nextHeader: IPProtocol.udp)[0]
        _ = try r.add(packet: p[0], now: Self.t0)
        let afterOverlap = try r.add(packet: overlap, now: Self.t0)
        #expect(afterOverlap == nil)
        #expect(r.counters.overlapping == 1 && r.datagramsInProgress == 0)
    }

    @Test func keyIncludesIdentificationAndAddresses() throws {
        let d = Self.udp()
        let pieces = Piece.split(d.count, size: 1448)
        let a = Datagram.ipv6Fragments(d, pieces: pieces, to: Self.dst, nextHeader: IPProtocol.udp, identification: 1)
        let b = Datagram.ipv6Fragments(d, pieces: pieces, to: Self.dst, nextHeader: IPProtocol.udp, identification: 2)
        let c = Datagram.ipv6Fragments(d, pieces: pieces, from: IPv6Address("fd00:0:0:2::99")!, to: Self.dst, nextHeader: IPProtocol.udp, identification: 1)
        var r = IPv6Reassembler()
        _ = try r.add(packet: a[0], now: Self.t0)
        _ = try r.add(packet: b[1], now: Self.t0)
        _ = try r.add(packet: c[2], now: Self.t0)
        #expect(r.datagramsInProgress == 3)
        _ = try r.add(packet: a[1], now: Self.t0)
        let completedA = try r.add(packet: a[2], now: Self.t0)
        #expect(completedA?.payload == d)
    }

    @Test func firstFragmentWithoutTheUpperHeaderIsDropped() throws {
        var limits = ReassemblyLimits()
        limits.minimumFragmentPayload = 8
        var r = IPv6Reassembler(limits: limits)
        // RFC 7112: the chain and the upper-layer header belong in the first fragment. Here the
        // first fragment holds the Destination Options header and nothing of the TCP header.
        let fragmentable = Self.destinationOptions(next: IPProtocol.tcp) + pattern(100)
        let p = Datagram.ipv6Fragments(fragmentable, pieces: [Piece(offset: 0, length: 16, more: true)], to: Self.dst,
                                       nextHeader: IPProtocol.destinationOptions)
        let tinyFirst = try r.add(packet: p[0], now: Self.t0)
        #expect(tinyFirst == nil)
        #expect(r.counters.tooSmall == 1)
    }

    @Test func packetPastSixtyFourKiBIsDropped() throws {
        var r = IPv6Reassembler()
        // With an 8-byte hop-by-hop header in front, the fragmentable part may reach 65527.
        let big = pattern(65_600)
        let ok = Datagram.ipv6Fragments(big, pieces: [Piece(offset: 65_520 - 1448, length: 1448, more: true)], to: Self.dst,
                                        nextHeader: IPProtocol.udp, before: Self.hopByHop(next: IPProtocol.fragment), firstNextHeader: IPProtocol.hopByHop)
        _ = try r.add(packet: ok[0], now: Self.t0)
        #expect(r.counters.tooLong == 0)
        let over = Datagram.ipv6Fragments(big, pieces: [Piece(offset: 65_520, length: 16, more: false)], to: Self.dst,
                                          nextHeader: IPProtocol.udp, before: Self.hopByHop(next: IPProtocol.fragment), firstNextHeader: IPProtocol.hopByHop)
        let pastLimit = try r.add(packet: over[0], now: Self.t0)
        #expect(pastLimit == nil)
        #expect(r.counters.tooLong == 1 && r.datagramsInProgress == 0)
    }

    @Test func timeoutAndCountLimit() throws {
        var r = IPv6Reassembler()
        let d = Self.udp()
        for id in 0..<65 as Range<UInt32> {
            let p = Datagram.ipv6Fragments(d, pieces: Piece.split(d.count, size: 1448), to: Self.dst, nextHeader: IPProtocol.udp, identification: id)
            _ = try r.add(packet: p[1], now: Self.t0 + UInt64(id))
        }
        #expect(r.datagramsInProgress == 64 && r.counters.evicted == 1)
        #expect(r.nextDeadline == Self.t0 + 1 + 30_000_000_000)
        let firstHalf = r.expire(now: Self.t0 + 30_000_000_032)
        #expect(firstHalf == 32)
        let secondHalf = r.expire(now: Self.t0 + 40_000_000_000)
        #expect(secondHalf == 32)
        #expect(r.datagramsInProgress == 0 && r.bufferedBytes == 0 && r.counters.timedOut == 64)
    }

    @Test func atomicFragmentIsNotTheReassemblersButReachesUDP() throws {
        let d = Self.udp(100)
        let p = Datagram.ipv6Fragments(d, pieces: [Piece(offset: 0, length: d.count, more: false)], to: Self.dst, nextHeader: IPProtocol.udp)
        var r = IPv6Reassembler()
        let atomic = try r.add(packet: p[0], now: Self.t0)
        #expect(atomic == nil)
        #expect(r.counters.malformed == 1, "atomic fragments are the caller's to pass through")

        let s = Stack(configuration: StackConfiguration())
        s.receive(Datagram.frame(p[0], etherType: EtherType.ipv6))
        guard case .udp(_, let payload)? = s.events().first else {
            Issue.record("the atomic fragment did not reach UDP")
            return
        }
        #expect(payload == pattern(100, seed: 3))
        #expect(s.ipv6Reassembler.counters.fragments == 0)
    }

    @Test func everyTruncationOfAFragmentIsHarmless() throws {
        let d = Self.udp(2000)
        let p = Datagram.ipv6Fragments(d, pieces: Piece.split(d.count, size: 1448), to: Self.dst, nextHeader: IPProtocol.udp)
        let s = Stack(configuration: StackConfiguration())
        for packet in p {
            for n in 0..<packet.count {
                var cut = Array(packet[..<n])
                // Keep the payload length honest for the cut, so the parser accepts what it can.
                if n >= 40 { cut[4] = UInt8((n - 40) >> 8); cut[5] = UInt8(truncatingIfNeeded: n - 40) }
                s.receive(Datagram.frame(cut, etherType: EtherType.ipv6))
            }
        }
        #expect(s.ipv6Reassembler.datagramsInProgress <= 64)
        #expect(s.ipv6Reassembler.bufferedBytes <= 1 << 20)
    }

    @Test func neighborDiscoveryInFragmentsIsIgnored() throws {
        // A router solicitation padded out to two fragments: RFC 6980 says to ignore it.
        let c = StackConfiguration()
        var rs = [UInt8](repeating: 0, count: 2000)
        rs[0] = ICMPv6Message.routerSolicitation
        // One option of an unknown type (ignored, RFC 4861 §4.6) filling the rest: 249 × 8 bytes.
        rs[8] = 200
        rs[9] = 249
        rs.withUnsafeMutableBytes { b in
            var sum = InternetChecksum.pseudoHeader(source: Guest.ipv6, destination: .allRouters, nextHeader: IPProtocol.icmpv6, length: 2000)
            sum.add(bytes: UnsafeRawBufferPointer(b))
            b.setBE16(sum.value, 2)
        }
        let s = Stack(configuration: c)
        for p in Datagram.ipv6Fragments(rs, pieces: Piece.split(rs.count, size: 1448), to: .allRouters, nextHeader: IPProtocol.icmpv6) {
            var f = Datagram.frame(p, etherType: EtherType.ipv6)
            f[10 + 14 + 7] = 255  // hop limit, as NDP demands
            f.withUnsafeMutableBytes { $0.setMAC(MACAddress(ipv6Multicast: .allRouters), 10) }
            s.receive(f)
        }
        #expect(s.ipv6Reassembler.counters.completed == 1)
        #expect(try s.sentFrames().isEmpty, "no router advertisement in answer")
        #expect(s.counters.malformed == 1)
    }
}
