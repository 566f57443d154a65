// The control API's routing and errors, driven without a network: a Gateway with no sandboxes,
// a state directory and a namespace directory of the test's own.
import Foundation
import Gateway
import GatewayControl
import Logging
import Testing

/// A service over a fresh Gateway and temporary directories; `close()` removes them.
final class ServiceFixture: @unchecked Sendable {
    let directory: String
    let gateway: Gateway
    let service: ControlService
    let store: StateStore

    init(publishing: (any PortPublishing)? = nil) throws {
        directory = NSTemporaryDirectory() + "gwctl-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory + "/netns", withIntermediateDirectories: true)
        var cfg = GatewayConfiguration(shards: 2)
        cfg.pinShards = false
        gateway = try Gateway(configuration: cfg)
        store = try StateStore(directory: directory + "/state")
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        service = ControlService(
            gateway: gateway, store: store, publishing: publishing, logger: logger,
            namespaceDirectory: directory + "/netns")
    }

    func close() {
        gateway.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func call(_ method: String, _ uri: String, _ body: String? = nil) -> (Int, String) {
        let r = service.handle(ControlRequest(method: method, uri: uri, body: Array((body ?? "").utf8)))
        return (r.status, String(decoding: r.bytes, as: UTF8.self))
    }

    func error(_ method: String, _ uri: String, _ body: String? = nil) throws -> (Int, ControlError) {
        let (status, text) = call(method, uri, body)
        return (status, try JSONDecoder().decode(ControlError.Body.self, from: Data(text.utf8)).error)
    }
}

/// Published ports kept in memory, standing in for the Gateway's.
final class FakePublishing: PortPublishing, @unchecked Sendable {
    private var list: [RouteView] = []
    private let lock = NSLock()

    func publish(sandbox: String, spec: PublishRequest) throws(ControlError) -> RouteView {
        let route = RouteView(
            hostIP: spec.hostIP ?? "127.0.0.1", hostPort: spec.hostPort == 0 ? 30000 : spec.hostPort,
            protocol: spec.protocol, sandbox: sandbox, guestPort: spec.guestPort)
        lock.withLock { list.append(route) }
        return route
    }

    func unpublish(sandbox: String, spec: PublishRequest) throws(ControlError) {
        let removed = lock.withLock { () -> Bool in
            let before = list.count
            list.removeAll { $0.sandbox == sandbox && $0.hostPort == spec.hostPort && $0.protocol == spec.protocol }
            return list.count < before
        }
        if !removed { throw ControlError(.unknownRoute, "no port \(spec.hostPort)/\(spec.protocol) is published") }
    }

    func routes() -> [RouteView] { lock.withLock { list } }
}

@Suite struct ControlServiceTests {
    @Test func emptyGatewayListsNothing() throws {
        let f = try ServiceFixture()
        defer { f.close() }
        let (status, body) = f.call("GET", "/v1/sandboxes")
        #expect(status == 200)
        #expect(try JSONDecoder().decode([SandboxView].self, from: Data(body.utf8)).isEmpty)
        let (hs, health) = f.call("GET", "/v1/health")
        #expect(hs == 200 && health.contains("\"shards\" : 2"))
    }

    @Test(arguments: [
        ("GET", "/v1/sandboxes/ghost"), ("DELETE", "/v1/sandboxes/ghost"), ("GET", "/v1/sandboxes/ghost/stats"),
        ("GET", "/v1/sandboxes/ghost/capture?count=1"),
    ])
    func unknownSandboxIs404(_ method: String, _ uri: String) throws {
        let f = try ServiceFixture()
        defer { f.close() }
        let (status, e) = try f.error(method, uri)
        #expect(status == 404)
        #expect(e.code == .unknownSandbox)
        #expect(e.message == "no sandbox 'ghost' is attached (gatewayctl list shows those that are)")
    }

    @Test(arguments: [
        ("", "the request has no body"),
        ("{", "it is not valid JSON"),
        ("{\"id\": \"a\"}", "say what to attach: a namespace (\"netns\": NAME) or a VM (\"vm\": {})"),
        ("{\"id\": \"a\", \"netns\": \"n\", \"mtu\": \"big\"}", "field 'mtu' has the wrong type"),
        ("{\"id\": \"a b\", \"netns\": \"n\"}", "sandbox ID 'a b' is not valid"),
        ("{\"id\": \"a\", \"netns\": \"n\", \"mtu\": 10}", "MTU 10 is out of range"),
    ])
    func badAttachBodyIs400(_ body: String, _ says: String) throws {
        let f = try ServiceFixture()
        defer { f.close() }
        let (status, e) = try f.error("POST", "/v1/sandboxes", body)
        #expect(status == 400)
        #expect(e.code == .invalidArgument)
        #expect(e.message.contains(says), "\(e)")
    }

    @Test func missingNamespaceHasItsOwnError() throws {
        let f = try ServiceFixture()
        defer { f.close() }
        let (status, e) = try f.error("POST", "/v1/sandboxes", "{\"id\": \"a\", \"netns\": \"nowhere\"}")
        #expect(status == 404)
        #expect(e.code == .namespaceNotFound)
        #expect(
            e.message.contains("network namespace 'nowhere' does not exist: create it first (ip netns add nowhere)"))
        #expect(f.store.leftovers().isEmpty)
    }

    @Test func unknownEndpointsAndMethods() throws {
        let f = try ServiceFixture()
        defer { f.close() }
        let (s1, e1) = try f.error("GET", "/v2/things")
        #expect(s1 == 404 && e1.code == .notFound && e1.message.contains("docs/control-api.md"))
        let (s2, e2) = try f.error("PUT", "/v1/sandboxes")
        #expect(s2 == 405 && e2.code == .methodNotAllowed && e2.message.contains("use GET or POST"))
        let (s3, e3) = try f.error("DELETE", "/v1/sandboxes/a/ports/tcp/http")
        #expect(s3 == 400 && e3.code == .badSpec)
    }

    @Test func captureArgumentsAreChecked() throws {
        let f = try ServiceFixture()
        defer { f.close() }
        let (s1, e1) = try f.error("GET", "/v1/sandboxes/a/capture?count=0")
        #expect(s1 == 400 && e1.message.contains("count '0'"))
        let (s2, e2) = try f.error("GET", "/v1/sandboxes/a/capture?seconds=-1")
        #expect(s2 == 400 && e2.message.contains("seconds '-1'"))
    }

    @Test func portEndpointsAnswer501WithoutPublishing() throws {
        let f = try ServiceFixture()
        defer { f.close() }
        let (s1, e1) = try f.error("GET", "/v1/routes")
        #expect(s1 == 501 && e1.code == .notImplemented && e1.message.contains("not wired"))
        // An unknown sandbox is still reported as such first.
        let (s2, e2) = try f.error(
            "POST", "/v1/sandboxes/ghost/ports", "{\"hostPort\": 1, \"guestPort\": 2, \"protocol\": \"tcp\"}")
        #expect(s2 == 404 && e2.code == .unknownSandbox)
    }

    @Test func publishingIsPassedThrough() throws {
        let fake = FakePublishing()
        let f = try ServiceFixture(publishing: fake)
        defer { f.close() }
        let (status, body) = f.call("GET", "/v1/routes")
        #expect(status == 200)
        #expect(try JSONDecoder().decode([RouteView].self, from: Data(body.utf8)).isEmpty)
        _ = try fake.publish(sandbox: "x", spec: PublishRequest(hostPort: 8080, guestPort: 80))
        let (_, after) = f.call("GET", "/v1/routes")
        let routes = try JSONDecoder().decode([RouteView].self, from: Data(after.utf8))
        #expect(
            routes == [RouteView(hostIP: "127.0.0.1", hostPort: 8080, protocol: "tcp", sandbox: "x", guestPort: 80)])
        #expect(f.service.metrics().contains("gatewayd_published_ports 1\n"))
    }

    @Test func metricsOfAnEmptyGateway() throws {
        let f = try ServiceFixture()
        defer { f.close() }
        let r = f.service.handle(ControlRequest(method: "GET", uri: "/metrics"))
        #expect(r.status == 200)
        #expect(r.contentType.hasPrefix("text/plain; version=0.0.4"))
        let text = String(decoding: r.bytes, as: UTF8.self)
        #expect(text.contains("# TYPE gatewayd_sandboxes gauge\ngatewayd_sandboxes 0\n"))
        #expect(text.contains("gatewayd_shard_sandboxes{shard=\"0\"} 0\n"))
        #expect(text.contains("gatewayd_shard_sandboxes{shard=\"1\"} 0\n"))
        #expect(text.contains("# TYPE gatewayd_shard_polled_wakeups_total counter\n"))
        #expect(text.contains("gatewayd_shard_sleeps_total{shard=\"1\"} "))
        #expect(text.contains("gatewayd_shard_polls_skipped_total{shard=\"1\"} "))
        // A new shard polls until its traffic says otherwise.
        #expect(text.contains("gatewayd_shard_busy_poll_hit_percent{shard=\"0\"} 100\n"))
        #expect(text.contains("gatewayd_shard_buffer_bytes{shard=\"0\",state=\"in_use\"} 0\n"))
        #expect(text.contains("# TYPE gatewayd_shard_buffer_released_bytes_total counter\n"))
        #expect(text.contains("gatewayd_memory_budget_reserved_bytes 0\n"))
    }

    @Test func leftoversWithoutNamespaceAreCleanedNotRestored() throws {
        let f = try ServiceFixture()
        defer { f.close() }
        try f.store.save(SandboxState(addressBlock: 0, sandbox: AttachRequest(id: "old", netns: "gone-ns")))
        try Data("not json".utf8).write(to: URL(fileURLWithPath: f.store.sandboxDirectory + "/broken.json"))
        #expect(f.store.leftovers().count == 2)
        #expect(f.service.restoreLeftovers().isEmpty)
        #expect(f.store.leftovers().isEmpty)
        #expect(f.gateway.list().isEmpty)
        // The unreadable file is set aside for the operator, not deleted.
        #expect(FileManager.default.fileExists(atPath: f.store.sandboxDirectory + "/broken.json.rejected"))
    }

    /// Ports in an attach request are checked before anything is attached.
    @Test func attachWithABadPortSpecAttachesNothing() throws {
        let f = try ServiceFixture(publishing: FakePublishing())
        defer { f.close() }
        try FileManager.default.createDirectory(atPath: f.directory + "/netns/n", withIntermediateDirectories: true)
        let (status, e) = try f.error(
            "POST", "/v1/sandboxes",
            #"{"id": "a", "netns": "n", "ports": [{"hostPort": 8080, "guestPort": 80, "protocol": "sctp"}]}"#)
        #expect(status == 400 && e.code == .badSpec && e.message.contains("sctp"), "\(e)")
        #expect(f.gateway.list().isEmpty)
        #expect(f.store.leftovers().isEmpty)
    }
}
