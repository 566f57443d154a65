// The farm-wide view: `--cluster URL` (or $GATEWAYD_CLUSTER, or `--config FILE`'s [cluster]) makes
// list and routes read every node's records from etcd instead of one gatewayd; `nodes` lists the
// gatewayd nodes themselves.
import ArgumentParser
import GatewayControl

/// Where the cluster view is read from, for the commands that can show it.
struct ClusterOptions: ParsableArguments {
    @Option(
        help: """
            Read the farm-wide view from etcd at this client URL instead of asking one gatewayd \
            (several: comma-separated; default: $GATEWAYD_CLUSTER).
            """)
    var cluster: String?

    @Option(help: "A gatewayd config file whose [cluster] table names etcd and the key prefix.")
    var config: String?

    /// The reader, or nil when no cluster is named (the command then asks the local gatewayd).
    func reader() throws(ControlError) -> ClusterReader? {
        if let config {
            let settings: DaemonConfiguration
            do {
                settings = try DaemonConfiguration.load(path: config)
            } catch {
                throw ControlError(.invalidArgument, "\(error)")
            }
            guard let c = settings.cluster else {
                throw ControlError(.invalidArgument, "\(config) has no [cluster] table: add one or pass --cluster URL")
            }
            return ClusterReader(endpoints: c.endpoints, prefix: c.prefix)
        }
        guard let urls = cluster ?? Environment.value("GATEWAYD_CLUSTER") else { return nil }
        var endpoints: [EtcdEndpoint] = []
        for url in urls.split(separator: ",").map(String.init) {
            guard let e = EtcdEndpoint(url: url) else {
                throw ControlError(.invalidArgument, "'\(url)' is not an etcd client URL: write http://HOST:PORT")
            }
            endpoints.append(e)
        }
        guard !endpoints.isEmpty else { throw ControlError(.invalidArgument, "--cluster names no etcd endpoint") }
        return ClusterReader(endpoints: endpoints)
    }
}

/// `list --cluster`: every node's sandboxes, with their ports.
func printClusterSandboxes(_ reader: ClusterReader, json: Bool) throws {
    let (sandboxes, routes) = try perform { () throws(ControlError) in (try reader.sandboxes(), try reader.routes()) }
    if json { return printJSON(sandboxes) }
    var t = TextTable("NODE", "ID", "MODE", "IPV4", "GATEWAY", "IPV6", "MAC", "POLICY", "PORTS")
    for s in sandboxes {
        let ports = routes.filter { $0.node == s.node && $0.sandbox == s.id }.map(clusterPortText)
        t.add(
            s.node, s.id, s.mode, s.addresses?.guestIPv4 ?? "-", s.addresses?.gatewayIPv4 ?? "-",
            s.addresses?.guestIPv6 ?? "-", s.mac.isEmpty ? "-" : s.mac, s.policy,
            ports.isEmpty ? "-" : ports.joined(separator: ","))
    }
    print(t.rendered)
}

/// `routes --cluster`: every node's published ports.
func printClusterRoutes(_ reader: ClusterReader, json: Bool) throws {
    let routes = try perform { () throws(ControlError) in try reader.routes() }
    if json { return printJSON(routes) }
    var t = TextTable("NODE", "HOST IP", "HOST PORT", "PROTO", "SANDBOX", "GUEST PORT")
    for r in routes { t.add(r.node, r.hostIP, String(r.hostPort), r.protocol, r.sandbox, String(r.guestPort)) }
    print(t.rendered)
}

func clusterPortText(_ r: ClusterRouteRecord) -> String {
    portText(hostIP: r.hostIP, hostPort: r.hostPort, guestPort: r.guestPort, protocol: r.protocol)
}

struct Nodes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the gatewayd nodes registered in etcd (needs --cluster, $GATEWAYD_CLUSTER or --config).")

    @OptionGroup var cluster: ClusterOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let reader = try perform { () throws(ControlError) in
            guard let reader = try cluster.reader() else {
                throw ControlError(.invalidArgument, "nodes reads etcd: pass --cluster URL, set GATEWAYD_CLUSTER or --config FILE")
            }
            return reader
        }
        let (nodes, sandboxes) = try perform { () throws(ControlError) in (try reader.nodes(), try reader.sandboxes()) }
        if json { return printJSON(nodes) }
        var t = TextTable("NODE", "ADDRESSES", "SHARDS", "SANDBOXES", "CAPACITY", "VERSION", "STARTED")
        for n in nodes {
            t.add(
                n.name, n.addresses.isEmpty ? "-" : n.addresses.joined(separator: ","), String(n.shards),
                String(sandboxes.count(where: { $0.node == n.name })), String(n.capacity), n.version, n.started)
        }
        print(t.rendered)
    }
}
