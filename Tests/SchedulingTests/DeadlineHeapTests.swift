// The deadline heap the stack and the shards' loops take their next timer from: earliest first
// whatever the insertion order, ties kept, and the nanosecond conversion their deadlines use.
import Testing
import Scheduling

@Suite struct DeadlineHeapTests {
    @Test func popsDeadlinesEarliestFirst() {
        var heap = DeadlineHeap<Int>()
        #expect(heap.first == nil)
        #expect(heap.popMin() == nil)
        let deadlines: [UInt64] = [50, 10, 40, 10, 90, 0, 70, 30, 60, 20]
        for (id, d) in deadlines.enumerated() { heap.insert(.init(deadline: d, id: id)) }
        #expect(heap.count == deadlines.count)
        #expect(heap.first?.deadline == 0)
        var popped: [UInt64] = []
        while let e = heap.popMin() {
            #expect(deadlines[e.id] == e.deadline, "each deadline keeps its own ID")
            popped.append(e.deadline)
        }
        #expect(popped == deadlines.sorted())
        #expect(heap.count == 0)
    }

    /// Timers are added while others fire: the order holds across interleaved inserts and pops.
    @Test(arguments: [1, 7, 1000]) func staysOrderedUnderInterleavedUse(seed: UInt64) {
        var heap = DeadlineHeap<UInt64>()
        var model: [UInt64] = []
        var x = seed
        for step in 0..<2000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            if step % 3 == 2 {
                let e = heap.popMin()
                let expected = model.min()
                #expect(e?.deadline == expected)
                if let expected, let i = model.firstIndex(of: expected) { model.remove(at: i) }
            } else {
                let d = (x >> 33) % 500
                heap.insert(.init(deadline: d, id: d))
                model.append(d)
            }
            #expect(heap.first?.deadline == model.min())
        }
    }

    @Test func durationsConvertToWholeNanosecondsWithNegativeAsZero() {
        #expect(Duration.seconds(3).nanoseconds == 3_000_000_000)
        #expect(Duration.milliseconds(1.5).nanoseconds == 1_500_000)
        #expect(Duration.nanoseconds(7).nanoseconds == 7)
        #expect(Duration.seconds(-2).nanoseconds == 0)
        #expect(Duration.zero.nanoseconds == 0)
    }
}
