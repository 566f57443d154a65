// The busy-poll governor on its own: how quiet spells move its share, and when it lets a shard poll.
import Testing
@testable import Gateway

@Suite struct SpinGovernorTests {
    @Test func startsPollingAndStopsOnceMostSpellsOutlastTheWindow() {
        var g = SpinGovernor(window: 50_000, minimumHitPercent: 75)
        #expect(g.polls && g.hitPercent == 100)
        var misses = 0
        while g.polls {
            g.spellEnded(after: 1_000_000)
            misses += 1
        }
        // Weight 1/16: a few long spells in a row, not one, turn polling off.
        #expect(misses >= 3 && misses <= 6)
        #expect(g.hitPercent < 75)
    }

    @Test func spellsWithinTheWindowBringPollingBack() {
        var g = SpinGovernor(window: 50_000, minimumHitPercent: 75)
        for _ in 0..<100 { g.spellEnded(after: 10_000_000) }
        #expect(!g.polls && g.hitPercent == 0)
        var hits = 0
        while !g.polls {
            g.spellEnded(after: 30_000)
            hits += 1
        }
        #expect(hits >= 15 && hits <= 30)
        for _ in 0..<100 { g.spellEnded(after: 50_000) }  // the window's edge counts as within
        #expect(g.hitPercent == 100)
    }

    @Test func alternatingSpellsSettleAtHalfAndDoNotPollAtThreeQuarters() {
        // Request after a long gap, answer within the window: half the spells pay.
        var g = SpinGovernor(window: 50_000, minimumHitPercent: 75)
        for _ in 0..<200 {
            g.spellEnded(after: 100_000_000)
            g.spellEnded(after: 20_000)
        }
        #expect((40...60).contains(g.hitPercent))
        #expect(!g.polls)
        var half = SpinGovernor(window: 50_000, minimumHitPercent: 40)
        for _ in 0..<200 {
            half.spellEnded(after: 100_000_000)
            half.spellEnded(after: 20_000)
        }
        #expect(half.polls)
    }

    @Test func zeroPercentAlwaysPollsAndAZeroWindowNever() {
        var always = SpinGovernor(window: 50_000, minimumHitPercent: 0)
        for _ in 0..<100 { always.spellEnded(after: 1_000_000_000) }
        #expect(always.polls)
        let never = SpinGovernor(window: 0, minimumHitPercent: 0)
        #expect(!never.polls)
    }
}
