// Tracks which byte ranges past the in-order point hold out-of-order data, with a bounded
// number of holes; the data itself sits in the receive ring at its offset.

public struct Assembler: Sendable {
    /// Filled ranges as (start, end) offsets relative to the in-order point, sorted, disjoint, non-adjacent.
    public private(set) var ranges: [(start: Int, end: Int)] = []
    public let maxRanges: Int

    public init(maxRanges: Int = 16) {
        self.maxRanges = maxRanges
        ranges.reserveCapacity(maxRanges + 1)
    }

    public var isEmpty: Bool { ranges.isEmpty }

    /// Records [start, end) as filled. Returns false (and records nothing) when that would need
    /// more ranges than allowed; the segment is then dropped and the sender retransmits it.
    public mutating func add(start: Int, end: Int) -> Bool {
        guard end > start else { return true }
        var newStart = start, newEnd = end
        var firstOverlap = ranges.count, lastOverlap = -1
        for (i, r) in ranges.enumerated() where r.end >= newStart && r.start <= newEnd {
            firstOverlap = min(firstOverlap, i)
            lastOverlap = i
            newStart = min(newStart, r.start)
            newEnd = max(newEnd, r.end)
        }
        if lastOverlap >= 0 {
            ranges.replaceSubrange(firstOverlap...lastOverlap, with: [(newStart, newEnd)])
        } else {
            guard ranges.count < maxRanges else { return false }
            let at = ranges.firstIndex { $0.start > newStart } ?? ranges.count
            ranges.insert((newStart, newEnd), at: at)
        }
        return true
    }

    /// The in-order point advanced by `n` bytes: shift every range; returns how many further bytes
    /// became contiguous (a range that now starts at 0 is removed and its length returned).
    public mutating func advance(by n: Int) -> Int {
        var contiguous = 0
        var i = 0
        while i < ranges.count {
            ranges[i].start -= n
            ranges[i].end -= n
            i += 1
        }
        ranges.removeAll { $0.end <= 0 }
        if let first = ranges.first, first.start <= 0 {
            contiguous = first.end
            ranges.removeFirst()
            for j in ranges.indices {
                ranges[j].start -= contiguous
                ranges[j].end -= contiguous
            }
        }
        return contiguous
    }
}
