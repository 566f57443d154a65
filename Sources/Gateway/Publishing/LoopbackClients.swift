// The loopback endpoints of host sockets sandboxes' egress dialled to published ports: on the
// host they all come from 127.0.0.1 or ::1, and this tells the ingress side which sandbox each is.
import Synchronization
import Wire

final class LoopbackClients: Sendable {
    private let table = Mutex<[IPEndpoint: String]>([:])
    /// Read without the lock, so ingress pays nothing while no sandbox reaches a published port.
    private let entries = Atomic<Int>(0)

    func insert(_ endpoint: IPEndpoint, sandbox: String) {
        table.withLock {
            $0[endpoint] = sandbox
            entries.store($0.count, ordering: .releasing)
        }
    }

    func remove(_ endpoint: IPEndpoint) {
        table.withLock {
            $0[endpoint] = nil
            entries.store($0.count, ordering: .releasing)
        }
    }

    /// The sandbox whose egress socket has this local endpoint.
    func sandbox(at endpoint: IPEndpoint) -> String? {
        guard entries.load(ordering: .acquiring) > 0 else { return nil }
        return table.withLock { $0[endpoint] }
    }

    var count: Int { entries.load(ordering: .acquiring) }
}
