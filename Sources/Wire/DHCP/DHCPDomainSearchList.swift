// The domain search option (119, RFC 3397): a list of DNS names in wire form whose compression
// pointers count from the start of the option's (concatenated) data.

/// A checked domain search list. Borrows its data: valid while that buffer is.
public struct DHCPDomainSearchList: Sequence {
    /// The option data, all instances of option 119 concatenated (RFC 3397 §2).
    public let data: UnsafeRawBufferPointer
    /// Number of names.
    public let count: Int

    /// Checks every name, with the same pointer rules as DNS messages (`DNSName.parse`), taking
    /// offsets from the start of `data`.
    public static func parse(_ data: UnsafeRawBufferPointer) throws(WireError) -> DHCPDomainSearchList {
        var pos = 0
        var n = 0
        while pos < data.count {
            pos = try DNSName.parse(data, at: pos).end
            n += 1
        }
        return DHCPDomainSearchList(data: data, count: n)
    }

    public func makeIterator() -> Iterator { Iterator(data: data, position: 0) }

    public struct Iterator: IteratorProtocol {
        let data: UnsafeRawBufferPointer
        var position: Int

        public mutating func next() -> DNSName? {
            guard position < data.count, let (name, end) = try? DNSName.parse(data, at: position) else { return nil }
            position = end
            return name
        }
    }

    /// Writes `names` (presentation form) as RFC 3397 option data at the start of `buffer`,
    /// each name pointing at the longest suffix written before it. Returns the bytes written.
    public static func emit(_ names: [String], into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        var compressor = DNSNameCompressor()
        var pos = 0
        for name in names {
            pos = try compressor.write(name, at: pos, in: buffer, limit: buffer.count)
        }
        return pos
    }
}
