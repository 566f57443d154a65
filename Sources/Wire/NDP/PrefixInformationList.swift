// Up to four Prefix Information options held inline, so parsing a Router Advertisement never
// touches the heap. A sandbox link carries one or two prefixes; four leaves room.

public struct PrefixInformationList: RandomAccessCollection, Hashable, Sendable {
    public static let capacity = 4

    private var list = FixedList<4, PrefixInformation>(
        filler: PrefixInformation(prefix: .any, prefixLength: 0, validLifetime: 0, preferredLifetime: 0))
    public var count: Int { list.count }

    public init() {}

    /// Prefixes from a sequence; those beyond `capacity` are dropped.
    public init(_ prefixes: some Sequence<PrefixInformation>) {
        for p in prefixes where !append(p) { break }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { list.count }
    public var isFull: Bool { list.isFull }

    public subscript(position: Int) -> PrefixInformation {
        get { list[position] }
        set { list[position] = newValue }
    }

    /// Adds a prefix at the end; false (and nothing changes) when full.
    @discardableResult
    public mutating func append(_ prefix: PrefixInformation) -> Bool { list.append(prefix) }

    public mutating func removeAll() { list.removeAll() }
}
