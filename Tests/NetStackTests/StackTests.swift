// The stack as a guest sees it: frames in, frames out — ARP, ping, TCP handshakes and data, hostile frames.
import Testing
import Wire
@testable import NetStack

@Suite struct StackTests {
    let config = StackConfiguration()

    @Test func answersARPForTheGateway() throws {
        let s = Stack(configuration: config)
        s.receive(Guest.arpRequest(for: config.gatewayIPv4))
        let frames = try s.sentFrames()
        #expect(frames.count == 1)
        let f = try #require(frames.first)
        #expect(f.eth.destination == Guest.mac)
        #expect(f.eth.etherType == EtherType.arp)
        let arp = try f.withL3 { try ARPPacket.parse($0) }
        #expect(arp.operation == .reply)
        #expect(arp.senderIP == config.gatewayIPv4)
        #expect(arp.senderMAC == config.gatewayMAC)
        #expect(arp.targetIP == Guest.ipv4)
    }

    @Test func ignoresARPForOtherAddresses() throws {
        let s = Stack(configuration: config)
        s.receive(Guest.arpRequest(for: IPv4Address(10, 0, 2, 99)))
        #expect(try s.sentFrames().isEmpty)
    }

    @Test func answersPingToTheGateway() throws {
        let s = Stack(configuration: config)
        let payload: [UInt8] = Array("abcdefgh".utf8)
        var icmp: [UInt8] = [8, 0, 0, 0, 0x12, 0x34, 0x00, 0x07] + payload
        icmp[2] = 0
        let frame = Guest.ipv4Frame(to: config.gatewayIPv4, protocolNumber: IPProtocol.icmp, l4: icmp, checksumAt: 2)
        s.receive(frame)
        let f = try #require(try s.sentFrames().first)
        let ip = try #require(f.ipv4)
        #expect(ip.source == config.gatewayIPv4 && ip.destination == Guest.ipv4)
        try f.withL3 { l3 in
            let l4 = l3.uncheckedSlice(20, l3.count - 20)
            let m = try ICMPv4Message.parse(l4)
            #expect(m.type == 0)
            #expect(m.identifier == 0x1234 && m.sequence == 7)
            #expect(Array(l4.uncheckedSlice(8, l4.count - 8)) == payload)
        }
    }

    @Test func synRaisesConnectionRequestAndAcceptCompletesHandshake() throws {
        var cfg = config
        cfg.offloads = false
        let s = Stack(configuration: cfg)
        let dst = IPv4Address(127, 0, 0, 1)
        var o = TCPOptions()
        o.mss = 1460
        s.receive(Guest.tcp(to: dst, dstPort: 8080, seq: 100, flags: [.syn], options: o))
        #expect(try s.sentFrames().isEmpty, "no answer before the layer above decides")
        let ev = s.events()
        guard case .tcpConnectionRequest(let id, let key)? = ev.first else {
            Issue.record("expected a connection request, got \(ev)")
            return
        }
        #expect(key.remoteAddress == .v4(dst) && key.remotePort == 8080 && key.guestPort == 40000)
        s.tcpAccept(id, now: 1_000_000_000)
        let synAck = try #require(try s.sentFrames().first)
        let (h, _, ok) = try synAck.tcp()
        #expect(h.flags == [.syn, .ack])
        #expect(h.acknowledgmentNumber == 101)
        #expect(ok, "checksum verifies")
        #expect(synAck.ipv4?.source == dst)

        s.receive(Guest.tcp(to: dst, dstPort: 8080, seq: 101, ack: h.sequenceNumber &+ 1, flags: [.ack], payload: Array("hello".utf8)))
        var got = [UInt8](repeating: 0, count: 100)
        let n = got.withUnsafeMutableBytes { s.tcpRead(id, into: $0, now: 1_000_000_000) }
        #expect(Array(got[..<n]) == Array("hello".utf8))

        let reply = Array("world".utf8)
        #expect(reply.withUnsafeBytes { s.tcpWrite(id, $0, now: 1_000_000_000) } == 5)
        let data = try s.sentFrames().map { try $0.tcp() }.first { !$0.1.isEmpty }
        #expect(data?.1 == reply)
        #expect(data?.2 == true)
    }

    /// Without offloads nothing cuts a segment after us: over IPv6, with its larger header,
    /// each one must still fit the link's MTU.
    @Test func ipv6SegmentsFitTheLinkWithoutOffloads() throws {
        // As the gateway makes it for a device without offloads: segments sized for IPv4's header.
        let cfg = StackConfiguration(offloads: false)
        let s = Stack(configuration: cfg)
        let dst = IPv6Address("2001:db8::1")!
        var o = TCPOptions()
        o.mss = 1440
        o.windowScale = 7
        o.timestamp = TCPTimestamp(value: 1, echo: 0)
        s.receive(Guest.tcpV6(to: dst, dstPort: 80, seq: 100, flags: [.syn], options: o))
        guard case .tcpConnectionRequest(let id, _)? = s.events().first else { Issue.record("no request"); return }
        s.tcpAccept(id, now: 1_000_000_000)
        let synAck = try #require(try s.sentFrames().first)
        let iss = try synAck.bytes.withUnsafeBytes { try TCPHeader.parse(UnsafeRawBufferPointer(rebasing: $0[(10 + 14 + 40)...])).sequenceNumber }
        o = TCPOptions()
        o.timestamp = TCPTimestamp(value: 2, echo: 0)
        s.receive(Guest.tcpV6(to: dst, dstPort: 80, seq: 101, ack: iss &+ 1, flags: [.ack], options: o))
        let data = [UInt8](repeating: 7, count: 10_000)
        #expect(data.withUnsafeBytes { s.tcpWrite(id, $0, now: 1_000_000_000) } == data.count)
        let frames = try s.sentFrames()
        #expect(frames.count > 1)
        for f in frames {
            #expect(f.bytes.count - 10 - 14 <= cfg.mtu, "a \(f.bytes.count - 24)-byte IPv6 packet on a \(cfg.mtu)-byte link")
        }
    }

    @Test func refusedFlowGetsRSTAtOnce() throws {
        let s = Stack(configuration: config)
        s.receive(Guest.tcp(to: IPv4Address(127, 0, 0, 1), dstPort: 9, seq: 5, flags: [.syn]))
        guard case .tcpConnectionRequest(let id, _)? = s.events().first else { Issue.record("no request"); return }
        s.tcpRefuse(id)
        let (h, _, ok) = try #require(try s.sentFrames().first).tcp()
        #expect(h.flags.contains(.rst))
        #expect(h.acknowledgmentNumber == 6)
        #expect(ok)
        #expect(s.tcpConnectionCount == 0)
    }

    /// A handle kept after its flow went away finds nothing, not the flow opened after it.
    @Test func staleHandleFindsNoLaterFlow() throws {
        let s = Stack(configuration: config)
        let remote = IPv4Address(127, 0, 0, 1)
        s.receive(Guest.tcp(to: remote, srcPort: 41000, dstPort: 80, seq: 5, flags: [.syn]))
        guard case .tcpConnectionRequest(let old, _)? = s.events().first else { Issue.record("no request"); return }
        s.tcpRefuse(old)
        _ = try s.sentFrames()
        s.receive(Guest.tcp(to: remote, srcPort: 41001, dstPort: 80, seq: 9, flags: [.syn]))
        guard case .tcpConnectionRequest(let new, let key)? = s.events().first else { Issue.record("no request"); return }
        #expect(new != old)
        #expect(s.tcpKey(new) == key && s.tcpState(new) != nil)
        #expect(s.tcpKey(old) == nil && s.tcpState(old) == nil)
        #expect([UInt8](repeating: 1, count: 4).withUnsafeBytes { s.tcpWrite(old, $0, now: 1) } == 0)
        s.tcpAbort(old)
        #expect(s.tcpConnectionCount == 1 && s.tcpState(new) != nil)
    }

    @Test func segmentForUnknownFlowGetsRST() throws {
        let s = Stack(configuration: config)
        s.receive(Guest.arpRequest(for: config.gatewayIPv4))  // learn the guest
        _ = try s.sentFrames()
        s.receive(Guest.tcp(to: IPv4Address(127, 0, 0, 1), dstPort: 80, seq: 5, ack: 77, flags: [.ack], payload: [1, 2, 3]))
        let (h, _, _) = try #require(try s.sentFrames().first).tcp()
        #expect(h.flags == [.rst])
        #expect(h.sequenceNumber == 77)
    }

    /// What a restarted gateway's new stack meets: the guest's segments for flows of the old one.
    /// Each is answered with a reset at once (RFC 9293 §3.10.7.1), from the frame alone (no ARP
    /// exchange first), so the guest's socket fails instead of retransmitting into silence; a
    /// reset from the guest is not answered, and nothing creates a connection.
    @Test func aFreshStackResetsEveryOldFlowAtOnce() throws {
        let s = Stack(configuration: config)
        let remote = IPv4Address(127, 0, 0, 1)
        // Data with ACK: the reset takes its sequence number from the segment's ACK.
        s.receive(Guest.tcp(to: remote, srcPort: 41000, dstPort: 80, seq: 1000, ack: 5000, flags: [.ack, .psh], payload: [1, 2]))
        var frames = try s.sentFrames()
        #expect(frames.count == 1)
        let frame = try #require(frames.first)
        let (h, payload, ok) = try frame.tcp()
        #expect(h.flags == [.rst] && h.sequenceNumber == 5000 && payload.isEmpty && ok)
        #expect(h.sourcePort == 80 && h.destinationPort == 41000)
        #expect(frame.eth.destination == Guest.mac && frame.ipv4?.destination == Guest.ipv4)
        // FIN with ACK, as a guest closing an idle flow sends.
        s.receive(Guest.tcp(to: remote, srcPort: 41001, dstPort: 80, seq: 7, ack: 9, flags: [.ack, .fin]))
        let (fin, _, _) = try #require(try s.sentFrames().first).tcp()
        #expect(fin.flags == [.rst] && fin.sequenceNumber == 9)
        // Without ACK: RST+ACK acknowledging everything the segment occupied (the FIN counts one).
        s.receive(Guest.tcp(to: remote, srcPort: 41002, dstPort: 80, seq: 100, flags: [.fin], payload: [1, 2, 3]))
        let (bare, _, _) = try #require(try s.sentFrames().first).tcp()
        #expect(bare.flags == [.rst, .ack] && bare.sequenceNumber == 0 && bare.acknowledgmentNumber == 104)
        // A reset is never answered.
        s.receive(Guest.tcp(to: remote, srcPort: 41003, dstPort: 80, seq: 1, ack: 1, flags: [.rst, .ack]))
        frames = try s.sentFrames()
        #expect(frames.isEmpty)
        #expect(s.tcpConnectionCount == 0 && s.events().isEmpty)
    }

    @Test func largeWritesGoOutAsGSOFramesWithPartialChecksums() throws {
        let s = Stack(configuration: config)  // offloads on
        var o = TCPOptions()
        o.windowScale = 7
        let (id, _) = try s.establishedEgressFlow(port: 5201, options: o)
        let big = (0..<60000).map { UInt8(truncatingIfNeeded: $0) }
        _ = big.withUnsafeBytes { s.tcpWrite(id, $0, now: 2) }
        let frames = try s.sentFrames()
        let data = try frames.map { ($0, try $0.tcp()) }.filter { !$0.1.1.isEmpty }
        #expect(!data.isEmpty)
        let (frame, seg) = try #require(data.first)
        #expect(seg.1.count > 1460, "one segment above the MSS")
        #expect(frame.vnet.gsoType == .tcpv4)
        #expect(frame.vnet.gsoSize == 1460)
        #expect(frame.vnet.flags.contains(.needsChecksum))
        #expect(seg.2, "checksum completes correctly")
        #expect(data.flatMap { $0.1.1 } == Array(big[..<data.flatMap { $0.1.1 }.count]))
    }

    @Test func hostileFramesAreCountedNotFatal() {
        let s = Stack(configuration: config)
        var rng = SystemRandomNumberGenerator()
        let good = Guest.tcp(to: IPv4Address(127, 0, 0, 1), dstPort: 80, seq: 1, flags: [.syn])
        // Every truncation, and random garbage.
        for n in 0..<good.count { s.receive(Array(good[..<n])) }
        for _ in 0..<2000 {
            var f = good
            for _ in 0..<4 { f[Int.random(in: 10..<f.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            s.receive(f)
        }
        #expect(s.counters.malformed + s.counters.badChecksum + s.counters.notForUs > 0)
    }

    @Test func framesForOtherMACsAreIgnored() throws {
        let s = Stack(configuration: config)
        s.receive(Guest.ipv4Frame(to: config.gatewayIPv4, protocolNumber: IPProtocol.icmp, l4: [8, 0, 0, 0, 0, 0, 0, 0], checksumAt: 2, ethDst: MACAddress(2, 0, 0, 0, 0, 9)))
        #expect(try s.sentFrames().isEmpty)
        #expect(s.counters.notForUs == 1)
    }
}
