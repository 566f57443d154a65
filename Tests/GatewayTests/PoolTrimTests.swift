// A shard's pool trim: gives idle chunks back while there are some, then stops its timer until
// the shard does work again, so a shard of idle sandboxes has no periodic work at all.
@testable import Gateway
import GatewayTestSupport
import NetStack
import Synchronization
import Testing

struct PoolTrimTests {
    final class Count: Sendable {
        let n = Atomic<Int>(0)
        var value: Int { n.load(ordering: .relaxed) }
    }

    /// Takes `count` chunks from the pool and gives them back (on its loop): a burst of traffic.
    static func burst(_ pool: LoopBound<BufferPool>, _ count: Int) throws {
        try pool.loop.submitAndWait {
            let chunks = (0..<count).compactMap { _ in pool.value.take() }
            for c in chunks { pool.value.give(c) }
        }
    }

    @Test func theTimerStopsWhenNothingIsLeftAndResumesWithWork() async throws {
        let loop = try EventLoop(name: "test-trim")
        defer { loop.stop() }
        loop.startThread()
        let released = Count()
        let (pool, frames) = try loop.submitAndWait { () -> (LoopBound<BufferPool>, LoopBound<FramePool>) in
            let pool = BufferPool(chunkSize: 4096, keepWarm: 2)
            let frames = FramePool(keepWarm: 1)
            Gateway.trimPeriodically(pool, frames, on: loop, every: 20_000_000) { released.n.add(1, ordering: .relaxed) }
            return (LoopBound(pool, loop: loop), LoopBound(frames, loop: loop))
        }
        _ = frames
        let warm = { try loop.submitAndWait { pool.value.warmChunks } }

        try Self.burst(pool, 20)
        #expect(try eventually { try warm() == 2 })
        #expect(released.value >= 1)
        // Trimmed down to the warm floor: no timer. A read is work, so it re-arms the trim once;
        // that trim finds nothing and stops again. A timer every 20 ms would make 10 passes here.
        try await Task.sleep(for: .milliseconds(60))
        let passes = try loop.submitAndWait { loop.passes }
        try await Task.sleep(for: .milliseconds(200))
        #expect(try loop.submitAndWait { loop.passes } <= passes + 2)

        // Work again: the trim resumes and gives the new idle chunks back.
        let before = released.value
        try Self.burst(pool, 20)
        #expect(try eventually { try warm() == 2 && released.value > before })
    }
}
