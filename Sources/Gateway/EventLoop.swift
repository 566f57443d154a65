// A shard's event loop: one thread, one epoll set, timers, and a task queue that other threads
// submit into. Everything a shard owns is touched only on this thread, so the data path takes no lock.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CGatewayShims
import Link
import Scheduling
import SystemPackage

/// Monotonic nanoseconds, the clock every stack and timer in a shard runs on.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Shared by every thread that submits work, so it is Sendable; but the checker cannot see which
/// of its fields are confined. Those that other threads touch are `Mutex`/`Atomic` or `let`; the
/// rest (handlers, timers, counters, the read buffer) are the loop thread's alone, which
/// `assertInLoop` checks at each entry point in debug builds. Values a shard owns travel to it in
/// a `LoopBound`.
public final class EventLoop: @unchecked Sendable {
    public typealias Handler = (_ events: UInt32) -> Void

    public struct TimerID: Hashable, Sendable { let raw: UInt64 }

    private let epoll: OwnedDescriptor
    private let wake: OwnedDescriptor
    private var epfd: Int32 { epoll.rawValue }
    private var wakeFD: Int32 { wake.rawValue }
    /// Handlers by slot; slots are reused.
    private var handlers: [Handler?] = []
    /// Each slot's registration count. The epoll data carries it beside the slot, so an event
    /// already fetched for a descriptor that a handler earlier in the same batch unregistered is
    /// not delivered to the descriptor registered in its slot since.
    private var generations: [UInt32] = []
    private var fdToken: [Int32: Int] = [:]
    private var freeTokens: [Int] = []

    /// The epoll data of `slot`'s current registration.
    private func epollData(_ slot: Int) -> UInt64 { UInt64(generations[slot]) << 32 | UInt64(slot) }

    private let pending = Mutex<[@Sendable () -> Void]>([])
    private let stopping = Atomic<Bool>(false)

    private var timerHeap = DeadlineHeap<UInt64>()
    private var timerActions: [UInt64: () -> Void] = [:]
    private var nextTimerID: UInt64 = 1

    /// The CPU this loop's thread is pinned to, when pinned.
    public let cpu: Int?
    public let name: String
    private let threadID = Atomic<UInt>(0)
    /// After handling I/O the loop keeps polling (without sleeping) this long for more before it
    /// blocks: an answer that comes back within it is picked up without a wake-up, which on a
    /// virtual CPU costs more than the work itself. 0 turns polling off.
    public var busyPollNanoseconds: UInt64 { governor.window }
    /// Decides, from how the loop's recent quiet spells ended, whether polling pays now.
    private var governor: SpinGovernor
    /// The percentage of recent quiet spells that ended within the polling window (see
    /// `SpinGovernor`).
    public var busyPollHitPercent: Int { governor.hitPercent }
    /// Bursts of I/O after which the loop slept at once because polling had not been paying.
    public private(set) var pollsSkipped = 0
    /// Passes that handled fd events; of those, the ones found while polling; and the times the
    /// loop went to sleep (the last two only with polling on).
    public private(set) var wakeups = 0
    public private(set) var polledWakeups = 0
    public private(set) var sleeps = 0
    /// Passes of the loop, whatever ended its wait (I/O, a task, a timer, nothing): an idle shard
    /// makes none.
    public private(set) var passes = 0
    /// Run once each, at the end of the next pass that handles I/O, runs a task or fires a timer
    /// (`whenActive`).
    private var onActivity: [() -> Void] = []

    /// The nice value the loop's thread takes when it starts (nil: the process's).
    public let nice: Int32?

    /// Where the loop's device readers put each frame they read: one read is handled whole
    /// before the next, so the sandboxes of a shard share this buffer rather than each keeping
    /// 64 KB of its own resident after its first large frame.
    public var frameReadBuffer: UnsafeMutableRawBufferPointer {
        assertInLoop()
        if let b = readBufferStorage { return b }
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.frameReadBufferSize, alignment: 16)
        readBufferStorage = b
        return b
    }
    /// A virtio-net header (at most 12 bytes) and the largest frame a TAP gives.
    public static let frameReadBufferSize = 12 + 65_550
    private var readBufferStorage: UnsafeMutableRawBufferPointer?

    /// `busyPollHitPercent`: poll only while at least this share of recent quiet spells ended
    /// within `busyPoll` (0: after every burst of I/O).
    public init(
        name: String, cpu: Int? = nil, busyPoll: Duration = .zero, busyPollHitPercent: Int = 0, nice: Int32? = nil
    ) throws(GatewayError) {
        self.name = name
        self.cpu = cpu
        self.nice = nice
        governor = SpinGovernor(window: busyPoll.nanoseconds, minimumHitPercent: busyPollHitPercent)
        do {
            epoll = try OwnedDescriptor.adopting(result: epoll_create1(Int32(EPOLL_CLOEXEC)))
        } catch {
            throw GatewayError(.system, "epoll_create1 for \(name): \(error)", cause: .system(error))
        }
        do {
            wake = try OwnedDescriptor.adopting(result: eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)))
        } catch {
            throw GatewayError(.system, "eventfd for \(name): \(error)", cause: .system(error))
        }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = UInt64.max
        epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev)
    }

    deinit {
        readBufferStorage?.deallocate()
    }

    /// True on the loop's own thread.
    public var inLoop: Bool { threadID.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Traps (debug builds) when the loop's confined state is touched from another thread once
    /// the loop runs: the data path takes no lock, so that would be a data race.
    @inline(__always)
    public func assertInLoop(_ function: StaticString = #function) {
        assert(threadID.load(ordering: .relaxed) == 0 || inLoop, "\(name): \(function) called off the loop's thread")
    }

    /// epoll_ctl calls that failed after a registration succeeded (a bug: an fd closed while
    /// watched, or watched twice).
    public private(set) var epollFailures = 0

    // MARK: - File descriptors (loop thread only)

    public func register(fd: Int32, events: UInt32, handler: @escaping Handler) throws(GatewayError) {
        assertInLoop()
        let token = freeTokens.popLast() ?? {
            handlers.append(nil)
            generations.append(0)
            return handlers.count - 1
        }()
        handlers[token] = handler
        generations[token] &+= 1
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = epollData(token)
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 else {
            let e = Errno.last
            handlers[token] = nil
            freeTokens.append(token)
            throw GatewayError(.system, "epoll add fd \(fd) on \(name): \(e)", cause: .system(e))
        }
        fdToken[fd] = token
    }

    public func modify(fd: Int32, events: UInt32) {
        assertInLoop()
        guard let token = fdToken[fd] else { return }
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = epollData(token)
        if epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) != 0 { epollFailures += 1 }
    }

    public func unregister(fd: Int32) {
        assertInLoop()
        guard let token = fdToken.removeValue(forKey: fd) else { return }
        if epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil) != 0 { epollFailures += 1 }
        handlers[token] = nil
        freeTokens.append(token)
    }

    // MARK: - Timers (loop thread only)

    @discardableResult
    public func schedule(at deadline: UInt64, _ action: @escaping () -> Void) -> TimerID {
        assertInLoop()
        let id = nextTimerID
        nextTimerID += 1
        timerActions[id] = action
        timerHeap.insert(.init(deadline: deadline, id: id))
        return TimerID(raw: id)
    }

    /// Cancelled timers stay in the heap and are skipped when they surface.
    public func cancel(_ id: TimerID) {
        assertInLoop()
        timerActions[id.raw] = nil
    }

    /// Runs `action` once at the end of the next pass that does any work: periodic upkeep that
    /// has nothing left to do stops its timer and waits here for the shard to be busy again,
    /// so that an idle shard sleeps.
    public func whenActive(_ action: @escaping () -> Void) {
        assertInLoop()
        onActivity.append(action)
    }

    // MARK: - Cross-thread

    /// Runs `task` on the loop thread soon; safe from any thread.
    public func submit(_ task: @escaping @Sendable () -> Void) {
        pending.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Runs `body` on the loop and waits for its result (control plane only, never the data path).
    public func submitAndWait<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        if inLoop { return try body() }
        let box = Mutex<Result<T, any Error>?>(nil)
        let done = Semaphore()
        submit {
            let r = Result { try body() }
            box.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return try box.withLock { $0! }.get()
    }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    // MARK: - Running

    /// Runs until `stop`. Call on the thread that is to own the loop.
    public func run() {
        threadID.store(UInt(pthread_self()), ordering: .relaxed)
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        // When the last fd event was handled; polling goes on until busyPollNanoseconds after it.
        var lastIO: UInt64 = 0
        // Whether the loop has found nothing (or waited) since lastIO: the next I/O ends a quiet
        // spell, whose length tells the governor whether polling would have caught it.
        var quiet = false
        while !stopping.load(ordering: .acquiring) {
            var timeout = millisecondsToNextTimer()
            var polling = false
            if busyPollNanoseconds > 0 && timeout != 0 {
                polling = governor.polls && monotonicNanoseconds() &- lastIO < busyPollNanoseconds
                if polling { timeout = 0 } else { sleeps += 1 }
                quiet = quiet || !polling
            }
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, Int32($0.count), timeout) }
            if n < 0 && Errno.last != .interrupted { break }
            passes += 1
            // Those asked for before this pass: one asked for by its own work waits for the next.
            let waiting = onActivity.count
            var handled = false
            if n > 0 {
                for i in 0..<Int(n) {
                    let token = events[i].data.u64
                    if token == UInt64.max {
                        var v: UInt64 = 0
                        _ = read(wakeFD, &v, 8)
                        continue
                    }
                    let t = Int(token & 0xFFFF_FFFF)
                    if t < handlers.count, generations[t] == UInt32(token >> 32), let h = handlers[t] {
                        h(events[i].events)
                        handled = true
                    }
                }
            }
            if handled { wakeups += 1 }
            if handled && busyPollNanoseconds > 0 {
                if polling { polledWakeups += 1 }
                let now = monotonicNanoseconds()
                if quiet { governor.spellEnded(after: now &- lastIO) }
                quiet = false
                lastIO = now
                if !governor.polls { pollsSkipped += 1 }
            } else if polling && n == 0 {
                // Nothing yet: let anything else runnable on this CPU go first.
                quiet = true
                sched_yield()
            }
            runTasks()
            let fired = runTimers()
            if waiting > 0 && (n > 0 || fired) {
                let due = onActivity.prefix(waiting)
                onActivity.removeFirst(waiting)
                for action in due { action() }
            }
        }
        runTasks()
    }

    private func runTasks() {
        let tasks = pending.withLock { q -> [@Sendable () -> Void] in
            let t = q
            q.removeAll()
            return t
        }
        for t in tasks { t() }
    }

    /// Runs the due timers; true when any was still wanted (not cancelled).
    private func runTimers() -> Bool {
        let now = monotonicNanoseconds()
        var fired = false
        while let top = timerHeap.first, top.deadline <= now {
            timerHeap.popMin()
            if let action = timerActions.removeValue(forKey: top.id) {
                action()
                fired = true
            }
        }
        return fired
    }

    private func millisecondsToNextTimer() -> Int32 {
        while let top = timerHeap.first, timerActions[top.id] == nil { timerHeap.popMin() }
        // No timer: sleep until I/O or a task (`stop` is one) wakes the loop.
        guard let top = timerHeap.first else { return -1 }
        let now = monotonicNanoseconds()
        if top.deadline <= now { return 0 }
        return Int32(min((top.deadline - now + 999_999) / 1_000_000, UInt64(Int32.max)))
    }

    /// Starts a thread (pinned when `cpu` is set) that runs the loop. `raiseNice` is asked to set
    /// the thread's nice value (its thread ID, the value) when this process may not lower it itself.
    public func startThread(raiseNice: (@Sendable (Int32, Int32) -> Void)? = nil) {
        let loop = self
        let thread = Thread {
            // Named so that top -H, perf and /proc/PID/task/*/comm tell the shards apart.
            _ = gw_set_thread_name(Self.threadName(loop.name))
            loop.pinIfNeeded()
            // Without CAP_SYS_NICE (or RLIMIT_NICE) a negative value is refused; the supervisor
            // then sets it, or the loop runs at the process's priority, which costs latency and
            // throughput under load.
            if let nice = loop.nice, gw_set_thread_nice(nice) != 0 { raiseNice?(gw_current_thread_id(), nice) }
            loop.run()
        }
        thread.start()
    }

    /// `name` cut to the 15 bytes a thread name holds, at a character boundary.
    static func threadName(_ name: String) -> String {
        var cut = Substring(name)
        while cut.utf8.count > 15 { cut = cut.dropLast() }
        return String(cut)
    }

    private func pinIfNeeded() {
        if let cpu { try? pinCurrentThread(cpu) }
    }
}

/// A counting semaphore for the control plane's waits and the flow log's writer. The `sem_t` lives in storage of its own,
/// so the address every sem_* call gets stays the same for the semaphore's life (a stored
/// property's address, taken with `&`, is only good for the one call).
final class Semaphore: @unchecked Sendable {
    // Sound: the pointer is set once and never changes; sem_post and sem_wait are made to be
    // called on one sem_t from any threads at once.
    private let sem: UnsafeMutablePointer<sem_t>

    init() {
        sem = .allocate(capacity: 1)
        sem.initialize(to: sem_t())
        sem_init(sem, 0, 0)
    }

    deinit {
        sem_destroy(sem)
        sem.deinitialize(count: 1)
        sem.deallocate()
    }

    func signal() { sem_post(sem) }
    func wait() { while sem_wait(sem) != 0 && errno == EINTR {} }
    /// Waits for a post for at most `nanoseconds`; false when the time ran out first.
    func wait(nanoseconds: UInt64) -> Bool {
        // sem_timedwait takes a CLOCK_REALTIME deadline.
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let ns = UInt64(deadline.tv_nsec) + nanoseconds % 1_000_000_000
        deadline.tv_sec += Int(nanoseconds / 1_000_000_000 + ns / 1_000_000_000)
        deadline.tv_nsec = Int(ns % 1_000_000_000)
        while sem_timedwait(sem, &deadline) != 0 {
            if errno != EINTR { return false }
        }
        return true
    }

    /// Takes one post if there is one, without waiting.
    func tryWait() -> Bool { sem_trywait(sem) == 0 }
}

/// A plain pthread running one closure.
final class Thread: Sendable {
    private let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    func start() {
        var tid = pthread_t()
        let unmanaged = Unmanaged.passRetained(self)
        pthread_create(&tid, nil, { arg in
            let t = Unmanaged<Thread>.fromOpaque(arg!).takeRetainedValue()
            t.body()
            return nil
        }, unmanaged.toOpaque())
        pthread_detach(tid)
    }
}
