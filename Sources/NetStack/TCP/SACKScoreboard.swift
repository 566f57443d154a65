// What the guest has told us (RFC 2018 SACK blocks) it holds beyond SND.UNA, so loss recovery
// resends only the holes (in the spirit of RFC 6675) instead of everything after the first loss.

struct SACKScoreboard {
    /// Sorted, disjoint, non-adjacent ranges [start, end) above SND.UNA.
    private(set) var ranges: [(start: SequenceNumber, end: SequenceNumber)] = []
    let maxRanges: Int

    init(maxRanges: Int = 32) { self.maxRanges = maxRanges }

    var isEmpty: Bool { ranges.isEmpty }
    var highest: SequenceNumber? { ranges.last?.end }

    var sackedBytes: Int { ranges.reduce(0) { $0 + ($1.end - $1.start) } }

    mutating func clear() { ranges.removeAll(keepingCapacity: true) }

    /// Adds one block, ignoring blocks outside (una, max]; returns bytes newly covered.
    @discardableResult
    mutating func add(start: SequenceNumber, end: SequenceNumber, una: SequenceNumber, max sndMax: SequenceNumber) -> Int {
        var s = start, e = end
        if s < una { s = una }
        if sndMax < e { e = sndMax }
        guard s < e else { return 0 }
        let before = sackedBytes
        // Merged in place, so an ACK during recovery allocates nothing: the new block swallows
        // every range it overlaps or touches, and takes their place.
        var first = 0
        while first < ranges.count && ranges[first].end < s { first += 1 }
        var past = first
        while past < ranges.count && !(e < ranges[past].start) {
            if ranges[past].start < s { s = ranges[past].start }
            if e < ranges[past].end { e = ranges[past].end }
            past += 1
        }
        ranges.replaceSubrange(first..<past, with: CollectionOfOne((start: s, end: e)))
        // Keep the lowest ranges when over the bound: they matter for the next retransmission.
        if ranges.count > maxRanges { ranges.removeLast(ranges.count - maxRanges) }
        return Swift.max(0, sackedBytes - before)
    }

    /// Forgets everything below `una` (it was cumulatively acknowledged).
    mutating func advance(to una: SequenceNumber) {
        ranges.removeAll { $0.end <= una }
        if let first = ranges.first, first.start < una { ranges[0].start = una }
    }

    /// The range [seq, end) that `seq` falls in, if SACKed.
    func covering(_ seq: SequenceNumber) -> SequenceNumber? {
        for r in ranges where r.start <= seq && seq < r.end { return r.end }
        return nil
    }

    /// The first hole at or after `from` and below the highest SACKed byte: [start, end).
    func nextHole(from: SequenceNumber) -> (start: SequenceNumber, end: SequenceNumber)? {
        var cursor = from
        for r in ranges {
            if cursor < r.start { return (cursor, r.start) }
            if cursor < r.end { cursor = r.end }
        }
        return nil
    }
}
