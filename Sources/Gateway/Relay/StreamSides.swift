// What a relayed TCP stream's two ends have done, as both relay state machines (egress and
// published ports) track it: the host socket's EOF and write shutdown, the guest's FIN, and what
// each direction is waiting for.

struct StreamSides: Equatable {
    /// The host socket's peer (upstream or client) sent EOF: passed on to the guest as FIN.
    var socketEOF = false
    /// The guest's FIN arrived, in order after all its bytes.
    var guestFIN = false
    /// The guest's FIN and every byte before it went to the socket: shutdown(SHUT_WR) done.
    var socketWriteShut = false
    /// The send ring took nothing (the guest's window, or the memory budget, is full): reading
    /// waits for the stack's `.writable`.
    var stackFull = false
    /// The socket did not take everything (EAGAIN): writing waits for EPOLLOUT.
    var socketFull = false
    /// The sandbox's rate limit stopped reading from the socket: it waits for
    /// `tokensBack(.fromHost)`, not for EPOLLIN.
    var readLimited = false
    /// The rate limit stopped writing to the socket: the guest's bytes wait in the ring for
    /// `tokensBack(.toHost)`, and its window closes meanwhile.
    var writeLimited = false

    /// FIN has gone both ways on the host socket: it can close.
    var socketOpen: Bool { !(socketEOF && socketWriteShut) }
}
