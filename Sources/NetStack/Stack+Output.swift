// Frame construction for everything the stack sends: virtio-net header, Ethernet, IPv4/IPv6,
// and the L4 checksum either computed here or left to the device (NEEDS_CSUM) with GSO metadata.
import Wire

/// Asks the device to treat a frame as one large TCP segment of `segmentSize`-byte pieces.
struct GSORequest {
    var isV6: Bool
    var segmentSize: Int
    var l4HeaderLength: Int
}

extension Stack {
    /// Writes the virtio-net header (zero: complete frame, no offload) and returns its size.
    func writeVnetHeader(_ b: UnsafeMutableRawBufferPointer) -> Int {
        guard configuration.vnetHeaderSize > 0 else { return 0 }
        _ = try? VirtioNetHeader().emit(into: b, size: configuration.vnetHeaderSize)
        return configuration.vnetHeaderSize
    }

    func finish(_ f: FrameBuffer, length: Int) {
        f.length = length
        output.enqueue(f)
        counters.framesOut += 1
        counters.bytesOut += length
    }

    /// Builds one IP packet to the guest. `fill` writes the L4 header and payload into the
    /// buffer it is given (`l4Length` bytes) and returns the offset of the L4 checksum field.
    func emitIP(
        to mac: MACAddress, source: IPAddress, destination: IPAddress, protocolNumber: UInt8, l4Length: Int,
        gso: GSORequest?, fill: (UnsafeMutableRawBufferPointer) -> Int
    ) {
        // TCP sizes its segments to the MTU itself; anything else too big for the link is split.
        if gso == nil && protocolNumber != IPProtocol.tcp && ipHeaderLength(destination) + l4Length > configuration.mtu {
            return emitFragmented(to: mac, source: source, destination: destination, protocolNumber: protocolNumber,
                                  l4Length: l4Length, fill: fill)
        }
        guard let f = output.obtain() else { return noteOutputDrop() }
        let b = f.storage
        let vnetSize = configuration.vnetHeaderSize
        var at = vnetSize
        let ipv6: Bool
        switch destination {
        case .v4: ipv6 = false
        case .v6: ipv6 = true
        }
        let eth = EthernetHeader(destination: mac, source: configuration.gatewayMAC, etherType: ipv6 ? EtherType.ipv6 : EtherType.ipv4)
        at += (try? eth.emit(into: b.slice(at, 14))) ?? 14
        var pseudo: InternetChecksum
        switch (source, destination) {
        case (.v4(let s), .v4(let d)):
            ipIdentification &+= 1
            let ip = IPv4Header(source: s, destination: d, protocolNumber: protocolNumber, payloadLength: l4Length,
                                identification: ipIdentification, dontFragment: true)
            guard let n = try? ip.emit(into: b.slice(at, b.count - at)) else { return }
            at += n
            pseudo = InternetChecksum.pseudoHeader(source: s, destination: d, protocol: protocolNumber, length: l4Length)
        case (.v6(let s), .v6(let d)):
            let ip = IPv6Header(source: s, destination: d, nextHeader: protocolNumber, payloadLength: UInt16(l4Length))
            guard let n = try? ip.emit(into: b.slice(at, b.count - at)) else { return }
            at += n
            pseudo = InternetChecksum.pseudoHeader(source: s, destination: d, nextHeader: protocolNumber, length: l4Length)
        default:
            return  // mixed families cannot happen: keys are built per family
        }
        guard at + l4Length <= b.count else { return noteOutputDrop() }
        let l4 = b.slice(at, l4Length)
        let checksumOffset = fill(l4)
        let useOffload = configuration.offloads && protocolNumber != IPProtocol.icmp && protocolNumber != IPProtocol.icmpv6
        if useOffload {
            // The device (the guest's kernel, for a TAP) completes the sum: store the folded
            // pseudo-header as virtio-net's NEEDS_CSUM asks, and skip touching the payload again.
            l4.setBE16(pseudo.folded, checksumOffset)
            var v = VirtioNetHeader()
            v.flags = .needsChecksum
            v.checksumStart = UInt16(at - vnetSize)
            v.checksumOffset = UInt16(checksumOffset)
            if let gso {
                v.gsoType = gso.isV6 ? .tcpv6 : .tcpv4
                v.gsoSize = UInt16(gso.segmentSize)
                v.headerLength = UInt16(at - vnetSize + gso.l4HeaderLength)
            }
            _ = try? v.emit(into: b, size: vnetSize)
        } else {
            _ = writeVnetHeader(b)
            l4.setBE16(0, checksumOffset)
            var c = pseudo
            if protocolNumber == IPProtocol.icmp { c = InternetChecksum() }
            c.add(bytes: UnsafeRawBufferPointer(l4))
            var v = c.value
            if protocolNumber == IPProtocol.udp && v == 0 { v = 0xFFFF }
            l4.setBE16(v, checksumOffset)
        }
        finish(f, length: at + l4Length)
    }

    /// An IPv4 packet whose L4 bytes (checksum included) `fill` writes, returning their length;
    /// for replies whose size is known only once written (DHCP). No offload.
    func emitIPRaw(to mac: MACAddress, source: IPv4Address, destination: IPv4Address, protocolNumber: UInt8, maxL4Length: Int,
                   fill: (UnsafeMutableRawBufferPointer) -> Int) {
        guard let f = output.obtain() else { return noteOutputDrop() }
        let b = f.storage
        var at = writeVnetHeader(b)
        at += (try? EthernetHeader(destination: mac, source: configuration.gatewayMAC, etherType: EtherType.ipv4).emit(into: b.slice(at, 14))) ?? 14
        let ipAt = at
        at += 20
        guard at + maxL4Length <= b.count else { return noteOutputDrop() }
        let n = fill(b.slice(at, maxL4Length))
        guard n > 0 else { return }
        ipIdentification &+= 1
        let ip = IPv4Header(source: source, destination: destination, protocolNumber: protocolNumber, payloadLength: n,
                            identification: ipIdentification, dontFragment: false)
        _ = try? ip.emit(into: b.slice(ipAt, 20))
        finish(f, length: at + n)
    }
}
