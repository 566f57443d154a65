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
// or no answer within `connectTimeout` answers its SYN with RST.
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
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import NetStack
import Wire

final class TCPRelay {
    enum Phase {
        case connecting
        case relaying
        /// The guest's connection ended cleanly (both FINs acknowledged) with bytes the upstream
        /// has not taken yet: they go out as it reads, then its FIN.
        case draining
        case done
    }

    unowned let relay: EgressRelay
    let id: TCPFlowID
    let key: FlowKey
    private var destination: IPAddress
    private let port: UInt16
    private var triedFallback = false
    private var fd: Int32 = -1
    private var phase = Phase.connecting
    private var connectTimer: EventLoop.TimerID?
    private var interest: UInt32 = 0
    /// The upstream sent EOF: FIN passed to the guest.
    private var upstreamEOF = false
    /// The guest's FIN arrived, in order after all its bytes.
    private var guestFIN = false
    /// The guest sent FIN and all its bytes went upstream: shutdown(SHUT_WR) done.
    private var upstreamWriteShut = false
    private var lastActivity = monotonicNanoseconds()
    private var idleTimer: EventLoop.TimerID?
    /// Held against the sandbox's descriptor budget for as long as the relay exists.
    var descriptor: DescriptorSlot?

    private var stack: Stack { relay.stack }
    private var loop: EventLoop { relay.loop }

    init(relay: EgressRelay, id: TCPFlowID, key: FlowKey, destination: IPAddress, port: UInt16) {
        self.port = port
        self.relay = relay
        self.id = id
        self.key = key
        self.destination = destination
    }

    func start() {
        let deadline = monotonicNanoseconds() + relay.limits.connectTimeout.nanoseconds
        connectTimer = loop.schedule(at: deadline) { [weak self] in
            guard let self, self.phase == .connecting else { return }
            self.connectTimer = nil
            self.fail()
        }
        dial()
    }

    private func dial() {
        let address = HostSocket.Address(destination, port: port)
        let s = HostSocket.make(family: address.family, type: Int32(SOCK_STREAM.rawValue))
        guard s >= 0 else { return fail() }
        fd = s
        HostSocket.setNoDelay(fd)
        // Until the flow ends gracefully, a crash of this process resets the upstream.
        HostSocket.setAbortiveClose(fd, true)
        let rc = HostSocket.connect(fd, to: address)
        if rc != 0 && rc != EINPROGRESS { return connectError(rc) }
        do {
            try loop.register(fd: fd, events: EPOLLOUT.rawValue) { [unowned self] ev in self.socketEvent(ev) }
            interest = EPOLLOUT.rawValue
        } catch {
            fail()
        }
    }

    private func connectError(_ err: Int32) {
        // The gateway address means "the host": when one loopback family refuses, try the other.
        if err == ECONNREFUSED, !triedFallback, let other = relay.loopbackFallback(destination) {
            triedFallback = true
            closeSocket(reset: false)
            destination = other
            dial()
            return
        }
        fail()
    }

    /// The upstream cannot be reached: the guest's SYN is answered with RST.
    private func fail() {
        if let t = connectTimer { loop.cancel(t) }
        connectTimer = nil
        closeSocket(reset: false)
        phase = .done
        stack.tcpRefuse(id)
        relay.tcpConnectFailed(id)
        relay.driver.afterWork()
    }

    private func socketEvent(_ events: UInt32) {
        // Handling may drop the relay's last reference (it leaves the relay's table).
        withExtendedLifetime(self) { handleSocketEvent(events) }
    }

    private func handleSocketEvent(_ events: UInt32) {
        switch phase {
        case .connecting:
            let err = HostSocket.pendingError(fd)
            if err != 0 {
                connectError(err)
                return
            }
            if let t = connectTimer { loop.cancel(t) }
            connectTimer = nil
            phase = .relaying
            relay.tcpDidConnect()
            armIdleTimer()
            stack.tcpAccept(id, now: monotonicNanoseconds())
            setInterest(EPOLLIN.rawValue)
        case .relaying:
            if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { pullFromHost() }
            if phase == .relaying && events & EPOLLOUT.rawValue != 0 { pushToHost() }
        case .draining:
            if events & EPOLLERR.rawValue != 0 && HostSocket.pendingError(fd) != 0 {
                resetBoth()
            } else {
                pushToHost()
                finishIfDrained()
            }
        case .done:
            return
        }
        relay.driver.afterWork()
    }

    // MARK: - Stack side

    func stackEvents(_ ev: TCPEvents) {
        guard phase != .done && phase != .draining else { return }
        if ev.contains(.peerClosed) { guestFIN = true }
        if ev.contains(.closed) {
            // The guest's last bytes can come with its FIN after ours, in the event that ends
            // the connection: they still go upstream (pushing also passes the FIN on).
            if phase == .relaying && fd >= 0 { pushToHost() }
            // A clean end with bytes the upstream cannot take yet: the stack keeps them (no
            // reset can drop them now) until the upstream reads.
            if phase == .relaying && fd >= 0 && stack.tcpReadableBytes(id) > 0
                && stack.tcpCloseReason(id) == .normal
            {
                phase = .draining
                return
            }
            if phase != .done { finishFromStack() }
            return
        }
        guard phase == .relaying else { return }
        if ev.contains(.readable) || ev.contains(.peerClosed) { pushToHost() }
        if ev.contains(.writable) && !upstreamEOF && interest & EPOLLIN.rawValue == 0 { pullFromHost() }
    }

    /// Guest bytes → host socket.
    private func pushToHost() {
        let now = monotonicNanoseconds()
        // While draining, a connection the stack no longer holds lost its bytes (dropped to
        // make room among too many in TIME-WAIT): the upstream is reset, not given a FIN.
        var complete = stack.tcpIsReadClosed(id) && (phase == .relaying || stack.tcpState(id) != nil)
        while let regions = stack.tcpReadableRegions(id), regions.byteCount > 0 {
            let n = HostSocket.write(fd, regions)
            if n == -Int(EAGAIN) {
                setInterest(interest | EPOLLOUT.rawValue)
                return
            }
            if n < 0 {
                resetBoth()
                return
            }
            relay.countToHost(n)
            lastActivity = now
            // Taking the last bytes of a connection that has already ended retires it from
            // the stack, after which nothing says whether its stream was complete: settled
            // before.
            complete = guestFIN && n == stack.tcpReadableBytes(id)
            stack.tcpConsume(id, n, now: now)
        }
        setInterest(interest & ~EPOLLOUT.rawValue)
        if complete && !upstreamWriteShut {
            upstreamWriteShut = true
            shutdown(fd, Int32(SHUT_WR))
            closeIfBothShut()
        }
    }

    /// Host socket → the guest, straight into the connection's send buffer.
    private func pullFromHost() {
        let now = monotonicNanoseconds()
        while !upstreamEOF {
            var result = 0
            var asked = 0
            let taken = stack.tcpWriteInPlace(id, now: now) { regions in
                asked = regions.byteCount
                result = HostSocket.read(fd, regions)
                return max(result, 0)
            }
            if taken == 0 && result == 0 && stack.tcpWritableBytes(id) == 0 {
                // The guest's window is full, or the sandbox's memory budget is: stop reading
                // until it drains (backpressure; the stack reports `.writable` then).
                setInterest(interest & ~EPOLLIN.rawValue)
                return
            }
            if result > 0 {
                relay.countFromHost(result)
                lastActivity = now
                // A short read emptied the socket: the watch is level-triggered, so more data
                // wakes us again, and a read now would only return EAGAIN.
                if result < asked {
                    setInterest(interest | EPOLLIN.rawValue)
                    return
                }
                continue
            }
            if result == -Int(EAGAIN) {
                setInterest(interest | EPOLLIN.rawValue)
                return
            }
            if result == 0 {
                upstreamEOF = true
                setInterest(interest & ~EPOLLIN.rawValue)
                stack.tcpShutdownWrite(id, now: now)
                closeIfBothShut()
                return
            }
            resetBoth()
            return
        }
    }

    /// Checks for idleness at most every timeout; a flow quiet that long is reset both ways.
    private func armIdleTimer() {
        let idle = relay.limits.tcpIdleTimeout.nanoseconds
        idleTimer = loop.schedule(at: lastActivity + idle) { [weak self] in
            guard let self, self.phase == .relaying || self.phase == .draining else { return }
            self.idleTimer = nil
            if monotonicNanoseconds() >= self.lastActivity + idle {
                self.relay.tcpIdleReset()
                self.resetBoth()
                self.relay.driver.afterWork()
            } else {
                self.armIdleTimer()
            }
        }
    }

    private func setInterest(_ events: UInt32) {
        guard events != interest, fd >= 0 else { return }
        interest = events
        loop.modify(fd: fd, events: events)
    }

    // MARK: - Endings

    /// FIN has gone both ways on the host socket: it has nothing more to give or take, and
    /// epoll would report its hang-up on every wait (whatever the interest) until the guest's
    /// side ends, which takes as long as the guest does to acknowledge. Closed now; the flow
    /// stays in the table until the stack reports `.closed`.
    private func closeIfBothShut() {
        guard upstreamEOF && upstreamWriteShut && fd >= 0 else { return }
        closeSocket(reset: false)
    }

    /// Draining: once the upstream has every byte (and the FIN after them), the flow is over.
    private func finishIfDrained() {
        guard phase == .draining, upstreamWriteShut || stack.tcpReadableBytes(id) == 0 else { return }
        finishFromStack()
    }

    /// The stack's connection ended (FIN handshake done, guest RST, retransmissions ran out).
    private func finishFromStack() {
        let wasConnected = phase == .relaying || phase == .draining
        // Whatever the upstream could not take now is dropped.
        stack.tcpDiscardReadable(id, now: monotonicNanoseconds())
        phase = .done
        closeSocket(reset: !(upstreamEOF && upstreamWriteShut))
        relay.tcpFinished(id, wasConnected: wasConnected)
    }

    /// Upstream reset or a socket error: reset the guest and the upstream.
    private func resetBoth() {
        phase = .done
        stack.tcpAbort(id, now: monotonicNanoseconds())
        closeSocket(reset: true)
        relay.tcpFinished(id, wasConnected: true)
    }

    /// Detach: both sides reset, no callbacks into the relay's table.
    func abortBoth() {
        if let t = connectTimer { loop.cancel(t) }
        connectTimer = nil
        if phase != .done { stack.tcpAbort(id, now: monotonicNanoseconds()) }
        phase = .done
        closeSocket(reset: true)
    }

    private func closeSocket(reset: Bool) {
        if let t = idleTimer { loop.cancel(t) }
        idleTimer = nil
        // A graceful end: the upstream gets every byte and a FIN, not the crash-time reset.
        if !reset && fd >= 0 { HostSocket.setAbortiveClose(fd, false) }
        HostSocket.unwatchAndClose(&fd, on: loop, reset: reset)
        interest = 0
    }
}
