// Reusable output frame storage: the stack writes frames (with room for the virtio-net header
// in front) into pooled buffers, the owner writes them to the device and hands them back.

/// One frame's bytes. `bytes[0..<length]` is what goes to the device, virtio-net header first.
public final class FrameBuffer {
    public let storage: UnsafeMutableRawBufferPointer
    public var length = 0

    init(capacity: Int) {
        storage = .allocate(byteCount: capacity, alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { storage.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<length]) }
}

/// Frames waiting to be written, and the free list they return to.
public struct FrameQueue {
    /// Internal setter: the fault injector drops, holds back and reorders queued frames in place.
    public internal(set) var frames: [FrameBuffer] = []
    private var pool: [FrameBuffer] = []
    let frameCapacity: Int
    /// Frames queued beyond this are dropped (the device cannot keep up; TCP will resend).
    let maxQueued: Int
    public private(set) var dropped = 0
    /// How many frames at the head of `frames` the fault injector has already seen.
    var faultsApplied = 0

    init(frameCapacity: Int, maxQueued: Int = 4096) {
        self.frameCapacity = frameCapacity
        self.maxQueued = maxQueued
    }

    mutating func obtain() -> FrameBuffer? {
        guard frames.count < maxQueued else {
            dropped += 1
            return nil
        }
        let f = pool.popLast() ?? FrameBuffer(capacity: frameCapacity)
        f.length = 0
        return f
    }

    mutating func enqueue(_ f: FrameBuffer) { frames.append(f) }

    /// Returns a frame taken from `frames` (or never enqueued) to the free list.
    mutating func recycle(_ f: FrameBuffer) { pool.append(f) }

    /// Hands every queued frame to `body` in order and recycles them.
    public mutating func drain(_ body: (FrameBuffer) -> Void) {
        for f in frames { body(f) }
        pool.append(contentsOf: frames)
        frames.removeAll(keepingCapacity: true)
        faultsApplied = 0
    }

    public var isEmpty: Bool { frames.isEmpty }
}
