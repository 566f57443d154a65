// One client of a published TCP port carried into the guest: the accepted host socket on one
// side, a connection the stack opened into the guest on the other.
//
// Theory of operation
//
// Ownership. The IngressRelay of the sandbox's shard owns this object (its table, keyed by the
// stack's flow id) and everything here runs on that shard's loop. This object owns the client's
// socket (and the descriptor slot counted against the sandbox) until it closes it; the stack
// owns the guest-side connection, its rings and its timers, and outlives this object while
// FIN and TIME-WAIT finish. Bytes are never copied in between: readv from the socket straight
// into the send ring, writev from the receive ring straight to the socket.
//
// Opening. The listener accepts, the policy and the sandbox's connection and descriptor limits
// are checked (a refused client is reset), then the stack sends a SYN into the guest. While
// `connecting` only errors on the socket are watched: the client's first bytes, even its FIN,
// wait in the kernel. The guest's SYN-ACK makes the flow `relaying`; its RST (nothing listens),
// or no answer within `guestConnectTimeout`, resets the client at once.
//
// Client → guest. EPOLLIN → readv into the send ring. When the guest's window and the ring are
// full, or the sandbox's memory budget is spent, the ring takes nothing: EPOLLIN is dropped and
// the bytes stay in the client's socket (the kernel's window then stops the client), until the
// stack reports `.writable` (the guest acknowledged, or memory freed up elsewhere).
//
// Guest → client. `.readable` → writev from the receive ring. When the socket is full
// (EAGAIN) the bytes stay in the ring, EPOLLOUT is watched, and the guest's window closes as
// the ring fills, so the guest waits for the client.
//
// Half-closes. The client's EOF becomes a FIN to the guest after every byte before it; the
// guest's FIN becomes shutdown(SHUT_WR) on the socket once every byte before it is written, and
// the other direction carries on either way (a client that sends its request and shuts its
// write side still gets the whole answer). Only a live connection that read the FIN counts as
// a complete stream: one the stack dropped may have lost bytes, and is ended with a reset,
// never with a clean FIN after a cut-off stream.
//
// Closing. Once FIN has gone both ways the socket closes and the flow leaves the table; what
// is left (acknowledging, TIME-WAIT) is the stack's. If the stack's connection ends while the
// client has not taken the guest's last bytes, the flow is `draining`: they stay in the stack
// (no window update goes out after the guest's FIN, and an RST in TIME-WAIT is ignored, so
// nothing drops them) and are written as the client reads, for at most `closeFlushTimeout`.
//
// Resets. A guest RST or retransmissions that ran out reset the client; a client reset or a
// socket error aborts the guest's connection; unpublish and detach reset both. The socket
// carries SO_LINGER zero from accept until a graceful end turns it off just before close(): a
// close on any other path, including the kernel's after a crash of this process, resets the
// client instead of passing a cut-off stream off as complete.
//
// Structure. `InboundStateMachine` makes every decision above from its inputs (socket
// readiness, the stack's events one at a time, pump outcomes, the timer, unpublish) and returns
// an action; this class feeds it and carries the actions out, moving bytes with `StreamPump`.
// The machine also decides the socket's epoll mask, which is brought up to date after each input.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import SystemPackage
import NetStack
import Wire

final class InboundConnection {
    enum ResetReason: Equatable {
        case guestRefused
        case guestTimedOut
    }

    unowned let relay: IngressRelay
    let id: TCPFlowID
    let key: FlowKey
    let binding: HostBinding
    /// The client's connection; nil once closed.
    private var socket: OwnedDescriptor?
    private var machine = InboundStateMachine()
    /// The guest's answer while connecting, the flush while draining.
    private var timer: EventLoop.TimerID?
    /// Held against the sandbox's descriptor budget until the socket closes.
    var descriptor: DescriptorSlot?
    /// Bytes guest → client and back, and when the connection began, for the flow log.
    private var bytesOut: UInt64 = 0
    private var bytesIn: UInt64 = 0
    private let openedAt = monotonicNanoseconds()
    private var endLogged = false
    /// A write of the guest's bytes straight from their frame failed (not EAGAIN): the next push
    /// reports it instead of writing.
    private var directWriteFailure: Errno?

    private var stack: Stack { relay.stack }
    private var loop: EventLoop { relay.loop }

    /// The guest has not answered the SYN yet.
    var isConnecting: Bool {
        if case .connecting = machine.state { return true }
        return false
    }

    init(relay: IngressRelay, id: TCPFlowID, key: FlowKey, binding: HostBinding, socket: consuming OwnedDescriptor) {
        self.relay = relay
        self.id = id
        self.key = key
        self.binding = binding
        self.socket = .some(socket)
    }

    /// Watches the client for errors only (its bytes wait until the guest answers) and starts
    /// the clock on the guest's answer.
    func start() throws(GatewayError) {
        if let fd = socket?.rawValue, let change = machine.interestChange() {
            try loop.apply(change, to: fd, handler: { [unowned self] ev in self.socketEvent(ev) })
        }
        armTimer(after: relay.limits.guestConnectTimeout)
    }

    // MARK: - Inputs

    func stackEvent(_ event: TCPEvent) {
        let unread = event == .closed ? stack.tcpReadableBytes(id) : 0
        perform(machine.stackEvent(event, unreadBytes: unread))
        updateInterest()
    }

    private func socketEvent(_ events: UInt32) {
        withExtendedLifetime(self) {
            let error = events & EPOLLERR.rawValue != 0 ? socketError() : nil
            perform(machine.socketEvent(hangUp: events & EPOLLHUP.rawValue != 0, error: error))
            if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue) != 0 { perform(machine.socketReadable()) }
            if events & EPOLLOUT.rawValue != 0 { perform(machine.socketWritable()) }
            updateInterest()
        }
        relay.driver.afterWork()
    }

    private func armTimer(after duration: Duration) {
        timer = loop.schedule(at: monotonicNanoseconds() + duration.nanoseconds) { [weak self] in
            guard let self else { return }
            self.timer = nil
            withExtendedLifetime(self) {
                self.perform(self.machine.timerFired())
                self.updateInterest()
            }
            self.relay.driver.afterWork()
        }
    }

    /// Unpublish or detach: both sides reset, no callback into the relay's table.
    func abortBoth() {
        perform(machine.abort())
    }

    /// The guest's bytes as they arrive, while the ring before them is empty: straight to the
    /// client's socket, saving their copy through the ring (`StreamPump.pushDirectly`). A failed
    /// write is kept for the push that follows, as for egress (`TCPRelay.takeDirectly`).
    private func takeDirectly(_ bytes: UnsafeRawBufferPointer, pushed: Bool) -> Int {
        guard machine.takesGuestBytesDirectly, directWriteFailure == nil, socket != nil else { return 0 }
        do throws(Errno) {
            return try StreamPump.pushDirectly(bytes, pushed: pushed, to: socket!, now: monotonicNanoseconds(), rates: relay.rates) { n in
                bytesOut &+= UInt64(n)
                relay.countFromGuest(n)
            }
        } catch .resourceTemporarilyUnavailable {
            return 0
        } catch {
            directWriteFailure = error
            return 0
        }
    }

    // MARK: - Carrying out actions

    private func perform(_ action: InboundStateMachine.Action) {
        switch action {
        case .none:
            return
        case .established:
            cancelTimer()
            relay.connectionEstablished()
            stack.tcpSetDirectReceiver(id) { [weak self] bytes, pushed in self?.takeDirectly(bytes, pushed: pushed) ?? 0 }
        case .pull:
            guard socket != nil else { return perform(machine.pulled(.failed(.badFileDescriptor))) }
            let now = monotonicNanoseconds()
            let outcome = StreamPump.pull(from: socket!, into: stack, id, now: now, rates: relay.rates) { n in
                bytesIn &+= UInt64(n)
                relay.countToGuest(n)
            }
            perform(machine.pulled(outcome))
        case .push:
            if let failure = directWriteFailure { return perform(machine.pushed(.failed(failure))) }
            let complete = machine.pushStartsComplete(
                readClosed: stack.tcpIsReadClosed(id), connectionLive: stack.tcpState(id) != nil)
            guard socket != nil else { return perform(machine.pushed(.failed(.badFileDescriptor))) }
            let now = monotonicNanoseconds()
            let outcome = StreamPump.push(
                from: stack, id, to: socket!, now: now, complete: complete, guestFIN: machine.guestFIN,
                rates: relay.rates
            ) { n in
                bytesOut &+= UInt64(n)
                relay.countFromGuest(n)
            }
            perform(machine.pushed(outcome))
        case .waitForTokens(let direction, let held):
            relay.rates?.wait(direction, held: held, now: monotonicNanoseconds()) { [weak self] in
                guard let self else { return }
                withExtendedLifetime(self) {
                    self.perform(self.machine.tokensBack(direction))
                    self.updateInterest()
                }
                self.relay.driver.afterWork()
            }
        case .passEOFToGuest(let close):
            stack.tcpShutdownWrite(id, now: monotonicNanoseconds())
            if close { closeClient(shutWriteFirst: false) }
        case .shutClientWrite:
            shutClientWrite()
        case .drain:
            armTimer(after: relay.limits.closeFlushTimeout)
            perform(.push)
        case .closeClient(let shutWriteFirst):
            closeClient(shutWriteFirst: shutWriteFirst)
        case .resetClient:
            logEnd(.guestReset)
            closeSocket(reset: true)
            relay.connectionFinished(id, wasEstablished: true)
        case .refuseClient(let reason, let abortGuest):
            // The guest could not be reached: the client sees RST at once (zero linger).
            logEnd(.connectFailed)
            cancelTimer()
            if abortGuest { stack.tcpAbort(id) }
            closeSocket(reset: true)
            relay.connectionFailed(id, reason)
        case .resetBoth(let wasEstablished):
            logEnd(.upstreamReset)
            cancelTimer()
            stack.tcpAbort(id)
            closeSocket(reset: true)
            relay.connectionFinished(id, wasEstablished: wasEstablished)
        case .abortBoth(let abortGuest):
            logEnd(.closedByGateway)
            cancelTimer()
            if abortGuest { stack.tcpAbort(id) }
            closeSocket(reset: true)
        }
    }

    /// The flow log's end event, once per connection ("upstream" is the client here).
    private func logEnd(_ ending: FlowEvent.Ending) {
        guard !endLogged else { return }
        endLogged = true
        relay.audit?.ended(
            key, .tcp, bytesOut: bytesOut, bytesIn: bytesIn, openedAt: openedAt, now: monotonicNanoseconds(), ending,
            inbound: true)
    }

    /// FIN has gone each way: what is left (the guest acknowledging our FIN, TIME-WAIT) is the
    /// stack's, so the client's socket closes now and the connection stops counting against
    /// the sandbox's limit.
    private func closeClient(shutWriteFirst: Bool) {
        logEnd(.fin)
        cancelTimer()
        if shutWriteFirst { shutClientWrite() }
        closeSocket(reset: false)
        relay.connectionFinished(id, wasEstablished: true)
    }

    private func cancelTimer() {
        if let t = timer { loop.cancel(t) }
        timer = nil
    }

    /// Brings the socket's epoll registration to the mask the machine wants.
    private func updateInterest() {
        guard let fd = socket?.rawValue, let change = machine.interestChange() else { return }
        do {
            try loop.apply(change, to: fd, handler: { [unowned self] ev in self.socketEvent(ev) })
        } catch {
            perform(machine.watchFailed())
        }
    }

    private func closeSocket(reset: Bool) {
        guard socket != nil else { return }
        stack.tcpSetDirectReceiver(id, nil)
        // A graceful end: the client gets every byte and a FIN, not the crash-time reset.
        if !reset { HostSocket.setAbortiveClose(socket!, false) }
        HostSocket.unwatchAndClose(&socket, on: loop, reset: reset)
        descriptor = nil
    }

    /// shutdown(2) SHUT_WR: the client reads EOF after the bytes sent so far.
    private func shutClientWrite() {
        if let fd = socket?.rawValue { shutdown(fd, Int32(SHUT_WR)) }
    }

    /// SO_ERROR of the client's socket as the state machine takes it: 0 for none (EBADF once closed).
    private func socketError() -> Int32 {
        socket != nil ? HostSocket.pendingError(socket!)?.rawValue ?? 0 : EBADF
    }
}
