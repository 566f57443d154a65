// The control socket itself: the NIO server and the blocking client (and curl) talking HTTP/1.1
// over a Unix socket, the socket's mode, a second server refused, metrics over TCP.
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

@Suite struct ControlServerTests {
    @Test func clientAndCurlTalkToTheServer() throws {
        let f = try ServiceFixture(publishing: FakePublishing())
        let server = ControlServer(service: f.service)
        defer {
            server.close()
            f.close()
        }
        let path = f.directory + "/control.sock"
        try server.bind(unixSocket: path, mode: 0o660)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o660)

        let client = ControlClient(socketPath: path)
        #expect(client.isReachable())
        #expect(try client.call("GET", "/v1/sandboxes", as: [SandboxView].self).isEmpty)
        #expect {
            _ = try client.call("DELETE", "/v1/sandboxes/nope", as: [String: String].self)
        } throws: { error in
            (error as? ControlError)?.code == .unknownSandbox
        }
        // A JSON body travels too; the service answers that sandbox "x" does not exist.
        #expect {
            _ = try client.call(
                "POST", "/v1/sandboxes/x/ports", body: PublishRequest(hostPort: 1, guestPort: 2), as: RouteView.self)
        } throws: { error in
            (error as? ControlError)?.message == "no sandbox 'x' is attached (gatewayctl list shows those that are)"
        }
    }

    @Test func curlSeesJSONAndMetrics() throws {
        let f = try ServiceFixture()
        let server = ControlServer(service: f.service)
        defer {
            server.close()
            f.close()
        }
        let path = f.directory + "/c.sock"
        try server.bind(unixSocket: path)
        let list = try TestHost.run(["curl", "-sS", "--unix-socket", path, "http://gatewayd/v1/sandboxes"])
        let parsed = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [Any]
        #expect(parsed?.isEmpty == true)
        let error = try TestHost.run([
            "curl", "-sS", "-w", "%{http_code}", "--unix-socket", path, "http://gatewayd/v1/sandboxes/zz",
        ])
        #expect(error.contains("\"code\" : \"unknownSandbox\""))
        #expect(error.hasSuffix("404"))
        let metrics = try TestHost.run(["curl", "-sS", "--unix-socket", path, "http://gatewayd/metrics"])
        #expect(metrics.contains("gatewayd_sandboxes 0"))
    }

    @Test func secondServerOnTheSameSocketIsRefused() throws {
        let f = try ServiceFixture()
        let first = ControlServer(service: f.service)
        let second = ControlServer(service: f.service)
        defer {
            second.close()
            first.close()
            f.close()
        }
        let path = f.directory + "/c.sock"
        try first.bind(unixSocket: path)
        #expect {
            try second.bind(unixSocket: path)
        } throws: { error in
            (error as? ControlError)?.code == .daemonRunning
                && (error as? ControlError)?.message.contains("another gatewayd already answers on \(path)") == true
        }
        // The first still answers.
        #expect(ControlClient(socketPath: path).isReachable())
    }

    @Test func staleSocketFileIsReplaced() throws {
        let f = try ServiceFixture()
        let server = ControlServer(service: f.service)
        defer {
            server.close()
            f.close()
        }
        let path = f.directory + "/stale.sock"
        // A socket file nobody listens on, as a killed daemon leaves it.
        _ = try TestHost.run(["python3", "-c", "import socket; s = socket.socket(socket.AF_UNIX); s.bind('\(path)')"])
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(!ControlClient(socketPath: path).isReachable())
        try server.bind(unixSocket: path)
        #expect(ControlClient(socketPath: path).isReachable())
    }

    @Test func unreachableDaemonSaysWhatToDo() {
        let path = NSTemporaryDirectory() + "gw-nothing-\(UUID().uuidString.prefix(6)).sock"
        #expect {
            _ = try ControlClient(socketPath: path).call("GET", "/v1/sandboxes", as: [SandboxView].self)
        } throws: { error in
            guard let e = error as? ControlError else { return false }
            return e.code == .unreachable
                && e.message.hasPrefix(
                    "cannot reach gatewayd at \(path): is it running? start it with `gatewayd` or set --control")
        }
    }

    @Test func metricsOverTCPServeOnlyMetrics() throws {
        let f = try ServiceFixture()
        let server = ControlServer(service: f.service)
        defer {
            server.close()
            f.close()
        }
        try server.bind(metricsHost: "127.0.0.1", port: 0)
        let port = try #require(server.metricsPort)
        let metrics = try TestHost.run(["curl", "-sS", "http://127.0.0.1:\(port)/metrics"])
        #expect(metrics.contains("# TYPE gatewayd_sandboxes gauge"))
        let other = try TestHost.run([
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/v1/sandboxes",
        ])
        #expect(other == "404")
    }
}
