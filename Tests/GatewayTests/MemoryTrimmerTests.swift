// The trims that give freed memory back: one for a burst of asks, one once the asks have been
// quiet for a while, and a thread that sleeps while none is due.
@testable import Gateway
import GatewayTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

struct MemoryTrimmerTests {
    final class Count: Sendable {
        let n = Atomic<Int>(0)
        var value: Int { n.load(ordering: .relaxed) }
    }

    @Test func aBurstMakesOneTrimAndAnIdleTrimmerSleeps() {
        let trims = Count()
        let trimmer = MemoryTrimmer(quietDelay: .seconds(1)) { trims.n.add(1, ordering: .relaxed) }
        usleep(200_000)
        // Nothing asked: the thread has not woken once (a timer or a poll would have).
        #expect(trimmer.passes == 0)
        for _ in 0..<50 { trimmer.soon() }
        #expect(eventually { trims.value == 1 })
        usleep(200_000)
        #expect(trims.value == 1)

        for _ in 0..<5 { trimmer.afterQuiet() }
        #expect(trims.value == 1)
        #expect(eventually { trims.value == 2 })
        // Done: asleep again until the next ask.
        let passes = trimmer.passes
        usleep(300_000)
        #expect(trimmer.passes == passes)
        #expect(trims.value == 2)
    }
}
