// The decisions for one guest DNS-over-TCP connection, apart from the stack and the DNS hook:
// when to read queries, when to stop, when to send FIN, when an idle or unread session ends.
import NetStack

/// What `DNSTCPSession` does next. The session frames queries and queues answers; this says
/// what its state allows, so the limits of RFC 7766 §6.2 can be checked without a stack.
struct DNSTCPSessionStateMachine {
    enum State: Equatable {
        /// Reading queries.
        case open
        /// No more queries are read (guest FIN, a bad message, idle): FIN once the answers are out.
        case draining
        /// Our FIN is queued; waiting for the stack to report the connection closed.
        case finSent
        case done
    }

    enum Action: Equatable {
        case none
        /// Move queued answers into the send buffer, read the queries the state allows, then
        /// report `serviced`.
        case service
        /// No more queries are read: what the guest sent is taken unread, so that its window
        /// and its FIN are not held up. `protocolError`: it sent something that is not DNS.
        case stopReading(protocolError: Bool)
        /// Every answer is out and no query will be read: FIN to the guest.
        case sendFIN
        /// The connection ended (FIN handshake done, or the guest reset): bytes it sent after
        /// ours are read by no one, and the session leaves the relay's table.
        case finish
        /// The guest keeps asking but does not read its answers: reset it.
        case resetUnread
        /// Quiet for the idle timeout with nothing in flight: close gracefully (RFC 7766 §6.2.3).
        case idleClose
        /// Still not closed a timeout after that, or its queries unanswered for a minute: reset.
        case resetStalled
        /// Not idle yet: check again then.
        case rearmIdleTimer(at: UInt64)
        /// Detach or a relay-wide abort: reset the guest's connection if it still exists.
        case abort(abortGuest: Bool)
    }

    /// Answers queued for a guest that does not read them, beyond which it is reset: reading
    /// stops at 64 KiB queued, but answers to the queries already in flight (up to 16 of up to
    /// 64 KiB each) still arrive.
    static let maxUnreadAnswerBytes = 256 * 1024
    /// How long queries in flight may go unanswered before the session counts as stalled.
    static let maxAnswerWait: UInt64 = 60_000_000_000

    private(set) var state = State.open
    /// Queries handed to the DNS hook and not yet answered.
    private(set) var inFlight = 0
    /// The guest sent FIN: what is already received is all there will be. (The stack's
    /// `tcpIsReadClosed` only turns true once those bytes are consumed.)
    private(set) var peerFinished = false
    let maxInFlight: Int

    init(maxInFlight: Int) {
        self.maxInFlight = maxInFlight
    }

    var isReading: Bool { state == .open }

    // MARK: - Stack

    mutating func stackEvent(_ event: TCPEvent) -> Action {
        guard state != .done else { return .none }
        switch event {
        case .closed:
            // Answers still to come are dropped by the relay's lookup, which no longer finds
            // this flow.
            state = .done
            return .finish
        case .peerClosed:
            peerFinished = true
            return .service
        case .established, .readable, .writable:
            // Room in the send buffer may also let reading resume (see `mayRead`).
            return .service
        }
    }

    // MARK: - Queries

    /// Reading stops at the in-flight bound, and while a full message's worth of answers waits
    /// for the guest to read: a guest that sends but never reads cannot make us queue without end.
    func mayRead(unsentAnswerBytes: Int) -> Bool {
        state == .open && inFlight < maxInFlight && unsentAnswerBytes <= 2 + 65535
    }

    /// A whole query went to the DNS hook.
    mutating func queryTaken() {
        inFlight += 1
    }

    /// The hook dropped a query it took (too short for a header, or a response) and will never
    /// answer; or the stream held an empty message (RFC 1035 §4.2.2 has none) and cannot be
    /// framed past it. A peer sending such things is not speaking DNS: stop listening.
    mutating func malformedQuery(taken: Bool) -> Action {
        if taken { inFlight -= 1 }
        guard state == .open else { return .none }
        state = .draining
        return .stopReading(protocolError: true)
    }

    /// Reading stopped for now; `readClosed`: the stack has nothing more to give (the guest's
    /// FIN was read). After the guest's FIN and every whole message taken, a partial one left
    /// behind never completes.
    mutating func readingPaused(readClosed: Bool, unsentAnswerBytes: Int) -> Action {
        guard mayRead(unsentAnswerBytes: unsentAnswerBytes), peerFinished || readClosed else { return .none }
        state = .draining
        return .stopReading(protocolError: false)
    }

    /// Sends FIN once nothing is left to answer or send, when no more queries will be read.
    mutating func serviced(unsentAnswerBytes: Int) -> Action {
        guard state == .draining, inFlight == 0, unsentAnswerBytes == 0 else { return .none }
        state = .finSent
        return .sendFIN
    }

    // MARK: - Answers

    /// An answer arrived from the hook; false when the session is over and it is dropped.
    mutating func answerArrived() -> Bool {
        guard state != .done else { return false }
        inFlight -= 1
        return true
    }

    /// The answer was queued behind `unsentAnswerBytes` in all.
    mutating func answerQueued(unsentAnswerBytes: Int) -> Action {
        guard state != .done else { return .none }
        if unsentAnswerBytes > Self.maxUnreadAnswerBytes {
            state = .done
            return .resetUnread
        }
        // Below the in-flight bound again: queries the guest already sent can now be read.
        return .service
    }

    // MARK: - Idle and endings

    /// The idle timer fired. Idle means no query in flight and nothing sent or received for
    /// `idle` nanoseconds: the gateway closes (RFC 7766 §6.2.3). A session still not closed one
    /// more timeout after that (the guest does not read its answers or does not finish its
    /// side), or whose queries went unanswered for a minute, is reset.
    mutating func idleTimerFired(now: UInt64, lastActivity: UInt64, idle: UInt64) -> Action {
        guard state != .done else { return .none }
        let wait = inFlight > 0 ? max(idle, Self.maxAnswerWait) : idle
        guard now >= lastActivity + wait else {
            return .rearmIdleTimer(at: min(lastActivity + wait, now + idle))
        }
        if state == .open && inFlight == 0 {
            state = .draining
            return .idleClose
        }
        state = .done
        return .resetStalled
    }

    /// Detach, or the relay gives up on the session.
    mutating func abort() -> Action {
        let guestAlive = state != .done
        state = .done
        return .abort(abortGuest: guestAlive)
    }
}
