// gatewayctl: the operator's and CI job's handle on a running gatewayd, over its control socket.
import ArgumentParser
import GatewayControl

@main
struct Gatewayctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayctl",
        abstract: "Drive a running gatewayd: attach and detach sandboxes, publish ports, read stats, capture packets.",
        discussion: """
            Exit status: 0 success; 2 no such sandbox or namespace; 3 ID or port already taken; \
            4 request rejected (bad value or SPEC); 5 not available in this gatewayd; 6 gatewayd busy \
            or out of resources; 64 bad command line; 69 gatewayd not reachable; 1 anything else.
            """,
        subcommands: [
            Attach.self, Detach.self, List.self, Stats.self, Routes.self, Publish.self, Unpublish.self, Capture.self,
            Flows.self, SetPolicy.self, Top.self, Nodes.self,
        ]
    )

    /// `gatewayctl [--control PATH | --cluster URL | --config FILE] COMMAND …`: these may be named
    /// before the command, as documented; the options themselves belong to the subcommands, so
    /// they are moved behind the name.
    static func main() {
        Self.main(movingLeadingControl(Array(CommandLine.arguments.dropFirst())))
    }

    static let leadingOptions = ["--control", "--cluster", "--config"]

    static func movingLeadingControl(_ args: [String]) -> [String] {
        var leading: [String] = []
        var rest = args[...]
        while let first = rest.first {
            if leadingOptions.contains(first), rest.count >= 2 {
                leading += rest.prefix(2)
                rest = rest.dropFirst(2)
            } else if leadingOptions.contains(where: { first.hasPrefix($0 + "=") }) {
                leading.append(first)
                rest = rest.dropFirst()
            } else {
                break
            }
        }
        guard !leading.isEmpty, let command = rest.first else { return args }
        return [command] + leading + rest.dropFirst()
    }
}

/// Options every subcommand shares.
struct ControlOptions: ParsableArguments {
    @Option(help: "Path of gatewayd's control socket (default: $GATEWAYD_CONTROL, else /run/gatewayd/control.sock).")
    var control: String?

    var socketPath: String {
        control ?? Environment.value("GATEWAYD_CONTROL") ?? ControlClient.defaultSocketPath
    }

    var client: ControlClient { ControlClient(socketPath: socketPath) }
}

/// The exit status for each kind of failure (listed in the command's help).
extension ControlError {
    var exitCode: Int32 {
        switch code {
        case .unknownSandbox, .namespaceNotFound, .unknownRoute, .notFound: 2
        case .sandboxExists, .deviceExists, .portInUse, .daemonRunning: 3
        case .invalidArgument, .badSpec, .policyDenied, .methodNotAllowed: 4
        case .notImplemented: 5
        case .busy, .exhausted: 6
        case .unreachable: 69
        default: 1
        }
    }
}

/// Runs `body`; a ControlError is printed as "gatewayctl: MESSAGE" and becomes its exit status.
@discardableResult
func perform<T>(_ body: () throws(ControlError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        printError("gatewayctl: \(error.message)")
        throw ExitCode(error.exitCode)
    }
}
