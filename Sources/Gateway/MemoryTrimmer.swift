// Gives memory freed in malloc's arenas back to the system (malloc_trim) once a burst of frees is
// over, not after each: a trim locks every arena while it walks it.
import CGatewayShims
import NetStack
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The trims run on a thread of their own that sleeps while none is due. They ran on Dispatch's
/// global queue before: its first use starts a monitor of Dispatch's thread pool that fires every
/// second for the life of the process, so after its first detach or burst of traffic an idle
/// gateway woke once a second for good (Tools/README-bench-idle.md).
final class MemoryTrimmer: Sendable {
    private struct Due {
        /// When the trim asked for by `soon` is due (monotonic nanoseconds).
        var soon: UInt64?
        /// When the trim asked for by `afterQuiet` is due; each call moves it on.
        var quiet: UInt64?
        var stopped = false
    }

    /// What the trimmer and its thread share; the thread holds this, not the trimmer, so the
    /// trimmer's deinit can end it.
    private final class Shared: Sendable {
        let due = Mutex(Due())
        let wake = Semaphore()
        let passes = Atomic<Int>(0)
    }

    private let shared = Shared()
    private let quietDelay: UInt64
    private static let soonDelay: UInt64 = 100_000_000

    /// - Parameters:
    ///   - quietDelay: how long after the last `afterQuiet` its trim runs.
    ///   - trim: gives the memory back (tests count calls instead).
    init(quietDelay: Duration, trim: @escaping @Sendable () -> Void = { gw_release_free_memory() }) {
        self.quietDelay = quietDelay.nanoseconds
        let shared = shared
        Thread { Self.run(shared, trim) }.start()
    }

    deinit {
        shared.due.withLock { $0.stopped = true }
        shared.wake.signal()
    }

    /// Times the thread woke (for a trim, a new ask, or a deadline that moved).
    var passes: Int { shared.passes.load(ordering: .relaxed) }

    /// A trim a moment from now, shared with every other asked for meanwhile (a burst of detaches).
    func soon() {
        let first = shared.due.withLock { d in
            guard d.soon == nil else { return false }
            d.soon = monotonicNanoseconds() + Self.soonDelay
            return true
        }
        if first { shared.wake.signal() }
    }

    /// A trim once `quietDelay` has passed since the last call. Traffic that has ended leaves
    /// its connections in TIME-WAIT for a while: what they hold is freed only then.
    func afterQuiet() {
        let first = shared.due.withLock { d in
            let first = d.quiet == nil
            d.quiet = monotonicNanoseconds() + quietDelay
            return first
        }
        // A later call only moves the deadline on: the thread finds that when it wakes for the old one.
        if first { shared.wake.signal() }
    }

    private static func run(_ shared: Shared, _ trim: @Sendable () -> Void) {
        while true {
            let (next, stopped) = shared.due.withLock { d in ([d.soon, d.quiet].compactMap { $0 }.min(), d.stopped) }
            if stopped { return }
            let now = monotonicNanoseconds()
            if let next, next <= now {
                shared.due.withLock { d in
                    if let s = d.soon, s <= now { d.soon = nil }
                    if let q = d.quiet, q <= now { d.quiet = nil }
                }
                trim()
                continue
            }
            if let next {
                _ = shared.wake.wait(nanoseconds: next - now)
            } else {
                shared.wake.wait()
            }
            shared.passes.add(1, ordering: .relaxed)
        }
    }
}
