// A connection's timers on their own: which deadline comes next as timers are set and
// cleared, and when each one is due.
import Testing
@testable import NetStack

@Suite struct TCPTimersTests {
    @Test func noTimerOnMeansNoDeadline() {
        let t = TCPTimers()
        #expect(t.next == nil)
        for timer in TCPTimers.Timer.allCases {
            #expect(t[timer] == nil)
            #expect(!t.isDue(timer, now: 1 << 62))
        }
    }

    @Test(arguments: TCPTimers.Timer.allCases)
    func eachTimerAloneIsTheNextDeadline(timer: TCPTimers.Timer) {
        var t = TCPTimers()
        t[timer] = 1_234
        #expect(t[timer] == 1_234)
        #expect(t.next == 1_234)
        for other in TCPTimers.Timer.allCases where other != timer { #expect(t[other] == nil) }
        t[timer] = nil
        #expect(t.next == nil)
    }

    /// The earliest deadline wins whichever timer holds it; clearing it uncovers the next.
    @Test func nextIsTheEarliestAsTimersComeAndGo() {
        var t = TCPTimers()
        t[.timeWait] = 30_000
        t[.retransmit] = 200
        t[.delayedACK] = 40
        t[.persist] = 1_000
        t[.tailLossProbe] = 100
        #expect(t.next == 40)
        t[.delayedACK] = nil
        #expect(t.next == 100)
        t[.tailLossProbe] = nil
        #expect(t.next == 200)
        // Re-arming moves a deadline either way.
        t[.retransmit] = 5_000
        #expect(t.next == 1_000)
        t[.retransmit] = 10
        #expect(t.next == 10)
        t[.retransmit] = nil
        t[.persist] = nil
        #expect(t.next == 30_000)
        t[.timeWait] = nil
        #expect(t.next == nil)
    }

    @Test func dueAtAndAfterItsDeadlineOnly() {
        var t = TCPTimers()
        t[.persist] = 500
        #expect(!t.isDue(.persist, now: 499))
        #expect(t.isDue(.persist, now: 500))
        #expect(t.isDue(.persist, now: 501))
        #expect(!t.isDue(.retransmit, now: 501), "a timer that is off is never due")
    }
}
