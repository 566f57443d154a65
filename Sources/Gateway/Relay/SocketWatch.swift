// How a relay's host socket sits in its shard's epoll: the mask registered now, and the one
// step (register, modify, unregister) that brings it to the mask the relay's state wants.

/// The registered epoll mask of one socket. A state machine says which mask it wants; this
/// says what the owner must do about it, so no path sets interest on its own.
struct SocketWatch: Equatable {
    /// The mask registered with the loop; nil while the socket is not in it.
    private(set) var installed: UInt32?

    enum Change: Equatable {
        case register(UInt32)
        case modify(UInt32)
        case unregister
    }

    /// The step to `wanted` (nil: the socket is gone or must stay as it is). A socket that hung
    /// up with nothing wanted leaves the loop: epoll reports EPOLLHUP whatever the mask, and it
    /// would wake the loop on every pass.
    mutating func change(to wanted: UInt32?, hungUp: Bool = false) -> Change? {
        guard let wanted else { return nil }
        if hungUp && wanted == 0 {
            guard installed != nil else { return nil }
            installed = nil
            return .unregister
        }
        guard let current = installed else {
            installed = wanted
            return .register(wanted)
        }
        guard current != wanted else { return nil }
        installed = wanted
        return .modify(wanted)
    }

    /// The socket closed (or another replaces it): nothing is registered any more.
    mutating func forget() { installed = nil }
}

extension EventLoop {
    /// Carries out one step of a socket's watch. A registration that fails throws, and the
    /// owner treats it as a socket error; a failed modify or removal is counted in
    /// `epollFailures`.
    func apply(_ change: SocketWatch.Change, to fd: Int32, handler: @autoclosure () -> Handler) throws(GatewayError) {
        switch change {
        case .register(let events): try register(fd: fd, events: events, handler: handler())
        case .modify(let events): modify(fd: fd, events: events)
        case .unregister: unregister(fd: fd)
        }
    }
}
