// The egress relay's state machine under a sequence of inputs: every input its owner can give, in
// any order, and after each the invariants the relay relies on.
// Debug builds only: see main.swift.
#if DEBUG
import CGatewayShims
import FuzzDriver
import Glibc
import NetStack
import SystemPackage

@testable import Gateway

/// Events as a stack gives them: established, peer closed and closed at most once each, no
/// readable after peer closed, and nothing after closed.
struct StackEvents {
    private var seen: Set<TCPEvent> = []

    mutating func next(_ input: inout FuzzInput) -> TCPEvent? {
        let e = TCPEvent(rawValue: 1 + input.byte() % 5)!
        guard !seen.contains(.closed) else { return nil }
        // After the guest's FIN no byte arrives.
        if e == .readable && seen.contains(.peerClosed) { return nil }
        if e == .established || e == .peerClosed || e == .closed {
            guard !seen.contains(e) else { return nil }
            seen.insert(e)
        }
        return e
    }
}

/// Decoders shared by the three machines' runs.
extension FuzzInput {
    mutating func direction() -> RateLimiter.Direction { bool() ? .toHost : .fromHost }

    mutating func pullOutcome() -> StreamPump.PullOutcome {
        switch below(5) {
        case 0: .socketEmpty
        case 1: .stackFull
        case 2: .endOfStream
        case 3: .failed(.connectionReset)
        default: .rateLimited
        }
    }

    mutating func pushOutcome() -> StreamPump.PushOutcome {
        switch below(4) {
        case 0: .emptied(complete: bool())
        case 1: .socketFull
        case 2: .failed(.brokenPipe)
        default: .rateLimited(held: Int(byte()) * 100)
        }
    }
}

/// The socket's epoll registration as the owner keeps it, following the changes a machine asks for.
struct Registration {
    var mask: UInt32?

    /// Applies `change`; it must make sense for what is registered now.
    mutating func apply(_ change: SocketWatch.Change?) {
        switch change {
        case .register(let m)?:
            precondition(mask == nil, "register of a socket already registered")
            mask = m
        case .modify(let m)?:
            precondition(mask != nil && mask != m, "modify of an unregistered socket, or to the same mask")
            mask = m
        case .unregister?:
            precondition(mask != nil, "unregister of an unregistered socket")
            mask = nil
        case nil:
            break
        }
    }
}

struct TCPRelayMachineRun {
    typealias Machine = TCPRelayStateMachine
    var m: Machine
    var events = StackEvents()
    var registration = Registration()
    var eofPassed = false
    var upstreamShut = false
    var accepted = false

    init(_ input: inout FuzzInput) { m = Machine(checksName: input.bool()) }

    /// One input the owner may get at any time: a dial result, socket readiness, a stack
    /// event, tokens, a timer, detach; or it looks at the machine.
    mutating func step(_ input: inout FuzzInput) {
        let before = m.state
        let holdingBefore = isHolding
        let action: Machine.Action
        switch input.below(13) {
        case 0:
            let errors: [Int32] = [0, ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH]
            action = m.connectFinished(error: errors[input.below(errors.count)], canFallBack: input.bool())
        case 1: action = m.cannotDial()
        case 2: action = m.connectTimedOut()
        case 3: action = m.socketReadable()
        case 4: action = m.socketWritable()
        case 5: action = m.socketFailed()
        case 6:
            guard let e = events.next(&input) else { return }
            action = m.stackEvent(e, closedCleanly: input.bool())
        case 7: action = m.tokensBack(input.direction())
        case 8: action = m.halfOpenTimedOut()
        case 9: action = m.idleTimerFired(quiet: input.bool())
        case 10: action = m.abort()
        case 11:
            _ = m.pushStartsComplete(readClosed: input.bool(), connectionLive: input.bool())
            _ = m.guestFIN
            action = .none
        default:
            registration.apply(m.interestChange())
            if let wanted = m.wantedInterest { precondition(registration.mask == wanted, "registration is not the wanted mask") }
            action = .none
        }
        carryOut(action, before: before, holdingBefore: holdingBefore, &input)
    }

    /// Checks an action, then does what the owner does with it at once: run the pump or the
    /// name check, and report how that came out.
    mutating func carryOut(_ action: Machine.Action, before: Machine.State, holdingBefore: Bool, _ input: inout FuzzInput) {
        check(action, before: before, holdingBefore: holdingBefore)
        let state = m.state
        let holding = isHolding
        let next: Machine.Action
        switch action {
        case .pull: next = m.pulled(input.pullOutcome())
        case .push: next = m.pushed(input.pushOutcome())
        case .checkName: next = m.nameChecked([.allowed, .needMore, .denied][input.below(3)])
        default: return
        }
        carryOut(next, before: state, holdingBefore: holding, &input)
    }

    var isHolding: Bool {
        if case .relaying(let f) = m.state { return f.holding }
        return false
    }

    mutating func check(_ action: Machine.Action, before: Machine.State, holdingBefore: Bool) {
        if before == .done {
            // The end is final: nothing but detach's own answer, and that resets no guest.
            precondition(m.state == .done, "left the done state")
            precondition(action == .none || action == .abortBoth(abortGuest: false), "action \(action) after the end")
            return
        }
        let terminal: Bool
        switch action {
        case .finish(let e):
            terminal = true
            if case .connecting = before { precondition(!e.wasConnected, "connected ending while still dialling") }
            if e.shutUpstreamWrite {
                precondition(!upstreamShut, "upstream write shut twice")
                upstreamShut = true
            }
        case .refuseGuest, .resetBoth, .resetIdle, .resetHalfOpen, .abortBoth:
            terminal = true
        case .acceptGuest:
            precondition(!accepted, "guest accepted twice")
            accepted = true
            terminal = false
        case .passEOFToGuest(let closeSocket):
            precondition(!eofPassed, "upstream EOF passed to the guest twice")
            eofPassed = true
            precondition(closeSocket == upstreamShut, "socket closed before FIN went both ways, or left open after")
            terminal = false
        case .shutUpstreamWrite(let closeSocket):
            precondition(!upstreamShut, "upstream write shut twice")
            upstreamShut = true
            precondition(closeSocket == eofPassed, "socket closed before FIN went both ways, or left open after")
            terminal = false
        case .pull:
            precondition(!eofPassed, "reading the upstream after its EOF")
            terminal = false
        case .push:
            // A flow held for its name check sends the upstream nothing before the check allows it.
            precondition(!isHolding, "guest bytes pushed upstream before the name check")
            terminal = false
        case .checkName:
            precondition(holdingBefore, "a name check for a flow not held")
            terminal = false
        case .none, .dialOtherLoopback, .rearmIdleTimer, .waitForTokens:
            terminal = false
        }
        if case .dialOtherLoopback = action { registration = Registration() }
        precondition(terminal == (m.state == .done), "\(action) and state \(m.state) disagree on the end")
        if m.state == .done { precondition(m.wantedInterest == nil, "a finished flow still wants its socket watched") }
    }
}
#endif
