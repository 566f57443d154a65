// The decisions for one client of a published TCP port, apart from its socket and the stack:
// each input (socket readiness, stack event, pump outcome, timer, unpublish) returns one action.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import NetStack

/// What `InboundConnection` does next, decided without touching a socket or the stack, so that
/// every path can be driven in a test. The theory of operation is at the top of
/// InboundConnection.swift.
struct InboundStateMachine {
    /// What each direction has done.
    struct Flow: Equatable {
        /// The two ends of the stream (`Relay/StreamSides.swift`).
        var sides = StreamSides()
        /// The client has shut down both directions or gone: epoll reports EPOLLHUP whatever
        /// the mask, so with nothing to do the socket leaves the loop instead of waking it forever.
        var hungUp = false
    }

    enum State: Equatable {
        /// SYN sent to the guest; the client's bytes wait in its socket.
        case connecting(Flow)
        case relaying(Flow)
        /// The guest's connection closed with bytes still to deliver to the client.
        case draining(Flow)
        case done
    }

    enum Action: Equatable {
        case none
        /// The guest answered: stop the clock on its answer, count the connection.
        case established
        /// Run `StreamPump.pull` (client → guest) and report its outcome.
        case pull
        /// Run `StreamPump.push` (guest → client) and report its outcome.
        case push
        /// The client's EOF becomes the guest's FIN; `closeClient`: FIN has now gone both ways.
        case passEOFToGuest(closeClient: Bool)
        /// The guest's FIN and every byte before it reached the client: shutdown(SHUT_WR).
        case shutClientWrite
        /// The stack's connection ended with bytes for the client: start the clock on
        /// `closeFlushTimeout`, then push.
        case drain
        /// A graceful end (FIN both ways, every byte delivered): the socket closes, the flow
        /// leaves the table; `shutWriteFirst`: shutdown(SHUT_WR) before.
        case closeClient(shutWriteFirst: Bool)
        /// The stack's connection ended without a whole stream (a guest RST, retransmissions
        /// ran out): the client is reset and the flow leaves the table.
        case resetClient
        /// The guest could not be reached: the client is reset (and the guest's connection
        /// aborted when `abortGuest`), counted as a failed connection.
        case refuseClient(InboundConnection.ResetReason, abortGuest: Bool)
        /// A socket error, a client reset, a flush that timed out: both sides are reset.
        case resetBoth(wasEstablished: Bool)
        /// A pump stopped for want of tokens: wait for them (`held`: guest bytes left in the ring).
        case waitForTokens(RateLimiter.Direction, held: Int)
        /// Unpublish or detach: both sides reset, no callback into the relay's table.
        case abortBoth(abortGuest: Bool)
    }

    private(set) var state = State.connecting(Flow())
    private var watch = SocketWatch()

    private var flow: Flow? {
        switch state {
        case .connecting(let f), .relaying(let f), .draining(let f): f
        case .done: nil
        }
    }

    var guestFIN: Bool { flow?.sides.guestFIN ?? false }

    /// Whether the guest's bytes may go to the client's socket as they arrive, past the receive
    /// ring: relaying, and the socket neither full, rate-limited nor past the guest's FIN. (The
    /// stack offers them only while the ring is empty.)
    var takesGuestBytesDirectly: Bool {
        guard case .relaying(let f) = state else { return false }
        return !f.sides.socketFull && !f.sides.writeLimited && !f.sides.guestFIN
    }

    var isEstablished: Bool {
        switch state {
        case .relaying, .draining: true
        case .connecting, .done: false
        }
    }

    // MARK: - Stack

    /// One event of the guest's connection; `unreadBytes`: the guest's bytes not yet with the
    /// client (looked at when the connection closed).
    mutating func stackEvent(_ event: TCPEvent, unreadBytes: Int) -> Action {
        switch state {
        case .connecting(var f):
            switch event {
            case .established:
                state = .relaying(f)
                return .established
            case .closed:
                // RST from the guest (nothing listens) or SYN retransmissions ran out.
                state = .done
                return .refuseClient(.guestRefused, abortGuest: false)
            case .peerClosed:
                f.sides.guestFIN = true
                state = .connecting(f)
                return .none
            case .readable, .writable:
                return .none
            }
        case .relaying(var f):
            switch event {
            case .established:
                return .none
            case .readable:
                return f.sides.writeLimited ? .none : .push
            case .peerClosed:
                f.sides.guestFIN = true
                state = .relaying(f)
                return f.sides.writeLimited ? .none : .push
            case .writable:
                return !f.sides.socketEOF && f.sides.stackFull && !f.sides.readLimited ? .pull : .none
            case .closed:
                // After both FINs the client's socket closes normally once the guest's last
                // bytes are out; after a guest RST or a timeout the client is reset.
                if unreadBytes > 0 {
                    state = .draining(f)
                    return .drain
                }
                state = .done
                // FIN went both ways on the client's socket and the guest's stream was whole.
                let clean = !f.sides.socketOpen && f.sides.guestFIN
                return clean ? .closeClient(shutWriteFirst: false) : .resetClient
            }
        case .draining(var f):
            if event == .peerClosed {
                f.sides.guestFIN = true
                state = .draining(f)
            }
            return f.sides.writeLimited ? .none : .push
        case .done:
            return .none
        }
    }

    // MARK: - Socket

    /// Epoll reported on the client's socket; `error`: SO_ERROR when EPOLLERR was reported.
    mutating func socketEvent(hangUp: Bool, error: Int32?) -> Action {
        guard var f = flow else { return .none }
        if hangUp {
            f.hungUp = true
            update(f)
        }
        switch state {
        case .connecting:
            // Only errors are watched now: the client reset or vanished before the guest answered.
            guard hangUp || error != nil else { return .none }
            state = .done
            return .resetBoth(wasEstablished: false)
        case .relaying, .draining:
            guard let error, error != 0 else { return .none }
            state = .done
            return .resetBoth(wasEstablished: true)
        case .done:
            return .none
        }
    }

    mutating func socketReadable() -> Action {
        switch state {
        case .relaying(let f): f.sides.socketEOF || f.sides.readLimited ? .none : .pull
        case .draining(let f): f.sides.writeLimited ? .none : .push
        case .connecting, .done: .none
        }
    }

    mutating func socketWritable() -> Action {
        switch state {
        case .relaying(let f), .draining(let f): f.sides.writeLimited ? .none : .push
        case .connecting, .done: .none
        }
    }

    /// The socket could not be put back into the loop: treated as a socket error.
    mutating func watchFailed() -> Action {
        guard flow != nil else { return .none }
        let established = isEstablished
        state = .done
        return .resetBoth(wasEstablished: established)
    }

    // MARK: - Pump outcomes

    /// A connection the stack no longer has may have lost bytes (a reset drops them at once):
    /// only a live one that read the FIN says the guest's stream is complete.
    func pushStartsComplete(readClosed: Bool, connectionLive: Bool) -> Bool {
        readClosed && connectionLive
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
            // FIN has gone each way: what is left (the guest acknowledging our FIN, TIME-WAIT)
            // is the stack's, so the client's socket closes now.
            state = f.sides.socketWriteShut ? .done : .relaying(f)
            return .passEOFToGuest(closeClient: f.sides.socketWriteShut)
        case .failed:
            state = .done
            return .resetBoth(wasEstablished: true)
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
        guard var f = flow, isEstablished else { return .none }
        switch outcome {
        case .socketFull:
            f.sides.socketFull = true
            update(f)
            return .none
        case .failed:
            state = .done
            return .resetBoth(wasEstablished: true)
        case .rateLimited(let held):
            f.sides.socketFull = false
            f.sides.writeLimited = true
            update(f)
            return .waitForTokens(.toHost, held: held)
        case .emptied(let complete):
            f.sides.socketFull = false
            let shut = f.sides.guestFIN && !f.sides.socketWriteShut && complete
            if shut { f.sides.socketWriteShut = true }
            if case .draining = state {
                // Every byte the guest sent is with the client: a whole stream ends with FIN,
                // a cut-off one with RST.
                state = .done
                return f.sides.socketWriteShut ? .closeClient(shutWriteFirst: shut) : .resetBoth(wasEstablished: true)
            }
            if f.sides.socketEOF && f.sides.socketWriteShut {
                state = .done
                return .closeClient(shutWriteFirst: shut)
            }
            update(f)
            return shut ? .shutClientWrite : .none
        }
    }

    // MARK: - Rate limit

    /// The sandbox's tokens are back `direction` (or its limits changed): the pump that stopped
    /// for them runs again.
    mutating func tokensBack(_ direction: RateLimiter.Direction) -> Action {
        guard var f = flow, isEstablished else { return .none }
        switch direction {
        case .fromHost:
            guard f.sides.readLimited, case .relaying = state else { return .none }
            f.sides.readLimited = false
            update(f)
            return f.sides.socketEOF || f.sides.stackFull ? .none : .pull
        case .toHost:
            guard f.sides.writeLimited else { return .none }
            f.sides.writeLimited = false
            update(f)
            return f.sides.socketFull ? .none : .push
        }
    }

    // MARK: - Timer and unpublish

    /// The one timer fired: the guest's answer while connecting, the flush while draining.
    mutating func timerFired() -> Action {
        switch state {
        case .connecting:
            state = .done
            return .refuseClient(.guestTimedOut, abortGuest: true)
        case .draining:
            state = .done
            return .resetBoth(wasEstablished: true)
        case .relaying, .done:
            return .none
        }
    }

    /// Unpublish or detach.
    mutating func abort() -> Action {
        let guestAlive = state != .done
        state = .done
        return .abortBoth(abortGuest: guestAlive)
    }

    private mutating func update(_ f: Flow) {
        switch state {
        case .connecting: state = .connecting(f)
        case .relaying: state = .relaying(f)
        case .draining: state = .draining(f)
        case .done: break
        }
    }

    // MARK: - Interest

    /// The epoll mask this state wants; nil once the flow is over.
    var wantedInterest: UInt32? {
        switch state {
        case .connecting:
            return 0
        case .relaying(let f):
            let read = f.sides.socketEOF || f.sides.stackFull || f.sides.readLimited ? 0 : EPOLLIN.rawValue
            return read | (f.sides.socketFull && !f.sides.writeLimited ? EPOLLOUT.rawValue : 0)
        case .draining(let f):
            return f.sides.writeLimited ? 0 : EPOLLOUT.rawValue
        case .done:
            return nil
        }
    }

    /// The one step that gets the socket's registration to `wantedInterest`, if any.
    mutating func interestChange() -> SocketWatch.Change? {
        watch.change(to: wantedInterest, hungUp: flow?.hungUp ?? false)
    }
}
