// The UDP header (RFC 768) and its checksum over the IPv4 or IPv6 pseudo-header, for the
// stack's UDP relay and DNS interception.

/// Ports, length and checksum of a UDP datagram; the payload is the `length - 8` bytes after it.
public struct UDPHeader: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// Header plus payload, in bytes.
    public var length: UInt16
    /// As received, or as the caller set it: 0 means "no checksum" over IPv4 (RFC 768).
    public var checksum: UInt16

    public static let length = 8
    /// Offset of the checksum field, for callers that hand the sum to a NIC (virtio-net NEEDS_CSUM).
    public static let checksumOffset = 6

    public var payloadLength: Int { Int(length) - UDPHeader.length }

    public init(sourcePort: UInt16, destinationPort: UInt16, length: UInt16, checksum: UInt16 = 0) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
        self.checksum = checksum
    }

    /// A header for `payloadLength` bytes of payload (at most 65527), checksum not yet computed.
    public init(sourcePort: UInt16, destinationPort: UInt16, payloadLength: Int) {
        precondition(payloadLength >= 0 && payloadLength <= 65535 - UDPHeader.length, "UDP payload too long")
        self.init(
            sourcePort: sourcePort, destinationPort: destinationPort,
            length: UInt16(UDPHeader.length + payloadLength))
    }

    /// Reads the header of `bytes`, the whole datagram as the IP layer bounds it. The IP length is
    /// authoritative, so a length field below 8 or beyond `bytes` is a bad field (`.badLength`),
    /// not a short read; fewer than 8 bytes is `.truncated`. A length field shorter than the IP
    /// payload is allowed (RFC 768 leaves the rest as padding).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> UDPHeader {
        let r = CheckedReader(bytes, layer: "udp")
        guard bytes.count >= UDPHeader.length else { throw WireError(.truncated, "udp") }
        let length = try r.be16(4)
        guard Int(length) >= UDPHeader.length, Int(length) <= bytes.count else { throw WireError(.badLength, "udp") }
        return UDPHeader(
            sourcePort: try r.be16(0), destinationPort: try r.be16(2), length: length, checksum: try r.be16(6))
    }

    /// Writes the 8-byte header with `checksum` as it stands; `fillChecksum` computes it once the
    /// payload is in place.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard buffer.count >= UDPHeader.length else { throw WireError(.noSpace, "udp") }
        buffer.setBE16(sourcePort, 0)
        buffer.setBE16(destinationPort, 2)
        buffer.setBE16(length, 4)
        buffer.setBE16(checksum, UDPHeader.checksumOffset)
        return UDPHeader.length
    }

    // MARK: Checksums over a datagram in a buffer

    /// The `length`-field extent of a datagram, or nil when the field is impossible for the buffer.
    /// Also reads the checksum field, so that callers need not read the datagram again.
    @inline(__always)
    private static func extent(_ datagram: UnsafeRawBufferPointer) -> (bytes: UnsafeRawBufferPointer, checksum: UInt16)? {
        let r = CheckedReader(datagram, layer: "udp")
        guard let length = try? Int(r.be16(4)), length >= UDPHeader.length, let bytes = try? r.bytes(0, length),
            let checksum = try? r.be16(checksumOffset)
        else { return nil }
        return (bytes, checksum)
    }

    /// True when the checksum verifies over the IPv4 pseudo-header and the `length` bytes of the
    /// datagram, or when it is 0, meaning the sender computed none (RFC 768). False when the
    /// length field is impossible.
    public static func verifyChecksum(
        _ datagram: UnsafeRawBufferPointer, source: IPv4Address, destination: IPv4Address
    ) -> Bool {
        guard let udp = extent(datagram) else { return false }
        if udp.checksum == 0 { return true }
        var sum = InternetChecksum.pseudoHeader(
            source: source, destination: destination, protocol: IPProtocol.udp, length: udp.bytes.count)
        sum.add(bytes: udp.bytes)
        return sum.verifies
    }

    /// The same over the IPv6 pseudo-header; here a zero checksum is invalid (RFC 8200 §8.1).
    public static func verifyChecksum(
        _ datagram: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) -> Bool {
        guard let udp = extent(datagram), udp.checksum != 0 else { return false }
        var sum = InternetChecksum.pseudoHeader(
            source: source, destination: destination, nextHeader: IPProtocol.udp, length: udp.bytes.count)
        sum.add(bytes: udp.bytes)
        return sum.verifies
    }

    /// Computes and stores the checksum of a datagram whose header (length field included) and
    /// payload are in place; `datagram` must be exactly the datagram. A computed 0 is sent as
    /// 0xFFFF, since 0 would mean "none" (RFC 768).
    public static func fillChecksum(
        _ datagram: UnsafeMutableRawBufferPointer, source: IPv4Address, destination: IPv4Address
    ) {
        let sum = InternetChecksum.pseudoHeader(
            source: source, destination: destination, protocol: IPProtocol.udp, length: datagram.count)
        store(sum, datagram)
    }

    /// The same over the IPv6 pseudo-header (RFC 8200 §8.1).
    public static func fillChecksum(
        _ datagram: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) {
        let sum = InternetChecksum.pseudoHeader(
            source: source, destination: destination, nextHeader: IPProtocol.udp, length: datagram.count)
        store(sum, datagram)
    }

    private static func store(_ pseudoHeader: InternetChecksum, _ datagram: UnsafeMutableRawBufferPointer) {
        precondition(datagram.count >= UDPHeader.length, "UDP datagram shorter than its header")
        assert(
            Int(UnsafeRawBufferPointer(datagram).uncheckedBE16(4)) == datagram.count,  // bound: precondition above
            "UDP length field disagrees with the buffer")
        var sum = pseudoHeader
        datagram.setBE16(0, checksumOffset)
        sum.add(bytes: UnsafeRawBufferPointer(datagram))
        let value = sum.value
        datagram.setBE16(value == 0 ? 0xFFFF : value, checksumOffset)
    }
}
