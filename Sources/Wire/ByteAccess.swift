// Big-endian stores into frames we build, and unchecked loads for bytes a nearby check bounds. Received
// bytes are read through `CheckedReader`; the stores write into buffers we own and sized ourselves.

/// Loads that check nothing in a release build. Each use must follow a check that proves its
/// bound, named in a `// bound:` comment; anything read from a guest or client goes through
/// `CheckedReader` instead.
extension UnsafeRawBufferPointer {
    @inline(__always)
    public func uncheckedU8(_ offset: Int) -> UInt8 {
        load(fromByteOffset: offset, as: UInt8.self)
    }

    @inline(__always)
    public func uncheckedBE16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    public func uncheckedBE32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    public func uncheckedBE64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always)
    public func uncheckedMAC(_ offset: Int) -> MACAddress {
        MACAddress(raw: UInt64(uncheckedBE16(offset)) << 32 | UInt64(uncheckedBE32(offset + 2)))
    }

    @inline(__always)
    public func uncheckedIPv4(_ offset: Int) -> IPv4Address { IPv4Address(raw: uncheckedBE32(offset)) }

    @inline(__always)
    public func uncheckedIPv6(_ offset: Int) -> IPv6Address { IPv6Address(high: uncheckedBE64(offset), low: uncheckedBE64(offset + 8)) }

    /// A sub-range as its own buffer; the caller has checked the range.
    @inline(__always)
    public func uncheckedSlice(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[offset..<(offset + count)])
    }
}

/// Stores into frames we build: the buffer is ours and the emitter checked its size first.
extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    public func setU8(_ v: UInt8, _ offset: Int) { storeBytes(of: v, toByteOffset: offset, as: UInt8.self) }

    @inline(__always)
    public func setBE16(_ v: UInt16, _ offset: Int) {
        storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always)
    public func setBE32(_ v: UInt32, _ offset: Int) {
        storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inline(__always)
    public func setBE64(_ v: UInt64, _ offset: Int) {
        storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt64.self)
    }

    @inline(__always)
    public func setMAC(_ m: MACAddress, _ offset: Int) {
        setBE16(UInt16(truncatingIfNeeded: m.raw >> 32), offset)
        setBE32(UInt32(truncatingIfNeeded: m.raw), offset + 2)
    }

    @inline(__always)
    public func setIPv4(_ a: IPv4Address, _ offset: Int) { setBE32(a.raw, offset) }

    @inline(__always)
    public func setIPv6(_ a: IPv6Address, _ offset: Int) {
        setBE64(a.high, offset)
        setBE64(a.low, offset + 8)
    }

    @inline(__always)
    public func slice(_ offset: Int, _ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: self[offset..<(offset + count)])
    }
}
