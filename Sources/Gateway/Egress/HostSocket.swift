// Non-blocking host sockets for the relays: create, connect, scatter/gather I/O, resets.
// Thin wrappers over the system calls on an owned descriptor; every failure is a typed `Errno`.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import NetStack
import SystemPackage
import Wire

enum HostSocket {
    /// socket(2), non-blocking and close-on-exec.
    static func open(family: Int32, type: Int32, protocol proto: Int32 = 0) throws(Errno) -> OwnedDescriptor {
        try OwnedDescriptor.adopting(
            result: socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto))
    }

    /// Connects a datagram socket and registers it for reading; nil, with the socket closed, on
    /// any failure (the caller's session then does not exist).
    static func connectAndWatch(
        _ socket: consuming OwnedDescriptor, to address: SocketAddress, on loop: EventLoop,
        _ readable: @escaping () -> Void
    ) -> OwnedDescriptor? {
        do {
            try connect(socket, to: address)
            try loop.register(fd: socket.rawValue, events: EPOLLIN.rawValue) { _ in readable() }
        } catch {
            return nil
        }
        return socket
    }

    /// connect(2). Returns when connected at once.
    /// - Throws: `.nowInProgress` while a stream connect is pending (its outcome comes back
    ///   through ``pendingError(_:)`` once the socket is writable); any other errno is a failure.
    static func connect(_ socket: borrowing OwnedDescriptor, to address: SocketAddress) throws(Errno) {
        let fd = socket.rawValue
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 { throw Errno.last }
    }

    /// connect(2) again on a socket whose connect is in progress: true once connected, false while
    /// the handshake is still under way.
    /// - Throws: how the connect failed (`.connectionRefused`, …).
    static func finishConnect(_ socket: borrowing OwnedDescriptor, to address: SocketAddress) throws(Errno) -> Bool {
        do throws(Errno) {
            try connect(socket, to: address)
        } catch .alreadyInProcess {
            return false
        } catch .socketIsConnected {
            // Reported by kernels that took the first call's success as final already.
        }
        return true
    }

    /// getsockopt(2) SO_ERROR: the outcome of a pending connect, nil once connected.
    static func pendingError(_ socket: borrowing OwnedDescriptor) -> Errno? {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(socket.rawValue, SOL_SOCKET, SO_ERROR, &err, &len) == 0 else { return Errno.last }
        return err == 0 ? nil : Errno(rawValue: err)
    }

    /// setsockopt(2) TCP_NODELAY.
    static func setNoDelay(_ socket: borrowing OwnedDescriptor) {
        var one: Int32 = 1
        setsockopt(socket.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// SO_LINGER {on, 0} (or off again). A flow's socket carries it while the flow is open: if
    /// the process dies, the kernel's close then resets the peer instead of sending a FIN that
    /// would make a cut-off transfer look complete. shutdown(SHUT_WR) still sends a FIN with it
    /// on; only close() resets, so a graceful end turns it off just before its close.
    static func setAbortiveClose(_ socket: borrowing OwnedDescriptor, _ on: Bool) {
        var l = linger(l_onoff: on ? 1 : 0, l_linger: 0)
        setsockopt(socket.rawValue, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    /// Stops watching the socket and closes it (so that the peer sees RST when `reset`), leaving
    /// nil; nothing when it is nil already.
    static func unwatchAndClose(_ socket: inout OwnedDescriptor?, on loop: EventLoop, reset: Bool = false) {
        guard let s = socket.take() else { return }
        loop.unregister(fd: s.rawValue)
        if reset { closeWithReset(s) } else { s.close() }
    }

    /// Closes so that the peer sees RST, not FIN (SO_LINGER with zero timeout).
    static func closeWithReset(_ socket: consuming OwnedDescriptor) {
        setAbortiveClose(socket, true)
        socket.close()
    }

    /// readv(2) into a buffer's regions: bytes read, 0 at EOF.
    /// - Throws: `.resourceTemporarilyUnavailable` when nothing is waiting; other errno.
    static func read(_ socket: borrowing OwnedDescriptor, _ regions: BufferRegions, max limit: Int = .max) throws(Errno) -> Int {
        let fd = socket.rawValue
        let n = withIOVecs(regions, max: limit) { readv(fd, $0.baseAddress, Int32($0.count)) }
        guard n >= 0 else { throw Errno.last }
        return n
    }

    /// Gathers a buffer's regions into one send: bytes written. sendmsg(2) with MSG_NOSIGNAL
    /// rather than writev: a peer that has reset must cost this flow an EPIPE, not the whole
    /// process a SIGPIPE.
    /// - Throws: `.resourceTemporarilyUnavailable` when the socket cannot take any now; other errno.
    static func write(_ socket: borrowing OwnedDescriptor, _ regions: BufferRegions, max limit: Int = .max) throws(Errno) -> Int {
        let fd = socket.rawValue
        let n = withIOVecs(regions, max: limit) { vectors in
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = vectors.count
            return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
        }
        guard n >= 0 else { throw Errno.last }
        return n
    }

    /// One readable region, for callers holding plain bytes.
    static func write(_ socket: borrowing OwnedDescriptor, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try write(socket, BufferRegions(UnsafeMutableRawBufferPointer(mutating: bytes)))
    }

    /// `limit`: at most that many bytes (a rate limit's allowance); the regions past it are left out.
    private static func withIOVecs(
        _ regions: BufferRegions, max limit: Int = .max, _ body: (UnsafeMutableBufferPointer<iovec>) -> Int
    ) -> Int {
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: Swift.max(1, regions.count)) { vectors in
            var left = limit
            var used = 0
            while used < regions.count && left > 0 {
                let r = regions[used]
                let n = Swift.min(r.count, left)
                vectors[used] = iovec(iov_base: r.baseAddress, iov_len: n)
                left -= n
                used += 1
            }
            return body(UnsafeMutableBufferPointer(rebasing: vectors[..<used]))
        }
    }
}
