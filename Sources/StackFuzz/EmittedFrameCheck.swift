// Every frame the stack sends must parse with the Wire parsers, checksums included: the device (or
// the guest's kernel) would drop it otherwise. IP fragments are put back together to check their L4.
import NetStack
import Wire

struct EmittedFrameCheck {
    let configuration: StackConfiguration
    /// The stack's own fragments (large UDP datagrams), reassembled as the guest would.
    var ipv4Fragments = IPv4Reassembler()
    var ipv6Fragments = IPv6Reassembler()

    init(configuration: StackConfiguration) { self.configuration = configuration }

    typealias SegmentObserver = (TCPHeader, UnsafeRawBufferPointer, IPAddress, IPAddress) -> Void

    mutating func check(_ frame: [UInt8], now: UInt64, segment: SegmentObserver) {
        var bytes = frame
        bytes.withUnsafeMutableBytes { b in
            let vnetSize = configuration.vnetHeaderSize
            var gso = false
            var l2 = b
            if vnetSize > 0 {
                guard let v = try? VirtioNetHeader.parse(UnsafeRawBufferPointer(b), size: vnetSize) else {
                    preconditionFailure("emitted virtio-net header does not parse")
                }
                l2 = b.slice(vnetSize, b.count - vnetSize)
                gso = v.gsoType != .none
                if v.flags.contains(.needsChecksum) {
                    precondition(configuration.offloads, "partial checksum without offloads")
                    // Complete the sum as the device would, then check it like any other.
                    do {
                        try InternetChecksum.completePartial(l2, start: Int(v.checksumStart), offset: Int(v.checksumOffset))
                    } catch {
                        preconditionFailure("partial checksum offsets outside the frame")
                    }
                } else {
                    precondition(!gso, "GSO frame without a partial checksum")
                }
            }
            checkEthernet(UnsafeRawBufferPointer(l2), gso: gso, now: now, segment: segment)
        }
    }

    private mutating func checkEthernet(_ l2: UnsafeRawBufferPointer, gso: Bool, now: UInt64, segment: SegmentObserver) {
        guard let eth = try? EthernetHeader.parse(l2) else { preconditionFailure("emitted Ethernet header does not parse") }
        precondition(eth.source == configuration.gatewayMAC, "frame not from the gateway's MAC")
        let l3 = part(l2, eth.headerLength, l2.count - eth.headerLength, "Ethernet payload")
        switch eth.etherType {
        case EtherType.arp:
            guard let arp = try? ARPPacket.parse(l3) else { preconditionFailure("emitted ARP does not parse") }
            precondition(arp.operation == .reply && arp.senderMAC == configuration.gatewayMAC, "ARP other than our reply")
        case EtherType.ipv4:
            guard let ip = try? IPv4Header.parse(l3) else { preconditionFailure("emitted IPv4 header does not parse (or its checksum)") }
            precondition(gso || Int(ip.totalLength) <= configuration.mtu, "IPv4 packet beyond the MTU without GSO")
            let payload = part(l3, ip.headerLength, ip.payloadLength, "IPv4 payload")
            if ip.isFragment {
                guard let whole = ipv4Fragments.add(header: ip, fragment: payload, now: now) else { return }
                whole.payload.withUnsafeBytes {
                    checkTransport(whole.header.protocolNumber, $0, .v4(ip.source), .v4(ip.destination), segment: segment)
                }
            } else {
                checkTransport(ip.protocolNumber, payload, .v4(ip.source), .v4(ip.destination), segment: segment)
            }
        case EtherType.ipv6:
            guard let ip = try? IPv6Header.parse(l3) else { preconditionFailure("emitted IPv6 header does not parse") }
            precondition(gso || IPv6Header.length + Int(ip.payloadLength) <= configuration.mtu, "IPv6 packet of \(ip.payloadLength) (protocol \(ip.upperProtocol)) beyond the MTU without GSO")
            if ip.isFragment {
                guard let whole = ipv6Fragments.add(header: ip, packet: l3, now: now) else { return }
                whole.payload.withUnsafeBytes {
                    checkTransport(whole.header.upperProtocol, part($0, whole.upperOffset, whole.upperLength, "reassembled IPv6 payload"),
                                   .v6(ip.source), .v6(ip.destination), segment: segment)
                }
            } else {
                checkTransport(ip.upperProtocol, part(l3, ip.upperOffset, ip.upperLength, "IPv6 payload"), .v6(ip.source), .v6(ip.destination),
                               segment: segment)
            }
        default:
            preconditionFailure("frame of EtherType \(eth.etherType)")
        }
    }

    private func checkTransport(
        _ proto: UInt8, _ l4: UnsafeRawBufferPointer, _ source: IPAddress, _ destination: IPAddress,
        segment: SegmentObserver
    ) {
        switch proto {
        case IPProtocol.tcp:
            precondition(TransportChecksum.verifies(tcp: true, l4, source: source, destination: destination), "emitted TCP checksum")
            guard let h = try? TCPHeader.parse(l4) else { preconditionFailure("emitted TCP header does not parse") }
            segment(h, part(l4, h.headerLength, l4.count - h.headerLength, "TCP payload"), source, destination)
        case IPProtocol.udp:
            guard let h = try? UDPHeader.parse(l4) else { preconditionFailure("emitted UDP header does not parse") }
            precondition(Int(h.length) == l4.count, "UDP length disagrees with IP")
            precondition(TransportChecksum.verifies(tcp: false, l4, source: source, destination: destination), "emitted UDP checksum")
            if h.sourcePort == 67 {
                precondition((try? DHCPMessage.parse(part(l4, UDPHeader.length, h.payloadLength, "UDP payload"))) != nil, "emitted DHCP does not parse")
            }
        case IPProtocol.icmp:
            precondition((try? ICMPv4Message.parse(l4, verifyChecksum: true)) != nil, "emitted ICMP does not parse (or its checksum)")
        case IPProtocol.icmpv6:
            guard case .v6(let s) = source, case .v6(let d) = destination,
                let m = try? ICMPv6Message.parse(l4, source: s, destination: d, verifyChecksum: true)
            else { preconditionFailure("emitted ICMPv6 does not parse (or its checksum)") }
            switch m.type {
            case ICMPv6Message.neighborAdvertisement:
                precondition((try? NeighborAdvertisement.parse(l4)) != nil, "emitted neighbour advertisement")
            case ICMPv6Message.routerAdvertisement:
                precondition((try? RouterAdvertisement.parse(l4)) != nil, "emitted router advertisement")
            default:
                break
            }
        default:
            preconditionFailure("emitted IP protocol \(proto)")
        }
    }

    /// `count` bytes from `offset`: a frame shorter than its own headers say is a failure too.
    private func part(_ b: UnsafeRawBufferPointer, _ offset: Int, _ count: Int, _ what: String) -> UnsafeRawBufferPointer {
        guard let p = b.checkedSlice(offset, count) else { preconditionFailure("emitted \(what) shorter than its header says") }
        return p
    }
}
