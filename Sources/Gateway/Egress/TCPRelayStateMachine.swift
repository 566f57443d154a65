// The egress relay's decisions for one guest TCP flow, apart from its socket and the stack:
// each input (dial result, socket readiness, stack event, pump outcome, timer) returns one action.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import NetStack

/// What `TCPRelay` does next, decided without touching a socket or the stack, so that every
/// path can be driven in a test. The theory of operation is at the top of TCPRelay.swift.
struct TCPRelayStateMachine {
    /// What each direction has done while the flow carries bytes.
    struct Flow: Equatable {
        /// The two ends of the stream (`Relay/StreamSides.swift`).
        var sides = StreamSides()
        /// The flow was allowed by a domain rule: the guest's first bytes stay in the stack until
        /// the name they ask for (TLS SNI, HTTP Host) is checked; nothing is pushed before.
        var holding = false
        /// The guest completed its handshake (the stack reported `.established`).
        var guestEstablished = false
    }

    enum State: Equatable {
        /// The guest's SYN waits in the stack while the destination is dialled.
        case connecting(triedFallback: Bool)
        case relaying(Flow)
        /// The stack's connection ended; its last bytes are being pushed before the flow ends.
        /// `clean`: both FINs were acknowledged, so unsent bytes may wait for the upstream.
        case closing(Flow, clean: Bool)
        /// The guest's connection ended cleanly (both FINs acknowledged) with bytes the
        /// upstream has not taken yet: they go out as it reads, then its FIN.
        case draining(Flow)
        case done
    }

    /// How the flow ends once the stack's connection has: the readable bytes left are dropped.
    struct Ending: Equatable {
        /// The guest's stream is whole and upstream: shutdown(SHUT_WR) before closing.
        var shutUpstreamWrite = false
        /// The socket closes with RST: FIN did not go both ways.
        var resetUpstream: Bool
        var wasConnected: Bool
    }

    enum Action: Equatable {
        case none
        /// The gateway's loopback refused: close the socket and dial the other family's.
        case dialOtherLoopback
        /// The upstream cannot be reached: close the socket, answer the guest's SYN with RST.
        case refuseGuest
        /// The upstream accepted: answer the guest's SYN, start the idle timer.
        case acceptGuest
        /// Run `StreamPump.pull` (socket → guest) and report its outcome.
        case pull
        /// Run `StreamPump.push` (guest → socket) and report its outcome.
        case push
        /// Read the guest's held bytes without taking them, check the name they ask for, and
        /// report `nameChecked`.
        case checkName
        /// The upstream's EOF becomes the guest's FIN; `closeSocket`: FIN has now gone both
        /// ways, so the socket closes gracefully.
        case passEOFToGuest(closeSocket: Bool)
        /// The guest's FIN and all its bytes are upstream: shutdown(SHUT_WR); `closeSocket` as above.
        case shutUpstreamWrite(closeSocket: Bool)
        /// The stack's connection ended: the flow leaves the relay's table.
        case finish(Ending)
        /// An upstream reset or a socket error: RST to the guest and the upstream.
        case resetBoth
        /// Quiet for the idle timeout: both sides reset.
        case resetIdle
        /// Not quiet yet: check again one timeout after the last activity.
        case rearmIdleTimer
        /// Detach: the socket closes with RST, and the guest's connection too if it still exists.
        case abortBoth(abortGuest: Bool)
        /// The guest got its SYN-ACK but did not complete the handshake within the half-open
        /// timeout: both sides are reset, so a SYN flood holds no host connection for long.
        case resetHalfOpen
        /// A pump stopped for want of tokens: wait for them (`held`: guest bytes left in the ring).
        case waitForTokens(RateLimiter.Direction, held: Int)
    }

    /// How a held flow's name check came out.
    enum NameCheck: Equatable {
        case allowed
        /// The bytes so far do not show a name yet.
        case needMore
        case denied
    }

    private(set) var state = State.connecting(triedFallback: false)
    private var watch = SocketWatch()
    /// Whether the flow starts holding the guest's bytes for a name check.
    private let checksName: Bool

    init(checksName: Bool = false) { self.checksName = checksName }

    var isConnecting: Bool {
        if case .connecting = state { return true }
        return false
    }

    // MARK: - Dialling

    /// The connect finished with `error` (0: connected). `canFallBack`: the destination is one
    /// loopback family, the other is there to try.
    mutating func connectFinished(error: Int32, canFallBack: Bool) -> Action {
        guard case .connecting(let tried) = state else { return .none }
        if error == 0 {
            state = .relaying(Flow(holding: checksName))
            return .acceptGuest
        }
        // The gateway address means "the host": when one loopback family refuses, try the other.
        if error == ECONNREFUSED && !tried && canFallBack {
            state = .connecting(triedFallback: true)
            watch.forget()
            return .dialOtherLoopback
        }
        state = .done
        return .refuseGuest
    }

    /// No socket could be made or watched.
    mutating func cannotDial() -> Action {
        guard isConnecting else { return .none }
        state = .done
        return .refuseGuest
    }

    mutating func connectTimedOut() -> Action { cannotDial() }

    // MARK: - Socket

    mutating func socketReadable() -> Action {
        switch state {
        case .relaying(let f): f.sides.socketEOF || f.sides.readLimited ? .none : .pull
        case .draining(let f): f.sides.writeLimited ? .none : .push
        case .connecting, .closing, .done: .none
        }
    }

    mutating func socketWritable() -> Action {
        switch state {
        case .relaying(let f): f.sides.socketOpen && !f.holding && !f.sides.writeLimited ? .push : .none
        case .draining(let f): f.sides.writeLimited ? .none : .push
        case .connecting, .closing, .done: .none
        }
    }

    /// EPOLLERR with an error pending on the socket.
    mutating func socketFailed() -> Action {
        switch state {
        case .relaying, .draining, .closing:
            state = .done
            return .resetBoth
        case .connecting, .done:
            return .none
        }
    }

    // MARK: - Stack

    mutating func stackEvent(_ event: TCPEvent, closedCleanly: Bool) -> Action {
        switch state {
        case .connecting:
            guard event == .closed else { return .none }
            state = .done
            return .finish(Ending(resetUpstream: true, wasConnected: false))
        case .relaying(var f):
            switch event {
            case .established:
                f.guestEstablished = true
                state = .relaying(f)
                return .none
            case .readable:
                if f.holding { return .checkName }
                return f.sides.socketOpen && !f.sides.writeLimited ? .push : .none
            case .peerClosed:
                f.sides.guestFIN = true
                state = .relaying(f)
                if f.holding { return .checkName }
                return f.sides.socketOpen && !f.sides.writeLimited ? .push : .none
            case .writable:
                return f.sides.stackFull && !f.sides.socketEOF && !f.sides.readLimited ? .pull : .none
            case .closed:
                if f.holding {
                    // The guest's connection ended before its bytes named anything: none of them
                    // goes upstream.
                    state = .done
                    return .finish(Ending(resetUpstream: true, wasConnected: true))
                }
                guard f.sides.socketOpen else {
                    state = .done
                    return .finish(Ending(resetUpstream: false, wasConnected: true))
                }
                // The guest's last bytes can come with its FIN after ours, in the event that
                // ends the connection: they still go upstream (pushing also passes the FIN on).
                state = .closing(f, clean: closedCleanly)
                return .push
            }
        case .closing, .draining, .done:
            return .none
        }
    }

    // MARK: - Name check

    /// The held bytes were checked. Allowed: they go upstream now. Not yet: wait for more, unless
    /// the guest's FIN says no more will come. Denied: both sides are reset.
    mutating func nameChecked(_ check: NameCheck) -> Action {
        guard case .relaying(var f) = state, f.holding else { return .none }
        switch check {
        case .allowed:
            f.holding = false
            state = .relaying(f)
            return f.sides.socketOpen ? .push : .none
        case .needMore where !f.sides.guestFIN:
            return .none
        case .needMore, .denied:
            state = .done
            return .resetBoth
        }
    }

    // MARK: - Pump outcomes

    /// Whether the guest's stream is whole when nothing is left to push: its FIN was read, and
    /// the stack still holds the connection, or the flow is still relaying (the event that ended it
    /// is being handled). While
    /// draining, a connection the stack no longer holds lost its bytes (dropped to make room
    /// among too many in TIME-WAIT): the upstream is reset, not given a FIN.
    func pushStartsComplete(readClosed: Bool, connectionLive: Bool) -> Bool {
        guard readClosed else { return false }
        switch state {
        case .relaying, .closing: return true
        case .connecting, .draining, .done: return connectionLive
        }
    }

    /// Whether the guest's bytes may go to the socket as they arrive, past the receive ring:
    /// relaying, nothing held for the name check, and the socket neither full, rate-limited
    /// nor past the guest's FIN. (The stack offers them only while the ring is empty.)
    var takesGuestBytesDirectly: Bool {
        guard case .relaying(let f) = state else { return false }
        return !f.holding && !f.sides.socketFull && !f.sides.writeLimited && !f.sides.guestFIN
    }

    var guestFIN: Bool {
        switch state {
        case .relaying(let f), .closing(let f, _), .draining(let f): f.sides.guestFIN
        case .connecting, .done: false
        }
    }

    mutating func pulled(_ outcome: StreamPump.PullOutcome) -> Action {
        guard case .relaying(var f) = state else { return .none }
        switch outcome {
        case .socketEmpty:
            f.sides.stackFull = false
        case .stackFull:
            f.sides.stackFull = true
        case .endOfStream:
            f.sides.socketEOF = true
            state = .relaying(f)
            return .passEOFToGuest(closeSocket: !f.sides.socketOpen)
        case .failed:
            state = .done
            return .resetBoth
        case .rateLimited:
            // The ring had room: only the tokens ran out, so `.writable` will not come to resume.
            f.sides.stackFull = false
            f.sides.readLimited = true
            state = .relaying(f)
            return .waitForTokens(.fromHost, held: 0)
        }
        state = .relaying(f)
        return .none
    }

    mutating func pushed(_ outcome: StreamPump.PushOutcome) -> Action {
        switch state {
        case .relaying(var f):
            switch outcome {
            case .socketFull:
                f.sides.socketFull = true
                state = .relaying(f)
                return .none
            case .emptied(let complete):
                f.sides.socketFull = false
                let shut = complete && !f.sides.socketWriteShut
                if shut { f.sides.socketWriteShut = true }
                state = .relaying(f)
                return shut ? .shutUpstreamWrite(closeSocket: !f.sides.socketOpen) : .none
            case .failed:
                state = .done
                return .resetBoth
            case .rateLimited(let held):
                // The socket took all it was given.
                f.sides.socketFull = false
                f.sides.writeLimited = true
                state = .relaying(f)
                return .waitForTokens(.toHost, held: held)
            }
        case .closing(var f, let clean):
            switch outcome {
            case .socketFull where clean:
                // A clean end with bytes the upstream cannot take yet: the stack keeps them (no
                // reset can drop them now) until the upstream reads.
                f.sides.socketFull = true
                state = .draining(f)
                return .none
            case .rateLimited(let held) where clean:
                // As for a full socket: the bytes wait in the stack, here for tokens.
                f.sides.writeLimited = true
                state = .draining(f)
                return .waitForTokens(.toHost, held: held)
            case .socketFull, .rateLimited:
                state = .done
                return .finish(Ending(resetUpstream: true, wasConnected: true))
            case .emptied(let complete):
                return finish(f, complete: complete)
            case .failed:
                state = .done
                return .resetBoth
            }
        case .draining(var f):
            switch outcome {
            case .socketFull:
                f.sides.socketFull = true
                state = .draining(f)
                return .none
            case .rateLimited(let held):
                f.sides.writeLimited = true
                state = .draining(f)
                return .waitForTokens(.toHost, held: held)
            case .emptied(let complete):
                // The upstream has every byte (and the FIN after them): the flow is over.
                return finish(f, complete: complete)
            case .failed:
                state = .done
                return .resetBoth
            }
        case .connecting, .done:
            return .none
        }
    }

    private mutating func finish(_ f: Flow, complete: Bool) -> Action {
        var f = f
        let shut = complete && !f.sides.socketWriteShut
        if shut { f.sides.socketWriteShut = true }
        state = .done
        return .finish(Ending(shutUpstreamWrite: shut, resetUpstream: f.sides.socketOpen, wasConnected: true))
    }

    // MARK: - Rate limit and half-open timeout

    /// The sandbox's tokens are back `direction` (or its limits changed): the pump that
    /// stopped for them runs again.
    mutating func tokensBack(_ direction: RateLimiter.Direction) -> Action {
        switch (state, direction) {
        case (.relaying(var f), .fromHost) where f.sides.readLimited:
            f.sides.readLimited = false
            state = .relaying(f)
            return f.sides.socketEOF || f.sides.stackFull ? .none : .pull
        case (.relaying(var f), .toHost) where f.sides.writeLimited:
            f.sides.writeLimited = false
            state = .relaying(f)
            return f.sides.socketOpen && !f.holding && !f.sides.socketFull ? .push : .none
        case (.draining(var f), .toHost) where f.sides.writeLimited:
            f.sides.writeLimited = false
            state = .draining(f)
            return .push
        default:
            return .none
        }
    }

    /// The half-open timer fired: a guest that has not completed its handshake by now never will
    /// in good faith.
    mutating func halfOpenTimedOut() -> Action {
        guard case .relaying(let f) = state, !f.guestEstablished else { return .none }
        state = .done
        return .resetHalfOpen
    }

    // MARK: - Timers and detach

    /// The idle timer fired; `quiet`: nothing moved for the whole timeout.
    mutating func idleTimerFired(quiet: Bool) -> Action {
        switch state {
        case .relaying(let f) where f.sides.socketOpen, .draining(let f) where f.sides.socketOpen:
            guard quiet else { return .rearmIdleTimer }
            state = .done
            return .resetIdle
        default:
            return .none
        }
    }

    /// Detach: both sides reset, no callbacks into the relay's table.
    mutating func abort() -> Action {
        let guestAlive = state != .done
        state = .done
        return .abortBoth(abortGuest: guestAlive)
    }

    // MARK: - Interest

    /// The epoll mask this state wants; nil once the socket is closed.
    var wantedInterest: UInt32? {
        switch state {
        case .connecting:
            return EPOLLOUT.rawValue
        case .relaying(let f), .closing(let f, _):
            guard f.sides.socketOpen else { return nil }
            let read = f.sides.socketEOF || f.sides.stackFull || f.sides.readLimited ? 0 : EPOLLIN.rawValue
            return read | (f.sides.socketFull && !f.sides.writeLimited ? EPOLLOUT.rawValue : 0)
        case .draining(let f):
            // Only the upstream's reading matters now: what it sends has nowhere to go.
            return f.sides.writeLimited ? 0 : EPOLLOUT.rawValue
        case .done:
            return nil
        }
    }

    /// The one step that gets the socket's registration to `wantedInterest`, if any.
    mutating func interestChange() -> SocketWatch.Change? {
        watch.change(to: wantedInterest)
    }
}
