// Where each published host port leads: (host address, host port, protocol) → (sandbox, guest
// port). Shared by all shards; written on publish and unpublish, read by `gatewayctl routes` and,
// through `PublishedPortsView`, by egress for each new flow to the host.
import Synchronization
import Wire

/// One row of `gatewayctl routes`.
public struct Route: Sendable, Hashable, Codable {
    public var hostIP: String
    public var hostPort: Int
    public var `protocol`: String
    public var sandbox: String
    public var guestPort: Int

    public init(hostIP: String, hostPort: Int, protocol: String, sandbox: String, guestPort: Int) {
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.protocol = `protocol`
        self.sandbox = sandbox
        self.guestPort = guestPort
    }
}

public final class RoutingTable: Sendable {
    public struct Target: Sendable, Hashable {
        public var sandbox: String
        public var guestPort: UInt16
        /// The guest sees the real client address instead of the gateway's.
        public var preserveSource: Bool

        public init(sandbox: String, guestPort: UInt16, preserveSource: Bool = false) {
            self.sandbox = sandbox
            self.guestPort = guestPort
            self.preserveSource = preserveSource
        }
    }

    private let table = Mutex<[HostBinding: Target]>([:])
    /// The same routes by port, for egress; replaced as a whole under `table`'s lock, so a
    /// reader's copy is never half-changed.
    private let index = Mutex(PublishedPorts())
    /// Counts changes, so a shard's copy of `index` can tell it is stale without the lock.
    private let changes = Atomic<UInt64>(0)

    public init() {}

    /// Adds a route; false (and no change) when the binding already has one.
    @discardableResult
    public func insert(_ binding: HostBinding, _ target: Target) -> Bool {
        table.withLock { t in
            guard t[binding] == nil else { return false }
            t[binding] = target
            index.withLock { $0.insert(binding, target) }
            changes.add(1, ordering: .releasing)
            return true
        }
    }

    @discardableResult
    public func remove(_ binding: HostBinding) -> Target? {
        table.withLock { t in
            guard let target = t.removeValue(forKey: binding) else { return nil }
            index.withLock { $0.remove(binding) }
            changes.add(1, ordering: .releasing)
            return target
        }
    }

    /// How many times the routes changed; read without a lock.
    public var generation: UInt64 { changes.load(ordering: .acquiring) }

    /// The published ports by port, and a generation they are at least as new as (read first:
    /// a copy newer than its generation is only fetched again, never kept when stale).
    public func publishedPorts() -> (generation: UInt64, ports: PublishedPorts) {
        let generation = changes.load(ordering: .acquiring)
        return (generation, index.withLock { $0 })
    }

    /// The route a packet to `binding` takes: the exact address first, then its family's
    /// wildcard (what the kernel does for a socket bound to 0.0.0.0 or ::). Two lookups, O(1).
    public func lookup(_ binding: HostBinding) -> Target? {
        table.withLock { t in
            if let hit = t[binding] { return hit }
            var wild = binding
            wild.address = binding.address.wildcard
            return t[wild]
        }
    }

    /// The bindings and targets of one sandbox, or of all.
    public func entries(sandbox: String? = nil) -> [(binding: HostBinding, target: Target)] {
        table.withLock { t in
            t.filter { sandbox == nil || $0.value.sandbox == sandbox }.map { (binding: $0.key, target: $0.value) }
        }
    }

    /// Every route, sorted by sandbox, then protocol, address and port.
    public func routes() -> [Route] {
        entries().map { e in
            Route(
                hostIP: e.binding.address.description, hostPort: Int(e.binding.port),
                protocol: e.binding.protocol.rawValue,
                sandbox: e.target.sandbox, guestPort: Int(e.target.guestPort))
        }.sorted {
            ($0.sandbox, $0.protocol, $0.hostIP, $0.hostPort) < ($1.sandbox, $1.protocol, $1.hostIP, $1.hostPort)
        }
    }

    public var count: Int { table.withLock { $0.count } }
}
