// Closes the TAP devices of detached sandboxes off the control path. Closing a TAP's last fd
// makes the kernel unregister the device, and that close waits for RCU grace periods: 15-35 ms
// each, one after another on the thread that closes. Here several threads close at once.
#if canImport(Glibc)
import Glibc
#endif
import Link
import NetStack
import Synchronization

final class DeviceReaper: Sendable {
    private struct Item {
        var namespace: String?
        var tap: TAPDevice
        var closed: @Sendable () -> Void
    }

    private struct State {
        /// Devices waiting for a thread.
        var queue: [Item] = []
        /// Devices not yet closed (queued or closing), by namespace.
        var pending: [String: Int] = [:]
        var pendingTotal = 0
        var workers = 0
    }

    private let state = Mutex(State())
    /// Threads closing at once. Each close mostly sleeps in the kernel waiting for a grace
    /// period that the others' closes share, so more threads than CPUs still help: SIGTERM
    /// with 1,000 sandboxes took 3.1 s with 16, 1.2 s with 64, 1.1 s with 128.
    let maxWorkers: Int

    init(maxWorkers: Int = 64) {
        self.maxWorkers = max(1, maxWorkers)
    }

    /// Takes a device whose stack has stopped and closes it on a reaper thread, then calls
    /// `closed`. Until then the device keeps its name, addresses and default route in
    /// `namespace`: see `waitUntilClosed`.
    func retire(_ tap: TAPDevice, namespace: String?, closed: @escaping @Sendable () -> Void = {}) {
        let spawn = state.withLock { s -> Bool in
            s.queue.append(Item(namespace: namespace, tap: tap, closed: closed))
            if let namespace { s.pending[namespace, default: 0] += 1 }
            s.pendingTotal += 1
            guard s.workers < maxWorkers else { return false }
            s.workers += 1
            return true
        }
        if spawn { Thread { [self] in work() }.start() }
    }

    private func work() {
        while true {
            let next = state.withLock { s -> Item? in
                if s.queue.isEmpty {
                    s.workers -= 1
                    return nil
                }
                return s.queue.removeFirst()
            }
            guard let item = next else { return }
            // Here is the wait for the kernel; the namespace is clear only once the device is gone.
            item.tap.close()
            item.closed()
            state.withLock { s in
                s.pendingTotal -= 1
                guard let ns = item.namespace else { return }
                if let n = s.pending[ns], n > 1 { s.pending[ns] = n - 1 } else { s.pending[ns] = nil }
            }
        }
    }

    /// Devices not yet closed.
    var pendingCount: Int { state.withLock { $0.pendingTotal } }

    /// Whether a device of namespace `namespace` is still being removed.
    func isClosing(namespace: String) -> Bool { state.withLock { $0.pending[namespace] != nil } }

    /// Waits until no retired device is left in `namespace`, so that a new sandbox there finds
    /// neither the old device's name (its index may be the same) nor its default route and
    /// addresses. Bounded: a close that takes longer than `limit` lets the caller go on (and
    /// find what is still there, if anything is).
    func waitUntilClosed(namespace: String, limit: Duration = .seconds(10)) {
        let deadline = monotonicNanoseconds() + limit.nanoseconds
        while isClosing(namespace: namespace) && monotonicNanoseconds() < deadline { usleep(500) }
    }

    /// Waits until every retired device is closed, up to `limit`.
    func drain(limit: Duration = .seconds(60)) {
        let deadline = monotonicNanoseconds() + limit.nanoseconds
        while pendingCount > 0 && monotonicNanoseconds() < deadline { usleep(1_000) }
    }
}
