// A host socket address a published port occupies: address, port and transport protocol. The key
// of the port allocator and of the routing table, and the name a published port goes by.
import Wire

/// The transport a published port carries.
public enum PortProtocol: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case tcp
    case udp

    public var description: String { rawValue }
}

/// An IP address and port: a client of a published port, or a host socket's own address.
public struct IPEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `127.0.0.1:8080` or `[::1]:8080`.
    public var description: String {
        if case .v6 = address { return "[\(address)]:\(port)" }
        return "\(address):\(port)"
    }
}

public struct HostBinding: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public var `protocol`: PortProtocol

    public init(address: IPAddress, port: UInt16, protocol: PortProtocol) {
        self.address = address
        self.port = port
        self.protocol = `protocol`
    }

    public var endpoint: IPEndpoint { IPEndpoint(address: address, port: port) }

    /// `127.0.0.1:8080/tcp`.
    public var description: String { "\(endpoint)/\(`protocol`)" }
}

extension IPAddress {
    /// 0.0.0.0 or ::, which bind every address of the family.
    var isWildcard: Bool {
        switch self {
        case .v4(let a): a.isUnspecified
        case .v6(let a): a.isUnspecified
        }
    }

    var isLoopbackAddress: Bool {
        switch self {
        case .v4(let a): a.isLoopback
        case .v6(let a): a.isLoopback
        }
    }

    func sameFamily(as other: IPAddress) -> Bool {
        switch (self, other) {
        case (.v4, .v4), (.v6, .v6): true
        default: false
        }
    }

    /// The family's wildcard address.
    var wildcard: IPAddress {
        switch self {
        case .v4: .v4(.any)
        case .v6: .v6(.any)
        }
    }
}
