// What a gatewayd keeps in etcd about itself, its sandboxes and its published ports, and where:
// the key layout under the cluster prefix and the JSON values (docs/cluster.md). No I/O.
import Foundation

/// The keys under a cluster prefix (`/gatewayd/` by default).
public struct ClusterLayout: Sendable, Hashable {
    public var prefix: String

    public init(prefix: String) { self.prefix = prefix }

    public var nodes: String { prefix + "nodes/" }
    public var sandboxes: String { prefix + "sandboxes/" }
    public var routes: String { prefix + "routes/" }

    public func node(_ name: String) -> String { nodes + name }
    public func sandbox(_ id: String) -> String { sandboxes + id }

    /// `routes/PROTO/HOSTIP:PORT`, HOSTIP being where other hosts reach the port: the bound
    /// address, or for a wildcard bind the node's first advertised address. A port bound to
    /// loopback (or a wildcard on a node that advertises nothing) is reachable from its own host
    /// only, and the same address and port may then be taken on every node: its key names the
    /// node, `routes/PROTO/NODE/HOSTIP:PORT`.
    public func route(_ record: ClusterRouteRecord, advertised: [String]) -> String {
        var host = record.hostIP
        var qualified = false
        switch IPAddressKind(host) {
        case .wildcard where !advertised.isEmpty: host = advertised[0]
        case .loopback, .wildcard: qualified = true
        case .specific, nil: break
        }
        let address = host.contains(":") ? "[\(host)]:\(record.hostPort)" : "\(host):\(record.hostPort)"
        return routes + record.protocol + "/" + (qualified ? record.node + "/" : "") + address
    }

    /// Whether `key` is one whose holder is named by its value's `node` (or `name`), which only
    /// that node may write.
    public func isKept(_ key: String) -> Bool {
        key.hasPrefix(nodes) || key.hasPrefix(sandboxes) || key.hasPrefix(routes)
    }
}

/// `nodes/NODE`: one gatewayd.
public struct ClusterNodeRecord: Codable, Sendable, Hashable {
    public var name: String
    /// Where other hosts reach this node's published ports (`[cluster] advertise`).
    public var addresses: [String]
    public var shards: Int
    /// Sandboxes the address pool can hold at once.
    public var capacity: Int
    public var version: String
    /// When this gatewayd started (ISO 8601, UTC).
    public var started: String

    public init(name: String, addresses: [String], shards: Int, capacity: Int, version: String, started: String) {
        self.name = name
        self.addresses = addresses
        self.shards = shards
        self.capacity = capacity
        self.version = version
        self.started = started
    }
}

/// `sandboxes/ID`: one sandbox, and the node that holds its ID farm-wide.
public struct ClusterSandboxRecord: Codable, Sendable, Hashable {
    public struct Addresses: Codable, Sendable, Hashable {
        public var guestIPv4: String
        public var guestIPv6: String
        public var gatewayIPv4: String
        public var gatewayIPv6: String

        public init(guestIPv4: String, guestIPv6: String, gatewayIPv4: String, gatewayIPv6: String) {
            self.guestIPv4 = guestIPv4
            self.guestIPv6 = guestIPv6
            self.gatewayIPv4 = gatewayIPv4
            self.gatewayIPv6 = gatewayIPv6
        }
    }

    public var id: String
    public var node: String
    /// "netns" or "vm".
    public var mode: String
    /// nil while the ID is claimed and the attach has not finished.
    public var addresses: Addresses?
    public var policy: String
    public var mac: String

    public init(id: String, node: String, mode: String, addresses: Addresses?, policy: String, mac: String) {
        self.id = id
        self.node = node
        self.mode = mode
        self.addresses = addresses
        self.policy = policy
        self.mac = mac
    }

    public init(_ view: SandboxView, node: String) {
        self.init(
            id: view.id, node: node, mode: view.mode,
            addresses: Addresses(
                guestIPv4: view.guestIPv4, guestIPv6: view.guestIPv6, gatewayIPv4: view.gatewayIPv4,
                gatewayIPv6: view.gatewayIPv6),
            policy: view.policy, mac: view.mac)
    }
}

/// `routes/PROTO/HOSTIP:PORT`: one published port.
public struct ClusterRouteRecord: Codable, Sendable, Hashable {
    public var node: String
    public var sandbox: String
    public var guestPort: Int
    public var hostIP: String
    public var hostPort: Int
    public var `protocol`: String

    public init(node: String, sandbox: String, guestPort: Int, hostIP: String, hostPort: Int, protocol: String) {
        self.node = node
        self.sandbox = sandbox
        self.guestPort = guestPort
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.protocol = `protocol`
    }

    public init(_ route: RouteView, node: String) {
        self.init(
            node: node, sandbox: route.sandbox, guestPort: route.guestPort, hostIP: route.hostIP,
            hostPort: route.hostPort, protocol: route.protocol)
    }
}

enum ClusterJSON {
    /// Sorted keys: the same record always gives the same bytes, so "changed" is a byte comparison.
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(value))) ?? []
    }

    /// The node a stored value names as its holder (`node`, or a node record's `name`); nil when
    /// the value is not one of ours.
    static func holder(of value: [UInt8]) -> String? {
        struct Holder: Decodable {
            var node: String?
            var name: String?
        }
        guard let h = try? JSONDecoder().decode(Holder.self, from: Data(value)) else { return nil }
        return h.node ?? h.name
    }
}
