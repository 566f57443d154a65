// The cluster view with a real etcd 3.4 and real gatewayd daemons standing for two hosts: both
// register, `gatewayctl --cluster` lists them, a sandbox ID is unique across the farm, a killed
// node's entries vanish within the lease TTL, and attach goes on locally while etcd is down,
// the entries coming back when it returns.
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.enabled(if: TestHost.canCreateDevices && EtcdHarness.isInstalled, "needs root, /dev/net/tun and etcd (etcd-server)"))
struct ClusterTests {
    struct Health: Decodable {
        var cluster: ClusterSync.Status
    }

    static func health(_ h: DaemonHarness) -> ClusterSync.Status? {
        try? ControlClient(socketPath: h.socketPath, timeout: 5).call("GET", "/v1/health", as: Health.self).cluster
    }

    /// A daemon that joins `etcd` as `node`, up and connected.
    static func daemon(_ etcd: EtcdHarness, node: String) throws -> DaemonHarness {
        let h = try DaemonHarness()
        try h.tagHostDevices()
        let config = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try (config + etcd.clusterTable(node: node)).write(toFile: h.configPath, atomically: true, encoding: .utf8)
        try h.start()
        try waitFor(seconds: 10) { health(h)?.etcd == "connected" }
        return h
    }

    /// `gatewayctl ARGS` against etcd only, as a farm-wide reader runs it.
    static func clusterCtl(_ arguments: [String], environment: [String: String]? = nil) throws -> CommandResult {
        try runProgram(BuiltProducts.gatewayctl, arguments, environment: environment, timeout: 30)
    }

    /// The rows of a table gatewayctl printed, header first, split into columns.
    static func rows(_ text: String) -> [[String]] {
        text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
    }

    @Test(.timeLimit(.minutes(2)))
    func twoNodesShareOneViewAndOneSetOfIDs() throws {
        let etcd = try EtcdHarness(members: 1)
        defer { etcd.tearDown() }
        try etcd.start()
        let a = try Self.daemon(etcd, node: "a")
        defer { a.tearDown() }
        let b = try Self.daemon(etcd, node: "b")
        defer { b.tearDown() }

        let attachA = try a.ctl("attach", "web-1", "--netns", a.scratch.namespace().name!, "--publish", "8080")
        #expect(attachA.status == 0, "\(attachA.stderr)")
        let attachB = try b.ctl("attach", "db-1", "--netns", b.scratch.namespace().name!)
        #expect(attachB.status == 0, "\(attachB.stderr)")

        // The same ID on the other host is refused, naming the node that has it.
        let nsDuplicate = try b.scratch.namespace().name!
        let duplicate = try b.ctl("attach", "web-1", "--netns", nsDuplicate)
        #expect(duplicate.status == 3, "\(duplicate.stdout)")
        #expect(duplicate.stderr.contains("sandbox 'web-1' exists on node 'a'"), "\(duplicate.stderr)")
        // Refused before any device was made.
        #expect(b.links(in: nsDuplicate).allSatisfy { $0 == "lo" }, "\(b.links(in: nsDuplicate))")

        // Every node's sandboxes, with the node that holds each.
        let url = etcd.urls[0]
        try waitFor(seconds: 5) {
            let rows = Self.rows(try Self.clusterCtl(["--cluster", url, "list"]).stdout)
            return rows.contains { $0.prefix(2) == ["a", "web-1"] && $0.last?.hasSuffix("->8080/tcp") == true }
                && rows.contains { $0.prefix(2) == ["b", "db-1"] }
        }
        let list = try Self.clusterCtl(["list", "--json"], environment: ["GATEWAYD_CLUSTER": url])
        #expect(list.status == 0, "\(list.stderr)")
        let records = try JSONDecoder().decode([ClusterSandboxRecord].self, from: Data(list.stdout.utf8))
        #expect(records.map { "\($0.node)/\($0.id)" } == ["a/web-1", "b/db-1"])
        #expect(records.allSatisfy { $0.addresses?.guestIPv4.isEmpty == false && !$0.mac.isEmpty })
        let routes = Self.rows(try Self.clusterCtl(["--cluster", url, "routes"]).stdout)
        #expect(routes.first?.first == "NODE")
        #expect(routes.contains { $0.first == "a" && $0.contains("web-1") && $0.last == "8080" }, "\(routes)")
        let nodes = Self.rows(try Self.clusterCtl(["--cluster", url, "nodes"]).stdout)
        #expect(nodes.dropFirst().map { $0[0] } == ["a", "b"], "\(nodes)")
        // etcd and the prefix from a daemon's config file.
        let viaConfig = try Self.clusterCtl(["--config", b.configPath, "nodes", "--json"])
        #expect(viaConfig.status == 0, "\(viaConfig.stderr)")
        let nodeRecords = try JSONDecoder().decode([ClusterNodeRecord].self, from: Data(viaConfig.stdout.utf8))
        #expect(nodeRecords.map(\.name) == ["a", "b"])
        #expect(nodeRecords.allSatisfy { $0.shards == 2 && $0.capacity > 0 && $0.version == GatewayDaemon.version })

        // kill -9 of host a (its worker and its supervisor): its entries go within the TTL (3 s),
        // b's stay, and the ID is free for b.
        let killed = Date()
        kill(a.workerPID, SIGKILL)
        kill(a.pid, SIGKILL)
        try waitFor(seconds: 8, every: 0.1) {
            try etcd.keys().keys.allSatisfy { !$0.hasPrefix("/gatewayd/nodes/a") && !$0.contains("web-1") && !$0.contains("/tcp/a/") }
        }
        #expect(Date().timeIntervalSince(killed) < 3 + 2)
        let left = try etcd.keys()
        #expect(left["/gatewayd/nodes/b"] != nil && left["/gatewayd/sandboxes/db-1"] != nil, "\(left.keys.sorted())")
        let moved = try b.ctl("attach", "web-1", "--netns", b.scratch.namespace().name!)
        #expect(moved.status == 0, "\(moved.stderr)")

        // A graceful stop revokes the lease: b's entries go at once.
        b.stop()
        #expect(try etcd.keys().isEmpty)
    }

    @Test(.timeLimit(.minutes(2)))
    func attachGoesOnLocallyWhileEtcdIsDownAndTheEntriesReturnWithIt() throws {
        let etcd = try EtcdHarness(members: 3)
        defer { etcd.tearDown() }
        try etcd.start()
        let a = try Self.daemon(etcd, node: "a")
        defer { a.tearDown() }
        #expect(try a.ctl("attach", "before", "--netns", a.scratch.namespace().name!).status == 0)
        try waitFor(seconds: 5) { try etcd.keys()["/gatewayd/sandboxes/before"]?.contains("guestIPv4") == true }

        // Frozen, not gone: connections are accepted and never answered, so only deadlines tell.
        etcd.freeze()
        try waitFor(seconds: 5) { Self.health(a)?.etcd == "unreachable" }
        #expect(try a.ctl("stats", "before").status == 0)
        let nsDuring = try a.scratch.namespace().name!
        let started = Date()
        let during = try a.ctl("attach", "during", "--netns", nsDuring)
        #expect(during.status == 0, "\(during.stderr)")
        // No claim is tried while etcd is believed down: one would wait its whole timeout (2 s here).
        #expect(Date().timeIntervalSince(started) < 1)
        let (_, body) = try ControlClient(socketPath: a.socketPath).send("GET", "/metrics")
        #expect(String(decoding: body, as: UTF8.self).contains("gatewayd_cluster_etcd_up 0"))

        etcd.stop()
        try etcd.start()
        try waitFor(seconds: 15, every: 0.1) {
            let keys = try etcd.keys()
            return keys["/gatewayd/nodes/a"] != nil && keys["/gatewayd/sandboxes/before"] != nil
                && keys["/gatewayd/sandboxes/during"]?.contains("guestIPv4") == true
        }
        let status = try #require(Self.health(a))
        #expect(status.etcd == "connected")
        #expect((status.reconciles ?? 0) >= 2)
        #expect(status.lastSync != nil)

        // kill -9 and a restart: the restored sandboxes are registered again under the new run's
        // lease, so they outlive the old one (TTL 3 s).
        let before = try etcd.keys()
        kill(a.workerPID, SIGKILL)
        a.stop(SIGKILL)
        try a.start()
        try waitFor(seconds: 10) { Self.health(a)?.keys == 3 }
        usleep(4_000_000)
        let after = try etcd.keys()
        for key in ["/gatewayd/nodes/a", "/gatewayd/sandboxes/before", "/gatewayd/sandboxes/during"] {
            #expect(after[key] != nil, "\(key) is gone after the restart: \(after.keys.sorted())")
        }
        #expect(after["/gatewayd/sandboxes/before"] == before["/gatewayd/sandboxes/before"])
    }

    @Test(.timeLimit(.minutes(2)))
    func anIDBothNodesTookWhileEtcdWasDownStaysLocalAndCountsAConflict() throws {
        let etcd = try EtcdHarness(members: 1)
        defer { etcd.tearDown() }
        try etcd.start()
        let a = try Self.daemon(etcd, node: "a")
        defer { a.tearDown() }
        let b = try Self.daemon(etcd, node: "b")
        defer { b.tearDown() }

        etcd.stop()
        try waitFor(seconds: 5) { Self.health(a)?.etcd == "unreachable" && Self.health(b)?.etcd == "unreachable" }
        #expect(try a.ctl("attach", "twin", "--netns", a.scratch.namespace().name!).status == 0)
        #expect(try b.ctl("attach", "twin", "--netns", b.scratch.namespace().name!).status == 0)

        try etcd.start()
        // One node's reconciliation claims the ID first; the other keeps its sandbox, leaves the
        // key alone and counts the conflict.
        try waitFor(seconds: 15, every: 0.1) {
            (Self.health(a)?.heldElsewhere ?? []) + (Self.health(b)?.heldElsewhere ?? []) == ["twin"]
        }
        let (winner, loser) = Self.health(a)?.heldElsewhere == ["twin"] ? ("b", a) : ("a", b)
        let record = try #require(try etcd.keys()["/gatewayd/sandboxes/twin"])
        #expect(record.contains("\"node\":\"\(winner)\""), "\(record)")
        #expect(Self.health(loser)?.conflicts == 1)
        let (_, body) = try ControlClient(socketPath: loser.socketPath).send("GET", "/metrics")
        #expect(String(decoding: body, as: UTF8.self).contains("gatewayd_cluster_conflicts_total 1"))
        #expect(try loser.ctl("stats", "twin").status == 0)
        #expect(loser.log().contains("held by node \(winner)"))
    }
}
