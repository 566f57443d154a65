// Neighbor Advertisement (RFC 4861 §4.4): the answer to a solicitation, or an unsolicited
// announcement of a link-layer address.

public struct NeighborAdvertisement: Hashable, Sendable {
    /// Header, flags word and target address (RFC 4861 §7.1.2: ICMP length ≥ 24).
    public static let minimumLength = 24

    // Flag bits of byte 4 (RFC 4861 §4.4).
    static let routerBit: UInt8 = 0x80
    static let solicitedBit: UInt8 = 0x40
    static let overrideBit: UInt8 = 0x20

    public var router: Bool
    public var solicited: Bool
    public var override: Bool
    public var target: IPv6Address
    public var targetLinkAddress: MACAddress?

    public init(
        router: Bool = false, solicited: Bool, override: Bool, target: IPv6Address,
        targetLinkAddress: MACAddress? = nil
    ) {
        self.router = router
        self.solicited = solicited
        self.override = override
        self.target = target
        self.targetLinkAddress = targetLinkAddress
    }

    /// Parses a whole ICMPv6 message (checksum already verified by `ICMPv6Message.parse`).
    /// Enforces code 0, the minimum length, a unicast target and well-formed options.
    public static func parse(_ message: UnsafeRawBufferPointer) throws(WireError) -> NeighborAdvertisement {
        let r = CheckedReader(message, layer: "ndp")
        let area = try ICMPv6Message.ndpOptions(
            message, type: ICMPv6Message.neighborAdvertisement, minimumLength: minimumLength)
        let target = try r.ipv6(8)
        guard !target.isMulticast else { throw WireError(.malformed, "ndp") }
        let flags = try r.u8(4)
        var na = NeighborAdvertisement(
            router: flags & routerBit != 0, solicited: flags & solicitedBit != 0,
            override: flags & overrideBit != 0, target: target)
        var it = NDPOptionIterator(area)
        while let option = try it.next() {
            if option.type == NDPOption.targetLinkLayerAddress, let mac = option.linkLayerAddress {
                na.targetLinkAddress = mac
            }
        }
        return na
    }

    /// The RFC 4861 §7.1.2 rule that needs the IP header: an advertisement to a multicast group
    /// cannot be solicited.
    public func validate(destination: IPv6Address) throws(WireError) {
        guard !(destination.isMulticast && solicited) else { throw WireError(.malformed, "ndp") }
    }

    public var encodedLength: Int {
        Self.minimumLength + (targetLinkAddress == nil ? 0 : NDPOption.linkLayerAddressLength)
    }

    /// Writes the whole ICMPv6 message with its checksum; returns its length.
    public func build(
        into buffer: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) throws(WireError) -> Int {
        let length = encodedLength
        try ICMPv6Message.ndpHeader(buffer, type: ICMPv6Message.neighborAdvertisement, length: length)
        var flags: UInt8 = 0
        if router { flags |= Self.routerBit }
        if solicited { flags |= Self.solicitedBit }
        if override { flags |= Self.overrideBit }
        buffer.setBE32(UInt32(flags) << 24, 4)
        buffer.setIPv6(target, 8)
        if let targetLinkAddress {
            NDPOption.writeLinkLayerAddress(
                targetLinkAddress, type: NDPOption.targetLinkLayerAddress, into: buffer, at: Self.minimumLength)
        }
        ICMPv6Message.fillChecksum(buffer.slice(0, length), source: source, destination: destination)
        return length
    }
}
