// A bounded ring of frames copied off one sandbox's link, with wall-clock timestamps. The shard
// fills it as frames pass; the control plane drains it (into a pcap stream) from another thread.
#if canImport(Glibc)
    import Glibc
#endif
import Synchronization

public final class FrameCapture: Sendable {
    /// One captured frame: Ethernet onwards (the virtio-net header is not part of the frame).
    public struct Frame: Sendable, Hashable {
        /// Wall-clock time the frame passed, in nanoseconds since the Unix epoch.
        public var timestamp: UInt64
        /// True for frames the guest sent, false for frames the gateway sent to it.
        public var fromGuest: Bool
        /// The frame's first `snapLength` bytes.
        public var bytes: [UInt8]
        /// The frame's length before truncation.
        public var originalLength: Int

        public init(timestamp: UInt64, fromGuest: Bool, bytes: [UInt8], originalLength: Int) {
            self.timestamp = timestamp
            self.fromGuest = fromGuest
            self.bytes = bytes
            self.originalLength = originalLength
        }
    }

    private struct Ring {
        var frames: [Frame] = []
        var bytes = 0
        var dropped = 0
        var recorded = 0
    }

    /// Frames held at most before new ones are dropped (and counted).
    public let capacity: Int
    /// Bytes held at most: with TSO a single frame may be 64 KiB.
    public let byteCapacity: Int
    /// Bytes kept of each frame (pcap's snaplen).
    public let snapLength: Int
    /// The sandbox whose link this ring copies; its shard's driver holds the ring while it runs.
    public let sandbox: String
    private let ring = Mutex(Ring())

    init(sandbox: String, capacity: Int, byteCapacity: Int, snapLength: Int) {
        self.sandbox = sandbox
        self.capacity = max(1, capacity)
        self.byteCapacity = max(snapLength, byteCapacity)
        self.snapLength = snapLength
    }

    /// Copies `frame` (Ethernet onwards) into the ring; on the shard's thread.
    func record(_ frame: UnsafeRawBufferPointer, fromGuest: Bool, timestamp: UInt64) {
        let kept = min(frame.count, snapLength)
        ring.withLock { r in
            guard r.frames.count < capacity, r.bytes + kept <= byteCapacity else {
                r.dropped += 1
                return
            }
            let copy = Array(frame[..<kept])
            r.frames.append(Frame(timestamp: timestamp, fromGuest: fromGuest, bytes: copy, originalLength: frame.count))
            r.bytes += kept
            r.recorded += 1
        }
    }

    /// Takes up to `limit` of the oldest frames out of the ring.
    public func drain(limit: Int = .max) -> [Frame] {
        ring.withLock { r in
            let n = min(limit, r.frames.count)
            guard n > 0 else { return [] }
            let taken = Array(r.frames[..<n])
            r.frames.removeFirst(n)
            r.bytes -= taken.reduce(0) { $0 + $1.bytes.count }
            return taken
        }
    }

    /// Frames that did not fit because the reader fell behind.
    public var dropped: Int { ring.withLock { $0.dropped } }
    /// Frames recorded since the capture started.
    public var recorded: Int { ring.withLock { $0.recorded } }

    /// Wall-clock nanoseconds (CLOCK_REALTIME), the clock pcap timestamps use.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
