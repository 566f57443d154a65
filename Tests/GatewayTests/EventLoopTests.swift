// The shard event loop on its own: fd handlers, timers, cross-thread tasks, busy polling (picks
// up I/O that follows I/O without sleeping, and sleeps once the window has passed), and the
// checks that trap when a shard's state is touched from another thread; an idle loop sleeps.
#if canImport(Glibc)
import Glibc
#endif
import Testing
import Synchronization
import CGatewayShims
@testable import Gateway

/// A count shared between the loop thread and the test.
private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func add() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

@Suite struct EventLoopTests {
    @Test func threadNamesFitTheKernelsFifteenBytesWholeCharactersOnly() {
        #expect(EventLoop.threadName("shard-3") == "shard-3")
        #expect(EventLoop.threadName("shard-1234567890123") == "shard-123456789")
        // "é" is two bytes: cutting at 15 would split the last one.
        let cut = EventLoop.threadName("shard-éééééééé")
        #expect(cut == "shard-éééé" && cut.utf8.count == 14)
    }

    /// A connected pair of non-blocking datagram sockets; [0] goes to the loop.
    private func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        let rc = socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
        try #require(rc == 0)
        return (fds[0], fds[1])
    }

    /// Starts `loop`, registers `fd` with a handler that drains it and counts datagrams.
    private func watch(_ loop: EventLoop, _ fd: Int32, _ count: Counter) throws {
        loop.startThread()
        try loop.submitAndWait {
            try loop.register(fd: fd, events: EPOLLIN.rawValue) { _ in
                var b: UInt8 = 0
                while read(fd, &b, 1) == 1 { count.add() }
            }
        }
    }

    private func waitFor(_ what: () -> Bool) async throws {
        for _ in 0..<400 where !what() { try await Task.sleep(for: .milliseconds(5)) }
        #expect(what())
    }

    @Test func handlersTimersAndTasksRunOnTheLoop() async throws {
        let loop = try EventLoop(name: "test-basic")
        let (a, b) = try socketPair()
        defer { loop.stop(); close(a); close(b) }
        let count = Counter()
        try watch(loop, a, count)
        var one: UInt8 = 1
        #expect(write(b, &one, 1) == 1)
        try await waitFor { count.count == 1 }

        let fired = Counter()
        let cancelled = Counter()
        try loop.submitAndWait {
            #expect(loop.inLoop)
            loop.schedule(at: monotonicNanoseconds() + 20_000_000) { fired.add() }
            let t = loop.schedule(at: monotonicNanoseconds() + 10_000_000) { cancelled.add() }
            loop.cancel(t)
        }
        #expect(!loop.inLoop)
        try await waitFor { fired.count == 1 }
        try await Task.sleep(for: .milliseconds(30))
        #expect(cancelled.count == 0)
    }

    /// With no timer, no I/O and no task the loop does not wake at all (it used to once a second).
    @Test func anIdleLoopSleeps() async throws {
        let loop = try EventLoop(name: "test-idle")
        defer { loop.stop() }
        loop.startThread()
        let before = try loop.submitAndWait { loop.passes }
        try await Task.sleep(for: .milliseconds(1300))
        // The one pass since is the task that reads the count.
        #expect(try loop.submitAndWait { loop.passes } == before + 1)
    }

    /// An action left for the next work runs then, once, and not while the loop sleeps.
    @Test func whenActiveWaitsForWork() async throws {
        let loop = try EventLoop(name: "test-active")
        defer { loop.stop() }
        loop.startThread()
        let ran = Counter()
        try loop.submitAndWait { loop.whenActive { ran.add() } }
        try await Task.sleep(for: .milliseconds(50))
        #expect(ran.count == 0)
        loop.submit {}
        try await waitFor { ran.count == 1 }
        try loop.submitAndWait { loop.schedule(at: monotonicNanoseconds() + 1_000_000) {} }
        try await Task.sleep(for: .milliseconds(30))
        #expect(ran.count == 1)
    }

    /// Registers `first` and `second`: a datagram on `first` makes the handler send one to
    /// `feed` (the other end of `second`), so the second event is waiting when the loop next
    /// looks, whatever the machine's load.
    private func chain(_ loop: EventLoop, first: Int32, second: Int32, feed: Int32, _ count: Counter) throws {
        loop.startThread()
        try loop.submitAndWait {
            try loop.register(fd: first, events: EPOLLIN.rawValue) { _ in
                var b: UInt8 = 0
                while read(first, &b, 1) == 1 { count.add() }
                var one: UInt8 = 1
                _ = write(feed, &one, 1)
            }
            try loop.register(fd: second, events: EPOLLIN.rawValue) { _ in
                var b: UInt8 = 0
                while read(second, &b, 1) == 1 { count.add() }
            }
        }
    }

    /// Runs `chain` on `loop` over two fresh socket pairs: sends the first datagram and waits
    /// until both were handled. Returns the descriptors for the caller to close.
    private func runChain(_ loop: EventLoop) async throws -> [Int32] {
        let (a, b) = try socketPair()
        let (c, d) = try socketPair()
        let count = Counter()
        try chain(loop, first: a, second: c, feed: d, count)
        var one: UInt8 = 1
        #expect(write(b, &one, 1) == 1)
        try await waitFor { count.count == 2 }
        return [a, b, c, d]
    }

    @Test func anEventFetchedForAnUnregisteredDescriptorIsNotDeliveredToItsSlotsNextOwner() async throws {
        let loop = try EventLoop(name: "test-stale")
        let (a, aPeer) = try socketPair()
        let (b, bPeer) = try socketPair()
        let (c, cPeer) = try socketPair()
        defer { loop.stop(); for fd in [a, aPeer, b, bPeer, c, cPeer] { close(fd) } }
        loop.startThread()
        let handledB = Counter()
        let wrongC = Counter()
        try loop.submitAndWait {
            try loop.register(fd: a, events: EPOLLIN.rawValue) { _ in }
            // B's handler runs first in the batch: it lets go of A, and C takes A's slot.
            try loop.register(fd: b, events: EPOLLIN.rawValue) { _ in
                var byte: UInt8 = 0
                while read(b, &byte, 1) == 1 {}
                handledB.add()
                loop.unregister(fd: a)
                try? loop.register(fd: c, events: EPOLLIN.rawValue) { _ in
                    var byte: UInt8 = 0
                    // C is never written to: a call here is A's event delivered to the wrong owner.
                    if read(c, &byte, 1) != 1 { wrongC.add() }
                }
            }
            // Both ready before the loop waits again, B first: one batch, in that order.
            var one: UInt8 = 1
            #expect(write(bPeer, &one, 1) == 1)
            #expect(write(aPeer, &one, 1) == 1)
        }
        try await waitFor { handledB.count == 1 }
        try await Task.sleep(for: .milliseconds(50))
        #expect(wrongC.count == 0)
    }

    @Test func theLoopThreadTakesItsNiceValue() throws {
        let loop = try EventLoop(name: "test-nice", nice: -7)
        let plain = try EventLoop(name: "test-plain")
        defer { loop.stop(); plain.stop() }
        loop.startThread()
        plain.startThread()
        #expect(try loop.submitAndWait { gw_thread_nice() } == -7)
        #expect(try plain.submitAndWait { gw_thread_nice() } == gw_thread_nice())
    }

    @Test func pollingPicksUpFollowingIOWithoutSleepingThenSleeps() async throws {
        let loop = try EventLoop(name: "test-poll", busyPoll: .milliseconds(200))
        defer { loop.stop() }
        let fds = try await runChain(loop)
        defer { for fd in fds { close(fd) } }
        let (polled, sleeps) = try loop.submitAndWait { (loop.polledWakeups, loop.sleeps) }
        #expect(polled >= 1, "the second datagram was found while polling")
        // Quiet for longer than the window: the loop goes back to sleeping in epoll_wait.
        try await waitFor { ((try? loop.submitAndWait { loop.sleeps }) ?? 0) > sleeps }
    }

    @Test func sparseIOStopsThePollingAndChattyIOBringsItBack() async throws {
        // A 20 ms window (wide, so that a loaded machine's delays stay inside it), and polling only
        // while three quarters of the quiet spells end within it.
        let loop = try EventLoop(name: "test-governor", busyPoll: .milliseconds(20), busyPollHitPercent: 75)
        defer { loop.stop() }
        let (mine, theirs) = try socketPair()
        defer { close(mine); close(theirs) }
        let count = Counter()
        try watch(loop, mine, count)
        var b: UInt8 = 1
        // Sparse: a datagram every 40 ms, each spell longer than the window.
        for i in 1...12 {
            #expect(write(theirs, &b, 1) == 1)
            try await waitFor { count.count == i }
            try await Task.sleep(for: .milliseconds(40))
        }
        let (skipped, share) = try loop.submitAndWait { (loop.pollsSkipped, loop.busyPollHitPercent) }
        #expect(skipped >= 6, "the loop slept at once after most of the sparse datagrams")
        #expect(share < 75)
        // Chatty: datagrams 100 µs apart, each spell well within the window, until it polls again.
        for _ in 0..<2000 {
            #expect(write(theirs, &b, 1) == 1)
            usleep(100)
            if (try loop.submitAndWait { loop.busyPollHitPercent }) >= 75 { break }
        }
        let (again, polled) = try loop.submitAndWait { (loop.busyPollHitPercent, loop.polledWakeups) }
        #expect(again >= 75)
        // Polling is back: a datagram soon after another is found without a sleep.
        var found = false
        for _ in 0..<200 where !found {
            #expect(write(theirs, &b, 1) == 1)
            usleep(1000)
            found = (try loop.submitAndWait { loop.polledWakeups }) > polled
        }
        #expect(found)
    }

    @Test func noPollingWhenTurnedOff() async throws {
        let loop = try EventLoop(name: "test-nopoll")
        defer { loop.stop() }
        let fds = try await runChain(loop)
        defer { for fd in fds { close(fd) } }
        #expect(try loop.submitAndWait { (loop.polledWakeups, loop.sleeps) } == (0, 0))
    }

    @Test func loopBoundValuesAreUsedOnTheirLoop() throws {
        let loop = try EventLoop(name: "test-bound")
        defer { loop.stop() }
        loop.startThread()
        let bound = try loop.submitAndWait { LoopBound(Counter(), loop: loop) }
        #expect(bound.loop === loop)
        let count = try loop.submitAndWait {
            bound.value.add()
            bound.value.add()
            return bound.value.count
        }
        #expect(count == 2)
    }

    /// A loop whose thread runs, so that its confinement checks are armed.
    fileprivate static func runningLoop() -> EventLoop {
        let loop = try! EventLoop(name: "test-confined")
        loop.startThread()
        // Once a task has run there, the loop's thread is the one it checks against.
        #expect(try! loop.submitAndWait { loop.inLoop })
        return loop
    }

    #if DEBUG
        // Each runs in a child process, which the trap ends.
        @Test func schedulingOffTheLoopTraps() async {
            await #expect(processExitsWith: .failure) {
                let loop = EventLoopTests.runningLoop()
                loop.schedule(at: 0) {}
            }
        }

        @Test func cancellingOffTheLoopTraps() async {
            await #expect(processExitsWith: .failure) {
                let loop = EventLoopTests.runningLoop()
                let timer = try! loop.submitAndWait { loop.schedule(at: .max) {} }
                loop.cancel(timer)
            }
        }

        @Test func registeringOffTheLoopTraps() async {
            await #expect(processExitsWith: .failure) {
                let loop = EventLoopTests.runningLoop()
                var fds: [Int32] = [0, 0]
                _ = socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0, &fds)
                try? loop.register(fd: fds[0], events: EPOLLIN.rawValue) { _ in }
            }
        }

        @Test func aLoopBoundValueTrapsOffItsLoop() async {
            await #expect(processExitsWith: .failure) {
                let loop = EventLoopTests.runningLoop()
                let bound = try! loop.submitAndWait { LoopBound(Counter(), loop: loop) }
                bound.value.add()
            }
        }

        @Test func bindingAValueOffTheLoopTraps() async {
            await #expect(processExitsWith: .failure) {
                let loop = EventLoopTests.runningLoop()
                _ = LoopBound(Counter(), loop: loop)
            }
        }
    #endif
}
