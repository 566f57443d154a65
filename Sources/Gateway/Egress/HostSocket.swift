// Non-blocking host sockets for the egress relay: create, connect, scatter/gather I/O, resets.
// Thin wrappers over the system calls; every error comes back as an errno value, never a trap.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import NetStack
import Wire

enum HostSocket {
    /// A sockaddr for an IP endpoint, held in storage large enough for either family.
    struct Address {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var family: Int32

        init(_ ip: IPAddress, port: UInt16) {
            switch ip {
            case .v4(let a):
                family = AF_INET
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_port = port.bigEndian
                sin.sin_addr.s_addr = a.raw.bigEndian
                withUnsafeBytes(of: &sin) { src in
                    withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) }
                }
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
            case .v6(let a):
                family = AF_INET6
                var sin6 = sockaddr_in6()
                sin6.sin6_family = sa_family_t(AF_INET6)
                sin6.sin6_port = port.bigEndian
                withUnsafeMutableBytes(of: &sin6.sin6_addr) { b in
                    for i in 0..<16 { b[i] = a.byte(i) }
                }
                withUnsafeBytes(of: &sin6) { src in
                    withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) }
                }
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }

        func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
            withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
        }
    }

    /// Reads the endpoint out of a sockaddr the kernel filled.
    static func endpoint(_ storage: sockaddr_storage) -> (IPAddress, UInt16)? {
        var s = storage
        return withUnsafeBytes(of: &s) { b -> (IPAddress, UInt16)? in
            switch Int32(storage.ss_family) {
            case AF_INET:
                let sin = b.load(as: sockaddr_in.self)
                return (.v4(IPv4Address(raw: UInt32(bigEndian: sin.sin_addr.s_addr))), UInt16(bigEndian: sin.sin_port))
            case AF_INET6:
                let sin6 = b.load(as: sockaddr_in6.self)
                let a = withUnsafeBytes(of: sin6.sin6_addr) { $0.ipv6(0) }
                return (.v6(a), UInt16(bigEndian: sin6.sin6_port))
            default:
                return nil
            }
        }
    }

    /// A non-blocking, close-on-exec socket; -errno on failure.
    static func make(family: Int32, type: Int32, protocol proto: Int32 = 0) -> Int32 {
        let fd = socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
        return fd >= 0 ? fd : -errno
    }

    /// Connects a datagram socket and registers it for reading; on any failure closes it and
    /// returns false (the caller's session then does not exist).
    static func connectAndWatch(_ fd: Int32, to address: Address, on loop: EventLoop, _ readable: @escaping () -> Void) -> Bool {
        guard connect(fd, to: address) == 0 else {
            close(fd)
            return false
        }
        do {
            try loop.register(fd: fd, events: EPOLLIN.rawValue) { _ in readable() }
            return true
        } catch {
            close(fd)
            return false
        }
    }

    /// Starts a connect: 0 when done at once, EINPROGRESS when pending, else the errno.
    static func connect(_ fd: Int32, to address: Address) -> Int32 {
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        return rc == 0 ? 0 : errno
    }

    /// SO_ERROR: the outcome of a pending connect (0 = connected).
    static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : errno
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Stops watching `fd` and closes it (so that the peer sees RST when `reset`), leaving -1;
    /// nothing when it is -1 already.
    static func unwatchAndClose(_ fd: inout Int32, on loop: EventLoop, reset: Bool = false) {
        guard fd >= 0 else { return }
        loop.unregister(fd: fd)
        if reset { closeWithReset(fd) } else { Glibc.close(fd) }
        fd = -1
    }

    /// Closes so that the peer sees RST, not FIN (SO_LINGER with zero timeout).
    static func closeWithReset(_ fd: Int32) {
        setAbortiveClose(fd, true)
        close(fd)
    }

    /// SO_LINGER {on, 0} (or off again). A flow's socket carries it while the flow is open: if
    /// the process dies, the kernel's close then resets the peer instead of sending a FIN that
    /// would make a cut-off transfer look complete. shutdown(SHUT_WR) still sends a FIN with it
    /// on; only close() resets, so a graceful end turns it off just before its close.
    static func setAbortiveClose(_ fd: Int32, _ on: Bool) {
        var l = linger(l_onoff: on ? 1 : 0, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    /// readv into a buffer's regions: bytes read, 0 at EOF, -errno on error (-EAGAIN: nothing now).
    static func read(_ fd: Int32, _ regions: BufferRegions) -> Int {
        let n = withIOVecs(regions) { readv(fd, $0.baseAddress, Int32($0.count)) }
        return n >= 0 ? n : -Int(errno)
    }

    /// Gathers a buffer's regions into one send: bytes written or -errno. sendmsg with
    /// MSG_NOSIGNAL rather than writev: a peer that has reset must cost this flow an EPIPE, not
    /// the whole process a SIGPIPE.
    static func write(_ fd: Int32, _ regions: BufferRegions) -> Int {
        let n = withIOVecs(regions) { vectors in
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = vectors.count
            return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
        }
        return n >= 0 ? n : -Int(errno)
    }

    /// One readable region, for callers holding plain bytes.
    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        write(fd, BufferRegions(UnsafeMutableRawBufferPointer(mutating: bytes)))
    }

    private static func withIOVecs(_ regions: BufferRegions, _ body: (UnsafeMutableBufferPointer<iovec>) -> Int) -> Int {
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: max(1, regions.count)) { vectors in
            for i in 0..<regions.count {
                let r = regions[i]
                vectors[i] = iovec(iov_base: r.baseAddress, iov_len: r.count)
            }
            return body(UnsafeMutableBufferPointer(rebasing: vectors[..<regions.count]))
        }
    }
}
