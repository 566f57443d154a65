// A connection's send or receive buffer as a queue of pool chunks: memory follows the bytes held,
// not the buffer's size. Bytes past the readable end can be written at an offset (out-of-order
// data lands in place, no second copy).

/// Up to `capacity` regions of one buffer, for one readv/writev (no copy in between).
public struct BufferRegions {
    public static let capacity = 16
    private var bases: InlineArray<16, UnsafeMutableRawPointer?> = .init(repeating: nil)
    private var lengths: InlineArray<16, Int> = .init(repeating: 0)
    public private(set) var count = 0
    public private(set) var byteCount = 0

    public init() {}

    public init(_ region: UnsafeMutableRawBufferPointer) {
        append(region.baseAddress, region.count)
    }

    mutating func append(_ base: UnsafeMutableRawPointer?, _ length: Int) {
        guard length > 0, count < Self.capacity else { return }
        bases[count] = base
        lengths[count] = length
        count += 1
        byteCount += length
    }

    public subscript(i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: bases[i], count: lengths[i])
    }

    /// The first `n` bytes of the regions, as one array (tests and small readers).
    public func bytes(max n: Int = .max) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(min(n, byteCount))
        for i in 0..<count where out.count < n {
            let r = self[i]
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: r[..<min(r.count, n - out.count)]))
        }
        return out
    }
}

public final class ChunkedBuffer {
    /// The most the buffer holds (the window or queue size it stands for).
    public let capacity: Int
    private let pool: BufferPool
    private let budget: MemoryBudget
    private var chunks: [UnsafeMutableRawPointer] = []
    /// Offset of the head (the first readable byte) inside `chunks[0]`.
    private var headOffset = 0
    /// Contiguous readable bytes from the head.
    public private(set) var count = 0
    /// End of the furthest write past the head (out-of-order data may lie beyond `count`).
    private var writtenEnd = 0

    public init(capacity: Int, pool: BufferPool, budget: MemoryBudget) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.pool = pool
        self.budget = budget
    }

    deinit { releaseChunks(from: 0) }

    public var free: Int { capacity - count }
    public var isEmpty: Bool { count == 0 }
    /// Bytes of chunks held now.
    public var heldBytes: Int { chunks.count * pool.chunkSize }

    /// Appends as much of `bytes` as fits; returns how much that was.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = write(bytes, at: count)
        count += n
        return n
    }

    /// Copies `bytes` to `offset` past the head (offset may exceed `count`: the caller tracks
    /// which ranges are filled). Returns how much fitted.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        guard offset < capacity, let src = bytes.baseAddress else { return 0 }
        let n = cover(upTo: offset + min(bytes.count, capacity - offset)) - offset
        guard n > 0 else { return 0 }
        var done = 0
        forEachPiece(from: offset, length: n) { piece in
            piece.baseAddress!.copyMemory(from: src + done, byteCount: piece.count)
            done += piece.count
        }
        writtenEnd = max(writtenEnd, offset + n)
        return n
    }

    /// Marks `n` bytes already written past the readable end as readable.
    public func commit(_ n: Int) {
        precondition(count + n <= capacity && count + n <= chunks.count * pool.chunkSize - headOffset)
        count += n
        writtenEnd = max(writtenEnd, count)
        releaseUnwritten()
    }

    /// Copies up to `into.count` bytes starting `offset` bytes after the head, without consuming.
    public func peek(into: UnsafeMutableRawBufferPointer, at offset: Int = 0) -> Int {
        guard offset < count, let dst = into.baseAddress else { return 0 }
        let n = min(into.count, count - offset)
        var done = 0
        forEachPiece(from: offset, length: n) { piece in
            (dst + done).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
            done += piece.count
        }
        return n
    }

    /// Drops `n` bytes from the head; chunks left behind go back to the pool.
    public func consume(_ n: Int) {
        precondition(n <= count)
        guard n > 0 else { return }
        count -= n
        writtenEnd -= n
        headOffset += n
        let passed = min(headOffset >> pool.chunkShift, chunks.count)
        if passed > 0 {
            for i in 0..<passed { pool.give(chunks[i]) }
            chunks.removeFirst(passed)
            headOffset -= passed << pool.chunkShift
            budget.noteHeld(-passed * pool.chunkSize)
        }
        if writtenEnd == 0 {
            // Empty, nothing out of order beyond: start the next bytes at a chunk's start.
            releaseChunks(from: 0)
            headOffset = 0
        }
    }

    /// Reads and consumes up to `into.count` bytes.
    public func read(into: UnsafeMutableRawBufferPointer) -> Int {
        let n = peek(into: into)
        consume(n)
        return n
    }

    /// Drops everything, out-of-order bytes too, and gives every chunk back.
    public func removeAll() {
        releaseChunks(from: 0)
        headOffset = 0
        count = 0
        writtenEnd = 0
    }

    /// The readable bytes (up to `max`) as regions, for writev to a socket without a copy.
    public func readableRegions(max: Int = .max) -> BufferRegions {
        var regions = BufferRegions()
        forEachPiece(from: 0, length: min(count, max), limit: BufferRegions.capacity) { piece in
            regions.append(piece.baseAddress, piece.count)
        }
        return regions
    }

    /// Up to `max` bytes of free space after the readable bytes as regions (for readv from a
    /// socket); chunks are taken for them now, and what `commit` does not fill goes back.
    public func writableRegions(max: Int) -> BufferRegions {
        var regions = BufferRegions()
        let offsetInChunk = (headOffset + count) & (pool.chunkSize - 1)
        let want = min(free, max, BufferRegions.capacity * pool.chunkSize - offsetInChunk)
        let end = cover(upTo: count + want)
        forEachPiece(from: count, length: end - count, limit: BufferRegions.capacity) { piece in
            regions.append(piece.baseAddress, piece.count)
        }
        return regions
    }

    /// Returns chunks that hold nothing written (space a readv was offered and did not fill).
    public func releaseUnwritten() {
        let needed = writtenEnd == 0 && count == 0 ? 0 : (headOffset + writtenEnd + pool.chunkSize - 1) >> pool.chunkShift
        if chunks.count > needed { releaseChunks(from: needed) }
    }

    // MARK: - Chunks

    /// Takes chunks until bytes [0, end) past the head have memory; returns the end covered
    /// (short only when the system refused memory).
    private func cover(upTo end: Int) -> Int {
        let needed = (headOffset + end + pool.chunkSize - 1) >> pool.chunkShift
        while chunks.count < needed {
            // The system refused a slab (counted by the pool): the bytes past here are not taken.
            guard let c = pool.take() else {
                return max(0, chunks.count * pool.chunkSize - headOffset)
            }
            chunks.append(c)
            budget.noteHeld(pool.chunkSize)
        }
        return end
    }

    private func releaseChunks(from index: Int) {
        guard index < chunks.count else { return }
        for i in index..<chunks.count { pool.give(chunks[i]) }
        budget.noteHeld(-(chunks.count - index) * pool.chunkSize)
        chunks.removeSubrange(index...)
    }

    /// Calls `body` with each contiguous piece of bytes [offset, offset + length) past the head.
    private func forEachPiece(
        from offset: Int, length: Int, limit: Int = .max, _ body: (UnsafeMutableRawBufferPointer) -> Void
    ) {
        var position = headOffset + offset
        var left = length
        var pieces = 0
        let size = pool.chunkSize
        while left > 0 && pieces < limit {
            let index = position >> pool.chunkShift
            let inChunk = position & (size - 1)
            let n = min(left, size - inChunk)
            body(UnsafeMutableRawBufferPointer(start: chunks[index] + inChunk, count: n))
            position += n
            left -= n
            pieces += 1
        }
    }
}
