// The flow log through the daemon: verdicts with their rule or reason in the JSON-lines file and
// through `gatewayctl flows`, a live follower, and SIGHUP reopening the file after a rotation.
import Foundation
import Gateway
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct FlowLogDaemonTests {
    static func records(_ text: String) -> [FlowRecord] {
        text.split(separator: "\n").compactMap { try? JSONDecoder().decode(FlowRecord.self, from: Data($0.utf8)) }
    }

    /// A sandbox attached in a fresh namespace and an HTTP server on host loopback it may reach
    /// through its gateway address (host-only): its namespace, ID, gateway address and the port.
    static func sandboxAndServer(
        _ h: DaemonHarness, _ prefix: String, _ processes: GatewayTestSupport.BackgroundProcesses
    ) throws -> (String, String, String, UInt16) {
        let ns = try h.scratch.namespace().name!
        let id = "\(prefix)-\(h.scratch.tag)"
        #expect(try h.ctl("attach", id, "--netns", ns).status == 0)
        let gateway = try #require(
            try JSONDecoder().decode([SandboxView].self, from: Data(h.ctl("list", "--json").stdout.utf8)).first
        ).gatewayIPv4
        let port = TestHost.freePort()
        _ = try processes.start(["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", h.directory])
        try TestHost.waitForListener(port: port)
        return (ns, id, gateway, port)
    }

    @Test func verdictsReachTheFileTheCLIAndFollowers() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        let logFile = h.directory + "/flows.jsonl"
        try (String(contentsOfFile: h.configPath, encoding: .utf8).replacingOccurrences(
            of: "shards = 2", with: "flow-log = \"\(logFile)\"\nshards = 2")
        ).write(toFile: h.configPath, atomically: true, encoding: .utf8)
        try h.start()
        let processes = GatewayTestSupport.BackgroundProcesses()
        defer { processes.killAll() }
        let (ns, id, gateway, port) = try Self.sandboxAndServer(h, "flows", processes)

        // A follower from the start.
        let follower = Process()
        follower.executableURL = URL(fileURLWithPath: BuiltProducts.gatewayctl)
        follower.arguments = ["flows", "--control", h.socketPath, id, "--follow", "--json"]
        let pipe = Pipe()
        follower.standardOutput = pipe
        try follower.run()
        defer { if follower.isRunning { kill(follower.processIdentifier, SIGKILL) } }

        // Allowed: the host through the gateway address (host-only's first rule). Denied: any
        // other address, refused before anything is dialled.
        try TestHost.run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "5", "-o", "/dev/null",
                          "http://\(gateway):\(port)/"])
        let denied = try TestHost.run(["ip", "netns", "exec", ns, "sh", "-c",
                                       "curl -sS --max-time 5 http://198.18.7.7:80/ 2>&1; echo rc=$?"])
        #expect(denied.contains("rc=7"))

        func check(_ records: [FlowRecord], _ what: String) {
            let allowed = records.first { $0.event == .flow && $0.verdict == .allowed && $0.destination == "\(gateway):\(port)" }
            #expect(allowed?.rule == "allow egress tcp group:host-alias", "\(what): \(records)")
            #expect(allowed?.protocol == "tcp" && allowed?.sandbox == id)
            let refused = records.first { $0.event == .flow && $0.destination == "198.18.7.7:80" }
            #expect(refused?.verdict == .denied && refused?.reason == .policyDefault, "\(what): \(records)")
        }
        // The file (the writer drains every 50 ms).
        // Until the denied flow's record is there too (the allowed one's start and end come first).
        try waitFor(seconds: 5) {
            Self.records((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").contains {
                $0.destination == "198.18.7.7:80"
            }
        }
        check(Self.records(try String(contentsOfFile: logFile, encoding: .utf8)), "file")
        // The CLI, as JSON and as a table.
        let json = try h.ctl("flows", id, "--json")
        #expect(json.status == 0, "\(json.stderr)")
        check(try JSONDecoder().decode([FlowRecord].self, from: Data(json.stdout.utf8)), "flows --json")
        let table = try h.ctl("flows")
        #expect(table.stdout.hasPrefix("TIME") && table.stdout.contains("198.18.7.7:80") && table.stdout.contains("default"))
        // The follower.
        Thread.sleep(forTimeInterval: 0.5)
        kill(follower.processIdentifier, SIGKILL)  // the runner may leave SIGTERM blocked in children
        follower.waitUntilExit()
        check(Self.records(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)), "follow")

        // logrotate: move the file away, SIGHUP, and new records go to a new file.
        let rotated = logFile + ".1"
        try FileManager.default.moveItem(atPath: logFile, toPath: rotated)
        kill(h.pid, SIGHUP)
        try waitFor(seconds: 5) { h.log().contains("flow log reopened") }
        _ = try TestHost.run(["ip", "netns", "exec", ns, "sh", "-c", "curl -sS --max-time 5 http://198.18.7.8:80/; true"])
        try waitFor(seconds: 5) { FileManager.default.fileExists(atPath: logFile) }
        try waitFor(seconds: 5) {
            Self.records((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").contains { $0.destination == "198.18.7.8:80" }
        }
        let fresh = Self.records(try String(contentsOfFile: logFile, encoding: .utf8))
        #expect(fresh.contains { $0.destination == "198.18.7.8:80" })
        #expect(!Self.records(try String(contentsOfFile: rotated, encoding: .utf8)).contains { $0.destination == "198.18.7.8:80" })
        #expect(try h.ctl("list").status == 0, "SIGHUP must not stop the daemon")
        let metrics = try TestHost.run(["curl", "-sS", "--unix-socket", h.socketPath, "http://gatewayd/metrics"])
        #expect(metrics.contains("gatewayd_sandbox_flows_total{sandbox=\"\(id)\",verdict=\"denied\",reason=\"default\"} 2"))
        #expect(metrics.contains("gatewayd_sandbox_flows_total{sandbox=\"\(id)\",verdict=\"allowed\",reason=\"\"} 1"))
        #expect(metrics.contains("gatewayd_flow_log_events_total{state=\"dropped\"} 0"))
        // Counters described once, shown in both stats and /metrics.
        #expect(metrics.contains("gatewayd_sandbox_egress_tcp_connected_total{sandbox=\"\(id)\"} 1"))
        #expect(metrics.contains("# HELP gatewayd_dns_queries_total"))
        let statsOut = try h.ctl("stats", id, "--json")
        #expect(statsOut.status == 0, "\(statsOut.stderr)")
        let stats = try JSONDecoder().decode(SandboxStats.self, from: Data(statsOut.stdout.utf8))
        #expect(stats.counters["egress_tcp_connected_total"] == 1)
        #expect(stats.counters["egress_tcp_denied_total"] == 2)
    }

    @Test func policySwitchAndReloadThroughTheDaemon() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        let base = try String(contentsOfFile: h.configPath, encoding: .utf8)
        func writeConfig(_ closedRules: String) throws {
            try (base + "\n[policies.closed]\nrules = [\(closedRules)]\ndefault = \"deny\"\n")
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
        }
        try writeConfig("")
        try h.start()
        let processes = GatewayTestSupport.BackgroundProcesses()
        defer { processes.killAll() }
        let (ns, id, gateway, port) = try Self.sandboxAndServer(h, "pol", processes)
        func fetch() throws -> String {
            try TestHost.run(["ip", "netns", "exec", ns, "sh", "-c",
                              "curl -sS --max-time 5 -o /dev/null http://\(gateway):\(port)/ 2>&1; echo rc=$?"])
        }
        #expect(try fetch().contains("rc=0"))

        let switched = try h.ctl("policy", id, "closed")
        #expect(switched.status == 0 && switched.stdout.contains("now runs policy closed"), "\(switched.stderr)")
        #expect(try fetch().contains("rc=7"))
        let unknown = try h.ctl("policy", id, "nope")
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown policy 'nope'"))
        let state = try String(contentsOfFile: h.stateDirectory + "/sandboxes/\(id).json", encoding: .utf8)
        #expect(state.contains("\"closed\""), "a restart must keep the switched policy: \(state)")

        // SIGHUP with a bad file: refused, the daemon and the policy stay.
        try (base + "\n[policies.closed]\nrules = [\"allow egress tcp nowhere\"]\n").write(
            toFile: h.configPath, atomically: true, encoding: .utf8)
        kill(h.pid, SIGHUP)
        try waitFor(seconds: 5) { h.log().contains("config not reloaded") }
        #expect(try fetch().contains("rc=7"))
        // SIGHUP with the policy opened to the host: the running sandbox follows it.
        try writeConfig("\"allow egress tcp group:host-alias\"")
        kill(h.pid, SIGHUP)
        try waitFor(seconds: 5) { h.log().contains("policies reloaded") }
        #expect(try fetch().contains("rc=0"))
    }

    /// A follower that never reads: its lines are dropped and counted, traffic goes on, and the
    /// flow log itself drops nothing.
    @Test func aFollowerThatDoesNotReadSlowsNothing() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let processes = GatewayTestSupport.BackgroundProcesses()
        defer { processes.killAll() }
        let (ns, id, gateway, port) = try Self.sandboxAndServer(h, "stall", processes)
        // Its output goes to a pipe nobody reads: once the pipe is full, the stream stalls.
        let stalled = Process()
        stalled.executableURL = URL(fileURLWithPath: BuiltProducts.gatewayctl)
        stalled.arguments = ["flows", "--control", h.socketPath, "--follow", "--json"]
        let pipe = Pipe()
        stalled.standardOutput = pipe
        try stalled.run()
        defer { kill(stalled.processIdentifier, SIGKILL); stalled.waitUntilExit() }
        // 600 connections: 1,200 events, far more than a pipe holds.
        let start = Date()
        let out = try TestHost.run(["ip", "netns", "exec", ns, "sh", "-c",
            "ok=0; for i in $(seq 600); do curl -s -o /dev/null --max-time 5 http://\(gateway):\(port)/ && ok=$((ok+1)); done; echo $ok"])
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "600")
        #expect(Date().timeIntervalSince(start) < 120)
        let metrics = try TestHost.run(["curl", "-sS", "--unix-socket", h.socketPath, "http://gatewayd/metrics"])
        #expect(metrics.contains("gatewayd_flow_log_events_total{state=\"dropped\"} 0"))
        // The log has all of them even though the follower took none.
        let recent = try JSONDecoder().decode([FlowRecord].self, from: Data(h.ctl("flows", id, "--json", "--limit", "2000").stdout.utf8))
        #expect(recent.filter { $0.event == .flow && $0.verdict == .allowed }.count == 600)
    }
}
