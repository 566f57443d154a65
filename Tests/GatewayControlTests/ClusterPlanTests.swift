// The cluster view's pure parts, without etcd: the gateway's JSON (answers as etcd 3.4 sends
// them), endpoint URLs, the key layout, the plans between desired and stored state, [cluster].
import Foundation
import Testing

@testable import GatewayControl

struct ClusterPlanTests {
    let layout = ClusterLayout(prefix: "/gatewayd/")

    func value(_ record: some Encodable) -> [UInt8] { ClusterJSON.encode(record) }

    func sandbox(_ id: String, node: String, policy: String = "host-only") -> ClusterSandboxRecord {
        ClusterSandboxRecord(id: id, node: node, mode: "netns", addresses: nil, policy: policy, mac: "")
    }

    func kv(_ key: String, _ value: [UInt8], createRevision: Int64, lease: Int64) -> Etcd.KeyValue {
        Etcd.KeyValue(
            key: Etcd.Bytes(key), value: Etcd.Bytes(value), createRevision: createRevision, modRevision: createRevision,
            lease: lease)
    }

    // MARK: - JSON

    @Test func decodesARangeAnswerAsEtcdSendsIt() throws {
        let body = """
            {"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},\
            "kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy","lease":"2324035883301902599"}],"count":"1"}
            """
        let r = try JSONDecoder().decode(Etcd.RangeResponse.self, from: Data(body.utf8))
        #expect(r.kvs.count == 1)
        #expect(r.kvs[0].key.text == "foo")
        #expect(r.kvs[0].value.text == "bar")
        #expect(r.kvs[0].createRevision == 2)
        #expect(r.kvs[0].lease == 2_324_035_883_301_902_599)
        // No keys: etcd leaves "kvs" out.
        let empty = try JSONDecoder().decode(Etcd.RangeResponse.self, from: Data(#"{"header":{"revision":"7"}}"#.utf8))
        #expect(empty.kvs.isEmpty)
    }

    @Test func decodesBothOutcomesOfAGuardedTransaction() throws {
        let won = """
            {"header":{"revision":"3","raft_term":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}}]}
            """
        let w = try JSONDecoder().decode(Etcd.TxnResponse.self, from: Data(won.utf8))
        #expect(w.succeeded)
        #expect(w.revision == 3)
        #expect(w.ranged.isEmpty)
        // A failed compare: "succeeded" is left out, and the failure branch's read comes back.
        let lost = """
            {"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},\
            "kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"eyJub2RlIjoiYiJ9"}],"count":"1"}}]}
            """
        let l = try JSONDecoder().decode(Etcd.TxnResponse.self, from: Data(lost.utf8))
        #expect(!l.succeeded)
        #expect(l.ranged.map(\.value.text) == [#"{"node":"b"}"#])
        #expect(ClusterJSON.holder(of: l.ranged[0].value.bytes) == "b")
    }

    @Test func encodesAGuardedPutAsTheGatewayReadsIt() throws {
        let txn = Etcd.TxnRequest.guarded(
            "/k", createRevision: 0, then: .put(Etcd.PutRequest(key: "/k", value: Array("v".utf8), lease: 42)))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(txn), as: UTF8.self)
        #expect(
            json == #"{"compare":[{"create_revision":"0","key":"L2s=","result":"EQUAL","target":"CREATE"}],"#
                + #""failure":[{"request_range":{"key":"L2s="}}],"#
                + #""success":[{"request_put":{"key":"L2s=","lease":"42","value":"dg=="}}]}"#)
    }

    @Test func aLeaseEtcdNoLongerHasRenewsToNothing() throws {
        let alive = #"{"result":{"header":{"revision":"2"},"ID":"2324035883301902599","TTL":"5"}}"#
        #expect(try JSONDecoder().decode(Etcd.KeepAliveResponse.self, from: Data(alive.utf8)).ttl == 5)
        let gone = #"{"result":{"header":{"revision":"2"},"ID":"123"}}"#
        #expect(try JSONDecoder().decode(Etcd.KeepAliveResponse.self, from: Data(gone.utf8)).ttl == 0)
    }

    @Test func aPrefixRangeEndsJustPastThePrefix() {
        #expect(Etcd.rangeEnd(ofPrefix: Array("/gatewayd/".utf8)) == Array("/gatewayd0".utf8))
        #expect(Etcd.rangeEnd(ofPrefix: [0x61, 0xFF]) == [0x62])
        #expect(Etcd.rangeEnd(ofPrefix: [0xFF]) == [0])
    }

    @Test(arguments: [
        ("http://127.0.0.1:2379", "127.0.0.1", 2379),
        ("http://etcd-1.farm:12379/", "etcd-1.farm", 12379),
        ("http://[::1]:2379", "::1", 2379),
        ("http://10.0.0.5", "10.0.0.5", 2379),
    ])
    func parsesEtcdClientURLs(url: String, host: String, port: Int) throws {
        let e = try #require(EtcdEndpoint(url: url))
        #expect(e.host == host && e.port == port)
    }

    @Test(arguments: ["https://127.0.0.1:2379", "127.0.0.1:2379", "http://", "http://h:0", "http://h:2379/v3", "http://[::1"])
    func refusesWhatIsNotAnEtcdClientURL(url: String) {
        #expect(EtcdEndpoint(url: url) == nil)
    }

    // MARK: - Layout

    @Test func routeKeysNameWhereOtherHostsReachThePort() {
        func route(_ ip: String) -> ClusterRouteRecord {
            ClusterRouteRecord(node: "a", sandbox: "s", guestPort: 80, hostIP: ip, hostPort: 30000, protocol: "tcp")
        }
        #expect(layout.route(route("192.0.2.7"), advertised: []) == "/gatewayd/routes/tcp/192.0.2.7:30000")
        #expect(layout.route(route("0.0.0.0"), advertised: ["192.0.2.9"]) == "/gatewayd/routes/tcp/192.0.2.9:30000")
        #expect(layout.route(route("2001:db8::1"), advertised: []) == "/gatewayd/routes/tcp/[2001:db8::1]:30000")
        // Loopback is the same address on every node: the key names the node.
        #expect(layout.route(route("127.0.0.1"), advertised: ["192.0.2.9"]) == "/gatewayd/routes/tcp/a/127.0.0.1:30000")
        #expect(layout.route(route("::"), advertised: []) == "/gatewayd/routes/tcp/a/[::]:30000")
    }

    // MARK: - Plans

    @Test func changesPutWhatIsNewOrDifferentAndDeleteWhatWent() {
        let kept = value(sandbox("kept", node: "a"))
        let desired = [
            layout.sandbox("kept"): kept,
            layout.sandbox("new"): value(sandbox("new", node: "a")),
            layout.sandbox("changed"): value(sandbox("changed", node: "a", policy: "public")),
            layout.sandbox("taken"): value(sandbox("taken", node: "a")),
        ]
        let stored = [
            layout.sandbox("kept"): StoredKey(value: kept, createRevision: 5),
            layout.sandbox("changed"): StoredKey(value: value(sandbox("changed", node: "a")), createRevision: 6),
            layout.sandbox("gone"): StoredKey(value: value(sandbox("gone", node: "a")), createRevision: 7),
        ]
        let plan = ClusterPlan.changes(desired: desired, stored: stored, heldElsewhere: [layout.sandbox("taken")])
        #expect(
            plan.steps == [
                .put(key: layout.sandbox("changed"), value: desired[layout.sandbox("changed")]!, createRevision: 6),
                .delete(key: layout.sandbox("gone"), createRevision: 7),
                .put(key: layout.sandbox("new"), value: desired[layout.sandbox("new")]!, createRevision: 0),
            ])
        // Only the keys that changed are looked at: the others are not even compared.
        let some = ClusterPlan.changes(desired: desired, stored: stored, among: [layout.sandbox("gone"), layout.sandbox("kept")])
        #expect(some.steps == [.delete(key: layout.sandbox("gone"), createRevision: 7)])
        // Nothing changed: nothing to write.
        #expect(ClusterPlan.changes(desired: [layout.sandbox("kept"): kept], stored: [layout.sandbox("kept"): stored[layout.sandbox("kept")]!]).steps.isEmpty)
    }

    @Test func reconcileLeavesOtherNodesKeysAndTakesBackItsOwn() {
        let lease: Int64 = 100
        let same = value(sandbox("same", node: "a"))
        let desired = [
            layout.sandbox("same"): same,
            layout.sandbox("old-lease"): value(sandbox("old-lease", node: "a")),
            layout.sandbox("missing"): value(sandbox("missing", node: "a")),
            layout.sandbox("dup"): value(sandbox("dup", node: "a")),
        ]
        let observed = [
            layout.sandbox("same"): kv(layout.sandbox("same"), same, createRevision: 10, lease: lease),
            // Written by this node's previous run, on a lease that will expire.
            layout.sandbox("old-lease"): kv(layout.sandbox("old-lease"), value(sandbox("old-lease", node: "a")), createRevision: 11, lease: 99),
            layout.sandbox("dup"): kv(layout.sandbox("dup"), value(sandbox("dup", node: "b")), createRevision: 12, lease: 7),
            layout.sandbox("stale"): kv(layout.sandbox("stale"), value(sandbox("stale", node: "a")), createRevision: 13, lease: 99),
            layout.sandbox("theirs"): kv(layout.sandbox("theirs"), value(sandbox("theirs", node: "b")), createRevision: 14, lease: 7),
        ]
        let plan = ClusterPlan.reconcile(desired: desired, observed: observed, node: "a", lease: lease)
        #expect(plan.kept == [layout.sandbox("same"): StoredKey(value: same, createRevision: 10)])
        #expect(plan.conflicts == [layout.sandbox("dup"): "b"])
        #expect(
            plan.steps == [
                .put(key: layout.sandbox("missing"), value: desired[layout.sandbox("missing")]!, createRevision: 0),
                .put(key: layout.sandbox("old-lease"), value: desired[layout.sandbox("old-lease")]!, createRevision: 11),
                .delete(key: layout.sandbox("stale"), createRevision: 13),
            ])
    }

    @Test func aNodeRecordNamesItsHolderByName() {
        let node = ClusterNodeRecord(name: "a", addresses: [], shards: 2, capacity: 4096, version: "0.1.0", started: "x")
        #expect(ClusterJSON.holder(of: value(node)) == "a")
        #expect(ClusterJSON.holder(of: Array("not json".utf8)) == nil)
    }

    @Test func timestampsAreUTCInISO8601() {
        #expect(ClusterSync.timestamp(Date(timeIntervalSince1970: 1_796_688_978)) == "2026-12-08T00:16:18Z")
    }

    // MARK: - Config

    @Test func readsTheClusterTable() throws {
        var c = DaemonConfiguration()
        try c.apply(
            toml: """
                [ports]
                bind = "192.0.2.4"
                [cluster]
                etcd = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
                node = "host-7"
                prefix = "/farm/gw/"
                lease-ttl = 3
                claim-timeout-ms = 150
                """, file: "gw.toml")
        let cluster = try #require(c.cluster)
        #expect(cluster.endpoints.map(\.description) == ["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
        #expect(cluster.node == "host-7")
        #expect(cluster.prefix == "/farm/gw/")
        #expect(cluster.leaseTTL == 3)
        #expect(cluster.claimTimeout == .milliseconds(150))
        #expect(cluster.requestTimeout == .milliseconds(1000))
        // Not advertised: the publish bind address, when it is a specific one.
        #expect(cluster.advertisedAddresses(publishBindAddress: c.publishBindAddress) == ["192.0.2.4"])
        #expect(cluster.advertisedAddresses(publishBindAddress: "127.0.0.1") == [])
        #expect(cluster.advertisedAddresses(publishBindAddress: "0.0.0.0") == [])
    }

    @Test func clusterDefaults() throws {
        var c = DaemonConfiguration()
        #expect(c.cluster == nil)
        try c.apply(toml: "[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nadvertise = [\"192.0.2.1\", \"2001:db8::1\"]\n", file: "gw.toml")
        let cluster = try #require(c.cluster)
        #expect(cluster.node == ClusterConfiguration.hostName())
        #expect(cluster.prefix == "/gatewayd/")
        #expect(cluster.leaseTTL == 10)
        #expect(cluster.claimTimeout == .milliseconds(300))
        #expect(cluster.advertisedAddresses(publishBindAddress: "192.0.2.4") == ["192.0.2.1", "2001:db8::1"])
    }

    @Test(arguments: [
        ("[cluster]\nnode = \"a\"\n", "cluster.etcd", "needs etcd"),
        ("[cluster]\netcd = [\"127.0.0.1:2379\"]\n", "cluster.etcd", "http://HOST:PORT"),
        ("[cluster]\netcd = []\n", "cluster.etcd", "no endpoint"),
        ("[cluster]\netcd = [\"http://h:2379\"]\nnode = \"a/b\"\n", "cluster.node", "not a node name"),
        ("[cluster]\netcd = [\"http://h:2379\"]\nprefix = \"gatewayd\"\n", "cluster.prefix", "start and end it with '/'"),
        ("[cluster]\netcd = [\"http://h:2379\"]\nlease-ttl = 1\n", "cluster.lease-ttl", "out of range"),
        ("[cluster]\netcd = [\"http://h:2379\"]\nadvertise = [\"host-7\"]\n", "cluster.advertise", "not an IP address"),
        ("[cluster]\netcd = [\"http://h:2379\"]\nlease_ttl = 3\n", "cluster.lease_ttl", "did you mean 'lease-ttl'?"),
    ])
    func refusesABadClusterTable(toml: String, key: String, reason: String) {
        var c = DaemonConfiguration()
        let error = #expect(throws: ConfigError.self) { try c.apply(toml: toml, file: "gw.toml") }
        #expect(error?.key == key, "\(String(describing: error))")
        #expect(error?.description.contains(reason) == true, "\(String(describing: error))")
    }
}
