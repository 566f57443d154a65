// The IPv6 fixed header (RFC 8200 §3) and a bounded walk over its extension headers (§4), so
// callers get the upper-layer protocol, where it starts, and any fragment header in one parse.

/// What a Fragment header (RFC 8200 §4.5) says about the packet carrying it.
public struct IPv6FragmentInfo: Hashable, Sendable {
    /// Position of this fragment's data in the original packet, in bytes (the field counts 8-byte units).
    public var offset: Int
    public var moreFragments: Bool
    public var identification: UInt32

    public init(offset: Int, moreFragments: Bool, identification: UInt32) {
        self.offset = offset
        self.moreFragments = moreFragments
        self.identification = identification
    }

    /// An atomic fragment (RFC 6946): a Fragment header on a packet that was never split.
    public var isAtomic: Bool { offset == 0 && !moreFragments }
}

/// An IPv6 header with the result of walking its extension headers.
public struct IPv6Header: Hashable, Sendable {
    public var trafficClass: UInt8
    /// 20 bits.
    public var flowLabel: UInt32
    public var payloadLength: UInt16
    /// The next-header field of the fixed header (the first extension header, if any).
    public var nextHeader: UInt8
    public var hopLimit: UInt8
    public var source: IPv6Address
    public var destination: IPv6Address

    /// The first next-header value that is not an extension header this parser walks: a
    /// transport, ICMPv6, ESP, or `IPProtocol.noNextHeader`. In a fragment other than the
    /// first, it is the protocol named by the Fragment header, whose data starts the fragment.
    public var upperProtocol: UInt8
    /// Offset from the start of the IPv6 header to the upper-layer header (or fragment data).
    public var upperOffset: Int
    /// Present when a Fragment header was found.
    public var fragment: IPv6FragmentInfo?

    public static let length = 40
    /// Extension headers walked before giving up with `.unsupported`. RFC 8200 §4.1 recommends
    /// at most one of each kind (destination options twice); 8 is above any legitimate chain
    /// and bounds the work a hostile packet can cause.
    public static let maximumExtensionHeaders = 8

    public var upperLength: Int { IPv6Header.length + Int(payloadLength) - upperOffset }
    public var isFragment: Bool { fragment.map { !$0.isAtomic } ?? false }

    /// A header with no extension headers: `nextHeader` is the upper-layer protocol.
    public init(
        source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, payloadLength: UInt16,
        hopLimit: UInt8 = 64, trafficClass: UInt8 = 0, flowLabel: UInt32 = 0
    ) {
        self.trafficClass = trafficClass
        self.flowLabel = flowLabel
        self.payloadLength = payloadLength
        self.nextHeader = nextHeader
        self.hopLimit = hopLimit
        self.source = source
        self.destination = destination
        self.upperProtocol = nextHeader
        self.upperOffset = IPv6Header.length
        self.fragment = nil
    }

    /// Reads the fixed header and walks hop-by-hop, routing, destination options, fragment and
    /// authentication headers. Throws `.unsupported` for a version other than 6 or a chain longer
    /// than `maximumExtensionHeaders`; `.truncated` when the buffer is shorter than 40 +
    /// payloadLength; `.badLength` when an extension header runs past the payload (so a
    /// jumbogram, RFC 2675, with its zero payloadLength, is refused here); `.malformed` for a
    /// hop-by-hop header anywhere but first (RFC 8200 §4.1) or a second Fragment header.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> IPv6Header {
        let r = CheckedReader(bytes, layer: "ipv6")
        guard bytes.count >= length else { throw WireError(.truncated, "ipv6") }
        let word0 = try r.be32(0)
        guard word0 >> 28 == 6 else { throw WireError(.unsupported, "ipv6") }
        let payloadLength = try r.be16(4)
        let end = length + Int(payloadLength)
        guard end <= bytes.count else { throw WireError(.truncated, "ipv6") }
        var header = IPv6Header(
            source: try r.ipv6(8), destination: try r.ipv6(24), nextHeader: try r.u8(6), payloadLength: payloadLength,
            hopLimit: try r.u8(7), trafficClass: UInt8(truncatingIfNeeded: word0 >> 20),
            flowLabel: word0 & 0xF_FFFF)

        var next = header.nextHeader
        var offset = length
        var walked = 0
        walk: while true {
            let extensionLength: Int
            switch next {
            case IPProtocol.hopByHop, IPProtocol.routing, IPProtocol.destinationOptions:
                if next == IPProtocol.hopByHop && walked != 0 { throw WireError(.malformed, "ipv6") }
                // Hdr Ext Len counts 8-octet units beyond the first (RFC 8200 §4.3).
                guard offset + 2 <= end else { throw WireError(.badLength, "ipv6") }
                extensionLength = (Int(try r.u8(offset + 1)) + 1) * 8
            case IPProtocol.ah:
                // Payload Len counts 4-octet units minus 2 (RFC 4302 §2.2).
                guard offset + 2 <= end else { throw WireError(.badLength, "ipv6") }
                extensionLength = (Int(try r.u8(offset + 1)) + 2) * 4
            case IPProtocol.fragment:
                guard header.fragment == nil else { throw WireError(.malformed, "ipv6") }
                extensionLength = 8
            default:
                break walk
            }
            walked += 1
            guard walked <= maximumExtensionHeaders else { throw WireError(.unsupported, "ipv6") }
            guard offset + extensionLength <= end else { throw WireError(.badLength, "ipv6") }
            let following = try r.u8(offset)
            if next == IPProtocol.fragment {
                let field = try r.be16(offset + 2)
                let info = IPv6FragmentInfo(
                    offset: Int(field & 0xFFF8), moreFragments: field & 1 != 0, identification: try r.be32(offset + 4))
                header.fragment = info
                offset += extensionLength
                next = following
                // Only the first fragment carries the rest of the chain (RFC 8200 §4.5); later
                // ones carry data that merely continues whatever the first fragment started.
                if info.offset != 0 { break walk }
                continue walk
            }
            offset += extensionLength
            next = following
        }
        header.upperProtocol = next
        header.upperOffset = offset
        return header
    }

    /// Writes the 40-byte fixed header only; extension headers are the caller's to write after it.
    /// Throws `.malformed` when `flowLabel` does not fit 20 bits.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard flowLabel <= 0xF_FFFF else { throw WireError(.malformed, "ipv6") }
        guard buffer.count >= IPv6Header.length else { throw WireError(.noSpace, "ipv6") }
        buffer.setBE32(6 << 28 | UInt32(trafficClass) << 20 | flowLabel, 0)
        buffer.setBE16(payloadLength, 4)
        buffer.setU8(nextHeader, 6)
        buffer.setU8(hopLimit, 7)
        buffer.setIPv6(source, 8)
        buffer.setIPv6(destination, 24)
        return IPv6Header.length
    }
}
