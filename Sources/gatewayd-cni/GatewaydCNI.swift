// gatewayd-cni: the CNI plugin a container runtime executes to give a container's namespace a
// link through gatewayd (docs/cni.md). The work is in the CNI module; this is its I/O.
import CNI
import Foundation
import GatewayControl

@main
struct GatewaydCNI {
    static func main() {
        let input = FileHandle.standardInput.readDataToEndOfFile()
        // A runtime waits on the plugin: a gatewayd that hangs must not hang the container's start.
        let plugin = CNIPlugin { ControlClient(socketPath: $0, timeout: 60) }
        let outcome = plugin.run(environment: ProcessInfo.processInfo.environment, input: Array(input))
        if let note = outcome.note {
            FileHandle.standardError.write(Data("gatewayd-cni: \(note)\n".utf8))
        }
        FileHandle.standardOutput.write(Data(outcome.output))
        exit(outcome.exitStatus)
    }
}
