// Checks and finishing steps shared by the Neighbor Discovery messages (RFC 4861 §6.1, §7.1).

extension ICMPv6Message {
    /// Checks an NDP message's type, its code (must be 0) and its minimum length, and returns the
    /// options area that starts at `minimumLength`.
    static func ndpOptions(
        _ message: UnsafeRawBufferPointer, type: UInt8, minimumLength: Int
    ) throws(WireError) -> UnsafeRawBufferPointer {
        let r = CheckedReader(message, layer: "ndp")
        guard message.count >= minimumLength else { throw WireError(.truncated, "ndp") }
        guard try r.u8(0) == type else { throw WireError(.unsupported, "ndp") }
        guard try r.u8(1) == 0 else { throw WireError(.malformed, "ndp") }
        return try r.bytes(minimumLength, message.count - minimumLength)
    }

    /// Writes type, code 0 and a zero checksum, checking that `length` bytes fit.
    static func ndpHeader(
        _ buffer: UnsafeMutableRawBufferPointer, type: UInt8, length: Int
    ) throws(WireError) {
        guard buffer.count >= length else { throw WireError(.noSpace, "ndp") }
        buffer.setU8(type, 0)
        buffer.setU8(0, 1)
        buffer.setBE16(0, 2)
    }

    /// ff02::1:ffXX:XXXX, the only destination a DAD probe may have (RFC 4861 §7.1.1).
    static func isSolicitedNodeMulticast(_ a: IPv6Address) -> Bool {
        a.high == 0xFF02_0000_0000_0000 && a.low & 0xFFFF_FFFF_FF00_0000 == 0x0000_0001_FF00_0000
    }
}
