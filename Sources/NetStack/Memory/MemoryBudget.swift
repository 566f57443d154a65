// How much buffer memory one sandbox's connections may promise and hold, and the process-wide
// limit all sandboxes share. At the limit windows close and relays stop reading: nothing is dropped.
import Synchronization

/// The limit every sandbox's budget also draws from; shared by all shards.
public final class SharedMemoryBudget: Sendable {
    public let limit: Int
    private let taken = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = max(0, limit)
    }

    public var reserved: Int { taken.load(ordering: .relaxed) }

    /// Takes up to `n` bytes; returns how many it got.
    func reserve(_ n: Int) -> Int {
        var current = taken.load(ordering: .relaxed)
        while true {
            let grant = min(n, limit - current)
            guard grant > 0 else { return 0 }
            let (exchanged, original) = taken.compareExchange(
                expected: current, desired: current + grant, ordering: .relaxed)
            if exchanged { return grant }
            current = original
        }
    }

    func release(_ n: Int) {
        taken.wrappingSubtract(n, ordering: .relaxed)
    }
}

/// One sandbox's buffer memory. Connections reserve bytes before they promise them (a receive
/// window) or read them (from a host socket into a send buffer), and release them once the bytes
/// are consumed or acknowledged; chunks held are counted beside the reservations.
public final class MemoryBudget {
    public let limit: Int
    public let shared: SharedMemoryBudget?
    /// Bytes promised or buffered by this sandbox's connections.
    public private(set) var reserved = 0
    /// Bytes of chunks this sandbox's buffers hold now (reservations rounded up to chunks).
    public internal(set) var heldBytes = 0
    public internal(set) var peakHeldBytes = 0
    /// Reservations the budget cut short: a window offered smaller, a host socket left unread.
    public private(set) var shortfalls = 0
    /// Time spent with some reservation cut short, until one is granted whole again.
    private var atLimitSince: UInt64?
    private var atLimitTotal: UInt64 = 0

    public init(limit: Int, shared: SharedMemoryBudget? = nil) {
        self.limit = max(0, limit)
        self.shared = shared
    }

    /// A budget that never says no (stacks outside a gateway, tests).
    public static func unlimited() -> MemoryBudget { MemoryBudget(limit: .max / 4) }

    /// Bytes that could be reserved now.
    public var available: Int {
        let own = limit - reserved
        guard let shared else { return own }
        return min(own, shared.limit - shared.reserved)
    }

    /// Nanoseconds spent at the limit, up to `now`.
    public func timeAtLimit(now: UInt64) -> UInt64 {
        atLimitTotal + (atLimitSince.map { now > $0 ? now - $0 : 0 } ?? 0)
    }

    public var isAtLimit: Bool { atLimitSince != nil }

    /// Takes up to `n` bytes; returns how many were granted.
    func reserve(_ n: Int, now: UInt64) -> Int {
        guard n > 0 else { return 0 }
        var grant = min(n, limit - reserved)
        if let shared, grant > 0 { grant = shared.reserve(grant) }
        grant = max(0, grant)
        reserved += grant
        if grant < n {
            shortfalls += 1
            if atLimitSince == nil { atLimitSince = now }
        } else if let since = atLimitSince {
            atLimitTotal += now > since ? now - since : 0
            atLimitSince = nil
        }
        return grant
    }

    func release(_ n: Int) {
        guard n > 0 else { return }
        precondition(n <= reserved, "released more than reserved")
        reserved -= n
        shared?.release(n)
    }

    func noteHeld(_ delta: Int) {
        heldBytes += delta
        if heldBytes > peakHeldBytes { peakHeldBytes = heldBytes }
    }
}
