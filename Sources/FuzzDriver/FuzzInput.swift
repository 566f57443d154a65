// The fuzz input read front to back as the numbers steps are made of, and the same encoding
// written forwards, so that seeds are built from named steps rather than hand-counted bytes.

/// Reads values off the input; past its end every read gives zero, so any input decodes.
public struct FuzzInput {
    private let bytes: UnsafeRawBufferPointer
    private var at = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var isEmpty: Bool { at >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard at < bytes.count else { return 0 }
        defer { at += 1 }
        return bytes[at]
    }

    public mutating func u16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    public mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }

    /// A value in `0..<n`.
    public mutating func below(_ n: Int) -> Int { Int(byte()) % max(n, 1) }

    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// Up to `n` raw bytes, fewer at the end of the input.
    public mutating func raw(_ n: Int) -> UnsafeRawBufferPointer {
        let count = min(n, bytes.count - min(at, bytes.count))
        defer { at += count }
        return UnsafeRawBufferPointer(rebasing: bytes[at..<at + count])
    }
}

/// Writes what `FuzzInput` reads, in the same order (seed inputs).
public struct FuzzScript {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func byte(_ v: UInt8) { bytes.append(v) }
    public mutating func byte(_ v: Int) { bytes.append(UInt8(truncatingIfNeeded: v)) }
    public mutating func u16(_ v: UInt16) {
        byte(UInt8(v >> 8))
        byte(UInt8(truncatingIfNeeded: v))
    }
    public mutating func u32(_ v: UInt32) {
        u16(UInt16(v >> 16))
        u16(UInt16(truncatingIfNeeded: v))
    }
    public mutating func byte<T: RawRepresentable>(_ v: T) where T.RawValue == UInt8 { byte(v.rawValue) }
}
