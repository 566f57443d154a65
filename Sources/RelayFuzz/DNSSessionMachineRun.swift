// The DNS-over-TCP session's state machine under a sequence of inputs, driven as DNSTCPSession
// drives it (queries only while it may read, answers only for queries taken), with its invariants.
import FuzzDriver

@testable import Gateway

struct DNSSessionMachineRun {
    var m: DNSTCPSessionStateMachine
    /// Queries the hook holds, as the owner counts them.
    var outstanding = 0
    var finSent = false
    var stoppedReading = false
    var now: UInt64 = 1_000_000_000

    init(_ input: inout FuzzInput) { m = DNSTCPSessionStateMachine(maxInFlight: 1 + input.below(16)) }

    /// Open, draining, FIN sent, done: the session only moves forward.
    static func rank(_ s: DNSTCPSessionStateMachine.State) -> Int {
        switch s {
        case .open: 0
        case .draining: 1
        case .finSent: 2
        case .done: 3
        }
    }

    mutating func step(_ input: inout FuzzInput) {
        let before = m.state
        var action = DNSTCPSessionStateMachine.Action.none
        let unsent = [0, 1, 512, 2 + 65535, 70_000, DNSTCPSessionStateMachine.maxUnreadAnswerBytes + 1][input.below(6)]
        switch input.below(10) {
        case 0: action = m.stackEvent(input.tcpEvent())
        case 1:
            if m.mayRead(unsentAnswerBytes: unsent) {
                m.queryTaken()
                outstanding += 1
            }
        case 2:
            let taken = input.bool() && outstanding > 0
            if taken { outstanding -= 1 }
            action = m.malformedQuery(taken: taken)
        case 3: action = m.readingPaused(readClosed: input.bool(), unsentAnswerBytes: unsent)
        case 4: action = m.serviced(unsentAnswerBytes: unsent)
        case 5:
            guard outstanding > 0 else { break }
            outstanding -= 1
            if m.answerArrived() { action = m.answerQueued(unsentAnswerBytes: unsent) }
        case 6:
            now += UInt64(input.byte()) * 1_000_000_000
            let idle: UInt64 = 10_000_000_000
            let lastActivity = now - min(now, UInt64(input.byte()) * 1_000_000_000)
            action = m.idleTimerFired(now: now, lastActivity: lastActivity, idle: idle)
            if case .rearmIdleTimer(let at) = action { precondition(at > now, "idle timer rearmed for the past") }
        case 7: action = m.abort()
        default:
            _ = (m.isReading, m.peerFinished)
        }
        check(action, before: before)
    }

    mutating func check(_ action: DNSTCPSessionStateMachine.Action, before: DNSTCPSessionStateMachine.State) {
        precondition(Self.rank(m.state) >= Self.rank(before), "the session went back from \(before) to \(m.state)")
        if m.state != .done {
            precondition(m.inFlight == outstanding, "in flight \(m.inFlight), the hook holds \(outstanding)")
            precondition(m.inFlight <= m.maxInFlight, "more queries in flight than allowed")
        }
        if m.isReading { precondition(m.state == .open, "reading while not open") }
        if before == .done {
            precondition(action == .none || action == .abort(abortGuest: false), "action \(action) after the end")
            return
        }
        switch action {
        case .sendFIN:
            precondition(!finSent, "FIN sent twice")
            precondition(m.inFlight == 0, "FIN with queries unanswered")
            finSent = true
        case .stopReading:
            precondition(!stoppedReading, "reading stopped twice")
            stoppedReading = true
        case .idleClose:
            precondition(!stoppedReading, "idle close after reading stopped")
            stoppedReading = true
        case .finish, .resetUnread, .resetStalled, .abort:
            precondition(m.state == .done, "\(action) without ending")
        case .none, .service, .rearmIdleTimer:
            break
        }
    }
}
