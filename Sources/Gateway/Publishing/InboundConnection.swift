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
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import NetStack
import Wire

final class InboundConnection {
    enum Phase {
        /// SYN sent to the guest; the client's bytes wait in its socket.
        case connecting
        case relaying
        /// The guest's connection closed with bytes still to deliver to the client.
        case draining
        case done
    }

    unowned let relay: IngressRelay
    let id: TCPFlowID
    let key: FlowKey
    let binding: HostBinding
    private var fd: Int32
    private(set) var phase = Phase.connecting
    private var timer: EventLoop.TimerID?
    private var interest: UInt32 = 0
    /// Held against the sandbox's descriptor budget until the socket closes.
    var descriptor: DescriptorSlot?
    private var registered = false
    /// The client has shut down both directions or gone: epoll reports EPOLLHUP whatever the
    /// interest, so with nothing to do the socket leaves the loop instead of waking it forever.
    private var hangUp = false
    /// The client sent FIN: passed on to the guest.
    private var clientEOF = false
    /// The guest sent FIN.
    private var guestFIN = false
    /// The guest's FIN and every byte before it reached the client: shutdown(SHUT_WR) done.
    private var clientWriteShut = false

    private var stack: Stack { relay.stack }
    private var loop: EventLoop { relay.loop }

    init(relay: IngressRelay, id: TCPFlowID, key: FlowKey, binding: HostBinding, socket: Int32) {
        self.relay = relay
        self.id = id
        self.key = key
        self.binding = binding
        fd = socket
    }

    /// Watches the client for errors only (its bytes wait until the guest answers) and starts
    /// the clock on the guest's answer.
    func start() throws(GatewayError) {
        try setInterest(0)
        let deadline = monotonicNanoseconds() + relay.limits.guestConnectTimeout.nanoseconds
        timer = loop.schedule(at: deadline) { [weak self] in
            guard let self, self.phase == .connecting else { return }
            self.timer = nil
            withExtendedLifetime(self) {
                self.stack.tcpAbort(self.id, now: monotonicNanoseconds())
                self.resetClient(because: .guestTimedOut)
            }
            self.relay.driver.afterWork()
        }
    }

    // MARK: - Stack side

    func stackEvents(_ ev: TCPEvents) {
        guard phase != .done else { return }
        if ev.contains(.peerClosed) { guestFIN = true }
        switch phase {
        case .connecting:
            if ev.contains(.established) {
                established()
            } else if ev.contains(.closed) {
                // RST from the guest (nothing listens) or SYN retransmissions ran out.
                resetClient(because: .guestRefused)
                return
            } else {
                return
            }
        case .draining:
            pushToClient()
            return
        case .relaying, .done:
            break
        }
        if ev.contains(.readable) || ev.contains(.peerClosed) { pushToClient() }
        if phase == .relaying && ev.contains(.writable) && !clientEOF && interest & EPOLLIN.rawValue == 0 {
            pullFromClient()
        }
        if phase == .relaying && ev.contains(.closed) { finishFromStack() }
    }

    private func established() {
        if let t = timer { loop.cancel(t) }
        timer = nil
        phase = .relaying
        relay.connectionEstablished()
        try? setInterest(EPOLLIN.rawValue)
    }

    // MARK: - Client side

    private func socketEvent(_ events: UInt32) {
        withExtendedLifetime(self) { handleSocketEvent(events) }
        relay.driver.afterWork()
    }

    private func handleSocketEvent(_ events: UInt32) {
        if events & EPOLLHUP.rawValue != 0 { hangUp = true }
        switch phase {
        case .connecting:
            // Only errors are watched now: the client reset or vanished before the guest answered.
            if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { resetBoth() }
        case .relaying:
            if events & EPOLLERR.rawValue != 0 && HostSocket.pendingError(fd) != 0 { return resetBoth() }
            if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue) != 0 { pullFromClient() }
            if phase == .relaying && events & EPOLLOUT.rawValue != 0 { pushToClient() }
            if phase == .relaying { try? setInterest(interest) }
        case .draining:
            if events & EPOLLERR.rawValue != 0 && HostSocket.pendingError(fd) != 0 { return resetBoth() }
            pushToClient()
        case .done:
            return
        }
    }

    /// Guest bytes → client socket, straight from the connection's receive ring.
    private func pushToClient() {
        let now = monotonicNanoseconds()
        // A connection the stack no longer has may have lost bytes (a reset drops them at
        // once): only a live one that read the FIN says the guest's stream is complete.
        var complete = stack.tcpState(id) != nil && stack.tcpIsReadClosed(id)
        while let regions = stack.tcpReadableRegions(id), regions.byteCount > 0 {
            let n = HostSocket.write(fd, regions)
            if n == -Int(EAGAIN) {
                try? setInterest(interest | EPOLLOUT.rawValue)
                return
            }
            if n < 0 { return resetBoth() }
            relay.countFromGuest(n)
            // Taking the last bytes of a connection that has already ended (both FINs
            // acknowledged) retires it from the stack, after which a clean end looks like a
            // reset: so whether they complete the stream is settled before.
            if guestFIN && n == stack.tcpReadableBytes(id) { complete = true }
            stack.tcpConsume(id, n, now: now)
        }
        try? setInterest(interest & ~EPOLLOUT.rawValue)
        if guestFIN && !clientWriteShut && complete {
            clientWriteShut = true
            shutdown(fd, Int32(SHUT_WR))
        }
        if phase == .draining && pendingFromGuest == 0 {
            return clientWriteShut ? closeClient() : resetBoth()
        }
        finishIfBothClosed()
    }

    /// Guest bytes not yet with the client.
    private var pendingFromGuest: Int { stack.tcpReadableBytes(id) }

    /// Client socket → the guest, straight into the connection's send ring.
    private func pullFromClient() {
        let now = monotonicNanoseconds()
        while !clientEOF {
            var result = 0
            var asked = 0
            let taken = stack.tcpWriteInPlace(id, now: now) { regions in
                asked = regions.byteCount
                result = HostSocket.read(fd, regions)
                return max(result, 0)
            }
            if taken == 0 && result == 0 && stack.tcpWritableBytes(id) == 0 {
                // The guest's window and our ring are full: leave the bytes in the client's
                // socket until the guest acknowledges (its `.writable` resumes reading).
                try? setInterest(interest & ~EPOLLIN.rawValue)
                return
            }
            if result > 0 {
                relay.countToGuest(result)
                // Short read: the socket is empty and its level-triggered watch says when not.
                if result < asked {
                    try? setInterest(interest | EPOLLIN.rawValue)
                    return
                }
                continue
            }
            if result == -Int(EAGAIN) {
                try? setInterest(interest | EPOLLIN.rawValue)
                return
            }
            if result == 0 {
                clientEOF = true
                try? setInterest(interest & ~EPOLLIN.rawValue)
                stack.tcpShutdownWrite(id, now: now)
                finishIfBothClosed()
                return
            }
            return resetBoth()
        }
    }

    // MARK: - Endings

    /// FIN has gone each way: what is left (the guest acknowledging our FIN, TIME-WAIT) is the
    /// stack's, so the client's socket closes now and the connection stops counting against
    /// the sandbox's limit.
    private func finishIfBothClosed() {
        guard phase == .relaying, clientEOF, clientWriteShut else { return }
        closeClient()
    }

    /// The stack's connection ended: after both FINs the client's socket closes normally (once
    /// the guest's last bytes are out); after a guest RST or a timeout the client is reset.
    private func finishFromStack() {
        if pendingFromGuest > 0 {
            phase = .draining
            try? setInterest(EPOLLOUT.rawValue)
            timer = loop.schedule(at: monotonicNanoseconds() + relay.limits.closeFlushTimeout.nanoseconds) {
                [weak self] in
                guard let self, self.phase == .draining else { return }
                self.timer = nil
                withExtendedLifetime(self) { self.resetBoth() }
                self.relay.driver.afterWork()
            }
            pushToClient()
            return
        }
        if clientEOF && guestFIN && clientWriteShut {
            closeClient()
        } else {
            phase = .done
            closeSocket(reset: true)
            relay.connectionFinished(id, wasEstablished: true)
        }
    }

    private func closeClient() {
        if let t = timer { loop.cancel(t) }
        timer = nil
        let wasEstablished = phase != .connecting
        phase = .done
        if !clientWriteShut {
            clientWriteShut = true
            shutdown(fd, Int32(SHUT_WR))
        }
        closeSocket(reset: false)
        relay.connectionFinished(id, wasEstablished: wasEstablished)
    }

    enum ResetReason {
        case guestRefused
        case guestTimedOut
    }

    /// The guest could not be reached: the client sees RST at once (zero linger).
    private func resetClient(because reason: ResetReason) {
        if let t = timer { loop.cancel(t) }
        timer = nil
        phase = .done
        closeSocket(reset: true)
        relay.connectionFailed(id, reason)
    }

    /// A socket error or a client reset: both sides are reset.
    private func resetBoth() {
        if let t = timer { loop.cancel(t) }
        timer = nil
        let wasEstablished = phase != .connecting
        phase = .done
        stack.tcpAbort(id, now: monotonicNanoseconds())
        closeSocket(reset: true)
        relay.connectionFinished(id, wasEstablished: wasEstablished)
    }

    /// Unpublish or detach: both sides reset, no callback into the relay's table.
    func abortBoth() {
        if let t = timer { loop.cancel(t) }
        timer = nil
        if phase != .done { stack.tcpAbort(id, now: monotonicNanoseconds()) }
        phase = .done
        closeSocket(reset: true)
    }

    // MARK: - The socket in the loop

    private func setInterest(_ events: UInt32) throws(GatewayError) {
        guard fd >= 0 else { return }
        if hangUp && events == 0 {
            if registered {
                loop.unregister(fd: fd)
                registered = false
            }
            interest = 0
            return
        }
        if !registered {
            try loop.register(fd: fd, events: events) { [unowned self] ev in self.socketEvent(ev) }
            registered = true
            interest = events
            return
        }
        guard events != interest else { return }
        interest = events
        loop.modify(fd: fd, events: events)
    }

    private func closeSocket(reset: Bool) {
        guard fd >= 0 else { return }
        // A graceful end: the client gets every byte and a FIN, not the crash-time reset.
        if !reset { HostSocket.setAbortiveClose(fd, false) }
        registered = false
        HostSocket.unwatchAndClose(&fd, on: loop, reset: reset)
        descriptor = nil
        interest = 0
    }
}
