// IPv4 reassembly: fragments in any order come back as the datagram; overlaps, contradictions,
// tiny fragments, timeouts and the count and memory bounds each drop what they should.
import Testing
import Wire
@testable import NetStack

@Suite struct IPv4ReassemblyTests {
    static let dst = IPv4Address(10, 0, 2, 2)
    static let t0: UInt64 = 5_000_000_000

    /// A 4000-byte UDP payload cut as a 1500-MTU sender cuts it: 1480 + 1480 + 1048.
    static func udpFragments(id: UInt16 = 0x4242) -> (datagram: [UInt8], packets: [[UInt8]]) {
        let d = Datagram.udp(from: Guest.ipv4, to: dst, dstPort: 53, payload: pattern(4000))
        return (d, Datagram.ipv4Fragments(d, pieces: Piece.split(d.count, size: 1480), to: dst, protocolNumber: IPProtocol.udp, identification: id))
    }

    enum Order: String, CaseIterable { case inOrder, reversed, shuffled1, shuffled2, lastFirst }

    @Test(arguments: Order.allCases)
    func reassemblesInAnyOrder(_ order: Order) throws {
        let (d, packets) = Self.udpFragments()
        #expect(packets.count == 3)
        let sequence: [[UInt8]]
        switch order {
        case .inOrder: sequence = packets
        case .reversed: sequence = packets.reversed()
        case .shuffled1: sequence = shuffled(packets, seed: 1)
        case .shuffled2: sequence = shuffled(packets, seed: 7)
        case .lastFirst: sequence = [packets[2], packets[0], packets[1]]
        }
        var r = IPv4Reassembler()
        var result: IPv4Reassembler.Reassembled?
        for (i, p) in sequence.enumerated() {
            result = try r.add(packet: p, now: Self.t0)
            #expect((result != nil) == (i == sequence.count - 1), "complete only with the last piece")
        }
        let whole = try #require(result)
        #expect(whole.payload == d)
        #expect(whole.header.totalLength == UInt16(20 + d.count))
        #expect(!whole.header.moreFragments && whole.header.fragmentOffset == 0)
        #expect(whole.header.protocolNumber == IPProtocol.udp && whole.header.source == Guest.ipv4)
        #expect(whole.payload.withUnsafeBytes { UDPHeader.verifyChecksum($0, source: Guest.ipv4, destination: Self.dst) })
        #expect(r.datagramsInProgress == 0 && r.bufferedBytes == 0)
        #expect(r.counters.completed == 1 && r.counters.fragments == 3 && r.counters.dropped == 0)
    }

    @Test func exactDuplicatesAreAccepted() throws {
        let (d, p) = Self.udpFragments()
        var r = IPv4Reassembler()
        let middle = try r.add(packet: p[1], now: Self.t0)
        #expect(middle == nil)
        let middleAgain = try r.add(packet: p[1], now: Self.t0)
        #expect(middleAgain == nil)
        let head = try r.add(packet: p[0], now: Self.t0)
        #expect(head == nil)
        let headAgain = try r.add(packet: p[0], now: Self.t0)
        #expect(headAgain == nil)
        let whole = try #require(try r.add(packet: p[2], now: Self.t0))
        #expect(whole.payload == d)
        #expect(r.counters.duplicates == 2)
    }

    @Test func sameExtentWithOtherBytesIsAnOverlap() throws {
        let (d, p) = Self.udpFragments()
        var r = IPv4Reassembler()
        _ = try r.add(packet: p[0], now: Self.t0)
        var evil = d
        evil[1500] ^= 0xFF
        let forged = Datagram.ipv4Fragments(evil, pieces: [Piece(offset: 1480, length: 1480, more: true)], to: Self.dst, protocolNumber: IPProtocol.udp)
        _ = try r.add(packet: p[1], now: Self.t0)
        let afterForgery = try r.add(packet: forged[0], now: Self.t0)
        #expect(afterForgery == nil)
        #expect(r.counters.overlapping == 1)
        #expect(r.datagramsInProgress == 0, "the whole datagram is gone")
        let afterDrop = try r.add(packet: p[2], now: Self.t0)
        #expect(afterDrop == nil, "the rest cannot complete it")
    }

    static let overlaps: [Piece] = [
        Piece(offset: 8, length: 1480, more: true),  // straddles the first two
        Piece(offset: 1472, length: 16, more: true),  // across a boundary
        Piece(offset: 0, length: 8, more: true),  // inside the first (and tiny, if the limit allowed it)
        Piece(offset: 2952, length: 8, more: true),  // inside the second
        Piece(offset: 1480, length: 2528, more: false),  // the same end, different start
    ]

    @Test(arguments: overlaps)
    func overlappingFragmentDropsTheDatagram(_ overlap: Piece) throws {
        let (d, p) = Self.udpFragments()
        var limits = ReassemblyLimits()
        limits.minimumFragmentPayload = 8
        var r = IPv4Reassembler(limits: limits)
        _ = try r.add(packet: p[0], now: Self.t0)
        _ = try r.add(packet: p[1], now: Self.t0)
        let o = Datagram.ipv4Fragments(d, pieces: [overlap], to: Self.dst, protocolNumber: IPProtocol.udp)[0]
        let afterOverlap = try r.add(packet: o, now: Self.t0)
        #expect(afterOverlap == nil)
        #expect(r.counters.overlapping == 1)
        #expect(r.datagramsInProgress == 0 && r.bufferedBytes == 0)
    }

    @Test func timeoutFreesThePartialDatagram() throws {
        let (_, p) = Self.udpFragments()
        var r = IPv4Reassembler()
        _ = try r.add(packet: p[0], now: Self.t0)
        _ = try r.add(packet: p[1], now: Self.t0 + 1_000_000_000)
        #expect(r.bufferedBytes >= 2960)
        #expect(r.nextDeadline == Self.t0 + 30_000_000_000, "30 s from the first fragment")
        let justBefore = r.expire(now: Self.t0 + 29_999_999_999)
        #expect(justBefore == 0)
        let atDeadline = r.expire(now: Self.t0 + 30_000_000_000)
        #expect(atDeadline == 1)
        #expect(r.datagramsInProgress == 0 && r.bufferedBytes == 0 && r.nextDeadline == nil)
        #expect(r.counters.timedOut == 1)
        let lateLast = try r.add(packet: p[2], now: Self.t0 + 30_000_000_001)
        #expect(lateLast == nil, "a late last fragment starts afresh")
    }

    @Test func lateFragmentAfterTheDeadlineDoesNotCompleteAStaleDatagram() throws {
        let (_, p) = Self.udpFragments()
        var r = IPv4Reassembler()
        _ = try r.add(packet: p[0], now: Self.t0)
        _ = try r.add(packet: p[1], now: Self.t0)
        // No expire call in between: the deadline still holds.
        let afterDeadline = try r.add(packet: p[2], now: Self.t0 + 31_000_000_000)
        #expect(afterDeadline == nil)
        #expect(r.counters.timedOut == 1)
    }

    @Test func sixtyFifthDatagramEvictsTheOldest() throws {
        var r = IPv4Reassembler()
        var all: [[[UInt8]]] = []
        for id in 0..<65 {
            let (_, p) = Self.udpFragments(id: UInt16(id))
            all.append(p)
            _ = try r.add(packet: p[0], now: Self.t0 + UInt64(id))
            #expect(r.datagramsInProgress == min(id + 1, 64))
        }
        #expect(r.counters.evicted == 1)
        let evictedMiddle = try r.add(packet: all[0][1], now: Self.t0 + 100)
        #expect(evictedMiddle == nil)
        let evictedLast = try r.add(packet: all[0][2], now: Self.t0 + 100)
        #expect(evictedLast == nil, "datagram 0 was evicted")
        _ = try r.add(packet: all[64][1], now: Self.t0 + 100)
        let newestLast = try r.add(packet: all[64][2], now: Self.t0 + 100)
        #expect(newestLast != nil, "the newest completes")
    }

    @Test func memoryBoundHoldsAgainstManyPartialDatagrams() throws {
        var limits = ReassemblyLimits()
        limits.maximumBufferedBytes = 64 * 1024
        var r = IPv4Reassembler(limits: limits)
        for id in 0..<200 {
            // Each claims data far out, so each would need a large buffer.
            let d = pattern(60_000)
            let p = Datagram.ipv4Fragments(d, pieces: [Piece(offset: 30_000, length: 1480, more: true)], to: Self.dst,
                                           protocolNumber: IPProtocol.udp, identification: UInt16(id))
            _ = try r.add(packet: p[0], now: Self.t0)
            #expect(r.bufferedBytes <= limits.maximumBufferedBytes)
        }
        #expect(r.counters.evicted > 100)
        // A normal datagram still gets through.
        let (d, p) = Self.udpFragments(id: 9999)
        var whole: IPv4Reassembler.Reassembled?
        for f in p { whole = try r.add(packet: f, now: Self.t0) }
        #expect(whole?.payload == d)
    }

    @Test func datagramPastTheLengthLimitIsDropped() throws {
        var r = IPv4Reassembler()
        // A 60-byte header leaves 65475 bytes of data; parse refuses more than 65535 - 20, so
        // build the header directly.
        var h = IPv4Header(source: Guest.ipv4, destination: Self.dst, protocolNumber: IPProtocol.udp, payloadLength: 1480, identification: 7, dontFragment: false)
        h.headerLength = 60
        h.totalLength = UInt16(60 + 1480)
        h.fragmentOffset = 64_000
        h.moreFragments = true
        let data = pattern(1480)
        let got = data.withUnsafeBytes { r.add(header: h, fragment: $0, now: Self.t0) }
        #expect(got == nil)
        #expect(r.counters.tooLong == 1 && r.datagramsInProgress == 0)

        // A configured smaller limit.
        var limits = ReassemblyLimits()
        limits.maximumDatagramLength = 3000
        var small = IPv4Reassembler(limits: limits)
        let (_, p) = Self.udpFragments()
        _ = try small.add(packet: p[0], now: Self.t0)
        _ = try small.add(packet: p[1], now: Self.t0)
        #expect(small.counters.tooLong == 0, "20 + 2960 fits in 3000")
        let tooLongLast = try small.add(packet: p[2], now: Self.t0)
        #expect(tooLongLast == nil)
        #expect(small.counters.tooLong == 1 && small.datagramsInProgress == 0, "20 + 4008 does not")
    }

    @Test func pingOfDeathNeverReachesTheReassembler() throws {
        // Offset 65528 with 16 bytes ends past 65535: the header parser refuses it outright.
        let p = Datagram.ipv4Fragments(pattern(65_544), pieces: [Piece(offset: 65_528, length: 16, more: false)], to: Self.dst, protocolNumber: IPProtocol.icmp)
        let s = Stack(configuration: StackConfiguration())
        s.receive(Datagram.frame(p[0], etherType: EtherType.ipv4))
        #expect(s.counters.malformed == 1)
        #expect(s.ipv4Reassembler.datagramsInProgress == 0)
    }

    static let tooSmall: [Piece] = [
        Piece(offset: 0, length: 8, more: true),  // tiny first fragment
        Piece(offset: 1480, length: 16, more: true),  // tiny middle fragment
        Piece(offset: 1480, length: 1001, more: true),  // not a multiple of 8
        Piece(offset: 1480, length: 0, more: true),  // empty
        Piece(offset: 4008, length: 0, more: false),  // empty last
    ]

    @Test(arguments: tooSmall)
    func tinyAndEmptyFragmentsDropTheDatagram(_ piece: Piece) throws {
        let (d, p) = Self.udpFragments()
        var r = IPv4Reassembler()
        _ = try r.add(packet: p[2], now: Self.t0)
        var padded = d
        padded += [UInt8](repeating: 0, count: 16)
        let bad = Datagram.ipv4Fragments(padded, pieces: [piece], to: Self.dst, protocolNumber: IPProtocol.udp)[0]
        let afterBad = try r.add(packet: bad, now: Self.t0)
        #expect(afterBad == nil)
        #expect(r.counters.tooSmall == 1)
        #expect(r.datagramsInProgress == 0)
    }

    @Test func firstFragmentMustHoldTheTCPHeader() throws {
        var limits = ReassemblyLimits()
        limits.minimumFragmentPayload = 8
        var r = IPv4Reassembler(limits: limits)
        let p = Datagram.ipv4Fragments(pattern(100), pieces: [Piece(offset: 0, length: 16, more: true)], to: Self.dst, protocolNumber: IPProtocol.tcp)
        let tinyFirst = try r.add(packet: p[0], now: Self.t0)
        #expect(tinyFirst == nil)
        #expect(r.counters.tooSmall == 1, "RFC 1858: the flags must be in the first fragment")
    }

    @Test func contradictoryLastFragmentsDropTheDatagram() throws {
        let (d, p) = Self.udpFragments()
        var padded = d
        padded += [UInt8](repeating: 0, count: 2000)
        // A second last fragment with another end.
        var r = IPv4Reassembler()
        _ = try r.add(packet: p[2], now: Self.t0)  // ends at 4008
        let other = Datagram.ipv4Fragments(padded, pieces: [Piece(offset: 4008, length: 100, more: false)], to: Self.dst, protocolNumber: IPProtocol.udp)[0]
        let secondLast = try r.add(packet: other, now: Self.t0)
        #expect(secondLast == nil)
        #expect(r.counters.inconsistent == 1 && r.datagramsInProgress == 0)

        // Data beyond the end a last fragment set.
        var r2 = IPv4Reassembler()
        _ = try r2.add(packet: p[2], now: Self.t0)
        let beyond = Datagram.ipv4Fragments(padded, pieces: [Piece(offset: 4008, length: 1480, more: true)], to: Self.dst, protocolNumber: IPProtocol.udp)[0]
        let pastEnd = try r2.add(packet: beyond, now: Self.t0)
        #expect(pastEnd == nil)
        #expect(r2.counters.inconsistent == 1)

        // A last fragment ending before data already held.
        var r3 = IPv4Reassembler()
        _ = try r3.add(packet: beyond, now: Self.t0)
        _ = try r3.add(packet: p[2], now: Self.t0)
        #expect(r3.counters.inconsistent == 1 && r3.datagramsInProgress == 0)
    }

    @Test func differentKeysDoNotMix() throws {
        let (d, p) = Self.udpFragments()
        // Same identification, other protocol number: another datagram (RFC 791 §3.2).
        let icmp = Datagram.ipv4Fragments(d, pieces: Piece.split(d.count, size: 1480), to: Self.dst, protocolNumber: IPProtocol.icmp)
        var r = IPv4Reassembler()
        _ = try r.add(packet: p[0], now: Self.t0)
        _ = try r.add(packet: icmp[1], now: Self.t0)
        _ = try r.add(packet: p[2], now: Self.t0)
        #expect(r.datagramsInProgress == 2)
        let completed = try r.add(packet: p[1], now: Self.t0)
        #expect(completed?.payload == d)
    }

    @Test func hostileFragmentStreamStaysWithinBounds() {
        var g = SplitMix64(seed: 99)
        var limits = ReassemblyLimits()
        limits.minimumFragmentPayload = 8
        var r = IPv4Reassembler(limits: limits)
        let data = pattern(65_536)
        var now = Self.t0
        for _ in 0..<20_000 {
            var h = IPv4Header(source: Guest.ipv4, destination: Self.dst, protocolNumber: UInt8(g.below(3) == 0 ? 6 : 17),
                               payloadLength: 0, identification: UInt16(g.below(80)), dontFragment: false)
            h.fragmentOffset = g.below(70_000) & ~7
            h.moreFragments = g.below(4) != 0
            h.headerLength = 20 + 4 * g.below(11)
            let length = g.below(3) == 0 ? g.below(64) : g.below(4000)
            now += UInt64(g.below(10_000_000))
            _ = data.withUnsafeBytes { r.add(header: h, fragment: $0.uncheckedSlice(0, length), now: now) }
            #expect(r.datagramsInProgress <= 64)
            #expect(r.bufferedBytes <= 1 << 20)
            if g.below(100) == 0 { r.expire(now: now) }
        }
        #expect(r.counters.dropped > 0)
    }

    @Test func firstFragmentsOptionsStayInTheReassembledHeader() throws {
        let (d, p) = Self.udpFragments()
        // The first fragment again, with four no-operation options (RFC 791 §3.1: options other
        // than a few are not copied into later fragments, so only the first carries them).
        var withOptions = [UInt8](repeating: 0, count: 24 + 1480)
        withOptions.withUnsafeMutableBytes { b in
            p[0].withUnsafeBytes { b.slice(0, 20).copyMemory(from: $0.uncheckedSlice(0, 20)) }
            b.setU8(0x46, 0)
            b.setBE16(UInt16(24 + 1480), 2)
            for i in 20..<24 { b.setU8(IPv4Header.Option.noOperation, i) }
            b.setBE16(0, 10)
            b.setBE16(InternetChecksum.of(UnsafeRawBufferPointer(b.slice(0, 24))), 10)
            d.withUnsafeBytes { b.slice(24, 1480).copyMemory(from: $0.uncheckedSlice(0, 1480)) }
        }
        var r = IPv4Reassembler()
        _ = try r.add(packet: p[2], now: Self.t0)
        _ = try r.add(packet: withOptions, now: Self.t0)
        let completed = try r.add(packet: p[1], now: Self.t0)
        let w = try #require(completed)
        #expect(w.header.headerLength == 24)
        #expect(w.header.totalLength == UInt16(24 + d.count) && w.header.payloadLength == d.count)
        #expect(w.payload == d)
    }

    @Test func everyTruncationOfEveryFragmentFrameIsCountedNotFatal() {
        let (_, p) = Self.udpFragments()
        let s = Stack(configuration: StackConfiguration())
        var truncations = 0
        for packet in p {
            let frame = Datagram.frame(packet, etherType: EtherType.ipv4)
            for n in 0..<frame.count {
                s.receive(Array(frame[..<n]))
                truncations += 1
            }
        }
        #expect(s.counters.malformed == truncations)
        #expect(s.ipv4Reassembler.datagramsInProgress == 0)
        // Bogus total lengths: longer than the frame, or shorter than the header.
        for bogus in [UInt16(0), 19, 1500, 65535] {
            var f = Datagram.frame(p[0], etherType: EtherType.ipv4)
            f.withUnsafeMutableBytes { b in
                b.setBE16(bogus, 24 + 2)
                b.setBE16(0, 24 + 10)
                b.setBE16(InternetChecksum.of(UnsafeRawBufferPointer(b.slice(24, 20))), 24 + 10)
            }
            s.receive(f)
        }
        #expect(s.ipv4Reassembler.counters.fragments <= 1, "only the honest 1500 could have been taken")
    }
}
