// A first look at a guest's frame before any parsing: is it plain flow traffic (TCP or UDP of a
// flow, from the guest, to the gateway), or something the gateway answers or refuses itself?
// Reads a few fixed offsets, bounds-checked; it decides nothing the stack would decide otherwise.

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
        guard frame.count >= 14 else { return .runt }
        let destination = frame.mac(0)
        guard destination == gatewayMAC || destination.isMulticast else { return .notForUs }
        if let guestMAC, frame.mac(6) != guestMAC { return .spoofedSource }
        let ip = frame.slice(14, frame.count - 14)
        switch frame.be16(12) {
        case EtherType.ipv4: return ipv4(ip)
        case EtherType.ipv6: return ipv6(ip)
        // ARP, tagged frames and the rest go to the stack's own handling.
        default: return .control
        }
    }

    private static func ipv4(_ ip: UnsafeRawBufferPointer) -> Kind {
        guard ip.count >= 20, ip.u8(0) >> 4 == 4 else { return .runt }
        let headerLength = Int(ip.u8(0) & 0x0F) * 4
        // The datagram the header claims must be in the frame (padding may follow it).
        let totalLength = Int(ip.be16(2))
        guard headerLength >= 20, totalLength >= headerLength, ip.count >= totalLength else { return .runt }
        // More fragments, or an offset: part of a datagram.
        if ip.be16(6) & 0x3FFF != 0 { return .fragment }
        return transport(ip.u8(9), ip.slice(headerLength, totalLength - headerLength))
    }

    private static func ipv6(_ ip: UnsafeRawBufferPointer) -> Kind {
        guard ip.count >= 40, ip.u8(0) >> 4 == 6 else { return .runt }
        let payloadLength = Int(ip.be16(4))
        guard ip.count >= 40 + payloadLength else { return .runt }
        let next = ip.u8(6)
        if next == ipv6FragmentHeader { return .fragment }
        return transport(next, ip.slice(40, payloadLength))
    }

    private static func transport(_ proto: UInt8, _ l4: UnsafeRawBufferPointer) -> Kind {
        switch proto {
        case IPProtocol.tcp:
            guard l4.count >= 20 else { return .runt }
            // SYN without ACK: the first segment of a new connection.
            return l4.u8(13) & 0x12 == 0x02 ? .connectionRequest : .flow
        case IPProtocol.udp:
            guard l4.count >= 8 else { return .runt }
            let port = l4.be16(2)
            return port == 53 || port == 67 ? .service : .flow
        default:
            return .control
        }
    }
}
