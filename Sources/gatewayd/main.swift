// gatewayd: the host process that gives many sandboxes their network, one TAP and stack each.
import ArgumentParser

@main
struct Gatewayd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayd",
        abstract: "Network gateway for many sandboxes: one TAP and userspace TCP/IP stack per sandbox."
    )

    @Option(help: "Path of the TOML configuration file.")
    var config: String?

    @Option(help: "Path of the control socket.")
    var control: String = "/run/gatewayd/control.sock"

    @Option(help: "Directory for state that survives a restart.")
    var stateDir: String = "/var/lib/gatewayd"

    @Option(help: "Number of shard threads (default: one per CPU).")
    var shards: Int?

    @Option(help: "Egress policy profile: host-only, public or open.")
    var egressPolicy: String = "host-only"

    mutating func run() throws {
        throw ValidationError("the data plane is not built yet; this build only answers --help")
    }
}
