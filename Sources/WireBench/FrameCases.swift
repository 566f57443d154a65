// The per-frame cases of the data path: what a shard does to every TCP frame from the guest
// Globals here are built once, before any measurement, and only read after: one thread.
// (virtio-net + Ethernet + IPv4 + TCP with options parsed) and the headers it writes for every
// segment back, plus ARP and an IPv6 UDP datagram with its checksum.
import Wire

enum FrameWork {
    static let guest = MACAddress(0x52, 0x54, 0, 0x12, 0x34, 0x56)
    static let gateway = MACAddress(0x02, 0x47, 0x57, 0, 0, 1)
    static let guestIP = IPv4Address(10, 0, 2, 15)
    static let gatewayIP = IPv4Address(10, 0, 2, 2)

    static var tcpHeader: TCPHeader {
        var o = TCPOptions()
        o.timestamp = TCPTimestamp(value: 123_456, echo: 654_321)
        return TCPHeader(sourcePort: 40_000, destinationPort: 5201, sequenceNumber: 1_000_000, acknowledgmentNumber: 2_000_000,
                         flags: [.ack, .psh], window: 502, options: o)
    }

    /// Writes vnet + Ethernet + IPv4 + TCP headers for a segment of `payload` bytes; returns the header length.
    static func emitTCPHeaders(_ b: UnsafeMutableRawBufferPointer, payload: Int) -> Int {
        do {
            var at = try VirtioNetHeader().emit(into: b, size: 10)
            at += try EthernetHeader(destination: guest, source: gateway, etherType: EtherType.ipv4).emit(into: b.slice(at, 14))
            let h = tcpHeader
            at += try IPv4Header(source: gatewayIP, destination: guestIP, protocolNumber: IPProtocol.tcp,
                                 payloadLength: h.emittedLength + payload).emit(into: b.slice(at, 20))
            at += try h.emit(into: b.slice(at, h.emittedLength))
            return at
        } catch {
            return -1
        }
    }

    static func parseTCPFrame(_ b: UnsafeRawBufferPointer) -> Int {
        guard let v = try? VirtioNetHeader.parse(b, size: 10), let l2 = b.checkedSlice(10, b.count - 10),
            let e = try? EthernetHeader.parse(l2), let l3 = l2.checkedSlice(e.headerLength, l2.count - e.headerLength),
            let ip = try? IPv4Header.parse(l3), let l4 = l3.checkedSlice(ip.headerLength, ip.payloadLength),
            let t = try? TCPHeader.parse(l4)
        else { return -1 }
        return Int(v.gsoSize) &+ Int(t.sequenceNumber) &+ Int(t.options.timestamp?.value ?? 0) &+ ip.payloadLength
    }

    static func parseARP(_ b: UnsafeRawBufferPointer) -> Int {
        guard let e = try? EthernetHeader.parse(b), let l3 = b.checkedSlice(14, b.count - 14),
            let a = try? ARPPacket.parse(l3)
        else { return -1 }
        return Int(a.targetIP.raw) &+ Int(e.etherType)
    }

    static let v6Source = IPv6Address("fd00:0:0:2::15")!
    static let v6Destination = IPv6Address("fd00:0:0:2::2")!

    static func parseUDP6(_ b: UnsafeRawBufferPointer) -> Int {
        guard let e = try? EthernetHeader.parse(b), let l3 = b.checkedSlice(14, b.count - 14),
            let ip = try? IPv6Header.parse(l3), let l4 = l3.checkedSlice(ip.upperOffset, ip.upperLength)
        else { return -1 }
        guard let u = try? UDPHeader.parse(l4), UDPHeader.verifyChecksum(l4, source: ip.source, destination: ip.destination) else { return -1 }
        return Int(u.destinationPort) &+ Int(e.etherType)
    }
}

nonisolated(unsafe) let tcpFrame = stable(build(2048) { b in
    let n = FrameWork.emitTCPHeaders(b, payload: 1448)
    return n + 1448
})

nonisolated(unsafe) let arpFrame = stable(build { b in
    _ = try EthernetHeader(destination: .broadcast, source: FrameWork.guest, etherType: EtherType.arp).emit(into: b)
    return 14 + (try ARPPacket(operation: .request, senderMAC: FrameWork.guest, senderIP: FrameWork.guestIP, targetMAC: .zero,
                               targetIP: FrameWork.gatewayIP).emit(into: b.slice(14, 28)))
})

nonisolated(unsafe) let udp6Frame = stable(build { b in
    let payload = 512
    _ = try EthernetHeader(destination: FrameWork.gateway, source: FrameWork.guest, etherType: EtherType.ipv6).emit(into: b)
    _ = try IPv6Header(source: FrameWork.v6Source, destination: FrameWork.v6Destination, nextHeader: IPProtocol.udp,
                       payloadLength: UInt16(8 + payload)).emit(into: b.slice(14, 40))
    let l4 = b.slice(54, 8 + payload)
    _ = try UDPHeader(sourcePort: 5353, destinationPort: 53, payloadLength: payload).emit(into: l4)
    UDPHeader.fillChecksum(l4, source: FrameWork.v6Source, destination: FrameWork.v6Destination)
    return 54 + 8 + payload
})

nonisolated(unsafe) let frameCases: [BenchCase] = [
    BenchCase(name: "TCP frame (vnet..TCP+TS)", input: tcpFrame, parse: FrameWork.parseTCPFrame,
              emit: { FrameWork.emitTCPHeaders($0, payload: 1448) }),
    BenchCase(name: "ARP request", input: arpFrame, parse: FrameWork.parseARP, emit: nil),
    BenchCase(name: "IPv6 UDP 512B + csum", input: udp6Frame, parse: FrameWork.parseUDP6, emit: nil),
]
