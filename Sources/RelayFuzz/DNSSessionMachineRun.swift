// The DNS-over-TCP session's state machine under a sequence of inputs, driven as DNSTCPSession
// drives it (queries only while it may read, answers only for queries taken), with its invariants.
// Debug builds only: see main.swift.
#if DEBUG
import FuzzDriver

@testable import Gateway

struct DNSSessionMachineRun {
    var m: DNSTCPSessionStateMachine
    var events = StackEvents()
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

    /// Answers queued and not yet in the send buffer, as the owner would count them.
    static func unsent(_ input: inout FuzzInput) -> Int {
        [0, 1, 512, 2 + 65535, 70_000, DNSTCPSessionStateMachine.maxUnreadAnswerBytes + 1][input.below(6)]
    }

    /// One input the owner may get at any time: a stack event, an answer, the idle timer,
    /// detach; or it looks at the machine.
    mutating func step(_ input: inout FuzzInput) {
        let before = m.state
        let action: DNSTCPSessionStateMachine.Action
        switch input.below(5) {
        case 0:
            guard let e = events.next(&input) else { return }
            action = m.stackEvent(e)
        case 1:
            guard outstanding > 0 else { return }
            outstanding -= 1
            guard m.answerArrived() else { return }
            action = m.answerQueued(unsentAnswerBytes: Self.unsent(&input))
        case 2:
            now += UInt64(input.byte()) * 1_000_000_000
            let idle: UInt64 = 10_000_000_000
            let lastActivity = now - min(now, UInt64(input.byte()) * 1_000_000_000)
            action = m.idleTimerFired(now: now, lastActivity: lastActivity, idle: idle)
            if case .rearmIdleTimer(let at) = action { precondition(at > now, "idle timer rearmed for the past") }
        case 3: action = m.abort()
        default:
            _ = (m.isReading, m.peerFinished)
            action = .none
        }
        carryOut(action, before: before, &input)
    }

    /// Checks an action, then does what DNSTCPSession does with it at once: service reads the
    /// queries the state allows (some malformed), then reports; an idle close reports too.
    mutating func carryOut(_ action: DNSTCPSessionStateMachine.Action, before: DNSTCPSessionStateMachine.State, _ input: inout FuzzInput) {
        check(action, before: before)
        switch action {
        case .service:
            if m.isReading { readQueries(&input) }
            let state = m.state
            carryOut(m.serviced(unsentAnswerBytes: Self.unsent(&input)), before: state, &input)
        case .idleClose:
            let state = m.state
            carryOut(m.serviced(unsentAnswerBytes: Self.unsent(&input)), before: state, &input)
        default:
            break
        }
    }

    mutating func readQueries(_ input: inout FuzzInput) {
        while m.mayRead(unsentAnswerBytes: Self.unsent(&input)) {
            let state = m.state
            switch input.below(5) {
            case 0:
                // Not a whole message yet.
                break
            case 1:
                return carryOut(m.malformedQuery(taken: false), before: state, &input)
            case 2:
                m.queryTaken()
                return carryOut(m.malformedQuery(taken: true), before: state, &input)
            default:
                m.queryTaken()
                outstanding += 1
                check(.none, before: state)
                continue
            }
            break
        }
        let state = m.state
        carryOut(m.readingPaused(readClosed: input.bool(), unsentAnswerBytes: Self.unsent(&input)), before: state, &input)
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
#endif
