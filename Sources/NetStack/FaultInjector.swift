// Deterministic network faults at the frame boundary (loss, duplication, reordering,
// corruption) for testing the stack and the guest against a bad link; off unless configured.
import Scheduling
import Wire

/// Applies a `FaultConfiguration` to frames in either direction. Output frames are rewritten
/// in place in a `FrameQueue`; input frames pass through `process(input:now:deliver:)`, which
/// hands on zero, one or two frames plus any held frame whose turn has come. Each direction
/// draws from its own generator, so the decisions for one do not depend on the traffic of the
/// other, and the same seed and the same frames give the same faults.
public final class FaultInjector {
    /// What was done to the frames of one direction.
    public struct Counters: Sendable, Equatable {
        /// Frames offered.
        public var frames = 0
        public var lost = 0
        public var duplicated = 0
        public var reordered = 0
        public var corrupted = 0
        /// Frames chosen for corruption but sent intact: not IP, or a GSO frame whose checksum
        /// the device would recompute over the damage (so nothing could catch it).
        public var corruptionSkipped = 0

        public init() {}
    }

    public let configuration: FaultConfiguration
    /// Bytes before the Ethernet header: the virtio-net header, when the device has one.
    public let vnetHeaderSize: Int
    public var inputCounters: Counters { input.counters }
    public var outputCounters: Counters { output.counters }

    /// Frames held back at once per direction; beyond this a frame chosen for reordering goes
    /// out in order, so holding never grows without bound.
    public static let maximumHeld = 16
    /// Largest input frame the injector copies (to hold it back or damage it): a 64 KiB GSO
    /// frame and its headers. Larger ones can still be lost or duplicated.
    static let inputCopyCapacity = 65_536 + 256

    private struct Held {
        var frame: FrameBuffer
        var remaining: Int
        var deadline: UInt64
    }

    private struct Side {
        var random: SplitMix64
        var enabled: Bool
        var counters = Counters()
        var held: [Held] = []

        init(seed: UInt64, enabled: Bool) {
            random = SplitMix64(seed: seed)
            self.enabled = enabled
            held.reserveCapacity(FaultInjector.maximumHeld)
        }
    }

    /// One frame's fate, drawn in full for every frame so the stream of draws does not depend
    /// on which faults happened.
    private struct Decision {
        var lose: Bool
        var corrupt: Bool
        var duplicate: Bool
        var hold: Bool
    }

    private var input: Side
    private var output: Side
    private let delay: UInt64
    /// The frames being worked through, swapped with the queue's array to avoid allocating.
    private var scratch: [FrameBuffer] = []
    /// Copies of input frames: free ones, and the one being damaged.
    private var inputPool: [FrameBuffer] = []

    public init(configuration: FaultConfiguration, vnetHeaderSize: Int) {
        self.configuration = configuration
        self.vnetHeaderSize = vnetHeaderSize
        delay = configuration.reorderDelay.nanoseconds
        // Two independent streams from one seed: the seed's own SplitMix64 sequence.
        var seeds = SplitMix64(seed: configuration.seed)
        input = Side(seed: seeds.next(), enabled: configuration.direction != .output && configuration.isActive)
        output = Side(seed: seeds.next(), enabled: configuration.direction != .input && configuration.isActive)
    }

    /// When a held frame is next due to be released by time.
    public var nextDeadline: UInt64? {
        var best: UInt64?
        for h in input.held where best == nil || h.deadline < best! { best = h.deadline }
        for h in output.held where best == nil || h.deadline < best! { best = h.deadline }
        return best
    }

    /// Frames held back in either direction.
    public var heldFrames: Int { input.held.count + output.held.count }

    private func decide(_ side: inout Side) -> Decision {
        let c = configuration
        return Decision(
            lose: side.random.chance(c.loss), corrupt: side.random.chance(c.corrupt),
            duplicate: side.random.chance(c.duplicate), hold: side.random.chance(c.reorder))
    }

    // MARK: - Output

    /// Applies faults to the frames queued since the last call and releases held frames that are
    /// due. Frames it has seen are not seen again, so calling it more than once is harmless.
    public func process(_ queue: inout FrameQueue, now: UInt64) {
        guard output.enabled else { return }
        let start = queue.faultsApplied
        if start < queue.frames.count {
            scratch.append(contentsOf: queue.frames[start...])
            queue.frames.removeSubrange(start...)
            for f in scratch { processOutput(f, &queue, now: now) }
            scratch.removeAll(keepingCapacity: true)
        }
        var i = 0
        while i < output.held.count {
            if output.held[i].deadline <= now {
                queue.frames.append(output.held.remove(at: i).frame)
            } else {
                i += 1
            }
        }
        queue.faultsApplied = queue.frames.count
    }

    private func processOutput(_ f: FrameBuffer, _ queue: inout FrameQueue, now: UInt64) {
        let d = decide(&output)
        output.counters.frames += 1
        if d.lose {
            output.counters.lost += 1
            queue.recycle(f)
            releaseOutput(&queue)
            return
        }
        if d.corrupt {
            if damage(f.storage.slice(0, f.length), random: &output.random, isOutput: true) {
                output.counters.corrupted += 1
            } else {
                output.counters.corruptionSkipped += 1
            }
        }
        if d.hold && output.held.count < FaultInjector.maximumHeld {
            releaseOutput(&queue)
            output.held.append(Held(frame: f, remaining: configuration.reorderDepth, deadline: now &+ delay))
            output.counters.reordered += 1
            return
        }
        queue.frames.append(f)
        if d.duplicate, let copy = queue.obtain() {
            copy.storage.copyMemory(from: f.bytes)
            copy.length = f.length
            queue.frames.append(copy)
            output.counters.duplicated += 1
        }
        releaseOutput(&queue)
    }

    /// Counts one frame past every held frame and queues those whose count ran out.
    private func releaseOutput(_ queue: inout FrameQueue) {
        var i = 0
        while i < output.held.count {
            output.held[i].remaining -= 1
            if output.held[i].remaining <= 0 {
                queue.frames.append(output.held.remove(at: i).frame)
            } else {
                i += 1
            }
        }
    }

    // MARK: - Input

    /// Applies faults to one frame from the device: `deliver` is called zero, one or two times
    /// for it (a damaged copy in place of the original when corrupted), then once for each held
    /// frame whose turn has come. `frame` need only live for the call.
    public func process(input frame: UnsafeRawBufferPointer, now: UInt64, deliver: (UnsafeRawBufferPointer) -> Void) {
        guard input.enabled else { return deliver(frame) }
        let d = decide(&input)
        input.counters.frames += 1
        if d.lose {
            input.counters.lost += 1
            releaseInput(deliver)
            return
        }
        let copyable = frame.count <= FaultInjector.inputCopyCapacity
        if d.hold && copyable && input.held.count < FaultInjector.maximumHeld {
            let copy = inputCopy(of: frame)
            if d.corrupt { noteInputDamage(damage(copy.storage.slice(0, copy.length), random: &input.random, isOutput: false)) }
            releaseInput(deliver)
            input.held.append(Held(frame: copy, remaining: configuration.reorderDepth, deadline: now &+ delay))
            input.counters.reordered += 1
            return
        }
        var delivered = frame
        var damaged: FrameBuffer?
        if d.corrupt {
            if copyable {
                let copy = inputCopy(of: frame)
                let done = damage(copy.storage.slice(0, copy.length), random: &input.random, isOutput: false)
                noteInputDamage(done)
                if done {
                    delivered = copy.bytes
                    damaged = copy
                } else {
                    inputPool.append(copy)
                }
            } else {
                input.counters.corruptionSkipped += 1
            }
        }
        deliver(delivered)
        if d.duplicate {
            input.counters.duplicated += 1
            deliver(delivered)
        }
        if let damaged { inputPool.append(damaged) }
        releaseInput(deliver)
    }

    /// Hands on held input frames whose delay has passed; the owner calls it from its timers.
    public func releaseInput(now: UInt64, deliver: (UnsafeRawBufferPointer) -> Void) {
        var i = 0
        while i < input.held.count {
            if input.held[i].deadline <= now {
                let h = input.held.remove(at: i)
                deliver(h.frame.bytes)
                inputPool.append(h.frame)
            } else {
                i += 1
            }
        }
    }

    private func releaseInput(_ deliver: (UnsafeRawBufferPointer) -> Void) {
        var i = 0
        while i < input.held.count {
            input.held[i].remaining -= 1
            if input.held[i].remaining <= 0 {
                let h = input.held.remove(at: i)
                deliver(h.frame.bytes)
                inputPool.append(h.frame)
            } else {
                i += 1
            }
        }
    }

    private func inputCopy(of frame: UnsafeRawBufferPointer) -> FrameBuffer {
        let copy = inputPool.popLast() ?? FrameBuffer(capacity: FaultInjector.inputCopyCapacity)
        copy.storage.copyMemory(from: frame)
        copy.length = frame.count
        return copy
    }

    private func noteInputDamage(_ done: Bool) {
        if done { input.counters.corrupted += 1 } else { input.counters.corruptionSkipped += 1 }
    }

    // MARK: - Corruption

    /// Changes one byte of the IP packet in `frame` so that a checksum covers it: the IPv4
    /// header checksum or the pseudo-header and L4 checksum (IPv6's first 8 bytes, which no
    /// checksum covers, are left alone). A partial checksum (NEEDS_CSUM) is completed first and
    /// the flags cleared, since a receiver would otherwise trust the damaged bytes. Returns false,
    /// leaving the frame as it was, when nothing could catch the damage.
    private func damage(_ frame: UnsafeMutableRawBufferPointer, random: inout SplitMix64, isOutput: Bool) -> Bool {
        let v = vnetHeaderSize
        let l3 = v + EthernetHeader.minimumLength
        guard frame.count > l3 else { return false }
        let bytes = UnsafeRawBufferPointer(frame)
        let r = CheckedReader(bytes, layer: "ethernet")
        var low: Int
        var high: Int
        guard let etherType = try? r.be16(v + 12) else { return false }
        switch etherType {
        case EtherType.ipv4:
            guard let totalLength = try? r.be16(l3 + 2), frame.count >= l3 + IPv4Header.minimumLength else {
                return false
            }
            low = l3
            high = min(frame.count, l3 + Int(totalLength))
        case EtherType.ipv6:
            guard let payloadLength = try? r.be16(l3 + 4), frame.count >= l3 + IPv6Header.length else { return false }
            low = l3 + 8
            high = min(frame.count, l3 + IPv6Header.length + Int(payloadLength))
        default:
            return false
        }
        guard high > low else { return false }
        if v > 0 {
            guard var header = try? VirtioNetHeader.parse(bytes, size: v) else { return false }
            // Segmentation recomputes every checksum over whatever the payload holds.
            if isOutput && header.gsoType != .none { return false }
            if header.flags.contains(.needsChecksum) {
                let packet = frame.slice(v, frame.count - v)
                do {
                    try InternetChecksum.completePartial(
                        packet, start: Int(header.checksumStart), offset: Int(header.checksumOffset))
                } catch {
                    return false
                }
            }
            if !header.flags.isEmpty {
                header.flags = []
                _ = try? header.emit(into: frame, size: v)
            }
        }
        let at = low + random.below(high - low)
        // Any nonzero XOR of one byte moves the one's-complement sum by less than 0xFFFF and
        // not by zero, so the checksum over it always notices (RFC 1071 §2).
        let mask = UInt8(1 + random.below(255))
        guard let old = try? r.u8(at) else { return false }
        frame.setU8(old ^ mask, at)
        return true
    }
}
