// One sandbox's token buckets for bytes each way, UDP datagrams and new flows, shared by its
// egress and published-port relays on its shard, and the flows waiting for tokens to come back.
import NetStack

/// Confined to the sandbox's shard loop. A relay asks how many bytes it may move, moves at most
/// that many, and says how many it moved; when none may move it stops (drops EPOLLIN, or leaves
/// the guest's bytes in the ring so its window closes) and waits here for one timer that wakes
/// every waiting flow when a quantum of tokens is back.
final class RateLimiter {
    enum Direction: Int, CaseIterable {
        /// Bytes written to host sockets.
        case toHost
        /// Bytes read from host sockets for the guest.
        case fromHost
    }

    /// What the limits did, for `SandboxStats.rateLimits`.
    struct Counters: Equatable {
        /// Times a relay stopped moving bytes for want of tokens, each way.
        var throttles = [0, 0]
        /// Nanoseconds some flow waited for tokens, each way.
        var limitedNanoseconds: [UInt64] = [0, 0]
        /// Guest bytes held back in the ring when a push stopped for tokens (counted once per stop).
        var bytesDelayed: UInt64 = 0
        var udpDropped = 0
        var connectionsRefused = 0
        var flowsRefused = 0
        var halfOpenResets = 0
    }

    private(set) var limits: RateLimits
    private var bytes: [TokenBucket?] = [nil, nil]
    private var packets: [TokenBucket?] = [nil, nil]
    private var connections: TokenBucket?
    private(set) var counters = Counters()

    private let loop: EventLoop?
    private var waiters: [[() -> Void]] = [[], []]
    private var timers: [EventLoop.TimerID?] = [nil, nil]
    private var waitingSince: [UInt64?] = [nil, nil]

    /// `defaultConnectionRate`: new flows per second when the limits set none (0: none).
    init(_ limits: RateLimits, defaultConnectionRate: Int, loop: EventLoop?) {
        self.loop = loop
        self.limits = limits
        self.defaultConnectionRate = defaultConnectionRate
        apply(limits)
    }

    private let defaultConnectionRate: Int

    /// New limits (a policy switch): the buckets start full at the new rates.
    func update(_ new: RateLimits) {
        guard new != limits else { return }
        limits = new
        apply(new)
        // Flows waiting under the old rate try again under the new one.
        for d in Direction.allCases { wake(d) }
    }

    private func apply(_ l: RateLimits) {
        bytes[Direction.toHost.rawValue] = l.toHostBytesPerSecond.map(Self.byteBucket)
        bytes[Direction.fromHost.rawValue] = l.fromHostBytesPerSecond.map(Self.byteBucket)
        let p = l.packetsPerSecond.map { TokenBucket(ratePerSecond: Double($0), burst: Double(max($0 / 10, 16))) }
        packets = [p, p]
        let c = l.connectionsPerSecond ?? (defaultConnectionRate > 0 ? defaultConnectionRate : nil)
        connections = c.map { TokenBucket(ratePerSecond: Double($0), burst: Double($0)) }
    }

    /// The burst: 20 ms at the rate, at least 64 KiB so a slow limit still fills whole segments.
    /// Small next to a second, so a limited flow runs smoothly rather than in bursts.
    static func byteBucket(_ rate: UInt64) -> TokenBucket {
        TokenBucket(ratePerSecond: Double(rate), burst: max(Double(rate) / 50, 65_536))
    }

    /// Whether bytes are limited `direction`: when not, relays never ask (one branch per pump).
    func limitsBytes(_ direction: Direction) -> Bool { bytes[direction.rawValue] != nil }

    /// Bytes that may move `direction` at `now` (Int.max when unlimited).
    func allowance(_ direction: Direction, now: UInt64) -> Int {
        guard bytes[direction.rawValue] != nil else { return .max }
        return Int(bytes[direction.rawValue]!.available(now: now))
    }

    /// `n` bytes moved (at most the allowance just given).
    func spend(_ direction: Direction, _ n: Int, now: UInt64) {
        guard n > 0, bytes[direction.rawValue] != nil else { return }
        _ = bytes[direction.rawValue]!.take(Double(n), now: now)
        if let since = waitingSince[direction.rawValue] {
            counters.limitedNanoseconds[direction.rawValue] += now > since ? now - since : 0
            waitingSince[direction.rawValue] = nil
        }
    }

    /// A relay stopped for want of tokens: `wake` runs once a quantum is back (or the limits change).
    /// `held`: guest bytes left waiting in the ring.
    func wait(_ direction: Direction, held: Int = 0, now: UInt64, _ wake: @escaping () -> Void) {
        let d = direction.rawValue
        counters.throttles[d] += 1
        counters.bytesDelayed &+= UInt64(held)
        if waitingSince[d] == nil { waitingSince[d] = now }
        waiters[d].append(wake)
        guard timers[d] == nil, let loop, bytes[d] != nil else { return }
        let quantum = bytes[d]!.burst / 4
        let at = now + max(bytes[d]!.delay(until: quantum, now: now), 1_000_000)
        timers[d] = loop.schedule(at: at) { [weak self] in
            guard let self else { return }
            self.timers[d] = nil
            self.wake(direction)
        }
    }

    private func wake(_ direction: Direction) {
        let d = direction.rawValue
        if let t = timers[d] { loop?.cancel(t) }
        timers[d] = nil
        let waiting = waiters[d]
        waiters[d] = []
        for w in waiting { w() }
    }

    /// One UDP datagram of `size` bytes `direction`: false when the packet or byte rate says drop.
    func admitDatagram(_ direction: Direction, size: Int, now: UInt64) -> Bool {
        let d = direction.rawValue
        if packets[d] != nil, !packets[d]!.take(1, now: now) {
            counters.udpDropped += 1
            return false
        }
        if bytes[d] != nil, !bytes[d]!.take(Double(size), now: now) {
            counters.udpDropped += 1
            return false
        }
        return true
    }

    /// A new flow while `open` are open: false (counted) when over the connection rate or `maxFlows`.
    func admitFlow(open: Int, now: UInt64) -> Bool {
        if let max = limits.maxFlows, open >= max {
            counters.flowsRefused += 1
            return false
        }
        if connections != nil, !connections!.take(1, now: now) {
            counters.connectionsRefused += 1
            return false
        }
        return true
    }

    func halfOpenReset() { counters.halfOpenResets += 1 }

    /// Time limited so far, each way, counting a wait still going on.
    func limitedSeconds(_ direction: Direction, now: UInt64) -> Double {
        let d = direction.rawValue
        var n = counters.limitedNanoseconds[d]
        if let since = waitingSince[d], now > since { n += now - since }
        return Double(n) / 1e9
    }
}
