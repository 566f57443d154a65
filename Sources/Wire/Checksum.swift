// The internet checksum (RFC 1071): full sums, pseudo-headers, incremental updates (RFC 1624)
// and the partial form that a virtio-net NEEDS_CSUM frame carries.

/// A running one's-complement sum. Add pieces in order; `value` gives the checksum field.
/// Pieces of odd length may only come last, as in RFC 1071 (pad with zero).
public struct InternetChecksum: Sendable {
    /// Unfolded 64-bit accumulator: no carry is lost for any frame size we handle.
    public var sum: UInt64

    @inline(__always)
    public init(sum: UInt64 = 0) { self.sum = sum }

    @inline(__always)
    public mutating func add(_ v: UInt16) { sum &+= UInt64(v) }

    @inline(__always)
    public mutating func add(_ v: UInt32) { sum &+= UInt64(v >> 16) &+ UInt64(v & 0xFFFF) }

    public mutating func add(_ a: IPv4Address) { add(a.raw) }

    public mutating func add(_ a: IPv6Address) {
        add(UInt32(truncatingIfNeeded: a.high >> 32))
        add(UInt32(truncatingIfNeeded: a.high))
        add(UInt32(truncatingIfNeeded: a.low >> 32))
        add(UInt32(truncatingIfNeeded: a.low))
    }

    /// Adds bytes as big-endian 16-bit words; a trailing odd byte is padded with zero.
    public mutating func add(bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0, let base = bytes.baseAddress else { return }
        var i = 0
        var acc: UInt64 = 0
        // Eight bytes at a time in native order; the one's-complement sum is byte-order
        // independent up to a final swap (RFC 1071 §2(B)).
        // bound: each loop's condition keeps its loads inside the n bytes of `bytes`, the hot
        // loop of every checksum, so it reads the raw pointer rather than a CheckedReader.
        while i + 8 <= n {
            let w = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let (s, o) = acc.addingReportingOverflow(w)
            acc = s &+ (o ? 1 : 0)
            i += 8
        }
        var folded = (acc & 0xFFFF_FFFF) &+ (acc >> 32)
        folded = (folded & 0xFFFF_FFFF) &+ (folded >> 32)
        var native = UInt32(truncatingIfNeeded: folded)
        native = (native & 0xFFFF) &+ (native >> 16)
        native = (native & 0xFFFF) &+ (native >> 16)
        var be = UInt16(truncatingIfNeeded: native)
        #if _endian(little)
        be = be.byteSwapped
        #endif
        sum &+= UInt64(be)
        while i + 2 <= n {
            sum &+= UInt64(UInt16(base.load(fromByteOffset: i, as: UInt8.self)) << 8 | UInt16(base.load(fromByteOffset: i + 1, as: UInt8.self)))
            i += 2
        }
        if i < n { sum &+= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << 8 }
    }

    /// The folded sum, not complemented (what a partial checksum field holds).
    @inline(__always)
    public var folded: UInt16 {
        var s = sum
        while s >> 16 != 0 { s = (s & 0xFFFF) &+ (s >> 16) }
        return UInt16(truncatingIfNeeded: s)
    }

    /// The value for a checksum field: the complement of the folded sum.
    @inline(__always)
    public var value: UInt16 { ~folded }

    /// True when a region that includes its own checksum field sums to all ones.
    @inline(__always)
    public var verifies: Bool { folded == 0xFFFF }

    /// The RFC 1071 checksum of some bytes.
    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.add(bytes: bytes)
        return c.value
    }

    /// Sum of the IPv4 pseudo-header (RFC 793 §3.1 / RFC 768).
    public static func pseudoHeader(source: IPv4Address, destination: IPv4Address, protocol proto: UInt8, length: Int) -> InternetChecksum {
        var c = InternetChecksum()
        c.add(source)
        c.add(destination)
        c.add(UInt16(proto))
        c.add(UInt16(truncatingIfNeeded: length))
        return c
    }

    /// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
    public static func pseudoHeader(source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, length: Int) -> InternetChecksum {
        var c = InternetChecksum()
        c.add(source)
        c.add(destination)
        c.add(UInt32(truncatingIfNeeded: length))
        c.add(UInt16(nextHeader))
        return c
    }

    /// RFC 1624 eqn. 3: the new checksum field after one 16-bit word changed from `old` to `new`.
    public static func update(checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        var s = UInt32(~checksum) &+ UInt32(~old) &+ UInt32(new)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return ~UInt16(truncatingIfNeeded: s)
    }

    /// The same for a 32-bit field (an IPv4 address rewrite).
    public static func update32(checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let c = update(checksum: checksum, old: UInt16(old >> 16), new: UInt16(new >> 16))
        return update(checksum: c, old: UInt16(truncatingIfNeeded: old), new: UInt16(truncatingIfNeeded: new))
    }

    /// Completes a partial checksum the way a NIC does for a virtio-net NEEDS_CSUM frame: the
    /// field at `start + offset` holds the folded pseudo-header sum; the checksum of everything
    /// from `start` to the end of `packet` is written there. Throws when the offsets lie outside.
    public static func completePartial(_ packet: UnsafeMutableRawBufferPointer, start: Int, offset: Int) throws(WireError) {
        guard start >= 0, offset >= 0, start + offset + 2 <= packet.count else {
            throw WireError(.badLength, "virtio-net")
        }
        var c = InternetChecksum()
        c.add(bytes: UnsafeRawBufferPointer(rebasing: packet[start...]))
        var v = c.value
        // A UDP checksum of zero means "none"; RFC 768 sends all ones instead. TCP never
        // reaches zero after complement unless the sum is 0xFFFF, where 0xFFFF is equally valid.
        if v == 0 { v = 0xFFFF }
        packet.setBE16(v, start + offset)
    }
}
