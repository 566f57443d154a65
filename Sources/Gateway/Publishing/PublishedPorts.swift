// The published host ports as egress sees them: which publication a sandbox's flow to a host
// address would land on. Each sandbox's egress keeps a copy and refreshes it only after a change.
import Synchronization
import Wire

/// Published host ports by transport and port number. A value: copies are cheap and unchanging.
public struct PublishedPorts: Sendable {
    private struct Key: Hashable {
        var port: UInt16
        var `protocol`: PortProtocol
    }

    /// Few addresses share one port number, so each key holds a short list.
    private var byPort: [Key: [(address: IPAddress, target: RoutingTable.Target)]] = [:]

    public init() {}

    public var isEmpty: Bool { byPort.isEmpty }

    mutating func insert(_ binding: HostBinding, _ target: RoutingTable.Target) {
        byPort[Key(port: binding.port, protocol: binding.protocol), default: []].append((binding.address, target))
    }

    mutating func remove(_ binding: HostBinding) {
        let key = Key(port: binding.port, protocol: binding.protocol)
        byPort[key]?.removeAll { $0.address == binding.address }
        if byPort[key]?.isEmpty == true { byPort[key] = nil }
    }

    /// The publication a host socket dialling `destination` (the host-side address, after a
    /// gateway address became loopback) would reach; nil when it reaches none. A port bound to
    /// the destination itself is reached; so is one bound to a wildcard when the destination is
    /// loopback (a local address for certain; others the host may have are not known here). A
    /// flow to 127.0.0.1 or ::1 may land on the other family's loopback too: egress tries it
    /// when the first is refused.
    public func target(reachedBy destination: IPAddress, port: UInt16, protocol: PortProtocol) -> RoutingTable.Target? {
        guard let entries = byPort[Key(port: port, protocol: `protocol`)] else { return nil }
        let d: IPAddress
        if case .v6(let a) = destination, let v4 = a.ipv4Mapped { d = .v4(v4) } else { d = destination }
        let fallback: IPAddress? =
            switch d {
            case .v4(let a) where a == .loopback: .v6(.loopback)
            case .v6(let a) where a == .loopback: .v4(.loopback)
            default: nil
            }
        for e in entries {
            if e.address == d || e.address == fallback { return e.target }
            if e.address.isWildcard && d.isLoopbackAddress
                && (e.address.sameFamily(as: d) || fallback.map(e.address.sameFamily) == true)
            {
                return e.target
            }
        }
        return nil
    }
}

/// A sandbox's copy of the routing table's published ports. A new flow reads one atomic
/// counter; the lock is taken only on the first flow after a publish or unpublish. Used on the
/// sandbox's shard only.
final class PublishedPortsView {
    let routes: RoutingTable
    private var generation: UInt64?
    private var copy = PublishedPorts()

    init(routes: RoutingTable) {
        self.routes = routes
    }

    var current: PublishedPorts {
        if generation != routes.generation {
            (generation, copy) = routes.publishedPorts()
        }
        return copy
    }
}
