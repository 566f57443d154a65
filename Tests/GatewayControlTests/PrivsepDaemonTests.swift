// gatewayd as two processes: the worker that handles every frame and request is confined (no
// capabilities, not root, no_new_privs, seccomp), and a worker killed for a forbidden system call
// is logged with that call and replaced by one that has every sandbox back.
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct PrivsepDaemonTests {
    /// The `Name:\tvalue` lines of /proc/PID/status.
    static func status(_ pid: Int32) throws -> [String: String] {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    @Test func theWorkerHasNoPrivilegeAndAFilter() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        // A raised shard priority, which the confined worker cannot set itself.
        let config = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "pin-shards = false\n", with: "pin-shards = false\nshard-nice = -10\n")
            .write(toFile: h.configPath, atomically: true, encoding: .utf8)
        try h.start()
        let worker = h.workerPID
        #expect(worker != h.pid, "no worker process under the supervisor")
        let s = try Self.status(worker)
        #expect(s["CapEff"] == "0000000000000000")
        #expect(s["CapPrm"] == "0000000000000000")
        #expect(s["CapBnd"] == "0000000000000000")
        #expect(s["CapAmb"] == "0000000000000000")
        #expect(s["NoNewPrivs"] == "1")
        #expect(s["Seccomp"] == "2")
        let uids = (s["Uid"] ?? "0").split(whereSeparator: \.isWhitespace)
        #expect(uids.count == 4 && !uids.contains("0"), "worker UIDs: \(uids)")
        // The shards run at shard-nice (-10), which the supervisor set for them.
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(worker)/task")
        let niceValues = tasks.compactMap { task in
            (try? String(contentsOfFile: "/proc/\(worker)/task/\(task)/stat", encoding: .utf8)).flatMap { stat in
                // Field 19, counted after the parenthesised name (which may hold spaces).
                stat.split(separator: ")").last.map { $0.split(separator: " ")[16] }.flatMap { Int($0) }
            }
        }
        #expect(niceValues.filter { $0 == -10 }.count == 2, "thread nice values: \(niceValues)")
        // The supervisor keeps what it needs to make devices.
        #expect(try Self.status(h.pid)["CapEff"] != "0000000000000000")
    }

    @Test func aForbiddenSystemCallKillsTheWorkerAndItsSuccessorHasTheSandboxes() throws {
        let h = try DaemonHarness()
        let background = GatewayTestSupport.BackgroundProcesses()
        defer {
            background.killAll()
            h.tearDown()
        }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let id = "ps-\(h.scratch.tag)"
        let guestPort = Int.random(in: 8000...8999)
        let attach = try h.ctl("attach", id, "--netns", ns, "--publish", String(guestPort), "--json")
        try #require(attach.status == 0, "\(attach.stderr)")
        let view = try JSONDecoder().decode(SandboxView.self, from: Data(attach.stdout.utf8))
        let hostPort = try #require(view.ports.first?.hostPort)
        _ = try background.start(["ip", "netns", "exec", ns, "python3", "-c", RestartTests.greeter(port: guestPort)])
        try TestHost.waitForListener(port: UInt16(guestPort), in: ns)
        let reach = { try TestHost.run(["curl", "-sS", "--max-time", "5", "telnet://127.0.0.1:\(hostPort)"]) }
        #expect(try reach() == "from the guest")

        let first = h.workerPID
        // The hook never answers: the worker dies inside the request.
        _ = try? ControlClient(socketPath: h.socketPath).send("POST", "/v1/test-hooks/forbidden-syscall")
        #expect(eventually(seconds: 20) { h.workerPID != first && h.workerPID != h.pid && ControlClient(socketPath: h.socketPath).isReachable() })
        let log = h.log()
        #expect(log.contains("killed by signal 31"), "no seccomp kill in the log: \(log.suffix(2000))")
        #expect(log.contains("acct"), "the log does not name the system call: \(log.suffix(2000))")
        // The supervisor was never the one killed, and the new worker is confined again.
        #expect(kill(h.pid, 0) == 0)
        #expect(try Self.status(h.workerPID)["Seccomp"] == "2")

        let listed = try h.ctl("list", "--json")
        #expect(listed.stdout.contains(id), "\(listed.stdout) \(listed.stderr)")
        #expect(eventually(seconds: 10) { (try? reach()) == "from the guest" })
        // The guest reaches the host through the gateway address again.
        let server = Int(TestHost.freePort())
        _ = try background.start(["python3", "-m", "http.server", String(server), "--bind", "127.0.0.1"])
        try TestHost.waitForListener(port: UInt16(server))
        let fetched = try TestHost.run([
            "ip", "netns", "exec", ns, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
            "http://\(view.gatewayIPv4):\(server)/",
        ])
        #expect(fetched == "200")
    }
}
