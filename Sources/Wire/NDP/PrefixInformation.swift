// The Prefix Information option of a Router Advertisement (RFC 4861 §4.6.2): an on-link prefix
// and whether hosts may form addresses from it (SLAAC, RFC 4862 §5.5.3).

public struct PrefixInformation: Hashable, Sendable {
    /// Type, length 4 (32 bytes), prefix length, flags, two lifetimes, reserved, prefix.
    public static let optionLength = 32
    /// All ones means forever (RFC 4861 §4.6.2).
    public static let infiniteLifetime: UInt32 = 0xFFFF_FFFF

    static let onLinkBit: UInt8 = 0x80
    static let autonomousBit: UInt8 = 0x40

    public var prefix: IPv6Address
    public var prefixLength: UInt8
    public var onLink: Bool
    public var autonomous: Bool
    public var validLifetime: UInt32
    public var preferredLifetime: UInt32

    public init(
        prefix: IPv6Address, prefixLength: UInt8, onLink: Bool = true, autonomous: Bool = true,
        validLifetime: UInt32, preferredLifetime: UInt32
    ) {
        self.prefix = prefix
        self.prefixLength = prefixLength
        self.onLink = onLink
        self.autonomous = autonomous
        self.validLifetime = validLifetime
        self.preferredLifetime = preferredLifetime
    }

    /// Reads the option (type and length octets included). A length other than 4 units or a
    /// prefix length above 128 throws `.badOption`. A preferred lifetime above the valid one is
    /// kept as sent: RFC 4862 §5.5.3 (c) has the receiver ignore such a prefix.
    static func parse(option bytes: UnsafeRawBufferPointer) throws(WireError) -> PrefixInformation {
        let r = CheckedReader(bytes, layer: "ndp")
        guard bytes.count == optionLength else { throw WireError(.badOption, "ndp") }
        let prefixLength = try r.u8(2)
        guard prefixLength <= 128 else { throw WireError(.badOption, "ndp") }
        let flags = try r.u8(3)
        return PrefixInformation(
            prefix: try r.ipv6(16), prefixLength: prefixLength, onLink: flags & onLinkBit != 0,
            autonomous: flags & autonomousBit != 0, validLifetime: try r.be32(4), preferredLifetime: try r.be32(8))
    }

    /// Writes the 32-byte option at `offset`; the caller has checked room.
    func emit(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.setU8(NDPOption.prefixInformation, offset)
        buffer.setU8(UInt8(Self.optionLength / NDPOption.unit), offset + 1)
        buffer.setU8(prefixLength, offset + 2)
        buffer.setU8((onLink ? Self.onLinkBit : 0) | (autonomous ? Self.autonomousBit : 0), offset + 3)
        buffer.setBE32(validLifetime, offset + 4)
        buffer.setBE32(preferredLifetime, offset + 8)
        buffer.setBE32(0, offset + 12)
        buffer.setIPv6(prefix, offset + 16)
    }
}
