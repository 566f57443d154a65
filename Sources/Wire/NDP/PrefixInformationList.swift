// Up to four Prefix Information options held inline, so parsing a Router Advertisement never
// touches the heap. A sandbox link carries one or two prefixes; four leaves room.

public struct PrefixInformationList: RandomAccessCollection, Hashable, Sendable {
    public static let capacity = 4

    private var storage: (PrefixInformation, PrefixInformation, PrefixInformation, PrefixInformation)
    public private(set) var count: Int

    public init() {
        let empty = PrefixInformation(prefix: .any, prefixLength: 0, validLifetime: 0, preferredLifetime: 0)
        storage = (empty, empty, empty, empty)
        count = 0
    }

    /// Prefixes from a sequence; those beyond `capacity` are dropped.
    public init(_ prefixes: some Sequence<PrefixInformation>) {
        self.init()
        for p in prefixes where !append(p) { break }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public var isFull: Bool { count == Self.capacity }

    public subscript(position: Int) -> PrefixInformation {
        get {
            precondition(position >= 0 && position < count, "prefix index out of range")
            switch position {
            case 0: return storage.0
            case 1: return storage.1
            case 2: return storage.2
            default: return storage.3
            }
        }
        set {
            precondition(position >= 0 && position < count, "prefix index out of range")
            switch position {
            case 0: storage.0 = newValue
            case 1: storage.1 = newValue
            case 2: storage.2 = newValue
            default: storage.3 = newValue
            }
        }
    }

    /// Adds a prefix at the end; false (and nothing changes) when full.
    @discardableResult
    public mutating func append(_ prefix: PrefixInformation) -> Bool {
        guard count < Self.capacity else { return false }
        count += 1
        self[count - 1] = prefix
        return true
    }

    public mutating func removeAll() { count = 0 }

    // Only the prefixes in use take part in equality.
    public static func == (a: PrefixInformationList, b: PrefixInformationList) -> Bool { a.elementsEqual(b) }

    public func hash(into h: inout Hasher) {
        h.combine(count)
        for p in self { h.combine(p) }
    }
}
