// A guest's DNS-over-TCP connection, terminated in the sandbox's own stack: length-prefixed
// queries (RFC 1035 §4.2.2) go to the same DNS hook as UDP ones, answers go back in any order.
import NetStack
import Wire

/// One connection to port 53 (any destination), owned by the sandbox's `EgressRelay` and confined
/// to its shard's loop. RFC 7766 §6.2.1: queries may be pipelined and are answered as they
/// complete; the gateway bounds how many are in flight, closes an idle connection, answers what
/// is outstanding after the guest's FIN, and closes on a message it cannot take. Those rules
/// are `DNSTCPSessionStateMachine`'s; this class frames queries, queues answers and carries out
/// what the machine decides.
final class DNSTCPSession {
    unowned let relay: EgressRelay
    let id: TCPFlowID
    let key: FlowKey
    private var machine: DNSTCPSessionStateMachine
    /// Answers, length prefix included, the send buffer could not take yet.
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    /// True while this session calls the DNS hook: an answer given at once must not drive the
    /// stack's events from inside their own delivery.
    private var inHook = false
    private var lastActivity = monotonicNanoseconds()
    private var idleTimer: EventLoop.TimerID?

    private var stack: Stack { relay.stack }
    private var limits: EgressLimits { relay.limits }
    private var unsent: Int { pending.count - pendingOffset }

    init(relay: EgressRelay, id: TCPFlowID, key: FlowKey) {
        self.relay = relay
        self.id = id
        self.key = key
        machine = DNSTCPSessionStateMachine(maxInFlight: relay.limits.maxDNSTCPQueriesInFlight)
    }

    /// Accepts the guest's SYN; nothing upstream needs to be reached first.
    func start() {
        stack.tcpAccept(id, now: monotonicNanoseconds())
        armIdleTimer()
    }

    // MARK: - Inputs

    func stackEvent(_ event: TCPEvent) {
        perform(machine.stackEvent(event))
    }

    /// An answer from the hook, for a query of this connection.
    func answered(_ answer: [UInt8]) {
        guard machine.answerArrived() else { return }
        lastActivity = monotonicNanoseconds()
        // An answer longer than 65535 bytes cannot be framed; the hook never makes one, but
        // one that cannot be sent is dropped rather than corrupting the stream.
        if answer.count <= 65535 {
            pending.append(UInt8(truncatingIfNeeded: answer.count >> 8))
            pending.append(UInt8(truncatingIfNeeded: answer.count))
            pending += answer
        }
        let action = machine.answerQueued(unsentAnswerBytes: unsent)
        if action == .service && inHook { return }
        perform(action)
        if !inHook { relay.driver.afterWork() }
    }

    /// Resets the guest's connection; the caller forgets the session.
    func abort() {
        perform(machine.abort())
    }

    // MARK: - Carrying out actions

    private func perform(_ action: DNSTCPSessionStateMachine.Action) {
        switch action {
        case .none:
            return
        case .service:
            flush()
            readQueries()
            perform(machine.serviced(unsentAnswerBytes: unsent))
        case .stopReading(let protocolError):
            if protocolError { relay.dnsTCPProtocolError() }
            stack.tcpDiscardReadable(id, now: monotonicNanoseconds())
        case .sendFIN:
            stack.tcpShutdownWrite(id, now: monotonicNanoseconds())
        case .finish:
            // Bytes the guest sent with its FIN after ours are read by no one.
            stack.tcpDiscardReadable(id, now: monotonicNanoseconds())
            cancelIdleTimer()
            relay.dnsTCPFinished(id)
        case .resetUnread:
            relay.dnsTCPUnreadReset()
            resetGuest()
        case .idleClose:
            relay.dnsTCPIdleClose()
            lastActivity = monotonicNanoseconds()
            perform(machine.serviced(unsentAnswerBytes: unsent))
            armIdleTimer()
        case .resetStalled:
            resetGuest()
        case .rearmIdleTimer(let deadline):
            armIdleTimer(at: deadline)
        case .abort(let abortGuest):
            cancelIdleTimer()
            if abortGuest { stack.tcpAbort(id) }
        }
    }

    private func resetGuest() {
        cancelIdleTimer()
        stack.tcpAbort(id)
        relay.dnsTCPFinished(id)
    }

    // MARK: - Queries

    /// Frames and hands on every complete query, up to the in-flight bound.
    private func readQueries() {
        let now = monotonicNanoseconds()
        if !machine.isReading {
            // Whatever follows a bad message or our FIN is not read; it is taken so that the
            // guest's window and its own FIN are not held up.
            stack.tcpDiscardReadable(id, now: now)
            return
        }
        defer { flush() }
        while machine.mayRead(unsentAnswerBytes: unsent) {
            let available = stack.tcpReadableBytes(id)
            guard available >= 2 else { break }
            // The message may span the receive buffer's chunks: gather it in one place.
            // bound: datagramBuffer holds 65,536 + 2 bytes, room for the prefix and any 16-bit length.
            let out = relay.datagramBuffer
            _ = stack.tcpPeek(id, into: UnsafeMutableRawBufferPointer(rebasing: out[..<2]))
            let length = Int(out[0]) << 8 | Int(out[1])
            guard length > 0 else { return perform(machine.malformedQuery(taken: false)) }
            guard available >= 2 + length else { break }
            _ = stack.tcpPeek(id, into: UnsafeMutableRawBufferPointer(rebasing: out[..<(2 + length)]))
            let message = UnsafeRawBufferPointer(rebasing: out[2..<(2 + length)])
            lastActivity = now
            machine.queryTaken()
            relay.dnsTCPQuery()
            inHook = true
            let accepted = relay.answerDNS(key, overTCP: true, message) { [weak relay, id] answer in
                relay?.dnsTCPAnswered(id, answer)
            }
            inHook = false
            stack.tcpConsume(id, 2 + length, now: now)
            if !accepted { return perform(machine.malformedQuery(taken: true)) }
        }
        perform(machine.readingPaused(readClosed: stack.tcpIsReadClosed(id), unsentAnswerBytes: unsent))
    }

    // MARK: - Answers

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

    // MARK: - Idle

    /// Checks at most every idle timeout (the machine's `idleTimerFired` says what idle means).
    private func armIdleTimer(at deadline: UInt64? = nil) {
        let idle = limits.dnsTCPIdleTimeout.nanoseconds
        idleTimer = relay.loop.schedule(at: deadline ?? lastActivity + idle) { [weak self] in
            guard let self else { return }
            self.idleTimer = nil
            self.perform(
                self.machine.idleTimerFired(now: monotonicNanoseconds(), lastActivity: self.lastActivity, idle: idle))
            self.relay.driver.afterWork()
        }
    }

    private func cancelIdleTimer() {
        if let t = idleTimer { relay.loop.cancel(t) }
        idleTimer = nil
    }
}
