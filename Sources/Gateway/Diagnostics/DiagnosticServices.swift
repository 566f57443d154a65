// The classic diagnostic services, served by a sandbox's stack itself on the gateway address:
// echo (RFC 862, port 7), discard (RFC 863, port 9) and a byte source (port 19, after chargen,
// RFC 864, but sending a seeded stream of a chosen length). Tests and the benchmark measure the
// stack alone with them, no host sockets involved.
import NetStack

public final class DiagnosticServices {
    public static let echoPort: UInt16 = 7
    public static let discardPort: UInt16 = 9
    public static let sourcePort: UInt16 = 19

    enum Role {
        case echo
        case discard
        /// `offset` is the position in the repeating source block.
        case source(remaining: Int, offset: Int)
    }

    private let driver: StackDriver
    private var roles: [TCPFlowID: Role] = [:]

    /// Bytes the byte source sends per connection.
    public var sourceLength: Int
    /// Seed of the byte source's stream; the same seed gives the same bytes.
    public var sourceSeed: UInt64 = 1
    /// Sees every byte the discard service takes, in order, per connection (for hashing).
    public var onDiscard: (TCPFlowID, UnsafeRawBufferPointer) -> Void = { _, _ in }
    /// Sees every byte the source sends, in order.
    public var onSource: (TCPFlowID, UnsafeRawBufferPointer) -> Void = { _, _ in }
    /// Called when a connection ends, with bytes received and sent.
    public var onClose: (TCPFlowID, _ received: Int, _ sent: Int) -> Void = { _, _, _ in }
    /// Connections to any other port, or whatever the services do not take.
    public var fallback: (StackEvent) -> Void

    private var received: [TCPFlowID: Int] = [:]
    private var sent: [TCPFlowID: Int] = [:]

    public init(driver: StackDriver, sourceLength: Int = 1 << 30) {
        self.driver = driver
        self.sourceLength = sourceLength
        fallback = { [unowned driver] event in
            // Nothing listens: refuse new flows so the guest's connect fails at once.
            if case .tcpConnectionRequest(let id, _) = event { driver.stack.tcpRefuse(id) }
        }
    }

    deinit {
        sourceBlockStorage?.deallocate()
    }

    private var sourceBlockStorage: UnsafeMutableRawBufferPointer?

    /// The byte source sends this seeded 1 MiB block over and over: generating bytes per
    /// transfer would cost more than the stack being measured.
    private var sourceBlock: UnsafeMutableRawBufferPointer {
        if let b = sourceBlockStorage { return b }
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        var stream = ByteStream(seed: sourceSeed)
        stream.fill(b)
        sourceBlockStorage = b
        return b
    }

    /// Install as the driver's event handler.
    public func handle(_ event: StackEvent) {
        let now = monotonicNanoseconds()
        let stack = driver.stack
        switch event {
        case .tcpConnectionRequest(let id, let key):
            switch key.remotePort {
            case Self.echoPort: roles[id] = .echo
            case Self.discardPort: roles[id] = .discard
            case Self.sourcePort: roles[id] = .source(remaining: sourceLength, offset: 0)
            default:
                fallback(event)
                return
            }
            stack.tcpAccept(id, now: now)
        case .tcp(let id, let ev):
            guard roles[id] != nil else {
                fallback(event)
                return
            }
            if ev == .closed {
                finish(id)
                return
            }
            service(id, now: now)
        default:
            fallback(event)
        }
    }

    private func service(_ id: TCPFlowID, now: UInt64) {
        let stack = driver.stack
        guard let role = roles[id] else { return }
        switch role {
        case .echo:
            // Move only what the send side can take, so nothing is buffered twice.
            while true {
                let room = stack.tcpWritableBytes(id)
                guard room > 0, let regions = stack.tcpReadableRegions(id), regions.byteCount > 0 else { break }
                var moved = 0
                for i in 0..<regions.count where moved < room {
                    let r = UnsafeRawBufferPointer(regions[i])
                    moved += stack.tcpWrite(id, UnsafeRawBufferPointer(rebasing: r[..<min(r.count, room - moved)]), now: now)
                }
                received[id, default: 0] += moved
                sent[id, default: 0] += moved
                stack.tcpConsume(id, moved, now: now)
                if moved == 0 { break }
            }
            if stack.tcpIsReadClosed(id) && stack.tcpReadableBytes(id) == 0 { stack.tcpShutdownWrite(id, now: now) }
        case .discard:
            while let regions = stack.tcpReadableRegions(id), regions.byteCount > 0 {
                for i in 0..<regions.count { onDiscard(id, UnsafeRawBufferPointer(regions[i])) }
                received[id, default: 0] += regions.byteCount
                stack.tcpConsume(id, regions.byteCount, now: now)
            }
            if stack.tcpIsReadClosed(id) { stack.tcpShutdownWrite(id, now: now) }
        case .source(var remaining, var offset):
            // Drain anything the guest sends, then fill the send buffer from the source block.
            stack.tcpDiscardReadable(id, now: now)
            let block = sourceBlock
            while remaining > 0 {
                let room = min(stack.tcpWritableBytes(id), remaining, block.count - offset)
                if room == 0 { break }
                let piece = UnsafeRawBufferPointer(rebasing: block[offset..<(offset + room)])
                let n = stack.tcpWrite(id, piece, now: now)
                onSource(id, UnsafeRawBufferPointer(rebasing: piece[..<n]))
                remaining -= n
                sent[id, default: 0] += n
                offset = (offset + n) % block.count
                if n < room { break }
            }
            roles[id] = .source(remaining: remaining, offset: offset)
            if remaining == 0 { stack.tcpShutdownWrite(id, now: now) }
        }
    }

    private func finish(_ id: TCPFlowID) {
        roles[id] = nil
        onClose(id, received.removeValue(forKey: id) ?? 0, sent.removeValue(forKey: id) ?? 0)
    }
}

/// A seeded byte stream (xorshift64*), fast enough to feed multi-gigabit transfers.
/// Chunk boundaries do not matter: the stream is the same however `fill` calls cut it.
public struct ByteStream: Sendable {
    private var state: UInt64
    private var pending: UInt64 = 0
    private var pendingBytes = 0

    public init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    @inline(__always)
    private mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var i = 0
        let n = buffer.count
        while pendingBytes > 0 && i < n {
            buffer[i] = UInt8(truncatingIfNeeded: pending)
            pending >>= 8
            pendingBytes -= 1
            i += 1
        }
        while i + 8 <= n {
            buffer.storeBytes(of: next().littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        if i < n {
            pending = next()
            pendingBytes = 8
            while i < n {
                buffer[i] = UInt8(truncatingIfNeeded: pending)
                pending >>= 8
                pendingBytes -= 1
                i += 1
            }
        }
    }
}
