// A fixed-capacity byte ring for a connection's send and receive buffers. Bytes beyond the
// readable end can be written at an offset (out-of-order data lands in place, no second copy).

public final class ByteRing {
    public let capacity: Int
    private let storage: UnsafeMutableRawBufferPointer
    private var head = 0
    /// Contiguous readable bytes from the head.
    public private(set) var count = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    public var free: Int { capacity - count }
    public var isEmpty: Bool { count == 0 }

    /// Appends as much of `bytes` as fits; returns how much that was.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = write(bytes, at: count)
        count += n
        return n
    }

    /// Copies `bytes` to `offset` past the readable end's start (offset may exceed `count`:
    /// the caller tracks which ranges are filled). Returns how much fitted.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        guard offset < capacity, let src = bytes.baseAddress else { return 0 }
        let n = min(bytes.count, capacity - offset)
        var start = (head + offset) % capacity
        var done = 0
        while done < n {
            let chunk = min(n - done, capacity - start)
            (storage.baseAddress! + start).copyMemory(from: src + done, byteCount: chunk)
            done += chunk
            start = 0
        }
        return n
    }

    /// Marks `n` bytes already written past the readable end as readable.
    public func commit(_ n: Int) {
        precondition(count + n <= capacity)
        count += n
    }

    /// Copies up to `into.count` bytes starting `offset` bytes after the head, without consuming.
    public func peek(into: UnsafeMutableRawBufferPointer, at offset: Int = 0) -> Int {
        guard offset < count, let dst = into.baseAddress else { return 0 }
        let n = min(into.count, count - offset)
        var start = (head + offset) % capacity
        var done = 0
        while done < n {
            let chunk = min(n - done, capacity - start)
            (dst + done).copyMemory(from: storage.baseAddress! + start, byteCount: chunk)
            done += chunk
            start = 0
        }
        return n
    }

    /// Drops `n` bytes from the head.
    public func consume(_ n: Int) {
        precondition(n <= count)
        head = (head + n) % capacity
        count -= n
        // The head stays where it is even when the ring empties: out-of-order bytes already
        // written past the readable end are addressed from it.
    }

    /// Reads and consumes up to `into.count` bytes.
    public func read(into: UnsafeMutableRawBufferPointer) -> Int {
        let n = peek(into: into)
        consume(n)
        return n
    }

    /// The readable bytes as at most two contiguous regions (for writev to a socket without a copy).
    public func readableRegions(max: Int = .max) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        let n = min(count, max)
        let first = min(n, capacity - head)
        let a = UnsafeRawBufferPointer(start: storage.baseAddress! + head, count: first)
        let b = UnsafeRawBufferPointer(start: storage.baseAddress!, count: n - first)
        return (a, b)
    }

    /// The free space after the readable bytes as at most two regions (for readv from a socket).
    public func writableRegions() -> (UnsafeMutableRawBufferPointer, UnsafeMutableRawBufferPointer) {
        let start = (head + count) % capacity
        let n = free
        let first = min(n, capacity - start)
        let a = UnsafeMutableRawBufferPointer(start: storage.baseAddress! + start, count: first)
        let b = UnsafeMutableRawBufferPointer(start: storage.baseAddress!, count: n - first)
        return (a, b)
    }
}
