// Identifies a TCP or UDP flow by the guest's endpoint and the remote endpoint it talks to.
import Wire

public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var guestAddress: IPAddress
    public var guestPort: UInt16
    /// The address the guest addressed (for egress) or sees as the peer (for published ports).
    public var remoteAddress: IPAddress
    public var remotePort: UInt16

    public init(guestAddress: IPAddress, guestPort: UInt16, remoteAddress: IPAddress, remotePort: UInt16) {
        self.guestAddress = guestAddress
        self.guestPort = guestPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
    }

    public var description: String {
        func ep(_ a: IPAddress, _ p: UInt16) -> String {
            if case .v6 = a { return "[\(a)]:\(p)" }
            return "\(a):\(p)"
        }
        return "\(ep(guestAddress, guestPort)) -> \(ep(remoteAddress, remotePort))"
    }
}

/// A stack-assigned handle for a TCP connection, stable for its life and never reused.
public struct TCPFlowID: Hashable, Sendable, CustomStringConvertible {
    /// The low half is the connection's slot in the stack's flow table, the high half how many
    /// flows held that slot before it.
    public let raw: UInt64

    init(slot: Int, generation: UInt32) {
        raw = UInt64(generation) << 32 | UInt64(UInt32(truncatingIfNeeded: slot))
    }

    var slot: Int { Int(truncatingIfNeeded: raw & 0xFFFF_FFFF) }
    var generation: UInt32 { UInt32(truncatingIfNeeded: raw >> 32) }

    public var description: String { "tcp#\(slot).\(generation)" }
}
