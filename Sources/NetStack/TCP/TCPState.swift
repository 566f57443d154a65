// The connection states of RFC 9293 §3.3.2, plus the one this gateway adds before SYN-RECEIVED.

public enum TCPState: Sendable, Hashable, CustomStringConvertible {
    /// The guest's SYN arrived and the layer above is still deciding (dialling upstream).
    /// Nothing has been sent: the guest must never see a handshake the upstream did not have.
    case synPending
    case synSent
    case synReceived
    case established
    case finWait1
    case finWait2
    case closeWait
    case closing
    case lastAck
    case timeWait
    case closed

    /// States in which sequence numbers of both sides are known (RFC 9293 "synchronized").
    var isSynchronized: Bool {
        switch self {
        case .synPending, .synSent, .closed: false
        default: true
        }
    }

    /// States in which the peer may still send data we accept.
    var acceptsData: Bool {
        switch self {
        case .synReceived, .established, .finWait1, .finWait2: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .synPending: "SYN-PENDING"
        case .synSent: "SYN-SENT"
        case .synReceived: "SYN-RECEIVED"
        case .established: "ESTABLISHED"
        case .finWait1: "FIN-WAIT-1"
        case .finWait2: "FIN-WAIT-2"
        case .closeWait: "CLOSE-WAIT"
        case .closing: "CLOSING"
        case .lastAck: "LAST-ACK"
        case .timeWait: "TIME-WAIT"
        case .closed: "CLOSED"
        }
    }
}

/// Why a connection reached CLOSED, for the layer above and for counters.
public enum TCPCloseReason: Sendable, Hashable {
    /// Both FINs exchanged and acknowledged.
    case normal
    /// The peer sent an acceptable RST.
    case reset
    /// Retransmissions ran out.
    case timedOut
    /// The connection attempt into the guest was answered with RST.
    case refused
    /// The layer above aborted it (we sent RST).
    case aborted
}
