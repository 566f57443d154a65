// A sandbox's rate limits without sockets: the bit-rate notation, how many bytes a relay may
// move and when it must wait, datagrams and new flows over their rates, and the relay state
// machines' inputs for tokens and the half-open timeout.
import CGatewayShims
import Glibc
import NetStack
import Testing

@testable import Gateway

private let second: UInt64 = 1_000_000_000

@Suite struct RateLimiterTests {
    @Test(arguments: [
        ("100mbit", UInt64(12_500_000)), ("1gbit", 125_000_000), ("10Mbit", 1_250_000), ("512kbit", 64_000),
        ("2.5gbit", 312_500_000), ("8000", 1000),
    ])
    func bitRatesReadAsBytesPerSecond(text: String, bytes: UInt64) {
        #expect(RateLimits.bytesPerSecond(parsing: text) == bytes)
    }

    @Test(arguments: ["", "mbit", "0mbit", "-5mbit", "fast", "10 parsecs"])
    func notARate(text: String) {
        #expect(RateLimits.bytesPerSecond(parsing: text) == nil)
    }

    @Test func anAttachOverridesOnlyWhatItSets() {
        let policy = RateLimits(toHostBytesPerSecond: 100, fromHostBytesPerSecond: 100, connectionsPerSecond: 5, maxFlows: 10)
        let attach = RateLimits(fromHostBytesPerSecond: 7, maxFlows: 3)
        let both = policy.overridden(by: attach)
        #expect(both == RateLimits(toHostBytesPerSecond: 100, fromHostBytesPerSecond: 7, connectionsPerSecond: 5, maxFlows: 3))
        #expect(RateLimits.bitRateText(12_500_000) == "100mbit")
    }

    @Test func unlimitedMeansNoAllowanceToAskFor() {
        let r = RateLimiter(RateLimits(), defaultConnectionRate: 0, loop: nil)
        #expect(!r.limitsBytes(.toHost) && !r.limitsBytes(.fromHost))
        #expect(r.allowance(.toHost, now: 0) == .max)
        for i in 0..<10_000 { #expect(r.admitFlow(open: i, now: 0)) }
        #expect(r.admitDatagram(.fromHost, size: 65_000, now: 0))
    }

    @Test func bytesFlowAtTheRateAfterABurstOf20Milliseconds() {
        // 100 Mbit/s: 12.5 MB/s, a burst of 250 kB.
        let r = RateLimiter(RateLimits(toHostBytesPerSecond: 12_500_000), defaultConnectionRate: 0, loop: nil)
        #expect(r.limitsBytes(.toHost) && !r.limitsBytes(.fromHost))
        let start = 10 * second
        #expect(r.allowance(.toHost, now: start) == 250_000)
        r.spend(.toHost, 250_000, now: start)
        #expect(r.allowance(.toHost, now: start) == 0)
        // 1 ms later: 12.5 kB more, never more than the burst however long the wait.
        #expect(r.allowance(.toHost, now: start + second / 1000) == 12_500)
        #expect(r.allowance(.toHost, now: start + 60 * second) == 250_000)
        // Moving as fast as allowed for a second moves the rate (plus the first burst), no more.
        var moved = 0
        var now = start + 60 * second
        for _ in 0..<1000 {
            let n = r.allowance(.toHost, now: now)
            r.spend(.toHost, n, now: now)
            moved += n
            now += second / 1000
        }
        #expect(moved >= 12_500_000 && moved <= 12_500_000 + 250_000, "\(moved)")
    }

    @Test func aSlowLimitStillHasRoomForWholeSegments() {
        let r = RateLimiter(RateLimits(fromHostBytesPerSecond: 1000), defaultConnectionRate: 0, loop: nil)
        #expect(r.allowance(.fromHost, now: 0) == 65_536)
    }

    @Test func waitsAreCountedAndTimedUntilBytesMoveAgain() {
        let r = RateLimiter(RateLimits(toHostBytesPerSecond: 1_000_000), defaultConnectionRate: 0, loop: nil)
        var woken = 0
        r.wait(.toHost, held: 4096, now: second) { woken += 1 }
        #expect(r.counters.throttles == [1, 0])
        #expect(r.counters.bytesDelayed == 4096)
        #expect(r.limitedSeconds(.toHost, now: second + second / 2) == 0.5)
        r.spend(.toHost, 100, now: 2 * second)
        #expect(r.limitedSeconds(.toHost, now: 3 * second) == 1.0, "the wait ended when bytes moved")
        // New limits wake whoever waits, to try under them.
        r.update(RateLimits(toHostBytesPerSecond: 2_000_000))
        #expect(woken == 1)
        r.update(RateLimits(toHostBytesPerSecond: 2_000_000))
        #expect(woken == 1)
    }

    @Test func datagramsOverThePacketOrByteRateAreDropped() {
        let r = RateLimiter(RateLimits(packetsPerSecond: 100), defaultConnectionRate: 0, loop: nil)
        // A burst of 16 (a tenth of a second's, at least 16), then 100 a second.
        var passed = 0
        for _ in 0..<100 where r.admitDatagram(.toHost, size: 100, now: second) { passed += 1 }
        #expect(passed == 16)
        #expect(r.counters.udpDropped == 84)
        #expect(r.admitDatagram(.fromHost, size: 100, now: second), "each way has its own")
        #expect(r.admitDatagram(.toHost, size: 100, now: second + second / 100))
        let bytes = RateLimiter(RateLimits(toHostBytesPerSecond: 1_000_000), defaultConnectionRate: 0, loop: nil)
        #expect(bytes.admitDatagram(.toHost, size: 65_000, now: 0))
        #expect(!bytes.admitDatagram(.toHost, size: 65_000, now: 0))
    }

    @Test func newFlowsOverTheRateOrMaxFlowsAreRefused() {
        // The gateway's default applies when the limits set no rate.
        let r = RateLimiter(RateLimits(), defaultConnectionRate: 200, loop: nil)
        var admitted = 0
        for _ in 0..<300 where r.admitFlow(open: 0, now: second) { admitted += 1 }
        #expect(admitted == 200)
        #expect(r.counters.connectionsRefused == 100)
        #expect(r.admitFlow(open: 0, now: second + second / 100), "2 more after 10 ms")
        let capped = RateLimiter(RateLimits(connectionsPerSecond: 1000, maxFlows: 3), defaultConnectionRate: 200, loop: nil)
        #expect(capped.admitFlow(open: 2, now: 0))
        #expect(!capped.admitFlow(open: 3, now: 0))
        #expect(capped.counters.flowsRefused == 1)
    }

    // MARK: - The relays' state machines

    private func relaying() -> TCPRelayStateMachine {
        var m = TCPRelayStateMachine()
        _ = m.interestChange()
        #expect(m.connectFinished(error: 0, canFallBack: false) == .acceptGuest)
        #expect(m.interestChange() == .modify(EPOLLIN.rawValue))
        return m
    }

    @Test func egressReadingWaitsForTokensNotForTheSocket() {
        var m = relaying()
        #expect(m.socketReadable() == .pull)
        #expect(m.pulled(.rateLimited) == .waitForTokens(.fromHost, held: 0))
        #expect(m.interestChange() == .modify(0), "EPOLLIN dropped while out of tokens")
        #expect(m.socketReadable() == .none)
        #expect(m.stackEvent(.writable, closedCleanly: false) == .none)
        #expect(m.tokensBack(.toHost) == .none, "the other way was not waiting")
        #expect(m.tokensBack(.fromHost) == .pull)
        #expect(m.pulled(.socketEmpty) == .none)
        #expect(m.interestChange() == .modify(EPOLLIN.rawValue))
        #expect(m.tokensBack(.fromHost) == .none, "a stray wake-up does nothing")
    }

    @Test func tokensBackResumeReadingAfterTheRingHadBeenFull() {
        // The ring filled, the guest acknowledged, and the next read ran out of tokens: the
        // tokens, not another `.writable`, resume it.
        var m = relaying()
        #expect(m.pulled(.stackFull) == .none)
        #expect(m.stackEvent(.writable, closedCleanly: false) == .pull)
        #expect(m.pulled(.rateLimited) == .waitForTokens(.fromHost, held: 0))
        #expect(m.tokensBack(.fromHost) == .pull)
        var i = InboundStateMachine()
        _ = i.stackEvent(.established, unreadBytes: 0)
        #expect(i.pulled(.stackFull) == .none)
        #expect(i.stackEvent(.writable, unreadBytes: 0) == .pull)
        #expect(i.pulled(.rateLimited) == .waitForTokens(.fromHost, held: 0))
        #expect(i.tokensBack(.fromHost) == .pull)
    }

    @Test func egressWritingWaitsForTokensWithTheBytesInTheRing() {
        var m = relaying()
        #expect(m.stackEvent(.readable, closedCleanly: false) == .push)
        #expect(m.pushed(.rateLimited(held: 5000)) == .waitForTokens(.toHost, held: 5000))
        #expect(m.stackEvent(.readable, closedCleanly: false) == .none, "more guest bytes wait too")
        #expect(m.socketWritable() == .none)
        #expect(m.interestChange() == nil, "still reading, not watching EPOLLOUT")
        #expect(m.tokensBack(.toHost) == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.stackEvent(.readable, closedCleanly: false) == .push)
    }

    @Test func aCleanEndOutOfTokensDrainsWhenTheyComeBack() {
        var m = relaying()
        #expect(m.stackEvent(.closed, closedCleanly: true) == .push)
        #expect(m.pushed(.rateLimited(held: 100)) == .waitForTokens(.toHost, held: 100))
        #expect(m.interestChange() == .modify(0), "neither EPOLLOUT nor EPOLLIN while waiting")
        #expect(m.socketWritable() == .none)
        #expect(m.tokensBack(.toHost) == .push)
        #expect(m.interestChange() == .modify(EPOLLOUT.rawValue))
        #expect(m.pushed(.emptied(complete: true)) == .finish(.init(shutUpstreamWrite: true, resetUpstream: true, wasConnected: true)))
    }

    @Test func aGuestThatNeverCompletesItsHandshakeIsResetAtTheHalfOpenTimeout() {
        var silent = relaying()
        #expect(silent.halfOpenTimedOut() == .resetHalfOpen)
        #expect(silent.state == .done)
        #expect(silent.interestChange() == nil)
        var completed = relaying()
        #expect(completed.stackEvent(.established, closedCleanly: false) == .none)
        #expect(completed.halfOpenTimedOut() == .none)
        var connecting = TCPRelayStateMachine()
        #expect(connecting.halfOpenTimedOut() == .none, "the connect timeout covers the dial")
    }

    @Test func inboundPumpsWaitForTokensBothWays() {
        var m = InboundStateMachine()
        _ = m.interestChange()
        #expect(m.stackEvent(.established, unreadBytes: 0) == .established)
        #expect(m.interestChange() == .modify(EPOLLIN.rawValue))
        #expect(m.pulled(.rateLimited) == .waitForTokens(.fromHost, held: 0))
        #expect(m.socketReadable() == .none)
        #expect(m.interestChange() == .modify(0))
        #expect(m.stackEvent(.readable, unreadBytes: 0) == .push)
        #expect(m.pushed(.rateLimited(held: 10)) == .waitForTokens(.toHost, held: 10))
        #expect(m.stackEvent(.readable, unreadBytes: 0) == .none)
        #expect(m.socketWritable() == .none)
        #expect(m.tokensBack(.toHost) == .push)
        #expect(m.tokensBack(.fromHost) == .pull)
        #expect(m.interestChange() == .modify(EPOLLIN.rawValue))
    }
}

import Foundation

@Suite struct SandboxStatsCodingTests {
    @Test func statsWithRateLimitsRoundTripThroughJSON() throws {
        var s = SandboxStats(
            id: "a", framesIn: 1, framesOut: 2, bytesIn: 3, bytesOut: 4, tcpFlowsActive: 5, tcpFlowsTotal: 6,
            udpSessions: 7, bytesToHost: 8, bytesFromHost: 9, drops: ["x": 1])
        s.rateLimits.toHostBytesPerSecond = 12_500_000
        s.rateLimits.halfOpenResets = 3
        s.counters = ["c": 2]
        let data = try JSONEncoder().encode(s)
        let back = try JSONDecoder().decode(SandboxStats.self, from: data)
        #expect(back == s)
    }
}
