// Reusable output frame storage: the stack writes frames (with room for the virtio-net header
// in front) into pooled buffers, the owner writes them to the device and hands them back.
#if canImport(Glibc)
import Glibc
#endif

/// One frame's bytes. `bytes[0..<length]` is what goes to the device, virtio-net header first.
public final class FrameBuffer {
    public let storage: UnsafeMutableRawBufferPointer
    public var length = 0

    /// Mapped rather than taken from malloc: a frame freed by `FramePool.trim` gives its pages
    /// back to the system at once, and untouched pages of a large frame never become resident.
    init(capacity: Int) {
        let mapped = mmap(nil, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else {
            fatalError("cannot map a \(capacity)-byte frame buffer: out of memory")
        }
        storage = UnsafeMutableRawBufferPointer(start: mapped, count: capacity)
    }

    deinit { munmap(storage.baseAddress, storage.count) }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<length]) }
}

/// Free output frames, shared by the stacks of one shard (one thread): a shard drains each
/// sandbox's frames to its device before the next sandbox runs, so a few dozen frames serve all
/// of its sandboxes, where one free list per sandbox would keep each sandbox's largest burst.
public final class FramePool {
    /// Room for the largest frame: a 12-byte virtio-net header, Ethernet, IP and TCP headers with
    /// options, and a 64 KiB GSO payload.
    public static let standardCapacity = 12 + 14 + 60 + 60 + 65_536

    public let frameCapacity: Int
    /// Free frames `trim` keeps for the next burst.
    public let keepWarm: Int
    private var free: [FrameBuffer] = []
    /// The fewest free frames seen since the last trim: those were idle all along.
    private var lowWater = 0
    /// Frames that exist now, in use or free.
    public private(set) var allocated = 0

    public init(frameCapacity: Int = FramePool.standardCapacity, keepWarm: Int = 8) {
        self.frameCapacity = frameCapacity
        self.keepWarm = keepWarm
    }

    public var freeFrames: Int { free.count }

    func take() -> FrameBuffer {
        if let f = free.popLast() {
            if free.count < lowWater { lowWater = free.count }
            return f
        }
        allocated += 1
        return FrameBuffer(capacity: frameCapacity)
    }

    func give(_ f: FrameBuffer) { free.append(f) }

    /// Frees the frames no take reached since the last trim, beyond `keepWarm`; returns how many.
    @discardableResult
    public func trim() -> Int {
        let idle = max(0, min(lowWater, free.count) - keepWarm)
        if idle > 0 {
            free.removeFirst(idle)
            allocated -= idle
        }
        lowWater = free.count
        return idle
    }
}

/// Frames waiting to be written; free ones come from and go back to a `FramePool`.
public struct FrameQueue {
    /// Internal setter: the fault injector drops, holds back and reorders queued frames in place.
    public internal(set) var frames: [FrameBuffer] = []
    private let pool: FramePool
    var frameCapacity: Int { pool.frameCapacity }
    /// Frames queued beyond this are dropped (the device cannot keep up; TCP will resend).
    let maxQueued: Int
    public private(set) var dropped = 0
    /// How many frames at the head of `frames` the fault injector has already seen.
    var faultsApplied = 0

    init(pool: FramePool, maxQueued: Int = 4096) {
        self.pool = pool
        self.maxQueued = maxQueued
    }

    init(frameCapacity: Int, maxQueued: Int = 4096) {
        self.init(pool: FramePool(frameCapacity: frameCapacity), maxQueued: maxQueued)
    }

    mutating func obtain() -> FrameBuffer? {
        guard frames.count < maxQueued else {
            dropped += 1
            return nil
        }
        let f = pool.take()
        f.length = 0
        return f
    }

    mutating func enqueue(_ f: FrameBuffer) { frames.append(f) }

    /// Returns a frame taken from `frames` (or never enqueued) to the free list.
    mutating func recycle(_ f: FrameBuffer) { pool.give(f) }

    /// Hands every queued frame to `body` in order and recycles them.
    public mutating func drain(_ body: (FrameBuffer) -> Void) {
        for f in frames {
            body(f)
            pool.give(f)
        }
        frames.removeAll(keepingCapacity: true)
        faultsApplied = 0
    }

    public var isEmpty: Bool { frames.isEmpty }
}
