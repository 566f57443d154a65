// The per-sandbox policing of frames that are not flow traffic, with time set by hand: flow
// traffic always passes, the rest passes up to the rate and is then dropped and counted, and
// only a turn that was mostly waste leaves the device unread, for a bounded time.
import Testing
import Wire

@testable import Gateway

private let ms: UInt64 = 1_000_000

@Suite struct FramePolicerTests {
    @Test func zeroMeansNoPolicing() {
        #expect(FramePolicer(ratePerSecond: 0) == nil)
    }

    @Test func flowTrafficIsNeverDropped() {
        var p = FramePolicer(ratePerSecond: 100)!
        for _ in 0..<1000 { _ = p.admit(.connectionRequest, now: 0) }
        for _ in 0..<10_000 {
            let passed = p.admit(.flow, now: 0)
            #expect(passed)
        }
        #expect(p.counters.suspect == 1000)
    }

    @Test func suspectFramesPassUpToTheBurstThenAtTheRate() {
        var p = FramePolicer(ratePerSecond: 1000)!
        var passed = 0
        for _ in 0..<5000 where p.admit(.fragment, now: 0) { passed += 1 }
        #expect(passed == 1000, "the burst is one second's worth")
        #expect(p.counters.dropped[FrameTriage.Kind.fragment.rawValue] == 4000)
        #expect(p.counters.droppedTotal == 4000)
        // 100 ms later, 100 more.
        passed = 0
        for _ in 0..<500 where p.admit(.spoofedSource, now: 100 * ms) { passed += 1 }
        #expect(passed == 100)
        #expect(p.counters.dropped[FrameTriage.Kind.spoofedSource.rawValue] == 400)
    }

    @Test func aFloodingTurnPausesTheDeviceForABoundedTime() {
        var p = FramePolicer(ratePerSecond: 1000)!
        for _ in 0..<1000 { _ = p.admit(.service, now: 0) }
        let early = p.endTurn(frames: 128, full: true, now: 0)
        #expect(early == nil, "nothing wasted yet")
        for _ in 0..<64 { _ = p.admit(.service, now: 0) }
        let until = p.endTurn(frames: 64, full: true, now: 0)
        #expect(until != nil)
        if let until {
            #expect(until >= FramePolicer.minPause && until <= FramePolicer.maxPause)
            // A turn's worth (64 tokens) at 1000/s.
            #expect(until == 64 * ms)
        }
        #expect(p.counters.pauses == 1)
        #expect(p.counters.pausedNanoseconds == 64 * ms)
    }

    @Test func aTurnThatWasNotFullOrMostlyFlowTrafficDoesNotPause() {
        var p = FramePolicer(ratePerSecond: 1000)!
        for _ in 0..<1100 { _ = p.admit(.control, now: 0) }
        // 100 dropped, but the device ran dry: the guest is not outrunning the shard.
        let dry = p.endTurn(frames: 100, full: false, now: 0)
        #expect(dry == nil)
        // A bulk sender whose rate is spent: its turn was flow traffic.
        for _ in 0..<10 { _ = p.admit(.control, now: 0) }
        for _ in 0..<118 { _ = p.admit(.flow, now: 0) }
        let bulk = p.endTurn(frames: 128, full: true, now: 0)
        #expect(bulk == nil)
        #expect(p.counters.pauses == 0)
    }

    @Test func framesTheStackRefusedSpendTheRateAndCountAsWaste() {
        var p = FramePolicer(ratePerSecond: 1000)!
        p.charge(refused: 5000, now: 0)
        let spent = !p.admit(.control, now: 0)
        #expect(spent, "the rate is spent")
        let pause = p.endTurn(frames: 128, full: true, now: 0)
        #expect(pause != nil, "a turn of refused flow-looking frames is waste")
        // Once the rate is back, suspect frames pass again.
        let back = p.admit(.control, now: 10 * ms)
        #expect(back)
    }

    @Test func aVeryLowRateStillPausesForAtMostTheBound() {
        var p = FramePolicer(ratePerSecond: 1)!
        for _ in 0..<200 { _ = p.admit(.notForUs, now: 0) }
        let until = p.endTurn(frames: 128, full: true, now: 0)
        #expect(until == FramePolicer.maxPause)
    }
}
