// Closes the TAP devices of detached sandboxes off the control path. Closing a TAP's last fd
// makes the kernel unregister the device, and that close waits for RCU grace periods: 15-35 ms
// each, one after another on the thread that closes. Here several threads close at once.
#if canImport(Glibc)
import Glibc
#endif
import Link
import Synchronization

final class DeviceReaper: Sendable {
    private struct State {
        /// Devices waiting for a thread, with the sandbox index whose name they carry.
        var queue: [(index: Int, tap: TAPDevice, closed: @Sendable () -> Void)] = []
        /// Devices not yet closed (queued or closing), by sandbox index.
        var pending: [Int: Int] = [:]
        var pendingTotal = 0
        var workers = 0
    }

    private let state = Mutex(State())
    /// Threads closing at once. Each close mostly sleeps in the kernel waiting for a grace
    /// period that the others' closes share, so more threads than CPUs still help.
    let maxWorkers: Int

    init(maxWorkers: Int = 16) {
        self.maxWorkers = max(1, maxWorkers)
    }

    /// Takes a device whose stack has stopped and closes it on a reaper thread, then calls
    /// `closed`. The device
    /// keeps its name (`gwt-<index>` in the namespace) until then: see `waitUntilClosed`.
    func retire(_ tap: TAPDevice, index: Int, closed: @escaping @Sendable () -> Void = {}) {
        let spawn = state.withLock { s -> Bool in
            s.queue.append((index, tap, closed))
            s.pending[index, default: 0] += 1
            s.pendingTotal += 1
            guard s.workers < maxWorkers else { return false }
            s.workers += 1
            return true
        }
        if spawn { Thread { [self] in work() }.start() }
    }

    private func work() {
        while true {
            let item = state.withLock { s -> (index: Int, tap: TAPDevice, closed: @Sendable () -> Void)? in
                if s.queue.isEmpty {
                    s.workers -= 1
                    return nil
                }
                return s.queue.removeFirst()
            }
            guard let item else { return }
            // Here is the wait for the kernel; the index is free only once the name is.
            item.tap.close()
            item.closed()
            state.withLock { s in
                s.pendingTotal -= 1
                if let n = s.pending[item.index], n > 1 { s.pending[item.index] = n - 1 } else { s.pending[item.index] = nil }
            }
        }
    }

    /// Devices not yet closed.
    var pendingCount: Int { state.withLock { $0.pendingTotal } }

    /// Whether a device named after sandbox index `index` is still being removed.
    func isClosing(index: Int) -> Bool { state.withLock { $0.pending[index] != nil } }

    /// Waits until no device of sandbox index `index` is left, so that a new sandbox given the
    /// same index can take the same device name in the same namespace. Bounded: a close that
    /// takes longer than `limit` lets the caller go on (and find the name taken, if it is).
    func waitUntilClosed(index: Int, limit: Duration = .seconds(10)) {
        let deadline = monotonicNanoseconds() + limit.nanosecondCount
        while isClosing(index: index) && monotonicNanoseconds() < deadline { usleep(500) }
    }

    /// Waits until every retired device is closed, up to `limit`.
    func drain(limit: Duration = .seconds(60)) {
        let deadline = monotonicNanoseconds() + limit.nanosecondCount
        while pendingCount > 0 && monotonicNanoseconds() < deadline { usleep(1_000) }
    }
}
