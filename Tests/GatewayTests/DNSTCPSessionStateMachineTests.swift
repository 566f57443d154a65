// DNS over TCP's session rules without a stack: the in-flight bound, FIN after the last answer,
// protocol errors, a guest that does not read, idle close and reset.
import NetStack
import Testing

@testable import Gateway

private typealias Machine = DNSTCPSessionStateMachine
private let second: UInt64 = 1_000_000_000

@Suite struct DNSTCPSessionStateMachineTests {
    @Test func readingStopsAtTheInFlightBoundAndResumesWithAnAnswer() {
        var m = Machine(maxInFlight: 2)
        #expect(m.mayRead(unsentAnswerBytes: 0))
        m.queryTaken()
        m.queryTaken()
        #expect(!m.mayRead(unsentAnswerBytes: 0))
        #expect(m.answerArrived() == true)
        #expect(m.answerQueued(unsentAnswerBytes: 100) == .service)
        #expect(m.mayRead(unsentAnswerBytes: 100))
        #expect(!m.mayRead(unsentAnswerBytes: 2 + 65536), "a message's worth of answers waits unread")
    }

    @Test func guestFINAnswersWhatIsOutstandingThenSendsFIN() {
        var m = Machine(maxInFlight: 16)
        m.queryTaken()
        #expect(m.stackEvent(.peerClosed) == .service)
        #expect(m.readingPaused(readClosed: false, unsentAnswerBytes: 0) == .stopReading(protocolError: false))
        #expect(!m.isReading)
        #expect(m.serviced(unsentAnswerBytes: 0) == .none, "a query is still in flight")
        #expect(m.answerArrived() == true)
        #expect(m.answerQueued(unsentAnswerBytes: 60) == .service)
        #expect(m.serviced(unsentAnswerBytes: 60) == .none, "the answer is not out yet")
        #expect(m.stackEvent(.writable) == .service)
        #expect(m.serviced(unsentAnswerBytes: 0) == .sendFIN)
        #expect(m.serviced(unsentAnswerBytes: 0) == .none)
        #expect(m.stackEvent(.closed) == .finish)
        #expect(m.stackEvent(.readable) == .none)
    }

    @Test func readingGoesOnWithoutTheGuestsFIN() {
        var m = Machine(maxInFlight: 16)
        #expect(m.readingPaused(readClosed: false, unsentAnswerBytes: 0) == .none)
        #expect(m.isReading)
        #expect(m.readingPaused(readClosed: true, unsentAnswerBytes: 0) == .stopReading(protocolError: false))
    }

    @Test func somethingThatIsNotDNSStopsTheReading() {
        var empty = Machine(maxInFlight: 16)
        #expect(empty.malformedQuery(taken: false) == .stopReading(protocolError: true))
        #expect(empty.serviced(unsentAnswerBytes: 0) == .sendFIN)
        var dropped = Machine(maxInFlight: 16)
        dropped.queryTaken()
        #expect(dropped.malformedQuery(taken: true) == .stopReading(protocolError: true))
        #expect(dropped.inFlight == 0, "the hook will never answer it")
    }

    @Test func guestThatDoesNotReadItsAnswersIsReset() {
        var m = Machine(maxInFlight: 16)
        m.queryTaken()
        #expect(m.answerArrived() == true)
        #expect(m.answerQueued(unsentAnswerBytes: Machine.maxUnreadAnswerBytes + 1) == .resetUnread)
        #expect(m.answerArrived() == false, "later answers are dropped")
    }

    @Test func idleSessionClosesThenIsResetIfItDoesNotFinish() {
        let idle = 10 * second
        var m = Machine(maxInFlight: 16)
        #expect(m.idleTimerFired(now: 15 * second, lastActivity: 8 * second, idle: idle) == .rearmIdleTimer(at: 18 * second))
        #expect(m.idleTimerFired(now: 18 * second, lastActivity: 8 * second, idle: idle) == .idleClose)
        #expect(m.serviced(unsentAnswerBytes: 0) == .sendFIN)
        #expect(m.idleTimerFired(now: 28 * second, lastActivity: 18 * second, idle: idle) == .resetStalled)
        #expect(m.state == .done)
    }

    @Test func queriesInFlightAreWaitedForAMinute() {
        let idle = 10 * second
        var m = Machine(maxInFlight: 16)
        m.queryTaken()
        #expect(m.idleTimerFired(now: 20 * second, lastActivity: 0, idle: idle) == .rearmIdleTimer(at: 30 * second))
        #expect(m.idleTimerFired(now: 60 * second, lastActivity: 0, idle: idle) == .resetStalled)
    }

    @Test func abortResetsTheGuestOnlyOnce() {
        var m = Machine(maxInFlight: 16)
        #expect(m.abort() == .abort(abortGuest: true))
        #expect(m.abort() == .abort(abortGuest: false))
        #expect(m.stackEvent(.closed) == .none)
    }
}
