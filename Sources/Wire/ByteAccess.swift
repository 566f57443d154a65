// Big-endian loads and stores on raw buffers. Parsers validate lengths once up front (as
// smoltcp's `new_checked` does) and then read with these; the fuzzer runs under ASan to
// catch any read that escaped validation.

extension UnsafeRawBufferPointer {
    @inline(__always)
    public func u8(_ offset: Int) -> UInt8 {
        load(fromByteOffset: offset, as: UInt8.self)
    }

    @inline(__always)
    public func be16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    public func be32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    public func be64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always)
    public func mac(_ offset: Int) -> MACAddress {
        MACAddress(raw: UInt64(be16(offset)) << 32 | UInt64(be32(offset + 2)))
    }

    @inline(__always)
    public func ipv4(_ offset: Int) -> IPv4Address { IPv4Address(raw: be32(offset)) }

    @inline(__always)
    public func ipv6(_ offset: Int) -> IPv6Address { IPv6Address(high: be64(offset), low: be64(offset + 8)) }

    /// A sub-range as its own buffer; the caller has checked the range.
    @inline(__always)
    public func slice(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[offset..<(offset + count)])
    }
}

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
