// The flow log: shards post events into bounded queues of their own and never wait; one writer
// thread drains them into a JSON-lines file (reopened on request, for logrotate), a ring of
// recent records for the API, and the live streams of followers, each bounded as well.
import Link
import Scheduling
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public final class FlowLog: Sendable {
    public struct Configuration: Sendable {
        /// The JSON-lines file; nil: no file (the API still has recent events and followers).
        public var path: String?
        /// Events one shard may have waiting for the writer; past it they are dropped and counted.
        public var queueCapacity = 16_384
        /// Records kept for `recent` (the API's answer without `follow`).
        public var recentCapacity = 4096
        /// Lines one follower may have waiting; a slow reader loses lines, counted, not traffic.
        public var followerCapacity = 8192
        /// How long the writer waits after the first event of a batch before it drains the
        /// queues; with no events it sleeps until one is posted.
        public var interval: Duration = .milliseconds(50)

        public init(path: String? = nil) { self.path = path }
    }

    /// Where one shard posts. Owned by the log; a shard keeps a reference.
    public final class Queue: Sendable {
        fileprivate let events: Mutex<[FlowEvent]>
        fileprivate let capacity: Int
        fileprivate let dropped = Atomic<Int>(0)
        /// The writer's: posted when this queue stops being empty.
        fileprivate let wake: Semaphore

        fileprivate init(capacity: Int, wake: Semaphore) {
            self.capacity = capacity
            self.wake = wake
            events = Mutex([])
        }

        /// Hands the event to the writer, or drops and counts it when the queue is full. The lock
        /// is held for an append, and the writer holds it only to swap the array out. Only the
        /// first event after a drain wakes the writer, so a busy shard pays one semaphore post per
        /// batch and an idle gateway's writer stays asleep.
        public func post(_ event: FlowEvent) {
            let (taken, first) = events.withLock { queue in
                guard queue.count < capacity else { return (false, false) }
                queue.append(event)
                return (true, queue.count == 1)
            }
            if !taken { dropped.add(1, ordering: .relaxed) }
            if first { wake.signal() }
        }
    }

    /// A live stream of records (`flows --follow`).
    public final class Follower: Sendable {
        /// Only this sandbox's records; nil: all.
        public let sandbox: String?
        fileprivate let lines = Mutex<[[UInt8]]>([])
        fileprivate let capacity: Int
        fileprivate let droppedLines = Atomic<Int>(0)

        fileprivate init(sandbox: String?, capacity: Int) {
            self.sandbox = sandbox
            self.capacity = capacity
        }

        /// The lines waiting (each a JSON object and a newline), oldest first.
        public func drain() -> [[UInt8]] { lines.withLock { l in defer { l.removeAll(keepingCapacity: true) }; return l } }

        /// Lines lost because this follower read too slowly.
        public var dropped: Int { droppedLines.load(ordering: .relaxed) }

        fileprivate func offer(_ line: [UInt8]) {
            let taken = lines.withLock { l in
                guard l.count < capacity else { return false }
                l.append(line)
                return true
            }
            if !taken { droppedLines.add(1, ordering: .relaxed) }
        }
    }

    public struct Counters: Sendable, Equatable {
        /// Events written (to the file, the ring and the followers).
        public var written = 0
        /// Events dropped because a shard's queue was full.
        public var dropped = 0
        /// File writes that failed (disk full, file gone): the events still reach followers.
        public var writeFailures = 0
    }

    public let configuration: Configuration
    public let queues: [Queue]
    private struct WriterState: ~Copyable {
        var file: OwnedDescriptor?
        var recent: [FlowRecord] = []
        var recentStart = 0
        var followers: [Follower] = []
        var counters = Counters()
        var reopen = false
        var stopped = false
    }
    private let state: Mutex<WriterState>
    private let writerDone = Semaphore()
    /// Posted by a queue that stops being empty, by `reopen` and by `stop`.
    private let wake = Semaphore()
    /// Times the writer thread drained the queues (not counting `flush`).
    let writerPasses = Atomic<Int>(0)

    /// Opens the file through `open` (which creates it with mode 0640 if missing, for appending;
    /// `HostPrivileges.openFlowLog`) and starts the writer.
    public init(
        configuration: Configuration, shards: Int,
        open: @escaping @Sendable (String) throws(GatewayError) -> OwnedDescriptor = { path throws(GatewayError) in
            try DirectPrivileges().openFlowLog(path: path)
        }
    ) throws(GatewayError) {
        self.configuration = configuration
        self.open = open
        let wake = wake
        queues = (0..<shards).map { _ in Queue(capacity: configuration.queueCapacity, wake: wake) }
        var initial = WriterState()
        if let path = configuration.path { initial.file = try open(path) }
        state = Mutex(consume initial)
        Thread { [self] in self.run() }.start()
    }

    /// Opens the file again after a SIGHUP; the privileged supervisor's when this process has none.
    private let open: @Sendable (String) throws(GatewayError) -> OwnedDescriptor

    /// Reopens the file at the next drain (after logrotate moved it away).
    public func reopen() {
        state.withLock { $0.reopen = true }
        wake.signal()
    }

    /// Stops the writer after a last drain.
    public func stop() {
        let wasRunning = state.withLock { s in
            defer { s.stopped = true }
            return !s.stopped
        }
        guard wasRunning else { return }
        wake.signal()
        writerDone.wait()
    }

    public var counters: Counters {
        var c = state.withLock { $0.counters }
        c.dropped = queues.reduce(0) { $0 + $1.dropped.load(ordering: .relaxed) }
        return c
    }

    /// The latest records kept (`limit` at most, newest last), of one sandbox or all.
    public func recent(sandbox: String? = nil, limit: Int = .max) -> [FlowRecord] {
        state.withLock { s in
            let ordered = Array(s.recent[s.recentStart...] + s.recent[..<s.recentStart])
            let chosen = sandbox.map { id in ordered.filter { $0.sandbox == id } } ?? ordered
            return Array(chosen.suffix(limit))
        }
    }

    public func follow(sandbox: String? = nil) -> Follower {
        let f = Follower(sandbox: sandbox, capacity: configuration.followerCapacity)
        state.withLock { $0.followers.append(f) }
        return f
    }

    public func unfollow(_ follower: Follower) {
        state.withLock { s in s.followers.removeAll { $0 === follower } }
    }

    /// Drains every queue now (the writer does this on its own `interval` after an event); for
    /// tests and before reading `recent` right after traffic.
    public func flush() { drain() }

    /// Asleep until something is posted; then, `interval` later (so that a burst is written in
    /// one go), drains everything. Waking on a timer instead kept an idle gateway's process
    /// busy 20 times a second (Tools/README-bench-idle.md).
    private func run() {
        let interval = configuration.interval.nanoseconds
        while true {
            wake.wait()
            // In slices, so that `stop` is not kept waiting for a long interval.
            var slept: UInt64 = 0
            while slept < interval, !state.withLock({ $0.stopped }) {
                let slice = min(interval - slept, 50_000_000)
                usleep(UInt32(slice / 1000))
                slept += slice
            }
            // Posts made before this drain are served by it.
            while wake.tryWait() {}
            let stopped = state.withLock { $0.stopped }
            drain()
            writerPasses.add(1, ordering: .relaxed)
            if stopped { break }
        }
        writerDone.signal()
    }

    private let drainLock = Mutex(())

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { b in
            var offset = 0
            while offset < b.count {
                let n = write(fd, b.baseAddress! + offset, b.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                offset += n
            }
            return true
        }
    }

    private func drain() {
        drainLock.withLock { _ in
            var batch: [FlowEvent] = []
            for q in queues {
                let events = q.events.withLock { e in defer { e.removeAll(keepingCapacity: true) }; return e }
                batch += events
            }
            var records: [FlowRecord] = []
            var lines: [[UInt8]] = []
            records.reserveCapacity(batch.count)
            for event in batch.sorted(by: { $0.time < $1.time }) {
                let record = event.record
                records.append(record)
                lines.append(record.jsonLine())
            }
            state.withLock { s in
                if s.reopen, let path = configuration.path {
                    s.reopen = false
                    // The old file closes as the new one takes its place; a failed open keeps it.
                    do { s.file = try open(path) } catch { s.counters.writeFailures += 1 }
                }
                if let fd = s.file?.rawValue, !lines.isEmpty, !Self.writeAll(fd, Array(lines.joined())) {
                    s.counters.writeFailures += 1
                }
                for (record, line) in zip(records, lines) {
                    if s.recent.count < configuration.recentCapacity {
                        s.recent.append(record)
                    } else {
                        s.recent[s.recentStart] = record
                        s.recentStart = (s.recentStart + 1) % s.recent.count
                    }
                    for f in s.followers where f.sandbox == nil || f.sandbox == record.sandbox { f.offer(line) }
                }
                s.counters.written += records.count
            }
        }
    }
}
