// Walks the options of an NDP message under RFC 4861 §4.6: a zero length or an option running
// past the message makes the whole message invalid (§6.1, §7.1: silently discarded).

/// Yields each option in turn; `next()` throws `.badOption` on a malformed one.
///
///     var it = NDPOptionIterator(message.slice(24, message.count - 24))
///     while let option = try it.next() { … }
public struct NDPOptionIterator {
    private let area: UnsafeRawBufferPointer
    private var offset: Int

    @inline(__always)
    public init(_ area: UnsafeRawBufferPointer) {
        self.area = area
        self.offset = 0
    }

    /// The next option, or nil at the end of the area.
    public mutating func next() throws(WireError) -> NDPOption? {
        let r = CheckedReader(area, layer: "ndp")
        let remaining = area.count - offset
        guard remaining > 0 else { return nil }
        guard remaining >= 2 else { throw WireError(.badOption, "ndp") }
        let units = Int(try r.u8(offset + 1))
        guard units > 0 else { throw WireError(.badOption, "ndp") }
        let length = units * NDPOption.unit
        guard length <= remaining else { throw WireError(.badOption, "ndp") }
        let option = NDPOption(type: try r.u8(offset), bytes: try r.bytes(offset, length))
        offset += length
        return option
    }

    /// Calls `body` for every option; throws on the first malformed one, after `body` has seen
    /// those before it, so callers should act only once this returns.
    public static func forEach(
        _ area: UnsafeRawBufferPointer, _ body: (NDPOption) throws(WireError) -> Void
    ) throws(WireError) {
        var it = NDPOptionIterator(area)
        while let option = try it.next() { try body(option) }
    }
}
