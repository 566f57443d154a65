// Selective acknowledgment blocks (RFC 2018 §3) held inline: a TCP header has room for at most
// four, so the parser and the stack never need the heap for them.

/// One SACK block: the sequence space [start, end) that the receiver holds.
public struct SACKBlock: Hashable, Sendable {
    public var start: UInt32
    public var end: UInt32

    @inline(__always)
    public init(start: UInt32, end: UInt32) {
        self.start = start
        self.end = end
    }
}

/// Up to four SACK blocks in fixed storage, in the order they appear on the wire (the first is
/// the most recently received, RFC 2018 §4).
public struct SACKBlocks: RandomAccessCollection, Hashable, Sendable {
    /// A 40-byte option area holds at most 4 blocks: 2 + 4 × 8 = 34 (RFC 2018 §3).
    public static let capacity = 4

    private var list = FixedList<4, SACKBlock>(filler: SACKBlock(start: 0, end: 0))
    public var count: Int { list.count }

    @inline(__always)
    public init() {}

    /// Blocks from a sequence; those beyond `capacity` are dropped.
    public init(_ blocks: some Sequence<SACKBlock>) {
        for b in blocks where !append(b) { break }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { list.count }
    public var isFull: Bool { list.isFull }

    public subscript(position: Int) -> SACKBlock {
        get { list[position] }
        set { list[position] = newValue }
    }

    /// Adds a block at the end; false (and nothing changes) when all four slots are taken.
    @discardableResult
    public mutating func append(_ block: SACKBlock) -> Bool { list.append(block) }

    public mutating func removeAll() { list.removeAll() }
}
