// Reads the cluster view straight from etcd, for `gatewayctl --cluster URL list | routes | nodes`:
// every node's records under the prefix, with no gatewayd in between.
import Foundation

public struct ClusterReader: Sendable {
    let client: EtcdClient
    public let layout: ClusterLayout
    public var timeout: Duration = .seconds(5)

    public init(endpoints: [EtcdEndpoint], prefix: String = "/gatewayd/") {
        client = EtcdClient(endpoints: endpoints)
        layout = ClusterLayout(prefix: prefix)
    }

    public func nodes() throws(ControlError) -> [ClusterNodeRecord] {
        try records(under: layout.nodes, as: ClusterNodeRecord.self).sorted { $0.name < $1.name }
    }

    public func sandboxes() throws(ControlError) -> [ClusterSandboxRecord] {
        try records(under: layout.sandboxes, as: ClusterSandboxRecord.self).sorted { ($0.node, $0.id) < ($1.node, $1.id) }
    }

    public func routes() throws(ControlError) -> [ClusterRouteRecord] {
        try records(under: layout.routes, as: ClusterRouteRecord.self).sorted {
            ($0.node, $0.protocol, $0.hostIP, $0.hostPort) < ($1.node, $1.protocol, $1.hostIP, $1.hostPort)
        }
    }

    /// Every value under `prefix` that decodes as `T`; others (written by something else) are skipped.
    func records<T: Decodable>(under prefix: String, as: T.Type) throws(ControlError) -> [T] {
        let kvs: [Etcd.KeyValue]
        do {
            kvs = try client.range(.prefix(prefix), timeout: timeout)
        } catch {
            let code: ControlError.Code = error.kind == .unreachable ? .unreachable : .badResponse
            throw ControlError(code, "cannot read the cluster view from etcd: \(error.message)")
        }
        return kvs.compactMap { try? JSONDecoder().decode(T.self, from: Data($0.value.bytes)) }
    }
}
