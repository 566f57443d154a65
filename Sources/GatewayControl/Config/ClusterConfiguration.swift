// The `[cluster]` table: where etcd is, this node's name and addresses, the key prefix, the lease
// and how long an attach may wait for etcd to confirm a sandbox ID (docs/cluster.md).
import Wire

#if canImport(Glibc)
    import Glibc
#endif

public struct ClusterConfiguration: Sendable, Hashable {
    public var endpoints: [EtcdEndpoint]
    /// This gatewayd's name in the farm; default: the host name.
    public var node: String
    /// Every key lives under it; ends with "/".
    public var prefix = "/gatewayd/"
    /// Seconds a dead node's keys outlive it; the lease is renewed every third of it.
    public var leaseTTL = 10
    /// `advertise`: the node's addresses, as other hosts reach its published ports; nil: the
    /// publish bind address when that is a specific, non-loopback address, else none.
    public var advertise: [String]?
    /// `claim-timeout-ms`: the longest an attach waits for etcd to confirm its sandbox ID, and
    /// only while etcd is believed reachable; past it the attach goes on locally.
    public var claimTimeout: Duration = .milliseconds(300)

    public init(endpoints: [EtcdEndpoint], node: String = ClusterConfiguration.hostName()) {
        self.endpoints = endpoints
        self.node = node
    }

    /// Bounds each call of the background sync: well within a lease period, so a renewal that
    /// fails leaves time for the next.
    public var requestTimeout: Duration { .milliseconds(min(2000, leaseTTL * 1000 / 3)) }

    /// The addresses put in the node record.
    public func advertisedAddresses(publishBindAddress: String) -> [String] {
        if let advertise { return advertise }
        let specific: Bool =
            switch IPAddressKind(publishBindAddress) {
            case .specific: true
            case .loopback, .wildcard, .none: false
            }
        return specific ? [publishBindAddress] : []
    }

    /// The host name (gethostname(2)), read before the worker's confinement.
    public static func hostName() -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    /// A node name or sandbox ID is a path segment of a key: no "/" and nothing empty.
    static func isNodeName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 253 && !name.contains("/")
            && name.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F }
    }
}

/// What kind of host address a bind address is, for the advertise default.
enum IPAddressKind {
    case loopback, wildcard, specific

    init?(_ text: String) {
        switch IPAddress(text) {
        case .v4(let a): self = a.isLoopback ? .loopback : a.isUnspecified ? .wildcard : .specific
        case .v6(let a): self = a.isLoopback ? .loopback : a.isUnspecified ? .wildcard : .specific
        case nil: return nil
        }
    }
}
