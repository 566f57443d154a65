// The TCP header (RFC 9293 §3.1) with its options, and the segment checksum over the IPv4
// (RFC 9293 §3.1) or IPv6 (RFC 8200 §8.1) pseudo-header.

/// A TCP header. The payload is not copied: it is `segment[headerLength...]` of the parsed bytes.
public struct TCPHeader: Hashable, Sendable {
    public static let minimumLength = 20
    /// 15 words of data offset (RFC 9293 §3.1).
    public static let maximumLength = 60
    /// The IP protocol / next-header number (IANA).
    public static let protocolNumber: UInt8 = 6

    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    /// As parsed, or as `emit` writes it (callers fill it afterwards with `fillChecksum`).
    public var checksum: UInt16
    public var urgentPointer: UInt16
    public var options: TCPOptions
    /// The data offset in bytes: from the header on parse, `emittedLength` for a built header.
    public var headerLength: Int

    public init(
        sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: UInt32, acknowledgmentNumber: UInt32,
        flags: TCPFlags, window: UInt16, options: TCPOptions = TCPOptions()
    ) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.window = window
        self.checksum = 0
        self.urgentPointer = 0
        self.options = options
        self.headerLength = Self.minimumLength + options.encodedLength
    }

    /// Bytes `emit` writes: 20 plus the options, whatever `headerLength` says.
    public var emittedLength: Int { Self.minimumLength + options.encodedLength }

    /// Sequence space a segment with this header and `payloadLength` bytes occupies: SYN and FIN
    /// each count as one (RFC 9293 §3.4).
    public func sequenceLength(payloadLength: Int) -> Int {
        payloadLength + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
    }

    /// Parses a whole segment. The data offset must be at least 5 words (`.badLength`) and lie
    /// within `bytes` (`.truncated`); options are parsed as `TCPOptions.parse` describes. The
    /// checksum is not checked here: see `verifyChecksum`.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> TCPHeader {
        let r = CheckedReader(bytes, layer: "tcp")
        guard bytes.count >= minimumLength else { throw WireError(.truncated, "tcp") }
        let headerLength = Int(try r.u8(12) >> 4) * 4
        guard headerLength >= minimumLength else { throw WireError(.badLength, "tcp") }
        guard headerLength <= bytes.count else { throw WireError(.truncated, "tcp") }
        let options = try TCPOptions.parse(try r.bytes(minimumLength, headerLength - minimumLength))
        var h = TCPHeader(
            sourcePort: try r.be16(0), destinationPort: try r.be16(2), sequenceNumber: try r.be32(4),
            acknowledgmentNumber: try r.be32(8), flags: TCPFlags(rawValue: try r.u8(13)),
            window: try r.be16(14), options: options)
        h.checksum = try r.be16(checksumOffset)
        h.urgentPointer = try r.be16(18)
        h.headerLength = headerLength
        return h
    }

    /// Writes header and options (`emittedLength` bytes) with `checksum` as stored; the reserved
    /// bits are zero. Returns the bytes written.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let length = emittedLength
        guard buffer.count >= length else { throw WireError(.noSpace, "tcp") }
        buffer.setBE16(sourcePort, 0)
        buffer.setBE16(destinationPort, 2)
        buffer.setBE32(sequenceNumber, 4)
        buffer.setBE32(acknowledgmentNumber, 8)
        buffer.setU8(UInt8(length / 4) << 4, 12)
        buffer.setU8(flags.rawValue, 13)
        buffer.setBE16(window, 14)
        buffer.setBE16(checksum, Self.checksumOffset)
        buffer.setBE16(urgentPointer, 18)
        _ = try options.emit(into: buffer.slice(Self.minimumLength, length - Self.minimumLength))
        return length
    }

    // MARK: Checksums

    /// Offset of the checksum field, for callers that hand the sum to a NIC (virtio-net NEEDS_CSUM).
    public static let checksumOffset = 16

    /// True when the segment (header and payload) sums correctly with the IPv4 pseudo-header.
    public static func verifyChecksum(
        _ segment: UnsafeRawBufferPointer, source: IPv4Address, destination: IPv4Address
    ) -> Bool {
        guard segment.count >= minimumLength else { return false }
        var c = InternetChecksum.pseudoHeader(
            source: source, destination: destination, protocol: protocolNumber, length: segment.count)
        c.add(bytes: segment)
        return c.verifies
    }

    /// True when the segment sums correctly with the IPv6 pseudo-header.
    public static func verifyChecksum(
        _ segment: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) -> Bool {
        guard segment.count >= minimumLength else { return false }
        var c = InternetChecksum.pseudoHeader(
            source: source, destination: destination, nextHeader: protocolNumber, length: segment.count)
        c.add(bytes: segment)
        return c.verifies
    }

    /// Computes and stores the checksum of a complete segment (header and payload) in place.
    /// A buffer shorter than a header is left alone.
    public static func fillChecksum(
        _ segment: UnsafeMutableRawBufferPointer, source: IPv4Address, destination: IPv4Address
    ) {
        guard segment.count >= minimumLength else { return }
        segment.setBE16(0, checksumOffset)
        var c = InternetChecksum.pseudoHeader(
            source: source, destination: destination, protocol: protocolNumber, length: segment.count)
        c.add(bytes: UnsafeRawBufferPointer(segment))
        segment.setBE16(c.value, checksumOffset)
    }

    /// The same with the IPv6 pseudo-header.
    public static func fillChecksum(
        _ segment: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) {
        guard segment.count >= minimumLength else { return }
        segment.setBE16(0, checksumOffset)
        var c = InternetChecksum.pseudoHeader(
            source: source, destination: destination, nextHeader: protocolNumber, length: segment.count)
        c.add(bytes: UnsafeRawBufferPointer(segment))
        segment.setBE16(c.value, checksumOffset)
    }
}
