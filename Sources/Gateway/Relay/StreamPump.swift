// Moves bytes between a host stream socket and a stack connection's rings with no copy in
// between, for both relays that carry a guest TCP stream (egress and published ports).
#if canImport(Glibc)
import Glibc
#endif
import Link
import NetStack
import SystemPackage

/// readv from a socket straight into a connection's send ring, and writev from its receive
/// ring straight to the socket. Whoever owns the socket decides what an outcome means.
enum StreamPump {
    /// How a pull from the socket into the guest's send ring stopped.
    enum PullOutcome: Equatable {
        /// The socket has nothing more now (EAGAIN, or a short read emptied it): its
        /// level-triggered EPOLLIN says when it has.
        case socketEmpty
        /// The guest's window and the ring are full, or the sandbox's memory budget is: the bytes
        /// wait in the kernel until the stack reports `.writable`.
        case stackFull
        /// The peer sent EOF.
        case endOfStream
        /// A read failed (the peer reset, or another error).
        case failed(Errno)
        /// The sandbox's rate limit allowed no more now: reading waits for its tokens.
        case rateLimited
    }

    /// How a push from the guest's receive ring to the socket stopped.
    enum PushOutcome: Equatable {
        /// The socket took everything. `complete`: the guest's FIN came after it, so the stream
        /// it carried is whole and the socket's write side may shut.
        case emptied(complete: Bool)
        /// The socket is full (EAGAIN): the rest stays in the ring until EPOLLOUT.
        case socketFull
        /// A write failed (the peer reset, or another error).
        case failed(Errno)
        /// The sandbox's rate limit allowed no more now: the rest waits in the ring for its
        /// tokens (`held` bytes), and the guest's window closes as it fills.
        case rateLimited(held: Int)
    }

    /// Reads from `socket` into the connection's send ring until one of the outcomes; `moved`
    /// gets every byte taken. `rates`: the sandbox's limiter, which grants and is charged the
    /// bytes from the host (nil, or no byte limit that way: unlimited).
    static func pull(
        from socket: borrowing OwnedDescriptor, into stack: Stack, _ id: TCPFlowID, now: UInt64,
        rates: RateLimiter? = nil, moved: (Int) -> Void
    ) -> PullOutcome {
        let limiter = rates?.limitsBytes(.fromHost) == true ? rates : nil
        var allowance = limiter?.allowance(.fromHost, now: now) ?? .max
        while true {
            if allowance <= 0 { return .rateLimited }
            var result = 0
            var failure: Errno?
            var asked = 0
            let taken = stack.tcpWriteInPlace(id, now: now) { regions in
                asked = min(regions.byteCount, allowance)
                do throws(Errno) {
                    result = try HostSocket.read(socket, regions, max: allowance)
                } catch {
                    failure = error
                }
                return result
            }
            if let failure { return failure == .resourceTemporarilyUnavailable ? .socketEmpty : .failed(failure) }
            if taken == 0 && result == 0 && stack.tcpWritableBytes(id) == 0 { return .stackFull }
            if result > 0 {
                moved(result)
                limiter?.spend(.fromHost, result, now: now)
                allowance -= result
                // A short read emptied the socket: a read now would only return EAGAIN.
                if result < asked { return .socketEmpty }
                if allowance <= 0 { return .rateLimited }
                continue
            }
            return .endOfStream
        }
    }

    /// The smallest segment worth a system call of its own unless it ends one of the guest's
    /// writes: MSS-sized pieces of a large write (a guest without TSO) are better gathered in
    /// the ring and written in one call after the batch.
    static let directMinimum = 8 * 1024

    /// Writes bytes the stack offers as they arrive (its direct receiver, while the receive ring
    /// is empty) to `socket`; returns how many it took: 0 for fewer than `directMinimum` that do
    /// not end a write of the guest's (`pushed`: PSH), or when the rate limit has nothing now.
    /// The stack buffers the rest, and the `push` that follows meets the same condition. Runs
    /// inside the stack's receive: `moved` must not call into the stack.
    /// - Throws: the write's errno (`.resourceTemporarilyUnavailable` when the socket is full).
    static func pushDirectly(
        _ bytes: UnsafeRawBufferPointer, pushed: Bool, to socket: borrowing OwnedDescriptor, now: UInt64,
        rates: RateLimiter? = nil, moved: (Int) -> Void
    ) throws(Errno) -> Int {
        guard bytes.count >= directMinimum || pushed else { return 0 }
        let limiter = rates?.limitsBytes(.toHost) == true ? rates : nil
        let allowance = limiter?.allowance(.toHost, now: now) ?? .max
        guard allowance > 0 else { return 0 }
        let offered = UnsafeRawBufferPointer(rebasing: bytes[..<min(bytes.count, allowance)])
        let n = try HostSocket.write(socket, offered)
        guard n > 0 else { return 0 }
        moved(n)
        limiter?.spend(.toHost, n, now: now)
        return n
    }

    /// Writes the connection's receive ring to `fd` until it is empty or the socket is full;
    /// `moved` gets every byte written. `complete` says whether the stream is already whole
    /// when nothing is left to write; `guestFIN` that the guest's FIN has arrived, so that the
    /// write taking the last bytes completes it. `rates`: as for `pull`, the bytes to the host.
    static func push(
        from stack: Stack, _ id: TCPFlowID, to socket: borrowing OwnedDescriptor, now: UInt64, complete: Bool,
        guestFIN: Bool, rates: RateLimiter? = nil, moved: (Int) -> Void
    ) -> PushOutcome {
        var complete = complete
        let limiter = rates?.limitsBytes(.toHost) == true ? rates : nil
        var allowance = limiter?.allowance(.toHost, now: now) ?? .max
        while let regions = stack.tcpReadableRegions(id), regions.byteCount > 0 {
            if allowance <= 0 { return .rateLimited(held: regions.byteCount) }
            let n: Int
            do throws(Errno) {
                n = try HostSocket.write(socket, regions, max: allowance)
            } catch .resourceTemporarilyUnavailable {
                return .socketFull
            } catch {
                return .failed(error)
            }
            moved(n)
            limiter?.spend(.toHost, n, now: now)
            allowance -= n
            // Taking the last bytes of a connection that has already ended retires it from the
            // stack, after which nothing says whether its stream was complete: settled before.
            if guestFIN && n == stack.tcpReadableBytes(id) { complete = true }
            stack.tcpConsume(id, n, now: now)
        }
        return .emptied(complete: complete)
    }
}
