// One guest TCP flow carried over one host socket: the connection the guest opened through the
// gateway on one side, a socket the gateway dialled to the destination on the other.
//
// Theory of operation
//
// Ownership. The EgressRelay of the sandbox's shard owns this object (its table, keyed by the
// stack's flow id) and everything here runs on that shard's loop. This object owns the host
// socket (and the descriptor slot counted against the sandbox); the stack owns the guest-side
// connection, its rings and its timers, and keeps it through FIN and TIME-WAIT after the socket
// has gone. Bytes are never copied in between: readv from the socket straight into the send
// ring, writev from the receive ring straight to the socket.
//
// Opening. The guest's SYN stays in the stack unanswered (`synPending`) while the egress relay
// checks the policy and the sandbox's limits (refused: RST to the guest) and this object dials
// the destination without blocking (the gateway's own address means the host's loopback; a
// refusal there tries the other loopback family). Only when the upstream has accepted does the
// guest get its SYN-ACK, so a guest never sees a handshake the upstream did not have; a refusal
// or no answer within `connectTimeout` answers its SYN with RST. A dial to the host's loopback
// has its answer by the time connect(2) returns, so it settles in the pass that read the SYN.
//
// Upstream → guest. EPOLLIN → readv into the send ring. When the guest's window and the ring
// are full, or the sandbox's memory budget is spent, the ring takes nothing: EPOLLIN is dropped
// and the bytes wait in the kernel (whose window then stops the upstream), until the stack
// reports `.writable` (the guest acknowledged, or memory freed up elsewhere).
//
// Guest → upstream. `.readable` → writev from the receive ring. When the socket is full
// (EAGAIN) the bytes stay in the ring, EPOLLOUT is watched, and the guest's window closes as
// the ring fills, so the guest waits for the upstream.
//
// Half-closes. The guest's FIN becomes shutdown(SHUT_WR) on the socket once every byte before
// it is written; the upstream's EOF becomes a FIN to the guest after every byte before it. The
// other direction carries on either way: a guest that sends its request and shuts its write
// side still gets the whole answer. Once FIN has gone both ways the socket closes (epoll would
// report its hang-up on every pass otherwise); the flow stays in the table until the stack's
// connection ends, since the guest may still be acknowledging.
//
// Closing and resets. The stack reports `.closed` when the FIN handshake is done, the guest
// sent RST, or retransmissions ran out: guest bytes that came with that event still go upstream,
// then the socket closes, gracefully only if FIN went both ways, else with a reset. After a
// clean end the upstream may not have taken every byte yet (it answered and shut its side
// before reading the guest's upload): the flow is then `draining`, the stack keeps those bytes
// and they go out as the upstream reads, then the FIN. An upstream
// reset or socket error aborts the guest's connection (RST); a flow quiet for `tcpIdleTimeout`
// is reset both ways; detach resets both. The socket carries SO_LINGER zero from the dial until
// a graceful end turns it off just before close(): a close on any other path, including the
// kernel's after a crash of this process, resets the upstream instead of passing a cut-off
// stream off as complete.
//
// Structure. `TCPRelayStateMachine` makes every decision above from its inputs (dial result,
// socket readiness, the stack's events one at a time, pump outcomes, timers) and returns an
// action; this class feeds it and carries the actions out, moving bytes with `StreamPump`.
// The machine also decides the socket's epoll mask, which is brought up to date after each input.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import NetStack
import SystemPackage
import Wire

final class TCPRelay {
    unowned let relay: EgressRelay
    let id: TCPFlowID
    let key: FlowKey
    private var destination: IPAddress
    private let port: UInt16
    /// The upstream connection; nil before the dial and once closed.
    private var socket: OwnedDescriptor?
    private var machine: TCPRelayStateMachine
    private var connectTimer: EventLoop.TimerID?
    private var lastActivity = monotonicNanoseconds()
    private var idleTimer: EventLoop.TimerID?
    /// Runs from the guest's SYN-ACK until its handshake completes (`EgressLimits.halfOpenTimeout`).
    private var halfOpenTimer: EventLoop.TimerID?
    /// Held against the sandbox's descriptor budget for as long as the relay exists.
    var descriptor: DescriptorSlot?
    /// For a flow to a published port: where the socket's loopback endpoint is recorded as the
    /// sandbox's while it is open.
    var loopbackClients: (table: LoopbackClients, sandbox: String)?
    private var recordedEndpoint: IPEndpoint?
    /// Bytes guest → upstream and back, and when the flow began, for the flow log's end event.
    private var bytesOut: UInt64 = 0
    private var bytesIn: UInt64 = 0
    private let openedAt = monotonicNanoseconds()
    /// The end event went out (a flow ends once, whichever path ends it).
    private var endLogged = false
    /// A write of the guest's bytes straight from their frame failed (not EAGAIN): the next push
    /// reports it instead of writing.
    private var directWriteFailure: Errno?

    private var stack: Stack { relay.stack }
    private var loop: EventLoop { relay.loop }

    /// `checksName`: the flow was allowed by a domain rule, so the guest's first bytes are held
    /// until the name they ask for passes `EgressRelay.nameCheck`.
    init(relay: EgressRelay, id: TCPFlowID, key: FlowKey, destination: IPAddress, port: UInt16, checksName: Bool = false) {
        machine = TCPRelayStateMachine(checksName: checksName)
        self.port = port
        self.relay = relay
        self.id = id
        self.key = key
        self.destination = destination
    }

    deinit { forgetEndpoint() }

    func start() {
        let deadline = monotonicNanoseconds() + relay.limits.connectTimeout.nanoseconds
        dial()
        // A dial that settled inside connect(2) (a listener on this host) needs no timer.
        guard machine.isConnecting else { return }
        connectTimer = loop.schedule(at: deadline) { [weak self] in
            guard let self else { return }
            self.connectTimer = nil
            self.run(self.machine.connectTimedOut())
        }
    }

    private func dial() {
        let address = SocketAddress(destination, port: port)
        guard let s = try? HostSocket.open(family: address.family, type: Int32(SOCK_STREAM.rawValue)) else {
            return perform(machine.cannotDial())
        }
        HostSocket.setNoDelay(s)
        // Until the flow ends gracefully, a crash of this process resets the upstream.
        HostSocket.setAbortiveClose(s, true)
        recordEndpoint(of: s)
        var refused: Errno?
        var connected = true
        do throws(Errno) {
            try HostSocket.connect(s, to: address)
        } catch .nowInProgress {
            // The usual outcome: writable once connected, and SO_ERROR says how it went. With a
            // listener on this host, though, the kernel has run the whole handshake (or the
            // refusal) before connect(2) returns: asking again settles the flow in this pass,
            // without an epoll round, a mask change and SO_ERROR.
            connected = false
            if destination.isLoopbackAddress {
                do throws(Errno) { connected = try HostSocket.finishConnect(s, to: address) } catch { refused = error }
            }
        } catch {
            refused = error
        }
        socket = .some(s)
        if let refused {
            return perform(
                machine.connectFinished(error: refused.rawValue, canFallBack: relay.loopbackFallback(destination) != nil))
        }
        if connected { perform(machine.connectFinished(error: 0, canFallBack: false)) }
        updateInterest()
    }

    private func socketEvent(_ events: UInt32) {
        // Handling may drop the relay's last reference (it leaves the relay's table).
        withExtendedLifetime(self) {
            if machine.isConnecting {
                // A failed connect reports EPOLLERR and EPOLLHUP with its EPOLLOUT: writable
                // alone means connected, and only a failure needs SO_ERROR for its reason.
                let outcome = EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue
                let connected = events & outcome == EPOLLOUT.rawValue
                let error = connected ? nil : socketError()
                perform(
                    machine.connectFinished(
                        error: error?.rawValue ?? 0, canFallBack: relay.loopbackFallback(destination) != nil))
            } else if events & EPOLLERR.rawValue != 0 && socketError() != nil {
                perform(machine.socketFailed())
            } else {
                let readable = EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue
                if events & readable != 0 { perform(machine.socketReadable()) }
                if events & EPOLLOUT.rawValue != 0 { perform(machine.socketWritable()) }
            }
            updateInterest()
        }
        relay.driver.afterWork()
    }

    // MARK: - Stack side

    func stackEvent(_ event: TCPEvent) {
        let clean = event == .closed && stack.tcpCloseReason(id) == .normal
        perform(machine.stackEvent(event, closedCleanly: clean))
        updateInterest()
    }

    // MARK: - Carrying out actions

    /// One input from a timer: act, then let the stack's output go.
    private func run(_ action: TCPRelayStateMachine.Action) {
        withExtendedLifetime(self) {
            perform(action)
            updateInterest()
        }
        relay.driver.afterWork()
    }

    private func perform(_ action: TCPRelayStateMachine.Action) {
        switch action {
        case .none:
            return
        case .dialOtherLoopback:
            closeSocket(reset: false)
            destination = relay.loopbackFallback(destination) ?? destination
            dial()
        case .refuseGuest:
            cancelConnectTimer()
            closeSocket(reset: false)
            logEnd(.connectFailed)
            stack.tcpRefuse(id)
            relay.tcpConnectFailed(id)
            relay.driver.afterWork()
        case .acceptGuest:
            cancelConnectTimer()
            relay.tcpDidConnect()
            armIdleTimer()
            armHalfOpenTimer()
            stack.tcpAccept(id, now: monotonicNanoseconds())
            stack.tcpSetDirectReceiver(id) { [weak self] bytes, pushed in self?.takeDirectly(bytes, pushed: pushed) ?? 0 }
        case .pull:
            let now = monotonicNanoseconds()
            guard socket != nil else { return perform(machine.pulled(.failed(.badFileDescriptor))) }
            let outcome = StreamPump.pull(from: socket!, into: stack, id, now: now, rates: relay.rates) { n in
                bytesIn &+= UInt64(n)
                relay.countFromHost(n)
                lastActivity = now
            }
            perform(machine.pulled(outcome))
        case .push:
            if let failure = directWriteFailure { return perform(machine.pushed(.failed(failure))) }
            let now = monotonicNanoseconds()
            let complete = machine.pushStartsComplete(
                readClosed: stack.tcpIsReadClosed(id), connectionLive: stack.tcpState(id) != nil)
            guard socket != nil else { return perform(machine.pushed(.failed(.badFileDescriptor))) }
            let outcome = StreamPump.push(
                from: stack, id, to: socket!, now: now, complete: complete, guestFIN: machine.guestFIN,
                rates: relay.rates
            ) { n in
                bytesOut &+= UInt64(n)
                relay.countToHost(n)
                lastActivity = now
            }
            perform(machine.pushed(outcome))
        case .waitForTokens(let direction, let held):
            relay.rates.wait(direction, held: held, now: monotonicNanoseconds()) { [weak self] in
                guard let self else { return }
                self.run(self.machine.tokensBack(direction))
            }
        case .resetHalfOpen:
            relay.rates.halfOpenReset()
            logEnd(.halfOpen)
            stack.tcpAbort(id)
            closeSocket(reset: true)
            relay.tcpFinished(id, wasConnected: true)
        case .checkName:
            // The shared datagram buffer: used and done with before anything else runs.
            let held = UnsafeMutableRawBufferPointer(rebasing: relay.datagramBuffer[..<ServerNamePeek.maxHeldBytes])
            let n = stack.tcpPeek(id, into: held)
            let peek = ServerNamePeek.peek(UnsafeRawBufferPointer(rebasing: held[..<n]))
            let check = relay.checkName(peek, key, guestFinished: machine.guestFIN)
            if check == .denied { logEnd(.closedByGateway) }
            perform(machine.nameChecked(check))
        case .passEOFToGuest(let close):
            stack.tcpShutdownWrite(id, now: monotonicNanoseconds())
            if close { closeSocket(reset: false) }
        case .shutUpstreamWrite(let close):
            shutUpstreamWrite()
            if close { closeSocket(reset: false) }
        case .finish(let ending):
            logEnd(Self.ending(stack.tcpCloseReason(id), connected: ending.wasConnected))
            if ending.shutUpstreamWrite { shutUpstreamWrite() }
            // Whatever the upstream could not take now is dropped.
            stack.tcpDiscardReadable(id, now: monotonicNanoseconds())
            closeSocket(reset: ending.resetUpstream)
            relay.tcpFinished(id, wasConnected: ending.wasConnected)
        case .resetBoth:
            resetBoth()
        case .resetIdle:
            logEnd(.idle)
            relay.tcpIdleReset()
            resetBoth()
        case .rearmIdleTimer:
            armIdleTimer()
        case .abortBoth(let abortGuest):
            logEnd(.closedByGateway)
            cancelConnectTimer()
            if abortGuest { stack.tcpAbort(id) }
            closeSocket(reset: true)
        }
    }

    /// The guest's bytes as they arrive, while the ring before them is empty: straight to the
    /// socket, saving their copy through the ring (`StreamPump.pushDirectly`). A failed write
    /// is kept for the push that follows (the stack reports the bytes it could not pass on as
    /// readable): the errno is the socket's, and reading it here cleared it.
    private func takeDirectly(_ bytes: UnsafeRawBufferPointer, pushed: Bool) -> Int {
        guard machine.takesGuestBytesDirectly, directWriteFailure == nil, socket != nil else { return 0 }
        let now = monotonicNanoseconds()
        do throws(Errno) {
            return try StreamPump.pushDirectly(bytes, pushed: pushed, to: socket!, now: now, rates: relay.rates) { n in
                bytesOut &+= UInt64(n)
                relay.countToHost(n)
                lastActivity = now
            }
        } catch .resourceTemporarilyUnavailable {
            return 0
        } catch {
            directWriteFailure = error
            return 0
        }
    }

    /// Brings the socket's epoll registration to the mask the machine wants.
    private func updateInterest() {
        guard let fd = socket?.rawValue, let change = machine.interestChange() else { return }
        do {
            try loop.apply(change, to: fd, handler: { [unowned self] ev in self.socketEvent(ev) })
        } catch {
            perform(machine.cannotDial())
        }
    }

    /// Checks for idleness at most every timeout; a flow quiet that long is reset both ways.
    private func armIdleTimer() {
        let idle = relay.limits.tcpIdleTimeout.nanoseconds
        idleTimer = loop.schedule(at: lastActivity + idle) { [weak self] in
            guard let self else { return }
            self.idleTimer = nil
            self.run(self.machine.idleTimerFired(quiet: monotonicNanoseconds() >= self.lastActivity + idle))
        }
    }

    /// Resets both sides if the guest leaves its handshake half-open past the limit.
    private func armHalfOpenTimer() {
        let timeout = relay.limits.halfOpenTimeout.nanoseconds
        halfOpenTimer = loop.schedule(at: monotonicNanoseconds() + timeout) { [weak self] in
            guard let self else { return }
            self.halfOpenTimer = nil
            self.run(self.machine.halfOpenTimedOut())
        }
    }

    private func cancelConnectTimer() {
        if let t = connectTimer { loop.cancel(t) }
        connectTimer = nil
    }

    // MARK: - Endings

    /// The flow log's end event, once per flow.
    private func logEnd(_ ending: FlowEvent.Ending) {
        guard !endLogged else { return }
        endLogged = true
        relay.audit?.ended(
            key, .tcp, bytesOut: bytesOut, bytesIn: bytesIn, openedAt: openedAt, now: monotonicNanoseconds(), ending)
    }

    /// How a flow the stack ended, ended: FIN both ways, the guest's RST, or its silence.
    private static func ending(_ reason: TCPCloseReason?, connected: Bool) -> FlowEvent.Ending {
        switch reason {
        case .normal?: .fin
        case .timedOut?: .guestTimeout
        case .aborted?: .closedByGateway
        case .reset?, .refused?, nil: connected ? .guestReset : .connectFailed
        }
    }

    /// Upstream reset or a socket error (or a name check that failed, which is logged as its
    /// own denial): reset the guest and the upstream.
    private func resetBoth() {
        logEnd(.upstreamReset)
        stack.tcpAbort(id)
        closeSocket(reset: true)
        relay.tcpFinished(id, wasConnected: true)
    }

    /// Still dialling: the guest's SYN has had no answer.
    var isConnecting: Bool { machine.isConnecting }

    /// Detach: both sides reset, no callbacks into the relay's table.
    func abortBoth() {
        perform(machine.abort())
    }

    /// A loopback connect completes inside connect(2), and the published port's shard may
    /// accept it at once: so the socket is bound first and its endpoint recorded before it dials.
    private func recordEndpoint(of s: borrowing OwnedDescriptor) {
        guard let (table, sandbox) = loopbackClients, destination.isLoopbackAddress else { return }
        let fd = s.rawValue
        let any = SocketAddress(destination, port: 0)
        guard any.withSockAddr({ bind(fd, $0, $1) }) == 0 else { return }
        let (rc, local) = SocketAddress.receiving { getsockname(fd, $0, $1) }
        guard rc == 0, let local else { return }
        let endpoint = IPEndpoint(address: local.ip, port: local.port)
        table.insert(endpoint, sandbox: sandbox)
        recordedEndpoint = endpoint
    }

    private func forgetEndpoint() {
        if let e = recordedEndpoint, let (table, _) = loopbackClients { table.remove(e) }
        recordedEndpoint = nil
    }

    private func closeSocket(reset: Bool) {
        stack.tcpSetDirectReceiver(id, nil)
        forgetEndpoint()
        if let t = idleTimer { loop.cancel(t) }
        idleTimer = nil
        if let t = halfOpenTimer { loop.cancel(t) }
        halfOpenTimer = nil
        // A graceful end: the upstream gets every byte and a FIN, not the crash-time reset.
        if !reset && socket != nil { HostSocket.setAbortiveClose(socket!, false) }
        HostSocket.unwatchAndClose(&socket, on: loop, reset: reset)
    }

    /// shutdown(2) SHUT_WR: the upstream reads EOF after the bytes sent so far.
    private func shutUpstreamWrite() {
        if let fd = socket?.rawValue { shutdown(fd, Int32(SHUT_WR)) }
    }

    /// SO_ERROR of the upstream socket (EBADF once it is closed).
    private func socketError() -> Errno? {
        socket != nil ? HostSocket.pendingError(socket!) : .badFileDescriptor
    }
}
