// The one way to read bytes a guest or client sent: a view whose every read is checked against
// the bytes present, in release builds too, and fails with a WireError instead of reading past them.

/// A read-only view of received bytes. Reads at an offset (`be16(2)`) leave the view alone; reads
/// from the cursor (`readBE16()`) advance it. Every read checks the bytes present and throws
/// `WireError(.truncated, layer)` when they are too few, so a length field that lies becomes a
/// parse error for `layer`, never a read outside the buffer.
///
/// The view does not own its bytes: like the `UnsafeRawBufferPointer` it is made from, it is
/// valid only while that buffer is.
public struct CheckedReader {
    @usableFromInline let base: UnsafeRawBufferPointer
    /// The protocol layer named in the errors reads throw ("tcp", "dns").
    public let layer: StaticString
    @usableFromInline var cursor: Int

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, layer: StaticString) {
        self.base = bytes
        self.layer = layer
        self.cursor = 0
    }

    /// Where the cursor reads next, from the start of the view.
    @inlinable public var position: Int { cursor }
    /// Bytes in the view.
    @inlinable public var count: Int { base.count }
    /// Bytes after the cursor.
    @inlinable public var remaining: Int { base.count &- position }

    /// True when `count` bytes from `offset` lie inside the view. As unsigned numbers a negative
    /// offset or count is larger than any buffer, so two comparisons cover every case, and no sum
    /// can overflow: `base.count - count` is taken only once `count <= base.count`.
    @inlinable @inline(__always)
    public func contains(_ offset: Int, _ count: Int) -> Bool {
        UInt(bitPattern: count) <= UInt(bitPattern: base.count)
            && UInt(bitPattern: offset) <= UInt(bitPattern: base.count &- count)
    }

    @inlinable @inline(__always)
    func check(_ offset: Int, _ count: Int) throws(WireError) {
        guard contains(offset, count) else { throw truncation() }
    }

    /// The error a failed read throws, built out of line to keep the readers' fast path short.
    @usableFromInline @inline(never)
    func truncation() -> WireError { WireError(.truncated, layer) }

    // MARK: Reads at an offset

    @inlinable @inline(__always)
    public func u8(_ offset: Int) throws(WireError) -> UInt8 {
        try check(offset, 1)
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inlinable @inline(__always)
    public func be16(_ offset: Int) throws(WireError) -> UInt16 {
        try check(offset, 2)
        return UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    public func le16(_ offset: Int) throws(WireError) -> UInt16 {
        try check(offset, 2)
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    public func be32(_ offset: Int) throws(WireError) -> UInt32 {
        try check(offset, 4)
        return UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    public func be64(_ offset: Int) throws(WireError) -> UInt64 {
        try check(offset, 8)
        return UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inlinable @inline(__always)
    public func mac(_ offset: Int) throws(WireError) -> MACAddress {
        try check(offset, 6)
        let high = UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        let low = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset + 2, as: UInt32.self))
        return MACAddress(raw: UInt64(high) << 32 | UInt64(low))
    }

    @inlinable @inline(__always)
    public func ipv4(_ offset: Int) throws(WireError) -> IPv4Address { IPv4Address(raw: try be32(offset)) }

    @inlinable @inline(__always)
    public func ipv6(_ offset: Int) throws(WireError) -> IPv6Address {
        try check(offset, 16)
        return IPv6Address(
            high: UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
            low: UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
    }

    /// `count` bytes from `offset` as a raw buffer, for code that hands them on whole (a checksum,
    /// a payload copied into a socket).
    @inlinable @inline(__always)
    public func bytes(_ offset: Int, _ count: Int) throws(WireError) -> UnsafeRawBufferPointer {
        try check(offset, count)
        // The check above is the bound; a nil base address means an empty view and a count of 0.
        return UnsafeRawBufferPointer(start: base.baseAddress.map { $0 + offset }, count: count)
    }

    /// Everything from `offset` to the end as a raw buffer.
    @inlinable @inline(__always)
    public func bytes(from offset: Int) throws(WireError) -> UnsafeRawBufferPointer {
        try bytes(offset, base.count &- offset)
    }

    /// `count` bytes from `offset` as a view of their own, its cursor at their start.
    @inlinable @inline(__always)
    public func reader(_ offset: Int, _ count: Int, layer: StaticString? = nil) throws(WireError) -> CheckedReader {
        CheckedReader(try bytes(offset, count), layer: layer ?? self.layer)
    }

    /// The view's bytes as a raw buffer: every byte of it is inside the view.
    @inlinable public var buffer: UnsafeRawBufferPointer { base }

    // MARK: Reads from the cursor

    @inlinable
    public mutating func readU8() throws(WireError) -> UInt8 {
        let v = try u8(position)
        cursor &+= 1
        return v
    }

    @inlinable
    public mutating func readBE16() throws(WireError) -> UInt16 {
        let v = try be16(position)
        cursor &+= 2
        return v
    }

    @inlinable
    public mutating func readBE32() throws(WireError) -> UInt32 {
        let v = try be32(position)
        cursor &+= 4
        return v
    }

    @inlinable
    public mutating func readBytes(_ n: Int) throws(WireError) -> UnsafeRawBufferPointer {
        let v = try bytes(position, n)
        cursor &+= n
        return v
    }

    /// The next `n` bytes as a view of their own; the cursor moves past them.
    @inlinable
    public mutating func readReader(_ n: Int) throws(WireError) -> CheckedReader {
        CheckedReader(try readBytes(n), layer: layer)
    }

    @inlinable
    public mutating func skip(_ n: Int) throws(WireError) {
        try check(position, n)
        cursor &+= n
    }

    /// Moves the cursor to `offset`, which may be the end of the view but not past it.
    @inlinable
    public mutating func seek(to offset: Int) throws(WireError) {
        try check(offset, 0)
        cursor = offset
    }

    /// Skips a vector with a one- or two-byte big-endian length prefix (RFC 8446 §3.4).
    @inlinable
    public mutating func skipVector(lengthBytes: Int) throws(WireError) {
        let n = lengthBytes == 1 ? Int(try readU8()) : Int(try readBE16())
        try skip(n)
    }
}

extension UnsafeRawBufferPointer {
    /// `count` bytes from `offset`, or nil when they do not lie inside: for cutting received bytes
    /// at lengths a parser returned, where the caller counts a nil as a dropped frame.
    @inlinable @inline(__always)
    public func checkedSlice(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer? {
        try? CheckedReader(self, layer: "bytes").bytes(offset, count)
    }
}
