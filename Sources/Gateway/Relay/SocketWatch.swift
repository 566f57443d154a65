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
