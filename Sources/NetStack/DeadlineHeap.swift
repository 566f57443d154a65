// A binary min-heap of connection deadlines, so the stack finds its next timer and its due
// connections without scanning every connection.

struct DeadlineEntry {
    var deadline: UInt64
    var id: TCPFlowID
}

struct DeadlineHeap {
    private var items: [DeadlineEntry] = []

    var first: DeadlineEntry? { items.first }
    var count: Int { items.count }

    mutating func insert(_ e: DeadlineEntry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p].deadline <= items[i].deadline { break }
            items.swapAt(p, i)
            i = p
        }
    }

    @discardableResult
    mutating func popMin() -> DeadlineEntry? {
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
