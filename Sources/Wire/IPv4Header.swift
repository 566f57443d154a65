// The IPv4 header (RFC 791 §3.1): validated once on the way in (lengths, checksum), written
// without options on the way out. Options are walked on request, never copied.

/// An IPv4 header. `headerLength` covers options; the payload is the `payloadLength` bytes
/// that follow it. Trailing bytes past `totalLength` (Ethernet padding) belong to no one.
public struct IPv4Header: Hashable, Sendable {
    public var tos: UInt8
    public var totalLength: UInt16
    public var identification: UInt16
    public var dontFragment: Bool
    public var moreFragments: Bool
    /// The fragment's position in the original datagram, in bytes (the field counts 8-byte units).
    public var fragmentOffset: Int
    public var ttl: UInt8
    public var protocolNumber: UInt8
    /// The header checksum as received. `emit` ignores it and writes the correct one.
    public var checksum: UInt16
    public var source: IPv4Address
    public var destination: IPv4Address
    /// 20 plus the options, a multiple of 4 up to 60 (IHL × 4).
    public var headerLength: Int

    public static let minimumLength = 20
    /// IHL is four bits of 32-bit words (RFC 791 §3.1).
    public static let maximumLength = 60

    public var payloadLength: Int { Int(totalLength) - headerLength }
    public var isFragment: Bool { moreFragments || fragmentOffset != 0 }

    /// Option kinds (RFC 791 §3.1; router alert RFC 2113) a caller may look for with `forEachOption`.
    public enum Option {
        public static let endOfList: UInt8 = 0
        public static let noOperation: UInt8 = 1
        public static let recordRoute: UInt8 = 7
        public static let timestamp: UInt8 = 68
        public static let looseSourceRoute: UInt8 = 131
        public static let strictSourceRoute: UInt8 = 137
        public static let routerAlert: UInt8 = 148
    }

    /// A 20-byte header for a datagram of `payloadLength` bytes (at most 65515, RFC 791 §3.1).
    public init(
        source: IPv4Address, destination: IPv4Address, protocolNumber: UInt8, payloadLength: Int, ttl: UInt8 = 64,
        identification: UInt16 = 0, dontFragment: Bool = true, tos: UInt8 = 0
    ) {
        precondition(
            payloadLength >= 0 && payloadLength <= 65535 - IPv4Header.minimumLength, "IPv4 payload too long")
        self.tos = tos
        self.totalLength = UInt16(IPv4Header.minimumLength + payloadLength)
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = false
        self.fragmentOffset = 0
        self.ttl = ttl
        self.protocolNumber = protocolNumber
        self.checksum = 0
        self.source = source
        self.destination = destination
        self.headerLength = IPv4Header.minimumLength
    }

    /// Reads the header at the start of `bytes` (an Ethernet payload, padding allowed).
    /// Throws `.unsupported` for a version other than 4; `.badLength` when IHL < 5, when
    /// totalLength < IHL × 4, or when a fragment would end past 65535 bytes (RFC 791 §3.2,
    /// the "ping of death"); `.truncated` when the buffer is shorter than totalLength;
    /// `.badChecksum` when `verifyChecksum` and the header does not sum to all ones.
    public static func parse(_ bytes: UnsafeRawBufferPointer, verifyChecksum: Bool = true) throws(WireError)
        -> IPv4Header
    {
        let r = CheckedReader(bytes, layer: "ipv4")
        guard bytes.count >= minimumLength else { throw WireError(.truncated, "ipv4") }
        let versionIHL = try r.u8(0)
        guard versionIHL >> 4 == 4 else { throw WireError(.unsupported, "ipv4") }
        let headerLength = Int(versionIHL & 0x0F) * 4
        guard headerLength >= minimumLength else { throw WireError(.badLength, "ipv4") }
        let totalLength = try r.be16(2)
        guard Int(totalLength) >= headerLength else { throw WireError(.badLength, "ipv4") }
        guard Int(totalLength) <= bytes.count else { throw WireError(.truncated, "ipv4") }
        let flagsOffset = try r.be16(6)
        let fragmentOffset = Int(flagsOffset & 0x1FFF) * 8
        guard fragmentOffset + Int(totalLength) - headerLength <= 65535 else { throw WireError(.badLength, "ipv4") }
        if verifyChecksum {
            var sum = InternetChecksum()
            sum.add(bytes: try r.bytes(0, headerLength))
            guard sum.verifies else { throw WireError(.badChecksum, "ipv4") }
        }
        // The reserved flag bit (0x8000) must be sent as zero and is ignored on receipt, as hosts do.
        var header = IPv4Header(
            source: try r.ipv4(12), destination: try r.ipv4(16), protocolNumber: try r.u8(9), payloadLength: 0,
            ttl: try r.u8(8), identification: try r.be16(4), dontFragment: flagsOffset & 0x4000 != 0,
            tos: try r.u8(1))
        header.totalLength = totalLength
        header.headerLength = headerLength
        header.moreFragments = flagsOffset & 0x2000 != 0
        header.fragmentOffset = fragmentOffset
        header.checksum = try r.be16(10)
        return header
    }

    /// Writes a 20-byte header with the checksum filled in. Options are never written: a header
    /// parsed with options comes out without them, its totalLength reduced to keep `payloadLength`.
    /// Throws `.badLength` when the lengths or the fragment offset cannot be encoded.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let length = IPv4Header.minimumLength
        let payload = payloadLength
        guard payload >= 0, length + payload <= 65535, fragmentOffset >= 0, fragmentOffset % 8 == 0,
            fragmentOffset <= 0x1FFF * 8
        else { throw WireError(.badLength, "ipv4") }
        guard buffer.count >= length else { throw WireError(.noSpace, "ipv4") }
        buffer.setU8(0x45, 0)
        buffer.setU8(tos, 1)
        buffer.setBE16(UInt16(length + payload), 2)
        buffer.setBE16(identification, 4)
        var flagsOffset = UInt16(fragmentOffset / 8)
        if dontFragment { flagsOffset |= 0x4000 }
        if moreFragments { flagsOffset |= 0x2000 }
        buffer.setBE16(flagsOffset, 6)
        buffer.setU8(ttl, 8)
        buffer.setU8(protocolNumber, 9)
        buffer.setBE16(0, 10)
        buffer.setIPv4(source, 12)
        buffer.setIPv4(destination, 16)
        buffer.setBE16(InternetChecksum.of(UnsafeRawBufferPointer(buffer.slice(0, length))), 10)
        return length
    }

    /// Calls `body` with the kind and data (the bytes after the kind and length octets) of each
    /// option in the header at the start of `header`. No-operation options are skipped and
    /// End of Option List stops the walk (RFC 791 §3.1). Throws `.unsupported`, `.truncated` or
    /// `.badLength` as `parse` does for the header itself (totalLength and the checksum are not
    /// looked at), and `.badOption` for an option whose length is below 2 or runs past the
    /// header; options before the bad one have been reported by then.
    public static func forEachOption(
        _ header: UnsafeRawBufferPointer, _ body: (UInt8, UnsafeRawBufferPointer) -> Void
    ) throws(WireError) {
        let r = CheckedReader(header, layer: "ipv4")
        guard header.count >= minimumLength else { throw WireError(.truncated, "ipv4") }
        guard try r.u8(0) >> 4 == 4 else { throw WireError(.unsupported, "ipv4") }
        let end = Int(try r.u8(0) & 0x0F) * 4
        guard end >= minimumLength else { throw WireError(.badLength, "ipv4") }
        guard end <= header.count else { throw WireError(.truncated, "ipv4") }
        var i = minimumLength
        while i < end {
            let kind = try r.u8(i)
            if kind == Option.endOfList { return }
            if kind == Option.noOperation {
                i += 1
                continue
            }
            guard i + 2 <= end else { throw WireError(.badOption, "ipv4") }
            let length = Int(try r.u8(i + 1))
            guard length >= 2, i + length <= end else { throw WireError(.badOption, "ipv4") }
            body(kind, try r.bytes(i + 2, length - 2))
            i += length
        }
    }
}
