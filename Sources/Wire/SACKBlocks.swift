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

    private var storage: (SACKBlock, SACKBlock, SACKBlock, SACKBlock)
    public private(set) var count: Int

    @inline(__always)
    public init() {
        let zero = SACKBlock(start: 0, end: 0)
        storage = (zero, zero, zero, zero)
        count = 0
    }

    /// Blocks from a sequence; those beyond `capacity` are dropped.
    public init(_ blocks: some Sequence<SACKBlock>) {
        self.init()
        for b in blocks where !append(b) { break }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public var isFull: Bool { count == Self.capacity }

    public subscript(position: Int) -> SACKBlock {
        get {
            precondition(position >= 0 && position < count, "SACK block index out of range")
            switch position {
            case 0: return storage.0
            case 1: return storage.1
            case 2: return storage.2
            default: return storage.3
            }
        }
        set {
            precondition(position >= 0 && position < count, "SACK block index out of range")
            switch position {
            case 0: storage.0 = newValue
            case 1: storage.1 = newValue
            case 2: storage.2 = newValue
            default: storage.3 = newValue
            }
        }
    }

    /// Adds a block at the end; false (and nothing changes) when all four slots are taken.
    @discardableResult
    public mutating func append(_ block: SACKBlock) -> Bool {
        guard count < Self.capacity else { return false }
        count += 1
        self[count - 1] = block
        return true
    }

    public mutating func removeAll() { count = 0 }

    // Only the blocks in use take part: stale slots past `count` must not make equal lists differ.
    public static func == (a: SACKBlocks, b: SACKBlocks) -> Bool {
        a.elementsEqual(b)
    }

    public func hash(into h: inout Hasher) {
        h.combine(count)
        for b in self { h.combine(b) }
    }
}
