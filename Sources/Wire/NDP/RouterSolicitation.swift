// Router Solicitation (RFC 4861 §4.1): a host asking for a Router Advertisement now.

public struct RouterSolicitation: Hashable, Sendable {
    /// Header and reserved word (RFC 4861 §6.1.1: ICMP length ≥ 8).
    public static let minimumLength = 8

    public var sourceLinkAddress: MACAddress?

    public init(sourceLinkAddress: MACAddress? = nil) {
        self.sourceLinkAddress = sourceLinkAddress
    }

    /// Parses a whole ICMPv6 message (checksum already verified by `ICMPv6Message.parse`).
    /// Enforces code 0, the minimum length and well-formed options.
    public static func parse(_ message: UnsafeRawBufferPointer) throws(WireError) -> RouterSolicitation {
        let area = try ICMPv6Message.ndpOptions(
            message, type: ICMPv6Message.routerSolicitation, minimumLength: minimumLength)
        var rs = RouterSolicitation()
        var it = NDPOptionIterator(area)
        while let option = try it.next() {
            if option.type == NDPOption.sourceLinkLayerAddress, let mac = option.linkLayerAddress {
                rs.sourceLinkAddress = mac
            }
        }
        return rs
    }

    /// The RFC 4861 §6.1.1 rule that needs the IP header: a solicitation from the unspecified
    /// address carries no source link-layer address.
    public func validate(source: IPv6Address) throws(WireError) {
        guard !(source.isUnspecified && sourceLinkAddress != nil) else { throw WireError(.malformed, "ndp") }
    }

    public var encodedLength: Int {
        Self.minimumLength + (sourceLinkAddress == nil ? 0 : NDPOption.linkLayerAddressLength)
    }

    /// Writes the whole ICMPv6 message with its checksum; returns its length.
    public func build(
        into buffer: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) throws(WireError) -> Int {
        let length = encodedLength
        try ICMPv6Message.ndpHeader(buffer, type: ICMPv6Message.routerSolicitation, length: length)
        buffer.setBE32(0, 4)
        if let sourceLinkAddress {
            NDPOption.writeLinkLayerAddress(
                sourceLinkAddress, type: NDPOption.sourceLinkLayerAddress, into: buffer, at: Self.minimumLength)
        }
        ICMPv6Message.fillChecksum(buffer.slice(0, length), source: source, destination: destination)
        return length
    }
}
