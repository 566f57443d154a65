// A guest's DNS-over-TCP connection, terminated in the sandbox's own stack: length-prefixed
// queries (RFC 1035 §4.2.2) go to the same DNS hook as UDP ones, answers go back in any order.
import NetStack
import Wire

/// One connection to port 53 (any destination), owned by the sandbox's `EgressRelay` and confined
/// to its shard's loop. RFC 7766 §6.2.1: queries may be pipelined and are answered as they
/// complete; the gateway bounds how many are in flight, closes an idle connection, answers what
/// is outstanding after the guest's FIN, and closes on a message it cannot take.
final class DNSTCPSession {
    private enum Phase {
        /// Reading queries.
        case open
        /// No more queries are read (guest FIN, a bad message, idle): FIN once the answers are out.
        case draining
        /// Our FIN is queued; waiting for the stack to report the connection closed.
        case finSent
        case done
    }

    unowned let relay: EgressRelay
    let id: TCPFlowID
    let key: FlowKey
    private var phase = Phase.open
    /// Queries handed to the DNS hook and not yet answered.
    private(set) var inFlight = 0
    /// Answers, length prefix included, the send buffer could not take yet.
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    /// True while this session calls the DNS hook: an answer given at once must not drive the
    /// stack's events from inside their own delivery.
    private var inHook = false
    /// The guest sent FIN: what is already received is all there will be. (The stack's
    /// `tcpIsReadClosed` only turns true once those bytes are consumed.)
    private var peerFinished = false
    private var lastActivity = monotonicNanoseconds()
    private var idleTimer: EventLoop.TimerID?

    private var stack: Stack { relay.stack }
    private var limits: EgressLimits { relay.limits }

    init(relay: EgressRelay, id: TCPFlowID, key: FlowKey) {
        self.relay = relay
        self.id = id
        self.key = key
    }

    /// Accepts the guest's SYN; nothing upstream needs to be reached first.
    func start() {
        stack.tcpAccept(id, now: monotonicNanoseconds())
        armIdleTimer()
    }

    // MARK: - Stack side

    func stackEvents(_ ev: TCPEvents) {
        guard phase != .done else { return }
        if ev.contains(.closed) {
            // FIN handshake done, or the guest reset: answers still to come are dropped by the
            // relay's lookup, which no longer finds this flow.
            finish()
            return
        }
        if ev.contains(.peerClosed) { peerFinished = true }
        // Room in the send buffer may also let reading resume (see `mayRead`).
        flush()
        readQueries()
        closeIfDone()
    }

    /// Reading stops at the in-flight bound, and while a full message's worth of answers waits
    /// for the guest to read: a guest that sends but never reads cannot make us queue without end.
    private var mayRead: Bool {
        inFlight < limits.maxDNSTCPQueriesInFlight && pending.count - pendingOffset <= 2 + 65535
    }

    /// Frames and hands on every complete query, up to the in-flight bound.
    private func readQueries() {
        let now = monotonicNanoseconds()
        if phase != .open {
            // Whatever follows a bad message or our FIN is not read; it is taken so that the
            // guest's window and its own FIN are not held up.
            stack.tcpDiscardReadable(id, now: now)
            return
        }
        defer { flush() }
        while phase == .open && mayRead {
            let available = stack.tcpReadableBytes(id)
            guard available >= 2 else { break }
            // The message may span the receive buffer's chunks: gather it in one place.
            let out = relay.datagramBuffer
            _ = stack.tcpPeek(id, into: UnsafeMutableRawBufferPointer(rebasing: out[..<2]))
            let length = Int(out[0]) << 8 | Int(out[1])
            guard length > 0 else {
                // RFC 1035 §4.2.2 has no empty message; the stream cannot be framed past it.
                relay.dnsTCPProtocolError()
                return stopReading(now: now)
            }
            guard available >= 2 + length else { break }
            _ = stack.tcpPeek(id, into: UnsafeMutableRawBufferPointer(rebasing: out[..<(2 + length)]))
            let message = UnsafeRawBufferPointer(rebasing: out[2..<(2 + length)])
            lastActivity = now
            inFlight += 1
            relay.dnsTCPQuery()
            inHook = true
            let accepted = relay.answerDNS(key, overTCP: true, message) { [weak relay, id] answer in
                relay?.dnsTCPAnswered(id, answer)
            }
            inHook = false
            stack.tcpConsume(id, 2 + length, now: now)
            if !accepted {
                // The hook drops it (too short for a header, or a response) and will never
                // answer: a peer sending such things is not speaking DNS, so stop listening.
                inFlight -= 1
                relay.dnsTCPProtocolError()
                return stopReading(now: now)
            }
        }
        if phase == .open && mayRead && (peerFinished || stack.tcpIsReadClosed(id)) {
            // Guest FIN and every whole message taken: a partial one left behind never completes.
            stopReading(now: now)
        }
    }

    private func stopReading(now: UInt64) {
        phase = .draining
        stack.tcpDiscardReadable(id, now: now)
    }

    // MARK: - Answers

    /// Answers queued for a guest that does not read them, beyond which it is reset: reading
    /// stops at 64 KiB queued, but answers to the queries already in flight (up to 16 of up to
    /// 64 KiB each) still arrive.
    static let maxUnreadAnswerBytes = 256 * 1024

    /// An answer from the hook, for a query of this connection.
    func answered(_ answer: [UInt8]) {
        guard phase != .done else { return }
        inFlight -= 1
        lastActivity = monotonicNanoseconds()
        // An answer longer than 65535 bytes cannot be framed; the hook never makes one, but
        // one that cannot be sent is dropped rather than corrupting the stream.
        if answer.count <= 65535 {
            pending.append(UInt8(truncatingIfNeeded: answer.count >> 8))
            pending.append(UInt8(truncatingIfNeeded: answer.count))
            pending += answer
        }
        if pending.count - pendingOffset > Self.maxUnreadAnswerBytes {
            // The guest keeps asking but does not read: reset it rather than hold its answers.
            relay.dnsTCPUnreadReset()
            abort()
            relay.dnsTCPFinished(id)
            if !inHook { relay.driver.afterWork() }
            return
        }
        guard !inHook else { return }
        flush()
        // Below the in-flight bound again: queries the guest already sent can now be read.
        readQueries()
        closeIfDone()
        relay.driver.afterWork()
    }

    /// Moves queued answers into the send buffer as far as it has room.
    private func flush() {
        guard pendingOffset < pending.count else { return }
        let now = monotonicNanoseconds()
        let room = stack.tcpWritableBytes(id)
        guard room > 0 else { return }
        let n = pending.withUnsafeBytes { all in
            let end = min(pending.count, pendingOffset + room)
            return stack.tcpWrite(id, UnsafeRawBufferPointer(rebasing: all[pendingOffset..<end]), now: now)
        }
        pendingOffset += n
        if n > 0 { lastActivity = now }
        if pendingOffset == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingOffset = 0
        } else if pendingOffset >= 65536 {
            pending.removeFirst(pendingOffset)
            pendingOffset = 0
        }
    }

    /// Sends FIN once nothing is left to answer or send, when no more queries will be read.
    private func closeIfDone() {
        guard phase == .draining, inFlight == 0, pendingOffset == pending.count else { return }
        phase = .finSent
        stack.tcpShutdownWrite(id, now: monotonicNanoseconds())
    }

    // MARK: - Idle and endings

    /// Checks at most every idle timeout. Idle means no query in flight and nothing sent or
    /// received for that long: the gateway closes (RFC 7766 §6.2.3). A connection still not
    /// closed one more timeout after that (the guest does not read its answers or does not
    /// finish its side), or whose queries went unanswered for a minute, is reset.
    private func armIdleTimer(at deadline: UInt64? = nil) {
        let idle = limits.dnsTCPIdleTimeout.nanoseconds
        idleTimer = relay.loop.schedule(at: deadline ?? lastActivity + idle) { [weak self] in
            guard let self, self.phase != .done else { return }
            self.idleTimer = nil
            let now = monotonicNanoseconds()
            let wait = self.inFlight > 0 ? max(idle, 60_000_000_000) : idle
            guard now >= self.lastActivity + wait else {
                return self.armIdleTimer(at: min(self.lastActivity + wait, now + idle))
            }
            if self.phase == .open && self.inFlight == 0 {
                self.relay.dnsTCPIdleClose()
                self.phase = .draining
                self.lastActivity = now
                self.closeIfDone()
                self.armIdleTimer()
            } else {
                self.abort()
                self.relay.dnsTCPFinished(self.id)
            }
            self.relay.driver.afterWork()
        }
    }

    private func finish() {
        // Bytes the guest sent with its FIN after ours are read by no one.
        stack.tcpDiscardReadable(id, now: monotonicNanoseconds())
        phase = .done
        if let t = idleTimer { relay.loop.cancel(t) }
        idleTimer = nil
        relay.dnsTCPFinished(id)
    }

    /// Resets the guest's connection; the caller forgets the session.
    func abort() {
        if let t = idleTimer { relay.loop.cancel(t) }
        idleTimer = nil
        if phase != .done { stack.tcpAbort(id, now: monotonicNanoseconds()) }
        phase = .done
    }
}
