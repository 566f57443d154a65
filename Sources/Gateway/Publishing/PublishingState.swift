// The state published ports share across shards: the port allocator, the routing table, the
// sandboxes' egress sockets on loopback, and the settings they were made with. The gateway owns one.

final class PublishingState: Sendable {
    let configuration: PublishingConfiguration
    let allocator: PortAllocator
    let routes = RoutingTable()
    let loopbackClients = LoopbackClients()

    init(configuration: PublishingConfiguration) {
        self.configuration = configuration
        allocator = PortAllocator(range: configuration.autoPorts ?? .system())
    }
}
