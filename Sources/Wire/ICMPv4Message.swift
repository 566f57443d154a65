// ICMP for IPv4 (RFC 792): the 8-byte header, checksum, and builders for echo replies and
// error messages that quote the offending datagram (RFC 1812 §4.3.2.3).

/// An ICMPv4 header. The body (echo data, quoted datagram) is `message[headerLength...]`.
public struct ICMPv4Message: Hashable, Sendable {
    public static let headerLength = 8
    /// Offset of the checksum field, which covers the whole message and no pseudo-header.
    public static let checksumOffset = 2
    /// The IP protocol number (IANA).
    public static let protocolNumber: UInt8 = 1
    /// RFC 1812 §4.3.2.3: an error's IP datagram stays within 576 bytes. We send no IP options,
    /// so the ICMP message may take 576 − 20 bytes.
    public static let maximumErrorLength = 576 - 20

    // Types (RFC 792).
    public static let echoReply: UInt8 = 0
    public static let destinationUnreachable: UInt8 = 3
    public static let sourceQuench: UInt8 = 4
    public static let redirect: UInt8 = 5
    public static let echoRequest: UInt8 = 8
    public static let timeExceeded: UInt8 = 11
    public static let parameterProblem: UInt8 = 12

    /// Codes of destinationUnreachable (RFC 792; fragNeeded per RFC 1191, adminProhibited per RFC 1812 §5.2.7.1).
    public enum Unreachable {
        public static let net: UInt8 = 0
        public static let host: UInt8 = 1
        public static let `protocol`: UInt8 = 2
        public static let port: UInt8 = 3
        public static let fragNeeded: UInt8 = 4
        public static let adminProhibited: UInt8 = 13
    }

    /// Codes of timeExceeded (RFC 792).
    public enum TimeExceeded {
        public static let ttl: UInt8 = 0
        public static let reassembly: UInt8 = 1
    }

    public var type: UInt8
    public var code: UInt8
    public var checksum: UInt16
    /// Bytes 4–7: identifier << 16 | sequence for echo; the next-hop MTU in the low 16 bits for
    /// fragNeeded (RFC 1191 §4); the pointer in the top byte for parameterProblem.
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
    public var nextHopMTU: UInt16 { UInt16(truncatingIfNeeded: restOfHeader) }

    /// Error messages quote a datagram and must never be answered with another error (RFC 1122 §3.2.2).
    public var isError: Bool { Self.isError(type: type) }

    public static func isError(type: UInt8) -> Bool {
        switch type {
        case destinationUnreachable, sourceQuench, redirect, timeExceeded, parameterProblem: true
        default: false
        }
    }

    /// Parses a whole ICMP message; with `verifyChecksum` a wrong checksum throws `.badChecksum`.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, verifyChecksum: Bool = true
    ) throws(WireError) -> ICMPv4Message {
        guard bytes.count >= headerLength else { throw WireError(.truncated, "icmpv4") }
        if verifyChecksum {
            var c = InternetChecksum()
            c.add(bytes: bytes)
            guard c.verifies else { throw WireError(.badChecksum, "icmpv4") }
        }
        let r = CheckedReader(bytes, layer: "icmpv4")
        return ICMPv4Message(
            type: try r.u8(0), code: try r.u8(1), checksum: try r.be16(checksumOffset), restOfHeader: try r.be32(4))
    }

    /// Writes the 8-byte header with `checksum` as stored.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard buffer.count >= Self.headerLength else { throw WireError(.noSpace, "icmpv4") }
        buffer.setU8(type, 0)
        buffer.setU8(code, 1)
        buffer.setBE16(checksum, Self.checksumOffset)
        buffer.setBE32(restOfHeader, 4)
        return Self.headerLength
    }

    /// Writes header and payload with the checksum filled; returns the message length. For an
    /// error type the payload (the original IP datagram) is cut to fit `maximumErrorLength`;
    /// other payloads (echo data) are copied whole. `payload` may lie inside `buffer` (an echo
    /// reply built in place over its request).
    public static func build(
        into buffer: UnsafeMutableRawBufferPointer, type: UInt8, code: UInt8, restOfHeader: UInt32,
        payload: UnsafeRawBufferPointer
    ) throws(WireError) -> Int {
        let quoted = isError(type: type) ? min(payload.count, maximumErrorLength - headerLength) : payload.count
        let length = headerLength + quoted
        guard buffer.count >= length else { throw WireError(.noSpace, "icmpv4") }
        if quoted > 0, let src = payload.baseAddress, let dst = buffer.baseAddress {
            // Before the header: an in-place payload must be moved before anything overwrites it.
            (dst + headerLength).copyMemory(from: src, byteCount: quoted)
        }
        _ = try ICMPv4Message(type: type, code: code, checksum: 0, restOfHeader: restOfHeader).emit(into: buffer)
        let message = buffer.slice(0, length)
        message.setBE16(InternetChecksum.of(UnsafeRawBufferPointer(message)), checksumOffset)
        return length
    }
}
