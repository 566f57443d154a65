// The steps that are not TCP: IPv4/IPv6 fragments (overlapping, out of order, oversized),
// ARP, NDP, DHCP, ICMP, UDP and raw frames; and the IP and Ethernet framing every guest step uses.
import NetStack
import Wire

extension StackScenario {
    // MARK: - Framing

    /// The virtio-net header as the guest's kernel writes it, then Ethernet.
    func ethernet(
        _ type: UInt16, _ payload: [UInt8], source: MACAddress = GuestIdentity.mac, destination: MACAddress? = nil,
        trusted: Bool = false
    ) -> [UInt8] {
        let vnet = configuration.vnetHeaderSize
        var f = [UInt8](repeating: 0, count: vnet + 14 + payload.count)
        f.withUnsafeMutableBytes { b in
            if vnet > 0 {
                var v = VirtioNetHeader()
                if trusted { v.flags = .dataValid }
                _ = try? v.emit(into: b, size: vnet)
            }
            let eth = EthernetHeader(destination: destination ?? configuration.gatewayMAC, source: source, etherType: type)
            _ = try? eth.emit(into: b.slice(vnet, 14))
            payload.withUnsafeBytes { if !payload.isEmpty { b.slice(vnet + 14, payload.count).copyMemory(from: $0) } }
        }
        return f
    }

    /// An IP packet from the guest with its L4 checksum filled in (ICMPv4 comes with its own),
    /// mutated at the IP and link level as `mutation`'s bits say.
    func sendIP(source: IPAddress, destination: IPAddress, protocolNumber: UInt8, l4: [UInt8], mutation: UInt8?) {
        let m = mutation ?? 0
        var l4 = l4
        l4.withUnsafeMutableBytes { b in
            fillChecksum(protocolNumber, b, source, destination)
            // A bad checksum, which only a device vouching for it (DATA_VALID) gets past.
            if m & 2 != 0 {
                let at = protocolNumber == IPProtocol.tcp ? TCPHeader.checksumOffset : protocolNumber == IPProtocol.udp ? UDPHeader.checksumOffset : 2
                if b.count > at + 1 { b[at + 1] ^= 0x5A }
            }
        }
        var source = source
        if m & 8 != 0 {
            source = source.isV6 ? .v6(IPv6Address("fd00:0:0:9::1")!) : .v4(IPv4Address(10, 0, 9, 1))
        }
        let ttl: UInt8 = m & 1 != 0 ? 1 : 64
        var packet = ipPacket(source: source, destination: destination, protocolNumber: protocolNumber, l4: l4, ttl: ttl)
        if m & 32 != 0 { packet += [UInt8](repeating: 0xEE, count: Int(m >> 6) * 7 + 1) }
        if m & 64 != 0 && m & 32 == 0 { packet.removeLast(min(packet.count, 1 + Int(m >> 7) * 19)) }
        let type: UInt16 = source.isV6 ? EtherType.ipv6 : EtherType.ipv4
        let destinationMAC = m & 16 != 0 ? MACAddress(0x02, 0, 0, 0, 0, 0x99) : nil
        let sourceMAC = m & 8 != 0 && m & 4 == 0 ? MACAddress(0x52, 0x54, 0, 0, 0, 0x66) : GuestIdentity.mac
        deliver(ethernet(type, packet, source: sourceMAC, destination: destinationMAC, trusted: m & 4 != 0))
    }

    func fillChecksum(_ proto: UInt8, _ b: UnsafeMutableRawBufferPointer, _ s: IPAddress, _ d: IPAddress) {
        switch (proto, s, d) {
        case (IPProtocol.tcp, .v4(let s), .v4(let d)): TCPHeader.fillChecksum(b, source: s, destination: d)
        case (IPProtocol.tcp, .v6(let s), .v6(let d)): TCPHeader.fillChecksum(b, source: s, destination: d)
        case (IPProtocol.udp, .v4(let s), .v4(let d)): UDPHeader.fillChecksum(b, source: s, destination: d)
        case (IPProtocol.udp, .v6(let s), .v6(let d)): UDPHeader.fillChecksum(b, source: s, destination: d)
        case (IPProtocol.icmpv6, .v6(let s), .v6(let d)) where b.count >= 4: ICMPv6Message.fillChecksum(b, source: s, destination: d)
        default: break
        }
    }

    func ipPacket(source: IPAddress, destination: IPAddress, protocolNumber: UInt8, l4: [UInt8], ttl: UInt8 = 64) -> [UInt8] {
        switch (source, destination) {
        case (.v4(let s), .v4(let d)):
            let ip = IPv4Header(source: s, destination: d, protocolNumber: protocolNumber, payloadLength: min(l4.count, 65_515), ttl: ttl)
            var p = [UInt8](repeating: 0, count: 20)
            p.withUnsafeMutableBytes { _ = try? ip.emit(into: $0) }
            return p + l4.prefix(65_515)
        case (.v6(let s), .v6(let d)):
            let ip = IPv6Header(source: s, destination: d, nextHeader: protocolNumber, payloadLength: UInt16(clamping: l4.count), hopLimit: ttl)
            var p = [UInt8](repeating: 0, count: 40)
            p.withUnsafeMutableBytes { _ = try? ip.emit(into: $0) }
            return p + l4.prefix(65_535)
        default:
            return []
        }
    }

    // MARK: - Fragments

    /// A datagram worth fragmenting: UDP to a remote host or to the DHCP server, an echo
    /// request, or a TCP segment of a slot's connection (then its bytes count as sent).
    func fragmentableDatagram(v6: Bool) -> (proto: UInt8, l4: [UInt8], destination: IPAddress) {
        let kind = input.byte()
        let length = payloadLength(input.byte())
        let source: IPAddress = v6 ? .v6(GuestIdentity.ipv6) : .v4(GuestIdentity.ipv4)
        let remote: IPAddress = v6 ? .v6(GuestIdentity.remotesV6[0]) : .v4(GuestIdentity.remotesV4[0])
        let payload = StreamBytes.bytes(stream: -1, from: 0, count: length)
        var l4: [UInt8]
        var proto = IPProtocol.udp
        var destination = remote
        switch kind % 4 {
        case 0:
            l4 = udpDatagram(sourcePort: 5353, destinationPort: 9, payload: payload)
        case 1:
            destination = v6 ? .v6(configuration.gatewayIPv6) : .v4(configuration.gatewayIPv4)
            proto = v6 ? IPProtocol.icmpv6 : IPProtocol.icmp
            l4 = echoRequest(v6: v6, payload: payload)
        case 2 where !v6:
            destination = .v4(configuration.gatewayIPv4)
            l4 = udpDatagram(sourcePort: 68, destinationPort: 67, payload: dhcpMessage(type: 1, requested: nil, mac: GuestIdentity.mac))
        default:
            if let c = slots[Int(kind >> 2) % Self.slotCount], c.key.guestAddress.isV6 == v6, c.stackISN != nil {
                let offset = c.sent.contiguous
                let n = min(length, (c.finOffset ?? .max) - offset)
                let h = TCPHeader(sourcePort: c.key.guestPort, destinationPort: c.key.remotePort, sequenceNumber: c.guestSeq(offset),
                                  acknowledgmentNumber: c.guestAck, flags: [.ack, .psh], window: 0xFFFF, options: TCPOptions())
                l4 = [UInt8](repeating: 0, count: 20 + max(0, n))
                l4.withUnsafeMutableBytes { b in
                    _ = try? h.emit(into: b)
                    StreamBytes.fill(b.slice(20, max(0, n)), stream: c.guestStream, from: offset)
                }
                c.sent.insert(offset..<offset + max(0, n))
                proto = IPProtocol.tcp
                destination = c.key.remoteAddress
            } else {
                l4 = udpDatagram(sourcePort: 40_000, destinationPort: 7, payload: payload)
            }
        }
        l4.withUnsafeMutableBytes { fillChecksum(proto, $0, source, destination) }
        return (proto, l4, destination)
    }

    /// Where each fragment lies: the sender's regular cuts, then per piece an overlap, a
    /// stretch, a jump past 64 KiB, a drop, a duplicate or a flipped "more" flag; the order
    /// reversed or rotated.
    func fragmentPieces(total: Int) -> [(offset: Int, length: Int, more: Bool)] {
        let size = 8 * (1 + input.below(190))
        var pieces: [(offset: Int, length: Int, more: Bool)] = []
        var at = 0
        while at < max(total, 1) && pieces.count < 12 {
            let n = min(size, max(total, 1) - at)
            pieces.append((at, n, at + n < total))
            at += n
        }
        var out: [(offset: Int, length: Int, more: Bool)] = []
        for var p in pieces {
            let change = input.byte()
            switch change & 7 {
            case 1: p.offset = max(0, p.offset - 8 * (1 + Int(change >> 3)))
            case 2: p.length += 8 * (1 + Int(change >> 3))
            case 3: p.offset += 65_000 - Int(change >> 3) * 8
            case 4: continue
            case 5: out.append(p)
            case 6: p.more.toggle()
            default: break
            }
            out.append(p)
        }
        switch input.byte() % 3 {
        case 1: out.reverse()
        case 2 where out.count > 1: out = Array(out[1...] + out[..<1])
        default: break
        }
        return out
    }

    func fragmentsV4() {
        let (proto, l4, destination) = fragmentableDatagram(v6: false)
        guard case .v4(let d) = destination else { return }
        let identification = UInt16(input.below(4))
        for p in fragmentPieces(total: l4.count) {
            let length = min(p.length, 65_515)
            var ip = IPv4Header(source: GuestIdentity.ipv4, destination: d, protocolNumber: proto, payloadLength: length,
                                identification: identification, dontFragment: false)
            ip.moreFragments = p.more
            ip.fragmentOffset = min(p.offset, 8191 * 8)
            var packet = [UInt8](repeating: 0, count: 20 + length)
            packet.withUnsafeMutableBytes { b in
                _ = try? ip.emit(into: b)
                copyPiece(l4, from: p.offset, into: b.slice(20, length))
            }
            deliver(ethernet(EtherType.ipv4, packet))
        }
    }

    func fragmentsV6() {
        let (proto, l4, destination) = fragmentableDatagram(v6: true)
        guard case .v6(let d) = destination else { return }
        let identification = UInt32(input.below(4))
        for p in fragmentPieces(total: l4.count) {
            let length = min(p.length, 65_535 - 8)
            var packet = [UInt8](repeating: 0, count: 48 + length)
            packet.withUnsafeMutableBytes { b in
                _ = try? IPv6Header(source: GuestIdentity.ipv6, destination: d, nextHeader: IPProtocol.fragment,
                                    payloadLength: UInt16(8 + length)).emit(into: b)
                b.setU8(proto, 40)
                b.setU8(0, 41)
                b.setBE16(UInt16(truncatingIfNeeded: min(p.offset, 8191 * 8)) & 0xFFF8 | (p.more ? 1 : 0), 42)
                b.setBE32(identification, 44)
                copyPiece(l4, from: p.offset, into: b.slice(48, length))
            }
            deliver(ethernet(EtherType.ipv6, packet))
        }
    }

    /// The datagram's bytes at `offset`, zeros past its end.
    func copyPiece(_ datagram: [UInt8], from offset: Int, into b: UnsafeMutableRawBufferPointer) {
        guard offset < datagram.count else { return }
        let n = min(b.count, datagram.count - offset)
        // bound: offset < datagram.count (checked above) and n ≤ datagram.count - offset.
        datagram.withUnsafeBytes { b.slice(0, n).copyMemory(from: $0.uncheckedSlice(offset, n)) }
    }

    // MARK: - Link and local services

    func arp() {
        let shape = input.byte()
        let senders: [IPv4Address] = [GuestIdentity.ipv4, IPv4Address(raw: 0), configuration.gatewayIPv4, IPv4Address(10, 0, 3, 1)]
        let targets: [IPv4Address] = [configuration.gatewayIPv4, GuestIdentity.ipv4, IPv4Address(10, 0, 2, 99), configuration.broadcastIPv4]
        let senderIP = senders[Int(shape) & 3]
        let targetIP = shape & 64 != 0 ? senderIP : targets[Int(shape >> 2) & 3]
        let senderMAC = shape & 16 != 0 ? MACAddress(0x52, 0x54, 0, 0, 0, 0x77) : GuestIdentity.mac
        let packet = ARPPacket(operation: shape & 32 != 0 ? .reply : .request, senderMAC: senderMAC, senderIP: senderIP,
                               targetMAC: .zero, targetIP: targetIP)
        var bytes = [UInt8](repeating: 0, count: ARPPacket.length)
        bytes.withUnsafeMutableBytes { _ = try? packet.emit(into: $0) }
        deliver(ethernet(EtherType.arp, bytes, destination: shape & 128 != 0 ? .broadcast : nil))
    }

    func ndp() {
        let shape = input.byte()
        let sources: [IPv6Address] = [GuestIdentity.linkLocal, GuestIdentity.ipv6, IPv6Address(high: 0, low: 0), IPv6Address("fd00:0:0:9::1")!]
        let source = sources[Int(shape) & 3]
        var message = [UInt8](repeating: 0, count: 64)
        var destination = IPv6Address.allRouters
        let withLink = shape & 32 != 0 ? GuestIdentity.mac : nil
        let n: Int? = message.withUnsafeMutableBytes { b in
            switch (shape >> 2) & 3 {
            case 0:
                destination = .allRouters
                return try? RouterSolicitation(sourceLinkAddress: withLink).build(into: b, source: source, destination: destination)
            case 1:
                let target = shape & 16 != 0 ? configuration.gatewayLinkLocal : configuration.gatewayIPv6
                destination = shape & 64 != 0 ? target : target.solicitedNodeMulticast
                return try? NeighborSolicitation(target: target, sourceLinkAddress: withLink).build(into: b, source: source, destination: destination)
            case 2:
                destination = .allNodes
                return try? NeighborAdvertisement(solicited: false, override: true, target: source, targetLinkAddress: withLink)
                    .build(into: b, source: source, destination: destination)
            default:
                destination = configuration.gatewayLinkLocal
                return try? ICMPv6Message.build(into: b, source: source, destination: destination, type: input.byte(), code: input.byte(),
                                                restOfHeader: input.u32(), payload: input.raw(Int(input.byte()) % 48))
            }
        }
        guard let n else { return }
        let hopLimit: UInt8 = shape & 128 != 0 ? 64 : 255
        let ip = IPv6Header(source: source, destination: destination, nextHeader: IPProtocol.icmpv6, payloadLength: UInt16(n), hopLimit: hopLimit)
        var packet = [UInt8](repeating: 0, count: 40)
        packet.withUnsafeMutableBytes { _ = try? ip.emit(into: $0) }
        deliver(ethernet(EtherType.ipv6, packet + message[..<n], destination: MACAddress(0x33, 0x33, 0, 0, 0, 1)))
    }

    func dhcp() {
        let shape = input.byte()
        let types: [UInt8] = [1, 3, 7, 8, 4]  // discover, request, release, inform, decline
        let requested: [IPv4Address?] = [nil, GuestIdentity.ipv4, IPv4Address(10, 0, 2, 99), IPv4Address(192, 0, 2, 5)]
        let mac = shape & 64 != 0 ? MACAddress(0x52, 0x54, 0, 0, 0, Int(shape >> 4) & 3 == 0 ? 0x10 : 0x11) : GuestIdentity.mac
        let message = dhcpMessage(type: types[Int(shape) % types.count], requested: requested[Int(shape >> 3) & 3], mac: mac)
        let source = shape & 128 != 0 ? GuestIdentity.ipv4 : IPv4Address(raw: 0)
        let destination: IPv4Address = shape & 32 != 0 ? configuration.gatewayIPv4 : .broadcast
        var l4 = udpDatagram(sourcePort: 68, destinationPort: 67, payload: message)
        l4.withUnsafeMutableBytes { UDPHeader.fillChecksum($0, source: source, destination: destination) }
        let packet = ipPacket(source: .v4(source), destination: .v4(destination), protocolNumber: IPProtocol.udp, l4: l4)
        deliver(ethernet(EtherType.ipv4, packet, source: mac, destination: destination == .broadcast ? .broadcast : nil))
    }

    /// A BOOTP message with the options a client sends.
    func dhcpMessage(type: UInt8, requested: IPv4Address?, mac: MACAddress) -> [UInt8] {
        var m = [UInt8](repeating: 0, count: 240)
        m[0] = 1  // BOOTREQUEST
        m[1] = 1  // Ethernet
        m[2] = 6
        m.withUnsafeMutableBytes { b in
            b.setBE32(0x1234_5678, 4)
            b.setMAC(mac, 28)
            b.setBE32(0x6382_5363, 236)  // magic cookie
        }
        m += [53, 1, type]
        if let requested {
            m += [50, 4]
            withUnsafeBytes(of: requested.raw.bigEndian) { m += $0 }
        }
        m += [54, 4, 10, 0, 2, 2, 55, 3, 1, 3, 6]
        let extra = input.raw(Int(input.byte()) % 32)
        m += extra
        m.append(255)
        return m
    }

    func icmp() {
        let shape = input.byte()
        let v6 = shape & 1 != 0
        let payload = StreamBytes.bytes(stream: -2, from: 0, count: payloadLength(input.byte()) % 2000)
        switch (shape >> 1) & 3 {
        case 0, 1:
            // Echo to the gateway, or beyond it (then the relay answers the request it raised).
            let destination: IPAddress = (shape >> 1) & 3 == 0
                ? (v6 ? .v6(configuration.gatewayIPv6) : .v4(configuration.gatewayIPv4))
                : (v6 ? .v6(GuestIdentity.remotesV6[0]) : .v4(GuestIdentity.remotesV4[0]))
            sendIP(source: v6 ? .v6(GuestIdentity.ipv6) : .v4(GuestIdentity.ipv4), destination: destination,
                   protocolNumber: v6 ? IPProtocol.icmpv6 : IPProtocol.icmp, l4: echoRequest(v6: v6, payload: payload), mutation: nil)
        case 2:
            if let e = lastEcho {
                payload.withUnsafeBytes {
                    stack.sendEchoReply(to: e.source, from: e.destination, identifier: e.identifier, sequence: e.sequence, payload: $0)
                }
            }
        default:
            // An error quoting one of the guest's own segments: the gateway has nothing to do with it.
            var l4 = [UInt8](repeating: 0, count: 8 + 48)
            l4[0] = v6 ? ICMPv6Message.destinationUnreachable : ICMPv4Message.destinationUnreachable
            l4[1] = shape >> 3
            if !v6 { l4.withUnsafeMutableBytes { $0.setBE16(InternetChecksum.of(UnsafeRawBufferPointer($0)), 2) } }
            sendIP(source: v6 ? .v6(GuestIdentity.ipv6) : .v4(GuestIdentity.ipv4),
                   destination: v6 ? .v6(GuestIdentity.remotesV6[1]) : .v4(GuestIdentity.remotesV4[1]),
                   protocolNumber: v6 ? IPProtocol.icmpv6 : IPProtocol.icmp, l4: l4, mutation: nil)
        }
    }

    func echoRequest(v6: Bool, payload: [UInt8]) -> [UInt8] {
        var l4 = [UInt8](repeating: 0, count: 8 + payload.count)
        l4.withUnsafeMutableBytes { b in
            payload.withUnsafeBytes { p in
                if v6 {
                    // Checksum filled with the addresses by the caller.
                    _ = try? ICMPv6Message(type: ICMPv6Message.echoRequest, code: 0, checksum: 0, restOfHeader: 0x0042_0001).emit(into: b)
                    if !payload.isEmpty { b.slice(8, payload.count).copyMemory(from: p) }
                } else {
                    _ = try? ICMPv4Message.build(into: b, type: ICMPv4Message.echoRequest, code: 0, restOfHeader: 0x0042_0001, payload: p)
                }
            }
        }
        return l4
    }

    func udpDatagram(sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8]) -> [UInt8] {
        var d = [UInt8](repeating: 0, count: UDPHeader.length + payload.count)
        d.withUnsafeMutableBytes { b in
            _ = try? UDPHeader(sourcePort: sourcePort, destinationPort: destinationPort, payloadLength: payload.count).emit(into: b)
            payload.withUnsafeBytes { if !payload.isEmpty { b.slice(8, payload.count).copyMemory(from: $0) } }
        }
        return d
    }

    /// A datagram from the guest, or the relay's answer to the last one (large ones leave the
    /// stack as IP fragments).
    func udp() {
        let shape = input.byte()
        let length = payloadLength(input.byte())
        let v6 = shape & 1 != 0
        if shape & 2 != 0, let key = lastDatagram {
            let payload = StreamBytes.bytes(stream: -3, from: 0, count: shape & 4 != 0 ? length * 8 : length)
            payload.withUnsafeBytes { stack.sendUDP(key, payload: $0) }
            return
        }
        let source: IPAddress = v6 ? .v6(GuestIdentity.ipv6) : .v4(GuestIdentity.ipv4)
        let destination: IPAddress = v6 ? .v6(GuestIdentity.remotesV6[Int(shape >> 2) & 1]) : .v4(GuestIdentity.remotesV4[Int(shape >> 2) & 1])
        let l4 = udpDatagram(sourcePort: 5000 + UInt16(shape >> 4), destinationPort: 53, payload: StreamBytes.bytes(stream: -4, from: 0, count: length))
        sendIP(source: source, destination: destination, protocolNumber: IPProtocol.udp, l4: l4, mutation: shape & 8 != 0 ? input.byte() : nil)
    }

    func rawFrame() {
        let length = Int(input.u16()) % 2048
        let bytes = input.raw(length)
        stack.receive(frame: bytes, now: now)
    }
}
