// Fixed-size chunks for connection buffers, one pool per shard (one thread, no lock): a
// connection holds chunks only for bytes in flight or waiting, and idle chunks go back to the system.
#if canImport(Glibc)
import Glibc
#endif

/// Carves chunks out of slabs mapped from the system, keeps the freed ones for reuse, and gives
/// the memory of chunks that stayed idle back to the system (`trim`).
///
/// Written by hand rather than on malloc: freed memory in malloc's arenas stays resident until a
/// `malloc_trim`, which locks and walks every arena; the pool knows exactly which chunks are idle
/// and releases their pages with one `madvise` per run of neighbours.
public final class BufferPool {
    /// Bytes per chunk, a power of two.
    public let chunkSize: Int
    let chunkShift: Int
    /// Chunks mapped at a time.
    public let slabChunks: Int
    /// Free chunks kept resident by `trim` for the next burst, beyond the ones in use.
    public let keepWarm: Int

    /// Freed chunks whose pages are resident, most recently freed last (taken first).
    private var warm: [UnsafeMutableRawPointer] = []
    /// Freed chunks whose pages were given back; touching them again costs page faults only.
    private var cold: [UnsafeMutableRawPointer] = []
    /// The fewest warm chunks seen since the last trim: those at the bottom were idle all along.
    private var warmLowWater = 0
    private var slabs: [UnsafeMutableRawPointer] = []

    public private(set) var chunksInUse = 0
    /// Chunks given back to the system by `trim` since the pool was made.
    public private(set) var chunksReleased = 0
    /// Slabs the system refused (mmap failed); takes then fail until memory frees up.
    public private(set) var mapFailures = 0

    public init(chunkSize: Int = 16 * 1024, slabChunks: Int = 64, keepWarm: Int = 32) {
        precondition(chunkSize >= 4096 && chunkSize & (chunkSize - 1) == 0, "chunk size must be a power of two ≥ 4 KiB")
        self.chunkSize = chunkSize
        chunkShift = chunkSize.trailingZeroBitCount
        self.slabChunks = max(1, slabChunks)
        self.keepWarm = max(0, keepWarm)
    }

    deinit {
        let slabBytes = chunkSize * slabChunks
        for s in slabs { munmap(s, slabBytes) }
    }

    /// Bytes mapped from the system (resident or not).
    public var mappedBytes: Int { slabs.count * slabChunks * chunkSize }
    /// Bytes that may be resident: chunks in use and warm free chunks.
    public var residentBytes: Int { (chunksInUse + warm.count) * chunkSize }
    public var warmChunks: Int { warm.count }
    public var coldChunks: Int { cold.count }

    /// A chunk, or nil when the system has no memory to map.
    public func take() -> UnsafeMutableRawPointer? {
        if let p = warm.popLast() {
            if warm.count < warmLowWater { warmLowWater = warm.count }
            chunksInUse += 1
            return p
        }
        if cold.isEmpty && !mapSlab() { return nil }
        chunksInUse += 1
        return cold.popLast()
    }

    /// Returns a chunk taken from this pool.
    public func give(_ chunk: UnsafeMutableRawPointer) {
        chunksInUse -= 1
        warm.append(chunk)
    }

    /// Gives back to the system the pages of warm chunks that no take reached since the last
    /// trim, keeping `keepWarm` of them. Call it every second or so; returns the bytes released.
    @discardableResult
    public func trim() -> Int {
        let idle = max(0, min(warmLowWater, warm.count) - keepWarm)
        warmLowWater = warm.count
        guard idle > 0 else { return 0 }
        // The bottom of the stack holds the chunks freed longest ago.
        var victims = Array(warm[0..<idle])
        warm.removeFirst(idle)
        warmLowWater = warm.count
        victims.sort()
        var i = 0
        while i < victims.count {
            var j = i + 1
            while j < victims.count && victims[j] == victims[j - 1] + chunkSize { j += 1 }
            madvise(victims[i], (j - i) * chunkSize, MADV_DONTNEED)
            i = j
        }
        cold.append(contentsOf: victims)
        chunksReleased += idle
        return idle * chunkSize
    }

    private func mapSlab() -> Bool {
        let bytes = chunkSize * slabChunks
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            mapFailures += 1
            return false
        }
        slabs.append(p)
        // Taken from the end: the slab's first chunk goes first.
        for k in stride(from: slabChunks - 1, through: 0, by: -1) { cold.append(p + k * chunkSize) }
        return true
    }
}
