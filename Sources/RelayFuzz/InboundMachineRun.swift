// A published port's client state machine under a sequence of inputs, with the invariants its owner
// relies on: one end, one FIN each way, no action after the end, a registration that stays sound.
// Debug builds only: see main.swift.
#if DEBUG
import FuzzDriver
import NetStack

@testable import Gateway

struct InboundMachineRun {
    var m = InboundStateMachine()
    var events = StackEvents()
    var registration = Registration()
    var established = false
    var eofPassed = false
    var clientShut = false

    /// One input the owner may get at any time: a stack event, socket readiness or an error,
    /// tokens, the timer, unpublish; or it looks at the machine.
    mutating func step(_ input: inout FuzzInput) {
        let before = m.state
        let action: InboundStateMachine.Action
        switch input.below(10) {
        case 0:
            guard let e = events.next(&input) else { return }
            action = m.stackEvent(e, unreadBytes: input.bool() ? 0 : Int(input.byte()) + 1)
        case 1:
            let errors: [Int32?] = [nil, 0, 104, 32]
            action = m.socketEvent(hangUp: input.bool(), error: errors[input.below(errors.count)])
        case 2: action = m.socketReadable()
        case 3: action = m.socketWritable()
        case 4: action = m.watchFailed()
        case 5: action = m.tokensBack(input.direction())
        case 6: action = m.timerFired()
        case 7: action = m.abort()
        case 8:
            _ = m.pushStartsComplete(readClosed: input.bool(), connectionLive: input.bool())
            _ = (m.guestFIN, m.isEstablished)
            action = .none
        default:
            registration.apply(m.interestChange())
            action = .none
        }
        carryOut(action, before: before, &input)
    }

    /// Checks an action, then does what the owner does with it at once: run the pump and
    /// report how that came out.
    mutating func carryOut(_ action: InboundStateMachine.Action, before: InboundStateMachine.State, _ input: inout FuzzInput) {
        check(action, before: before)
        let state = m.state
        let next: InboundStateMachine.Action
        switch action {
        case .pull: next = m.pulled(input.pullOutcome())
        case .push, .drain: next = m.pushed(input.pushOutcome())
        default: return
        }
        carryOut(next, before: state, &input)
    }

    mutating func check(_ action: InboundStateMachine.Action, before: InboundStateMachine.State) {
        if before == .done {
            precondition(m.state == .done, "left the done state")
            precondition(action == .none || action == .abortBoth(abortGuest: false), "action \(action) after the end")
            return
        }
        let terminal: Bool
        switch action {
        case .established:
            precondition(!established, "established twice")
            established = true
            terminal = false
        case .passEOFToGuest(let closeClient):
            precondition(!eofPassed, "client EOF passed to the guest twice")
            eofPassed = true
            precondition(closeClient == clientShut, "client closed before FIN went both ways, or left open after")
            terminal = closeClient
        case .shutClientWrite:
            precondition(!clientShut, "client write shut twice")
            clientShut = true
            terminal = false
        case .closeClient(let shutWriteFirst):
            if shutWriteFirst {
                precondition(!clientShut, "client write shut twice")
                clientShut = true
            }
            precondition(clientShut, "a graceful close without the guest's FIN passed on")
            terminal = true
        case .pull:
            precondition(!eofPassed, "reading the client after its EOF")
            precondition(established, "reading the client before the guest answered")
            terminal = false
        case .push:
            precondition(established || m.isEstablished, "pushing to the client before the guest answered")
            terminal = false
        case .drain:
            if case .draining = m.state {} else { preconditionFailure("drain without draining") }
            terminal = false
        case .resetClient, .refuseClient, .resetBoth, .abortBoth:
            terminal = true
        case .none, .waitForTokens:
            terminal = false
        }
        precondition(terminal == (m.state == .done), "\(action) and state \(m.state) disagree on the end")
        if m.state == .done { precondition(m.wantedInterest == nil, "a finished flow still wants its socket watched") }
    }
}
#endif
