// A first look at a guest's frame before any parsing: is it plain flow traffic (TCP or UDP of a
// flow, from the guest, to the gateway), or something the gateway answers or refuses itself?
// Reads a few fixed offsets through `CheckedReader`; it decides nothing the stack would decide otherwise.

public enum FrameTriage {
    /// Why a frame is not plain flow traffic. Each kind costs the gateway work of its own (a
    /// reply, a reassembly slot, an upstream connection) or is refused outright; a guest sends
    /// few of them, a flooding one sends mostly these.
    public enum Kind: Int, CaseIterable, Sendable {
        /// Plain TCP (no SYN) or UDP of a flow: what bulk traffic is made of.
        case flow
        /// Shorter than an Ethernet header, an IP header that cannot be one, or shorter than
        /// the datagram its header claims.
        case runt
        /// Neither to the gateway's MAC nor to a group address: the stack drops it.
        case notForUs
        /// A source MAC that is not the guest's: the stack drops it.
        case spoofedSource
        /// ARP, ICMP, ICMPv6 (NDP), IPv6 extension headers, other EtherTypes: answered or
        /// refused by the gateway itself.
        case control
        /// An IPv4 or IPv6 fragment: held for reassembly.
        case fragment
        /// A TCP SYN: a new flow, which dials the host.
        case connectionRequest
        /// UDP to port 53 (DNS) or 67 (DHCP): answered by the gateway's own services.
        case service
    }

    static let ipv6FragmentHeader: UInt8 = 44

    /// The kind of the Ethernet frame `frame` (no virtio-net header in front). `guestMAC` nil: the
    /// guest's address is not known, so any source passes.
    public static func classify(_ frame: UnsafeRawBufferPointer, gatewayMAC: MACAddress, guestMAC: MACAddress?) -> Kind {
        // Every read is checked: a frame too short for what a header claims is a runt.
        (try? classify(CheckedReader(frame, layer: "ethernet"), gatewayMAC: gatewayMAC, guestMAC: guestMAC)) ?? .runt
    }

    private static func classify(_ frame: CheckedReader, gatewayMAC: MACAddress, guestMAC: MACAddress?) throws(WireError) -> Kind {
        guard frame.contains(0, 14) else { return .runt }
        let destination = try frame.mac(0)
        guard destination == gatewayMAC || destination.isMulticast else { return .notForUs }
        if let guestMAC, try frame.mac(6) != guestMAC { return .spoofedSource }
        let etherType = try frame.be16(12)
        switch etherType {
        case EtherType.ipv4: return try ipv4(frame.reader(14, frame.count - 14, layer: "ipv4"))
        case EtherType.ipv6: return try ipv6(frame.reader(14, frame.count - 14, layer: "ipv6"))
        // ARP, tagged frames and the rest go to the stack's own handling.
        default: return .control
        }
    }

    private static func ipv4(_ ip: CheckedReader) throws(WireError) -> Kind {
        let first = try ip.u8(0)
        guard first >> 4 == 4 else { return .runt }
        let headerLength = Int(first & 0x0F) * 4
        // The datagram the header claims must be in the frame (padding may follow it).
        let totalLength = Int(try ip.be16(2))
        guard headerLength >= 20, totalLength >= headerLength, ip.contains(0, totalLength) else { return .runt }
        // More fragments, or an offset: part of a datagram.
        if try ip.be16(6) & 0x3FFF != 0 { return .fragment }
        return try transport(ip.u8(9), ip.reader(headerLength, totalLength - headerLength))
    }

    private static func ipv6(_ ip: CheckedReader) throws(WireError) -> Kind {
        guard try ip.u8(0) >> 4 == 6 else { return .runt }
        let payloadLength = Int(try ip.be16(4))
        guard ip.contains(40, payloadLength) else { return .runt }
        let next = try ip.u8(6)
        if next == ipv6FragmentHeader { return .fragment }
        return try transport(next, ip.reader(40, payloadLength))
    }

    private static func transport(_ proto: UInt8, _ l4: CheckedReader) throws(WireError) -> Kind {
        switch proto {
        case IPProtocol.tcp:
            guard l4.contains(0, 20) else { return .runt }
            // SYN without ACK: the first segment of a new connection.
            return try l4.u8(13) & 0x12 == 0x02 ? .connectionRequest : .flow
        case IPProtocol.udp:
            guard l4.contains(0, 8) else { return .runt }
            let port = try l4.be16(2)
            return port == 53 || port == 67 ? .service : .flow
        default:
            return .control
        }
    }
}
