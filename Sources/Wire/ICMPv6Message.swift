// ICMPv6 (RFC 4443): the 8-byte header, the checksum over the IPv6 pseudo-header, and a builder
// for echo replies and for errors quoting the offending packet (RFC 4443 §2.4 (c)).

/// An ICMPv6 header. The body is `message[headerLength...]`; NDP messages are parsed from the
/// whole message by `NeighborSolicitation` and its siblings.
public struct ICMPv6Message: Hashable, Sendable {
    public static let headerLength = 8
    /// Offset of the checksum field.
    public static let checksumOffset = 2
    /// The IPv6 next-header number (IANA).
    public static let nextHeader: UInt8 = 58
    /// RFC 4443 §2.4 (c): an error packet stays within the IPv6 minimum MTU of 1280 bytes, of
    /// which the fixed IPv6 header takes 40.
    public static let maximumErrorLength = 1280 - 40

    // Types (RFC 4443 §2.1, RFC 4861 §4).
    public static let destinationUnreachable: UInt8 = 1
    public static let packetTooBig: UInt8 = 2
    public static let timeExceeded: UInt8 = 3
    public static let parameterProblem: UInt8 = 4
    public static let echoRequest: UInt8 = 128
    public static let echoReply: UInt8 = 129
    public static let routerSolicitation: UInt8 = 133
    public static let routerAdvertisement: UInt8 = 134
    public static let neighborSolicitation: UInt8 = 135
    public static let neighborAdvertisement: UInt8 = 136

    /// Codes of destinationUnreachable (RFC 4443 §3.1).
    public enum Unreachable {
        public static let noRoute: UInt8 = 0
        public static let adminProhibited: UInt8 = 1
        public static let beyondScope: UInt8 = 2
        public static let address: UInt8 = 3
        public static let port: UInt8 = 4
        public static let sourcePolicy: UInt8 = 5
        public static let rejectRoute: UInt8 = 6
    }

    /// Codes of timeExceeded (RFC 4443 §3.3).
    public enum TimeExceeded {
        public static let hopLimit: UInt8 = 0
        public static let reassembly: UInt8 = 1
    }

    /// Codes of parameterProblem (RFC 4443 §3.4).
    public enum ParameterProblem {
        public static let erroneousHeaderField: UInt8 = 0
        public static let unrecognizedNextHeader: UInt8 = 1
        public static let unrecognizedOption: UInt8 = 2
    }

    public var type: UInt8
    public var code: UInt8
    public var checksum: UInt16
    /// Bytes 4–7: identifier << 16 | sequence for echo, the MTU for packetTooBig, the pointer for
    /// parameterProblem, flags for NDP messages.
    public var restOfHeader: UInt32

    @inline(__always)
    public init(type: UInt8, code: UInt8, checksum: UInt16 = 0, restOfHeader: UInt32 = 0) {
        self.type = type
        self.code = code
        self.checksum = checksum
        self.restOfHeader = restOfHeader
    }

    public var identifier: UInt16 { UInt16(truncatingIfNeeded: restOfHeader >> 16) }
    public var sequence: UInt16 { UInt16(truncatingIfNeeded: restOfHeader) }

    /// RFC 4443 §2.1: types 0–127 are errors, which are never answered with errors (§2.4 (e)).
    public var isError: Bool { type < 128 }

    /// Parses a whole ICMPv6 message; with `verifyChecksum` a wrong checksum over the
    /// pseudo-header throws `.badChecksum` (the checksum is mandatory in ICMPv6, RFC 4443 §2.3).
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address, verifyChecksum: Bool = true
    ) throws(WireError) -> ICMPv6Message {
        guard bytes.count >= headerLength else { throw WireError(.truncated, "icmpv6") }
        if verifyChecksum {
            guard Self.verifyChecksum(bytes, source: source, destination: destination) else {
                throw WireError(.badChecksum, "icmpv6")
            }
        }
        let r = CheckedReader(bytes, layer: "icmpv6")
        return ICMPv6Message(
            type: try r.u8(0), code: try r.u8(1), checksum: try r.be16(checksumOffset), restOfHeader: try r.be32(4))
    }

    /// Writes the 8-byte header with `checksum` as stored.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard buffer.count >= Self.headerLength else { throw WireError(.noSpace, "icmpv6") }
        buffer.setU8(type, 0)
        buffer.setU8(code, 1)
        buffer.setBE16(checksum, Self.checksumOffset)
        buffer.setBE32(restOfHeader, 4)
        return Self.headerLength
    }

    /// Writes header and payload with the checksum filled; returns the message length. For an
    /// error type the payload (the original packet) is cut to fit `maximumErrorLength`; other
    /// payloads are copied whole. `payload` may overlap `buffer`.
    public static func build(
        into buffer: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address,
        type: UInt8, code: UInt8, restOfHeader: UInt32, payload: UnsafeRawBufferPointer
    ) throws(WireError) -> Int {
        let quoted = type < 128 ? min(payload.count, maximumErrorLength - headerLength) : payload.count
        let length = headerLength + quoted
        guard buffer.count >= length else { throw WireError(.noSpace, "icmpv6") }
        if quoted > 0, let src = payload.baseAddress, let dst = buffer.baseAddress {
            (dst + headerLength).copyMemory(from: src, byteCount: quoted)
        }
        _ = try ICMPv6Message(type: type, code: code, checksum: 0, restOfHeader: restOfHeader).emit(into: buffer)
        fillChecksum(buffer.slice(0, length), source: source, destination: destination)
        return length
    }

    /// True when a whole message sums correctly with the IPv6 pseudo-header.
    public static func verifyChecksum(
        _ message: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) -> Bool {
        var c = InternetChecksum.pseudoHeader(
            source: source, destination: destination, nextHeader: nextHeader, length: message.count)
        c.add(bytes: message)
        return c.verifies
    }

    /// Computes and stores the checksum of a whole message in place; a buffer
    /// shorter than a header is left alone.
    public static func fillChecksum(
        _ message: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) {
        guard message.count >= headerLength else { return }
        message.setBE16(0, checksumOffset)
        var c = InternetChecksum.pseudoHeader(
            source: source, destination: destination, nextHeader: nextHeader, length: message.count)
        c.add(bytes: UnsafeRawBufferPointer(message))
        message.setBE16(c.value, checksumOffset)
    }
}
