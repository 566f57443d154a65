// The built gatewayd-cni against a real gatewayd, called as a runtime calls it: the interface
// appears in the namespace with the result's address, CHECK and GC see the sandbox, and DEL
// succeeds however much is already gone (the sandbox, the namespace, gatewayd itself).
import CNI
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct CNIDaemonTests {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String

        /// The error result's code, when the run failed.
        var code: Int? {
            (try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])?["code"] as? Int
        }
    }

    /// One plugin run: `config` on standard input, the CNI_* variables in the environment.
    func plugin(_ command: String, _ config: String, container: String = "ctr-1", netns: String?) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BuiltProducts.gatewaydCNI)
        var env = ["CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"]
        env["CNI_NETNS"] = netns
        p.environment = env
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = errors
        try p.run()
        input.fileHandleForWriting.write(Data(config.utf8))
        try input.fileHandleForWriting.close()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(
            status: p.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test func addCheckGCAndDelAgainstGatewayd() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let netns = "/run/netns/\(ns)"
        let network = "gwtest-\(h.scratch.tag)"
        let hostPort = Int(TestHost.freePort())
        let config = """
            {"cniVersion": "1.1.0", "name": "\(network)", "type": "gatewayd-cni", "control": "\(h.socketPath)",
             "runtimeConfig": {"portMappings": [{"hostPort": \(hostPort), "containerPort": 80, "protocol": "tcp"}]}}
            """
        let client = ControlClient(socketPath: h.socketPath)
        let id = SandboxIdentity.sandboxID(network: network, attachment: Attachment(containerID: "ctr-1", ifname: "eth0"))

        let add = try plugin("ADD", config, netns: netns)
        #expect(add.status == 0, "\(add.stdout) \(add.stderr)")
        let result = try JSONDecoder().decode(CNIResult.self, from: Data(add.stdout.utf8))
        let address = try #require(result.ips?.first?.address)
        #expect(result.interfaces?.first?.name == "eth0" && result.interfaces?.first?.sandbox == netns)
        // gatewayd made eth0 in the namespace with the address the runtime is told.
        let shown = try TestHost.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"])
        #expect(shown.contains(address), "\(shown)")
        #expect(try client.sandbox(id).ports.map(\.hostPort) == [hostPort])

        let withPrev = String(config.dropLast()) + #", "prevResult": \#(add.stdout.trimmingCharacters(in: .whitespacesAndNewlines))}"#
        #expect(try plugin("CHECK", withPrev, netns: netns).status == 0)
        // A second ADD of the same attachment is an error, and leaves the first alone.
        let again = try plugin("ADD", config, netns: netns)
        #expect(again.status != 0 && again.code == 100)
        #expect(try client.sandbox(id).id == id)

        // GC with no valid attachment detaches it; CHECK then fails.
        let gc = try plugin("GC", String(config.dropLast()) + #", "cni.dev/valid-attachments": []}"#, netns: nil)
        #expect(gc.status == 0, "\(gc.stdout)")
        #expect(try client.sandboxes().isEmpty)
        #expect(try plugin("CHECK", withPrev, netns: netns).code == 101)

        // DEL after the namespace is gone, and DEL again.
        _ = eventually(seconds: 10) { (try? plugin("ADD", config, netns: netns))?.status == 0 }
        #expect(try client.sandboxes().map(\.id) == [id])
        try TestHost.run(["ip", "netns", "del", ns])
        let del = try plugin("DEL", withPrev, netns: netns)
        #expect(del.status == 0, "\(del.stdout)")
        #expect(try client.sandboxes().isEmpty)
        #expect(try plugin("DEL", withPrev, netns: netns).status == 0)

        // With gatewayd stopped, DEL has nothing to undo; ADD is worth a retry later.
        h.stop()
        #expect(try plugin("DEL", withPrev, netns: netns).status == 0)
        #expect(try plugin("ADD", config, netns: netns).code == 11)
    }
}
