// publish, unpublish and routes: host ports published into sandboxes.
import ArgumentParser
import GatewayControl

struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish a host port into a sandbox.",
        discussion: "SPEC: \(PublishRequest.syntax). A bare GUEST_PORT lets gatewayd pick the host port.")

    @OptionGroup var options: ControlOptions

    @Argument(help: "The sandbox ID.")
    var id: String

    @Argument(help: "[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|udp]")
    var spec: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        _ = try perform { () throws(ControlError) in try checkID(id) }
        let parsed = try perform { () throws(ControlError) in try PublishRequest(parsing: spec) }
        let route = try perform { () throws(ControlError) in
            try options.client.call("POST", "/v1/sandboxes/\(id)/ports", body: parsed, as: RouteView.self)
        }
        if json { return printJSON(route) }
        print("published \(portText(route)) into \(route.sandbox)")
    }
}

struct Unpublish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a published port.",
        discussion: "SPEC names the port as publish did (\(PublishRequest.syntax)), or by HOST_PORT[/tcp|udp] alone.")

    @OptionGroup var options: ControlOptions

    @Argument(help: "The sandbox ID.")
    var id: String

    @Argument(help: "[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|udp], or HOST_PORT[/tcp|udp]")
    var spec: String

    func run() throws {
        _ = try perform { () throws(ControlError) in try checkID(id) }
        let parsed = try perform { () throws(ControlError) in try PublishRequest(unpublishing: spec) }
        var path = "/v1/sandboxes/\(id)/ports/\(parsed.protocol)/\(parsed.hostPort)"
        if let ip = parsed.hostIP { path += "?hostIP=\(ip)" }
        struct Unpublished: Decodable { var unpublished: Bool }
        _ = try perform { () throws(ControlError) in try options.client.call("DELETE", path, as: Unpublished.self) }
        print("unpublished \(parsed.hostPort)/\(parsed.protocol) from \(id)")
    }
}

struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every published port (with --cluster: every node's, from etcd).")

    @OptionGroup var options: ControlOptions

    @OptionGroup var cluster: ClusterOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        if let reader = try perform({ () throws(ControlError) in try cluster.reader() }) {
            return try printClusterRoutes(reader, json: json)
        }
        let routes = try perform { () throws(ControlError) in
            try options.client.call("GET", "/v1/routes", as: [RouteView].self)
        }
        if json { return printJSON(routes) }
        var t = TextTable("HOST IP", "HOST PORT", "PROTO", "SANDBOX", "GUEST PORT")
        for r in routes { t.add(r.hostIP, String(r.hostPort), r.protocol, r.sandbox, String(r.guestPort)) }
        print(t.rendered)
    }
}
