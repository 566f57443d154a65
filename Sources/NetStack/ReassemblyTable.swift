// The bookkeeping both IP reassemblers share: a buffer per datagram in progress, the extents
// received so far, and the rules that drop a datagram (RFC 791 §3.2, RFC 8200 §4.5, RFC 5722).
import Scheduling

/// Datagrams being put back together, keyed by whatever names a datagram in its family.
/// `First` is what the family keeps from the fragment at offset 0 (its header, mostly).
struct ReassemblyTable<Key: Hashable, First> {
    struct Datagram {
        /// The fragmentable part, as far as the highest fragment received reaches.
        var data: [UInt8] = []
        /// Extents received, sorted and disjoint: anything that would overlap is refused.
        var pieces: [Range<Int>] = []
        var received = 0
        /// Where the data ends, once a last fragment (M = 0) has said so.
        var end: Int?
        var first: First?
        let deadline: UInt64
        /// Creation order, for evicting the oldest.
        let order: UInt64
    }

    enum Outcome {
        case incomplete
        /// The whole fragmentable part, `data.count` bytes, and what the first fragment said.
        case complete(First, [UInt8])
        /// The fragment was refused and its datagram, if any, dropped; counted already.
        case dropped
    }

    let limits: ReassemblyLimits
    private let timeout: UInt64
    private(set) var datagrams: [Key: Datagram] = [:]
    /// Capacity of all buffers held: what the memory bound is checked against.
    private(set) var bufferedBytes = 0
    var counters = ReassemblyCounters()
    private var nextOrder: UInt64 = 0

    init(limits: ReassemblyLimits) {
        self.limits = limits
        timeout = limits.timeout.nanoseconds
    }

    /// Adds one fragment. `offset` and `data` place its bytes in the fragmentable part; `more` is
    /// its M flag; `first` is given with the fragment at offset 0, which must hold at least
    /// `minimumFirstLength` bytes; `room` is how far the fragmentable part may reach before the
    /// reassembled datagram's length field would overflow.
    mutating func add(
        key: Key, offset: Int, data: UnsafeRawBufferPointer, more: Bool, first: First?, minimumFirstLength: Int,
        room: Int, now: UInt64
    ) -> Outcome {
        let count = data.count
        let end = offset + count
        // A fragment other than the last must be a whole number of 8-octet units, since the
        // next one's offset counts in them (RFC 791 §3.1, RFC 8200 §4.5).
        if count == 0 || (more && (count % 8 != 0 || count < limits.minimumFragmentPayload))
            || (offset == 0 && count < minimumFirstLength)
        {
            return drop(key, \.tooSmall)
        }
        guard offset >= 0, end <= room else { return drop(key, \.tooLong) }

        var existing = datagrams.removeValue(forKey: key)
        if let e = existing {
            bufferedBytes -= e.data.capacity
            // A datagram whose time ran out before `expire` ran is gone all the same.
            if e.deadline <= now {
                counters.timedOut += 1
                existing = nil
            }
        }
        var d: Datagram
        // `take` leaves no second reference behind, so growing `d.data` below does not copy it.
        if let e = existing.take() {
            d = e
        } else {
            while datagrams.count >= max(limits.maximumDatagrams, 1) { evictOldest() }
            d = Datagram(deadline: now &+ timeout, order: nextOrder)
            nextOrder &+= 1
        }

        if let known = d.end {
            guard end <= known, more || end == known else {
                counters.inconsistent += 1
                return .dropped
            }
        } else if !more, let last = d.pieces.last, last.upperBound > end {
            counters.inconsistent += 1
            return .dropped
        }

        // Pieces are disjoint and sorted, so ends are sorted too: the first piece ending after
        // `offset` is the only one that can tell whether this fragment overlaps anything.
        var low = 0
        var high = d.pieces.count
        while low < high {
            let mid = (low + high) / 2
            if d.pieces[mid].upperBound <= offset { low = mid + 1 } else { high = mid }
        }
        if low < d.pieces.count && d.pieces[low].lowerBound < end {
            // RFC 8200 §4.5 lets exact duplicates (the network copies packets) pass without
            // condemning the datagram; any other overlap is an attack on what the upper layer
            // sees, so the whole datagram goes (RFC 5722 §4).
            if d.pieces[low] == offset..<end && d.data[offset..<end].elementsEqual(data) {
                counters.duplicates += 1
                put(key, d)
                return .incomplete
            }
            counters.overlapping += 1
            return .dropped
        }

        if end > d.data.count {
            // Once the end is known the buffer is sized to it exactly; before that it grows to
            // the highest byte seen, so a lone fragment far out costs what it claims, and the
            // memory bound below sees it.
            let target = d.end ?? end
            let capacity = max(d.data.capacity, target)
            let limit = max(limits.maximumBufferedBytes, 0)
            while bufferedBytes + capacity > limit && !datagrams.isEmpty { evictOldest() }
            guard bufferedBytes + capacity <= limit else {
                counters.evicted += 1
                return .dropped
            }
            d.data.reserveCapacity(target)
            // The allocator may round the capacity up: hold the bound against what was given.
            while bufferedBytes + d.data.capacity > limit && !datagrams.isEmpty { evictOldest() }
            guard bufferedBytes + d.data.capacity <= limit else {
                counters.evicted += 1
                return .dropped
            }
            d.data.append(contentsOf: zeroes[0..<(end - d.data.count)])
        }
        d.data.withUnsafeMutableBytes { $0.slice(offset, count).copyMemory(from: data) }
        d.pieces.insert(offset..<end, at: low)
        d.received += count
        if !more { d.end = end }
        if offset == 0 { d.first = first }
        counters.fragments += 1

        if let known = d.end, d.received == known, let f = d.first {
            counters.completed += 1
            return .complete(f, d.data)
        }
        put(key, d)
        return .incomplete
    }

    /// Drops every datagram whose time is up; returns how many.
    @discardableResult
    mutating func expire(now: UInt64) -> Int {
        guard !datagrams.isEmpty else { return 0 }
        var expired = 0
        for (key, d) in datagrams where d.deadline <= now {
            datagrams[key] = nil
            bufferedBytes -= d.data.capacity
            expired += 1
        }
        counters.timedOut += expired
        return expired
    }

    /// When the oldest datagram in progress times out.
    var nextDeadline: UInt64? {
        guard !datagrams.isEmpty else { return nil }
        var best = UInt64.max
        for d in datagrams.values where d.deadline < best { best = d.deadline }
        return best
    }

    private mutating func put(_ key: Key, _ d: Datagram) {
        bufferedBytes += d.data.capacity
        datagrams[key] = d
    }

    private mutating func drop(_ key: Key, _ reason: WritableKeyPath<ReassemblyCounters, Int>) -> Outcome {
        if let d = datagrams.removeValue(forKey: key) { bufferedBytes -= d.data.capacity }
        counters[keyPath: reason] += 1
        return .dropped
    }

    private mutating func evictOldest() {
        guard let oldest = datagrams.min(by: { $0.value.order < $1.value.order })?.key else { return }
        if let d = datagrams.removeValue(forKey: oldest) { bufferedBytes -= d.data.capacity }
        counters.evicted += 1
    }
}

/// Filler for the gap below a fragment that arrives ahead of the ones before it; a datagram's
/// data never exceeds 65535 bytes.
private let zeroes = [UInt8](repeating: 0, count: 65536)
