// gatewayctl: the operator's and CI job's handle on a running gatewayd.
import ArgumentParser

@main
struct Gatewayctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayctl",
        abstract: "Drive a running gatewayd: attach and detach sandboxes, publish ports, read stats."
    )

    @Option(help: "Path of gatewayd's control socket (also GATEWAYD_CONTROL).")
    var control: String?

    mutating func run() throws {
        throw ValidationError("the control plane is not built yet; this build only answers --help")
    }
}
