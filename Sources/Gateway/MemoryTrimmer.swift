// Gives memory freed in malloc's arenas back to the system (malloc_trim) once a burst of frees is
// over, not after each: a trim locks every arena while it walks it.
import CGatewayShims
import Dispatch
import NetStack
import Synchronization

final class MemoryTrimmer: Sendable {
    private let soonPending = Atomic<Bool>(false)
    private let quietPending = Atomic<Bool>(false)
    /// When the trim asked for by `afterQuiet` is due (monotonic nanoseconds).
    private let quietDeadline = Atomic<UInt64>(0)
    private let quietDelay: UInt64

    /// - Parameter quietDelay: how long after the last `afterQuiet` its trim runs.
    init(quietDelay: Duration) {
        self.quietDelay = quietDelay.nanoseconds
    }

    /// A trim a moment from now, shared with every other asked for meanwhile (a burst of detaches).
    func soon() {
        guard soonPending.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
            soonPending.store(false, ordering: .releasing)
            gw_release_free_memory()
        }
    }

    /// A trim once `quietDelay` has passed since the last call. Traffic that has ended leaves
    /// its connections in TIME-WAIT for a while: what they hold is freed only then.
    func afterQuiet() {
        quietDeadline.store(monotonicNanoseconds() + quietDelay, ordering: .relaxed)
        guard quietPending.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        waitForQuiet()
    }

    private func waitForQuiet() {
        let now = monotonicNanoseconds()
        let due = quietDeadline.load(ordering: .relaxed)
        guard now >= due else {
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(due - now))) { [self] in waitForQuiet() }
            return
        }
        quietPending.store(false, ordering: .releasing)
        gw_release_free_memory()
    }
}
