// What a TCP connection tells the layer above, one event at a time and in the order it happened,
// kept without allocating between two takes by the stack.

/// One thing the layer above should look at after a call into a connection.
public enum TCPEvent: UInt8, Sendable, Hashable {
    /// The handshake completed.
    case established = 1
    /// Bytes arrived in the receive buffer.
    case readable
    /// The send buffer has room again (the guest acknowledged, or memory freed up).
    case writable
    /// The guest's FIN arrived after all its bytes: what is in the receive buffer is all there
    /// will be (read until empty, then EOF).
    case peerClosed
    /// The connection is over for the layer above (both FINs acknowledged, a reset, a timeout).
    case closed

    /// Readable and writable say "look again"; the others each happen at most once.
    var isLevel: Bool { self == .readable || self == .writable }
}

/// The events a connection recorded since the last take, oldest first, packed 3 bits each.
///
/// A readable or writable already recorded since the last one-off event (established, peer
/// closed, closed) is not recorded again: the layer above looks at the connection when the
/// event is delivered, after everything recorded happened, so the repeat says nothing new. That
/// bounds a log to 11 events (each of the three one-offs, and the start, followed by at most one
/// readable and one writable), well inside the 21 a `UInt64` holds.
public struct TCPEventLog: Sequence, Sendable, Hashable {
    private var packed: UInt64 = 0
    public private(set) var count = 0
    static let capacity = 64 / 3

    public init() {}

    public var isEmpty: Bool { count == 0 }

    public mutating func record(_ event: TCPEvent) {
        if event.isLevel {
            var i = count - 1
            while i >= 0, let e = self[i], e.isLevel {
                if e == event { return }
                i -= 1
            }
        }
        guard count < Self.capacity else {
            assertionFailure("TCP event log overflow")
            return
        }
        packed |= UInt64(event.rawValue) << UInt64(3 * count)
        count += 1
    }

    private subscript(i: Int) -> TCPEvent? {
        TCPEvent(rawValue: UInt8(truncatingIfNeeded: packed >> UInt64(3 * i)) & 0b111)
    }

    public struct Iterator: IteratorProtocol {
        var rest: UInt64
        public mutating func next() -> TCPEvent? {
            guard let e = TCPEvent(rawValue: UInt8(truncatingIfNeeded: rest) & 0b111) else { return nil }
            rest >>= 3
            return e
        }
    }

    public func makeIterator() -> Iterator { Iterator(rest: packed) }
}
