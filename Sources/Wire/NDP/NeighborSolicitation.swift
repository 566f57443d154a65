// Neighbor Solicitation (RFC 4861 §4.3): "who has this address?", and a DAD probe when sent
// from the unspecified address (RFC 4862 §5.4).

public struct NeighborSolicitation: Hashable, Sendable {
    /// Header, reserved word and target address (RFC 4861 §7.1.1: ICMP length ≥ 24).
    public static let minimumLength = 24

    public var target: IPv6Address
    public var sourceLinkAddress: MACAddress?

    public init(target: IPv6Address, sourceLinkAddress: MACAddress? = nil) {
        self.target = target
        self.sourceLinkAddress = sourceLinkAddress
    }

    /// Parses a whole ICMPv6 message (checksum already verified by `ICMPv6Message.parse`).
    /// Enforces code 0, the minimum length, a unicast target and well-formed options.
    public static func parse(_ message: UnsafeRawBufferPointer) throws(WireError) -> NeighborSolicitation {
        let r = CheckedReader(message, layer: "ndp")
        let area = try ICMPv6Message.ndpOptions(
            message, type: ICMPv6Message.neighborSolicitation, minimumLength: minimumLength)
        let target = try r.ipv6(8)
        guard !target.isMulticast else { throw WireError(.malformed, "ndp") }
        var ns = NeighborSolicitation(target: target)
        var it = NDPOptionIterator(area)
        // Every option is walked, so a malformed one anywhere rejects the message (§7.1.1).
        while let option = try it.next() {
            if option.type == NDPOption.sourceLinkLayerAddress, let mac = option.linkLayerAddress {
                ns.sourceLinkAddress = mac
            }
        }
        return ns
    }

    /// The RFC 4861 §7.1.1 rules that need the IP header: a probe from the unspecified address
    /// carries no source link-layer address and goes to a solicited-node group.
    public func validate(source: IPv6Address, destination: IPv6Address) throws(WireError) {
        if source.isUnspecified {
            guard sourceLinkAddress == nil, ICMPv6Message.isSolicitedNodeMulticast(destination) else {
                throw WireError(.malformed, "ndp")
            }
        }
    }

    public var encodedLength: Int {
        Self.minimumLength + (sourceLinkAddress == nil ? 0 : NDPOption.linkLayerAddressLength)
    }

    /// Writes the whole ICMPv6 message with its checksum; returns its length.
    public func build(
        into buffer: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) throws(WireError) -> Int {
        let length = encodedLength
        try ICMPv6Message.ndpHeader(buffer, type: ICMPv6Message.neighborSolicitation, length: length)
        buffer.setBE32(0, 4)
        buffer.setIPv6(target, 8)
        if let sourceLinkAddress {
            NDPOption.writeLinkLayerAddress(
                sourceLinkAddress, type: NDPOption.sourceLinkLayerAddress, into: buffer, at: Self.minimumLength)
        }
        ICMPv6Message.fillChecksum(buffer.slice(0, length), source: source, destination: destination)
        return length
    }
}
