// ICMP and ICMPv6 at the gateway: echo replies for its own addresses, and NDP (neighbour
// solicitations for the gateway, router solicitations answered with a router advertisement).
import Wire

extension Stack {
    func receiveICMPv4(_ ip: IPv4Header, _ l4: UnsafeRawBufferPointer) {
        guard let msg = try? ICMPv4Message.parse(l4) else {
            counters.malformed += 1
            return
        }
        guard msg.type == ICMPv4Message.echoRequest, msg.code == 0 else { return }
        guard let payload = l4.checkedSlice(ICMPv4Message.headerLength, l4.count - ICMPv4Message.headerLength) else {
            counters.malformed += 1
            return
        }
        if ip.destination == configuration.gatewayIPv4 {
            sendEchoReplyV4(to: ip.source, from: ip.destination, restOfHeader: msg.restOfHeader, payload: payload)
        } else if !ip.destination.isBroadcast && !ip.destination.isMulticast && ip.destination != configuration.broadcastIPv4 {
            appendEvent(.echoRequest(source: .v4(ip.source), destination: .v4(ip.destination), identifier: msg.identifier,
                                     sequence: msg.sequence, payload: Array(payload)))
        }
    }

    func sendEchoReplyV4(to guest: IPv4Address, from source: IPv4Address, restOfHeader: UInt32, payload: UnsafeRawBufferPointer) {
        guard let mac = neighbors.lookup(.v4(guest)) else { return noteOutputDrop() }
        emitIP(to: mac, source: .v4(source), destination: .v4(guest), protocolNumber: IPProtocol.icmp,
               l4Length: ICMPv4Message.headerLength + payload.count, gso: nil) { l4 in
            _ = try? ICMPv4Message.build(into: l4, type: ICMPv4Message.echoReply, code: 0, restOfHeader: restOfHeader, payload: payload)
            return ICMPv4Message.checksumOffset
        }
        counters.echoReplies += 1
    }

    /// The layer above got an echo reply from beyond the gateway: relay it to the guest.
    public func sendEchoReply(to guest: IPAddress, from source: IPAddress, identifier: UInt16, sequence: UInt16, payload: UnsafeRawBufferPointer) {
        let rest = UInt32(identifier) << 16 | UInt32(sequence)
        switch (guest, source) {
        case (.v4(let g), .v4(let s)):
            sendEchoReplyV4(to: g, from: s, restOfHeader: rest, payload: payload)
        case (.v6(let g), .v6(let s)):
            sendICMPv6(to: g, from: s, type: ICMPv6Message.echoReply, restOfHeader: rest, payload: payload)
        default:
            break
        }
    }

    func receiveICMPv6(_ ip: IPv6Header, _ l4: UnsafeRawBufferPointer, mac: MACAddress, now: UInt64) {
        guard let msg = try? ICMPv6Message.parse(l4, source: ip.source, destination: ip.destination) else {
            counters.malformed += 1
            return
        }
        switch msg.type {
        case ICMPv6Message.echoRequest:
            guard let payload = l4.checkedSlice(ICMPv6Message.headerLength, l4.count - ICMPv6Message.headerLength)
            else {
                counters.malformed += 1
                return
            }
            if isGatewayIPv6(ip.destination) {
                sendICMPv6(to: ip.source, from: ip.destination, type: ICMPv6Message.echoReply, restOfHeader: msg.restOfHeader, payload: payload)
                counters.echoReplies += 1
            } else if !ip.destination.isMulticast {
                appendEvent(.echoRequest(source: .v6(ip.source), destination: .v6(ip.destination),
                                         identifier: UInt16(msg.restOfHeader >> 16), sequence: UInt16(truncatingIfNeeded: msg.restOfHeader),
                                         payload: Array(payload)))
            }
        case ICMPv6Message.neighborSolicitation:
            // RFC 4861 §7.1.1: hop limit 255 proves the sender is on-link.
            guard ip.hopLimit == 255, let ns = try? NeighborSolicitation.parse(l4),
                (try? ns.validate(source: ip.source, destination: ip.destination)) != nil
            else {
                counters.malformed += 1
                return
            }
            if let sll = ns.sourceLinkAddress, !ip.source.isUnspecified { neighbors.learn(.v6(ip.source), mac: sll, now: now) }
            guard isGatewayIPv6(ns.target) else { return }
            // DAD probes (unspecified source) are answered to all-nodes (RFC 4861 §7.2.4).
            let dad = ip.source.isUnspecified
            let na = NeighborAdvertisement(router: true, solicited: !dad, override: true, target: ns.target,
                                           targetLinkAddress: configuration.gatewayMAC)
            let dst = dad ? IPv6Address.allNodes : ip.source
            let dstMAC = dad ? MACAddress(ipv6Multicast: .allNodes) : (ns.sourceLinkAddress ?? mac)
            sendNDP(to: dst, mac: dstMAC, from: ns.target, length: na.encodedLength) { _ = try? na.build(into: $0, source: ns.target, destination: dst) }
        case ICMPv6Message.routerSolicitation:
            guard ip.hopLimit == 255, let rs = try? RouterSolicitation.parse(l4) else {
                counters.malformed += 1
                return
            }
            if let sll = rs.sourceLinkAddress, !ip.source.isUnspecified { neighbors.learn(.v6(ip.source), mac: sll, now: now) }
            sendRouterAdvertisement(to: ip.source.isUnspecified ? .allNodes : ip.source, mac: rs.sourceLinkAddress ?? mac)
        case ICMPv6Message.neighborAdvertisement:
            if let na = try? NeighborAdvertisement.parse(l4), let tll = na.targetLinkAddress {
                neighbors.learn(.v6(na.target), mac: tll, now: now)
            }
        default:
            break
        }
    }

    func isGatewayIPv6(_ a: IPv6Address) -> Bool {
        a == configuration.gatewayIPv6 || a == configuration.gatewayLinkLocal
    }

    /// A router advertisement: the /64 for SLAAC, the link MTU and the resolvers (RFC 8106).
    public func sendRouterAdvertisement(to destination: IPv6Address = .allNodes, mac: MACAddress? = nil) {
        let prefix = PrefixInformation(prefix: configuration.ipv6Prefix, prefixLength: 64, onLink: true, autonomous: true,
                                       validLifetime: 86_400, preferredLifetime: 14_400)
        let ra = RouterAdvertisement(curHopLimit: 64, routerLifetime: 1800, sourceLinkAddress: configuration.gatewayMAC,
                                     mtu: UInt32(configuration.mtu), prefixes: PrefixInformationList([prefix]),
                                     rdnss: configuration.dnsServersIPv6.isEmpty ? nil : RecursiveDNSServers(lifetime: 1800, configuration.dnsServersIPv6))
        let src = configuration.gatewayLinkLocal
        let dstMAC = destination.isMulticast ? MACAddress(ipv6Multicast: destination) : (mac ?? MACAddress(ipv6Multicast: .allNodes))
        sendNDP(to: destination, mac: dstMAC, from: src, length: ra.encodedLength) { _ = try? ra.build(into: $0, source: src, destination: destination) }
    }

    private func sendNDP(to destination: IPv6Address, mac: MACAddress, from source: IPv6Address, length: Int,
                         build: (UnsafeMutableRawBufferPointer) -> Void) {
        emitIPv6Raw(to: mac, source: source, destination: destination, hopLimit: 255, nextHeader: IPProtocol.icmpv6, l4Length: length, fill: build)
    }

    func sendICMPv6(to guest: IPv6Address, from source: IPv6Address, type: UInt8, code: UInt8 = 0, restOfHeader: UInt32, payload: UnsafeRawBufferPointer) {
        guard let mac = neighbors.lookup(.v6(guest)) else { return noteOutputDrop() }
        // Errors quote at most what keeps the whole packet within the IPv6 minimum MTU.
        let quoted = type < 128 ? min(payload.count, ICMPv6Message.maximumErrorLength - ICMPv6Message.headerLength) : payload.count
        emitIPv6Raw(to: mac, source: source, destination: guest, hopLimit: 64, nextHeader: IPProtocol.icmpv6, l4Length: ICMPv6Message.headerLength + quoted) { l4 in
            _ = try? ICMPv6Message.build(into: l4, source: source, destination: guest, type: type, code: code, restOfHeader: restOfHeader, payload: payload)
        }
    }

    func sendICMPv4Error(to guest: IPv4Address, from source: IPv4Address, type: UInt8, code: UInt8, quoting original: UnsafeRawBufferPointer) {
        guard let mac = neighbors.lookup(.v4(guest)) else { return noteOutputDrop() }
        // RFC 1812 §4.3.2.3: as much of the original as fits in 576 bytes.
        let quoted = min(original.count, ICMPv4Message.maximumErrorLength - ICMPv4Message.headerLength)
        emitIP(to: mac, source: .v4(source), destination: .v4(guest), protocolNumber: IPProtocol.icmp,
               l4Length: ICMPv4Message.headerLength + quoted, gso: nil) { l4 in
            _ = try? ICMPv4Message.build(into: l4, type: type, code: code, restOfHeader: 0, payload: original)
            return ICMPv4Message.checksumOffset
        }
        counters.icmpErrorsSent += 1
    }

    /// Tells the guest a UDP flow cannot be delivered: port unreachable as if from the
    /// destination (the upstream refused), or administratively prohibited from the gateway (policy).
    /// The quoted datagram is rebuilt from the flow and the start of its payload.
    public func sendUDPUnreachable(_ key: FlowKey, payloadPrefix: [UInt8], prohibited: Bool) {
        let udpLength = UDPHeader.length + payloadPrefix.count
        switch (key.guestAddress, key.remoteAddress) {
        case (.v4(let g), .v4(let r)):
            var quote = [UInt8](repeating: 0, count: 20 + udpLength)
            quote.withUnsafeMutableBytes { b in
                _ = try? IPv4Header(source: g, destination: r, protocolNumber: IPProtocol.udp, payloadLength: udpLength).emit(into: b)
                _ = try? UDPHeader(sourcePort: key.guestPort, destinationPort: key.remotePort, payloadLength: payloadPrefix.count).emit(into: b.slice(20, 8))
                payloadPrefix.withUnsafeBytes { if !payloadPrefix.isEmpty { b.slice(28, payloadPrefix.count).copyMemory(from: $0) } }
            }
            quote.withUnsafeBytes {
                sendICMPv4Error(to: g, from: prohibited ? configuration.gatewayIPv4 : r, type: ICMPv4Message.destinationUnreachable,
                                code: prohibited ? ICMPv4Message.Unreachable.adminProhibited : ICMPv4Message.Unreachable.port, quoting: $0)
            }
        case (.v6(let g), .v6(let r)):
            var quote = [UInt8](repeating: 0, count: 40 + udpLength)
            quote.withUnsafeMutableBytes { b in
                _ = try? IPv6Header(source: g, destination: r, nextHeader: IPProtocol.udp, payloadLength: UInt16(udpLength)).emit(into: b)
                _ = try? UDPHeader(sourcePort: key.guestPort, destinationPort: key.remotePort, payloadLength: payloadPrefix.count).emit(into: b.slice(40, 8))
                payloadPrefix.withUnsafeBytes { if !payloadPrefix.isEmpty { b.slice(48, payloadPrefix.count).copyMemory(from: $0) } }
            }
            quote.withUnsafeBytes {
                sendICMPv6(to: g, from: prohibited ? configuration.gatewayIPv6 : r, type: ICMPv6Message.destinationUnreachable,
                           code: prohibited ? 1 : 4, restOfHeader: 0, payload: $0)
            }
            counters.icmpErrorsSent += 1
        default:
            break
        }
    }

    /// An IPv6 packet whose L4 bytes (checksum included) `fill` writes completely.
    func emitIPv6Raw(to mac: MACAddress, source: IPv6Address, destination: IPv6Address, hopLimit: UInt8, nextHeader: UInt8,
                     l4Length: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        if IPv6Header.length + l4Length > configuration.mtu {
            // An echo reply to a large request: build it whole, send it in fragments.
            guard let scratch = output.obtain() else { return noteOutputDrop() }
            defer { output.recycle(scratch) }
            guard l4Length <= scratch.storage.count else { return noteOutputDrop() }
            fill(scratch.storage.slice(0, l4Length))
            emitFragments(to: mac, source: .v6(source), destination: .v6(destination), protocolNumber: nextHeader,
                          hopLimit: hopLimit, datagram: UnsafeRawBufferPointer(scratch.storage.slice(0, l4Length)))
            return
        }
        guard let f = output.obtain() else { return noteOutputDrop() }
        let b = f.storage
        var at = writeVnetHeader(b)
        at += (try? EthernetHeader(destination: mac, source: configuration.gatewayMAC, etherType: EtherType.ipv6).emit(into: b.slice(at, 14))) ?? 14
        let ip = IPv6Header(source: source, destination: destination, nextHeader: nextHeader, payloadLength: UInt16(l4Length), hopLimit: hopLimit)
        guard let n = try? ip.emit(into: b.slice(at, b.count - at)), at + n + l4Length <= b.count else { return noteOutputDrop() }
        at += n
        fill(b.slice(at, l4Length))
        finish(f, length: at + l4Length)
    }
}
