// A binary min-heap of deadlines with an ID each: the stack finds its next timer and its due
// connections without scanning every connection, and a shard's event loop its next timer.

public struct DeadlineHeap<ID> {
    public struct Entry {
        public var deadline: UInt64
        public var id: ID
        @inlinable public init(deadline: UInt64, id: ID) {
            self.deadline = deadline
            self.id = id
        }
    }

    @usableFromInline var items: [Entry] = []

    public init() {}

    @inlinable public var first: Entry? { items.first }
    @inlinable public var count: Int { items.count }

    @inlinable
    public mutating func insert(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p].deadline <= items[i].deadline { break }
            items.swapAt(p, i)
            i = p
        }
    }

    @inlinable
    @discardableResult
    public mutating func popMin() -> Entry? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l].deadline < items[m].deadline { m = l }
                if r < items.count && items[r].deadline < items[m].deadline { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
