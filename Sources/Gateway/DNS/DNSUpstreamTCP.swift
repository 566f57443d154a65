// One DNS exchange over TCP with an upstream resolver (RFC 1035 §4.2.2, RFC 7766): non-blocking
// connect on the shard's loop, one length-prefixed query out, one length-prefixed answer in, close.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import NetStack
import SystemPackage
import Wire

/// Used by the forwarder when a UDP answer came back truncated but the guest can take more. The
/// caller owns the deadline (its attempt timer) and calls `cancel()` when it fires. Confined to
/// the loop's thread.
final class DNSUpstreamTCP {
    private enum Phase {
        case connecting
        case writing
        case reading
        case done
    }

    private let loop: EventLoop
    /// The connection to the upstream; nil before it opens and once it closes.
    private var socket: OwnedDescriptor?
    private var phase = Phase.connecting
    /// The length prefix and the query, as they go on the wire.
    private let outgoing: [UInt8]
    private var written = 0
    /// The length prefix, then the answer; sized once the prefix is in.
    private var incoming: [UInt8] = [0, 0]
    private var received = 0
    private var completion: (([UInt8]?) -> Void)?
    /// Held against the asking sandbox's descriptor budget while the socket is open.
    var descriptor: DescriptorSlot?

    /// Starts the exchange. `completion` gets the answer's bytes (without the prefix), or nil when
    /// the upstream could not be reached, closed early or sent an empty message; it is called at
    /// most once, on the loop thread, never from within `init` and never after `cancel()`.
    init(loop: EventLoop, query: UnsafeRawBufferPointer, to address: IPAddress, port: UInt16,
         completion: @escaping ([UInt8]?) -> Void) {
        self.loop = loop
        var out = [UInt8](repeating: 0, count: 2 + query.count)
        out[0] = UInt8(truncatingIfNeeded: query.count >> 8)
        out[1] = UInt8(truncatingIfNeeded: query.count)
        for i in 0..<query.count { out[2 + i] = query[i] }
        outgoing = out
        self.completion = completion
        let destination = SocketAddress(address, port: port)
        // A query with our OPT record added may no longer fit the two-byte length.
        guard query.count <= 65535,
            let s = try? HostSocket.open(family: destination.family, type: Int32(SOCK_STREAM.rawValue))
        else {
            failSoon()
            return
        }
        do throws(Errno) {
            try HostSocket.connect(s, to: destination)
        } catch .nowInProgress {
            // The usual outcome: writable once connected, and SO_ERROR says how it went.
        } catch {
            failSoon()
            return
        }
        do {
            try loop.register(fd: s.rawValue, events: EPOLLOUT.rawValue) { [weak self] events in self?.socketEvent(events) }
        } catch {
            failSoon()
            return
        }
        socket = .some(s)
    }

    deinit { closeSocket() }

    /// Stops the exchange without calling the completion.
    func cancel() {
        completion = nil
        phase = .done
        closeSocket()
    }

    /// Failing inside `init` would call back into a caller still setting up: report on the
    /// loop's next turn instead.
    private func failSoon() {
        closeSocket()
        phase = .done
        _ = loop.schedule(at: 0) { [weak self] in self?.finish(nil) }
    }

    private func socketEvent(_ events: UInt32) {
        // Finishing may drop the last reference to this object.
        withExtendedLifetime(self) {
            switch phase {
            case .connecting:
                guard socket != nil, HostSocket.pendingError(socket!) == nil else { return finish(nil) }
                phase = .writing
                write()
            case .writing:
                write()
            case .reading:
                read()
            case .done:
                return
            }
        }
    }

    private func write() {
        while written < outgoing.count {
            guard socket != nil else { return }
            let n: Int
            do {
                n = try outgoing.withUnsafeBytes { b in
                    Result { () throws(Errno) in try HostSocket.write(socket!, UnsafeRawBufferPointer(rebasing: b[written...])) }
                }.get()
            } catch .resourceTemporarilyUnavailable, .interrupted {
                return
            } catch {
                return finish(nil)
            }
            guard n > 0 else { return finish(nil) }
            written += n
        }
        guard let fd = socket?.rawValue else { return }
        phase = .reading
        loop.modify(fd: fd, events: EPOLLIN.rawValue)
        read()
    }

    private func read() {
        while socket != nil {
            let n: Int
            do {
                n = try incoming.withUnsafeMutableBytes { b in
                    Result { () throws(Errno) in
                        try HostSocket.read(socket!, BufferRegions(UnsafeMutableRawBufferPointer(rebasing: b[received...])))
                    }
                }.get()
            } catch .resourceTemporarilyUnavailable {
                return
            } catch {
                return finish(nil)
            }
            guard n > 0 else { return finish(nil) }
            received += n
            if received == 2 && incoming.count == 2 {
                let length = Int(incoming[0]) << 8 | Int(incoming[1])
                guard length > 0 else { return finish(nil) }
                incoming += [UInt8](repeating: 0, count: length)
            }
            if received == incoming.count && incoming.count > 2 {
                return finish(Array(incoming[2...]))
            }
        }
    }

    private func finish(_ answer: [UInt8]?) {
        phase = .done
        closeSocket()
        let done = completion
        completion = nil
        done?(answer)
    }

    private func closeSocket() {
        descriptor = nil
        HostSocket.unwatchAndClose(&socket, on: loop)
    }
}
