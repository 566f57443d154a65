// IP fragmentation both ways: reassembly of the guest's fragments (IPv6 here; IPv4 at its hook
// in Stack.swift) and fragmentation of datagrams to the guest that exceed the link MTU.
import Wire

extension Stack {
    // MARK: - From the guest

    func receiveIPv6Fragment(_ ip: IPv6Header, _ bytes: UnsafeRawBufferPointer, mac: MACAddress, now: UInt64) {
        guard let whole = ipv6Reassembler.add(header: ip, packet: bytes, now: now) else { return }
        // RFC 6980 §5: Neighbor Discovery never needs fragments, and fragments would let its
        // messages slip past the checks on the first one; ignore them whole.
        if whole.header.upperProtocol == IPProtocol.icmpv6 && whole.upperLength > 0 {
            // Router Solicitation (133) up to Redirect (137).
            if (ICMPv6Message.routerSolicitation...137).contains(whole.payload[whole.upperOffset]) {
                counters.malformed += 1
                return
            }
        }
        whole.payload.withUnsafeBytes { p in
            guard let l4 = p.checkedSlice(whole.upperOffset, whole.upperLength) else {
                counters.malformed += 1
                return
            }
            deliverIPv6(whole.header, l4: l4, checksumTrusted: false, mac: mac, now: now)
        }
    }

    // MARK: - To the guest

    /// The IP header a packet to `destination` gets (no options, no extension headers).
    func ipHeaderLength(_ destination: IPAddress) -> Int {
        destination.isV6 ? IPv6Header.length : IPv4Header.minimumLength
    }

    /// Builds the L4 datagram that `emitIP`'s `fill` writes in a scratch buffer, computes its
    /// checksum in full (fragments cannot ask the device to: NEEDS_CSUM covers one frame), and
    /// sends it as fragments of at most the MTU.
    func emitFragmented(
        to mac: MACAddress, source: IPAddress, destination: IPAddress, protocolNumber: UInt8, l4Length: Int,
        fill: (UnsafeMutableRawBufferPointer) -> Int
    ) {
        guard let scratch = output.obtain() else { return noteOutputDrop() }
        defer { output.recycle(scratch) }
        guard l4Length <= scratch.storage.count else { return noteOutputDrop() }
        let l4 = scratch.storage.slice(0, l4Length)
        let checksumOffset = fill(l4)
        var sum: InternetChecksum
        switch (source, destination) {
        case (.v4(let s), .v4(let d)):
            sum = protocolNumber == IPProtocol.icmp
                ? InternetChecksum()
                : InternetChecksum.pseudoHeader(source: s, destination: d, protocol: protocolNumber, length: l4Length)
        case (.v6(let s), .v6(let d)):
            sum = InternetChecksum.pseudoHeader(source: s, destination: d, nextHeader: protocolNumber, length: l4Length)
        default:
            return
        }
        l4.setBE16(0, checksumOffset)
        sum.add(bytes: UnsafeRawBufferPointer(l4))
        var value = sum.value
        if protocolNumber == IPProtocol.udp && value == 0 { value = 0xFFFF }
        l4.setBE16(value, checksumOffset)
        emitFragments(to: mac, source: source, destination: destination, protocolNumber: protocolNumber, hopLimit: 64,
                      datagram: UnsafeRawBufferPointer(l4))
    }

    /// Sends a complete L4 datagram (checksum in place) as IP fragments of at most the MTU:
    /// IPv4 fragments with DF clear and MF on all but the last (RFC 791 §3.2), or IPv6 packets
    /// with a Fragment header (RFC 8200 §4.5). Every fragment's data but the last is a multiple
    /// of 8 bytes, since offsets count 8-byte units.
    func emitFragments(
        to mac: MACAddress, source: IPAddress, destination: IPAddress, protocolNumber: UInt8, hopLimit: UInt8,
        datagram: UnsafeRawBufferPointer
    ) {
        let isV6 = destination.isV6
        let perFragment = (configuration.mtu - (isV6 ? IPv6Header.length + 8 : IPv4Header.minimumLength)) & ~7
        // A datagram whose fragments could not all carry data, or whose reassembled length would
        // not fit the 16-bit length field, cannot be sent at all.
        guard perFragment >= 8, datagram.count <= 65535 - (isV6 ? 0 : IPv4Header.minimumLength) else {
            return noteOutputDrop()
        }
        let identification: UInt32
        if isV6 {
            ipv6FragmentIdentification &+= 1
            identification = ipv6FragmentIdentification
        } else {
            ipIdentification &+= 1
            identification = UInt32(ipIdentification)
        }
        var offset = 0
        repeat {
            let length = min(perFragment, datagram.count - offset)
            let more = offset + length < datagram.count
            guard let f = output.obtain() else { return noteOutputDrop() }
            let b = f.storage
            // Complete checksums and nothing to segment: a zero virtio-net header.
            var at = writeVnetHeader(b)
            let eth = EthernetHeader(destination: mac, source: configuration.gatewayMAC, etherType: isV6 ? EtherType.ipv6 : EtherType.ipv4)
            at += (try? eth.emit(into: b.slice(at, EthernetHeader.minimumLength))) ?? EthernetHeader.minimumLength
            switch (source, destination) {
            case (.v4(let s), .v4(let d)):
                var ip = IPv4Header(source: s, destination: d, protocolNumber: protocolNumber, payloadLength: length,
                                    ttl: hopLimit, identification: UInt16(truncatingIfNeeded: identification), dontFragment: false)
                ip.moreFragments = more
                ip.fragmentOffset = offset
                guard let n = try? ip.emit(into: b.slice(at, b.count - at)) else {
                    output.recycle(f)
                    return noteOutputDrop()
                }
                at += n
            case (.v6(let s), .v6(let d)):
                let ip = IPv6Header(source: s, destination: d, nextHeader: IPProtocol.fragment,
                                    payloadLength: UInt16(8 + length), hopLimit: hopLimit)
                guard let n = try? ip.emit(into: b.slice(at, b.count - at)) else {
                    output.recycle(f)
                    return noteOutputDrop()
                }
                at += n
                // Fragment header: next header, reserved, offset (8-byte units) with M as the
                // low bit, identification.
                b.setU8(protocolNumber, at)
                b.setU8(0, at + 1)
                b.setBE16(UInt16(offset) | (more ? 1 : 0), at + 2)
                b.setBE32(identification, at + 4)
                at += 8
            default:
                output.recycle(f)
                return
            }
            // bound: the loop keeps offset + length <= datagram.count (length is cut to what is left).
            b.slice(at, length).copyMemory(from: datagram.uncheckedSlice(offset, length))
            finish(f, length: at + length)
            offset += length
        } while offset < datagram.count
    }
}
