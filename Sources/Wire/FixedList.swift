// The inline storage behind Wire's short lists (SACK blocks, prefixes, DNS servers): at most
// `capacity` elements and never the heap, so parsing stays allocation-free.

/// Up to `capacity` elements held inline, in the order appended.
struct FixedList<let capacity: Int, Element>: RandomAccessCollection {
    // Slots past `count` hold the filler or stale elements; nothing reads them.
    private var storage: InlineArray<capacity, Element>
    private(set) var count: Int

    @inline(__always)
    init(filler: Element) {
        storage = InlineArray(repeating: filler)
        count = 0
    }

    var startIndex: Int { 0 }
    var endIndex: Int { count }
    var isFull: Bool { count == capacity }

    subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < count, "index out of range")
            return storage[position]
        }
        set {
            precondition(position >= 0 && position < count, "index out of range")
            storage[position] = newValue
        }
    }

    /// Adds an element at the end; false (and nothing changes) when full.
    @discardableResult
    mutating func append(_ element: Element) -> Bool {
        guard count < capacity else { return false }
        storage[count] = element
        count += 1
        return true
    }

    mutating func removeAll() { count = 0 }
}

extension FixedList: Sendable where Element: Sendable {}

// Only the elements in use take part: stale slots past `count` must not make equal lists differ.
extension FixedList: Equatable where Element: Equatable {
    static func == (a: Self, b: Self) -> Bool { a.elementsEqual(b) }
}

extension FixedList: Hashable where Element: Hashable {
    func hash(into h: inout Hasher) {
        h.combine(count)
        for e in self { h.combine(e) }
    }
}
