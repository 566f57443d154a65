// TCP sequence numbers with modulo-2^32 comparison (RFC 9293 §3.4).

public struct SequenceNumber: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var raw: UInt32

    @inline(__always) public init(_ raw: UInt32) { self.raw = raw }

    /// a < b when b is ahead of a by less than 2^31, which is what "earlier" means on a wrapping space.
    @inline(__always)
    public static func < (a: SequenceNumber, b: SequenceNumber) -> Bool { Int32(bitPattern: a.raw &- b.raw) < 0 }

    @inline(__always)
    public static func + (a: SequenceNumber, n: Int) -> SequenceNumber { SequenceNumber(a.raw &+ UInt32(truncatingIfNeeded: n)) }

    @inline(__always)
    public static func - (a: SequenceNumber, n: Int) -> SequenceNumber { SequenceNumber(a.raw &- UInt32(truncatingIfNeeded: n)) }

    /// Signed distance b - a; meaningful while the two are within 2^31 of each other.
    @inline(__always)
    public static func - (b: SequenceNumber, a: SequenceNumber) -> Int { Int(Int32(bitPattern: b.raw &- a.raw)) }

    @inline(__always)
    public static func += (a: inout SequenceNumber, n: Int) { a = a + n }

    public var description: String { "\(raw)" }
}
