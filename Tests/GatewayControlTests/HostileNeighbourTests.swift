// A hostile sandbox beside an ordinary one on the same shard: while the attacker writes a
// barrage of malformed, spoofed and costly frames raw onto its link (Tools/hostile-flood.py),
// its neighbour moves 256 MiB each way through the gateway address intact, gatewayd lives and
// stays within the attacker's memory budget, and the attacker's drops are counted.
import Foundation
import Gateway
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct HostileNeighbourTests {
    static let flood = BuiltProducts.root + "/Tools/hostile-flood.py"

    /// One shard, so both sandboxes share it; DNS upstream the discard port on loopback, so not
    /// even a well-formed query could leave the machine.
    func oneShard(_ h: DaemonHarness) throws {
        var config = try String(contentsOfFile: h.configPath, encoding: .utf8)
        config = config.replacingOccurrences(of: "shards = 2", with: "shards = 1")
        config = "egress-policy = \"host-only\"\n" + config + "\n[dns]\nupstreams = [\"127.0.0.1:9\"]\n"
        try config.write(toFile: h.configPath, atomically: true, encoding: .utf8)
    }

    /// A loopback sink that hashes one upload and writes the digest to `path`.
    func startSink(_ processes: GatewayTestSupport.BackgroundProcesses, port: UInt16, path: String) throws {
        _ = try processes.start([
            "python3", "-c",
            """
            import hashlib, socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port))); s.listen(1)
            c, _ = s.accept(); h = hashlib.sha256()
            while True:
                b = c.recv(1 << 20)
                if not b: break
                h.update(b)
            open("\(path)", "w").write(h.hexdigest())
            """,
        ])
        try TestHost.waitForListener(port: port)
    }

    /// Downloads `name` into NS and uploads it back to a fresh sink; returns both digests.
    func transfer(_ g: SandboxView, ns: String, server: MemoryLoadTests.FileServer, name: String) throws -> (down: String, up: String) {
        let down = try TestHost.run([
            "sh", "-c", "ip netns exec \(ns) sh -c 'curl -sf --max-time 300 http://\(g.gatewayIPv4):\(server.port)/\(name) | sha256sum'",
        ]).split(separator: " ").first.map(String.init) ?? ""
        let sinkPort = UInt16.random(in: 30_000...32_000)
        let digestPath = server.directory + "/\(name).up"
        let sink = GatewayTestSupport.BackgroundProcesses()
        defer { sink.killAll() }
        try startSink(sink, port: sinkPort, path: digestPath)
        try TestHost.run([
            "ip", "netns", "exec", ns, "sh", "-c", "nc -N \(g.gatewayIPv4) \(sinkPort) < \(server.directory)/\(name)",
        ])
        var up = ""
        _ = eventually(seconds: 30, every: 0.05) {
            up = (try? String(contentsOfFile: digestPath, encoding: .utf8)) ?? ""
            return !up.isEmpty
        }
        return (down, up)
    }

    @Test func aFloodingSandboxLeavesItsSameShardNeighbourWhole() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try oneShard(h)
        try h.start()
        let size = 256 << 20
        let server = try MemoryLoadTests.FileServer(tag: h.scratch.tag, files: ["big": size, "small": 1 << 20])
        defer { server.stop() }
        let client = ControlClient(socketPath: h.socketPath)
        let budgetMiB = 16
        let attackerNS = try h.scratch.namespace().name!
        var request = AttachRequest(id: "attacker-\(h.scratch.tag)", netns: attackerNS)
        request.memoryBudgetMiB = budgetMiB
        let attacker = try client.call("POST", "/v1/sandboxes", body: request, as: SandboxView.self)
        let neighbourNS = try h.scratch.namespace().name!
        let neighbour = try client.call(
            "POST", "/v1/sandboxes", body: AttachRequest(id: "neighbour-\(h.scratch.tag)", netns: neighbourNS), as: SandboxView.self)
        #expect(attacker.shard == neighbour.shard)

        // RSS is sampled from here on; the baseline is its peak while the neighbour makes the
        // same transfers with no flood (its own buffers, up to its budget).
        let rss = ResidentPeak()
        let sampler = Thread {
            while rss.running {
                if let kb = try? h.residentKilobytes() { rss.note(kb) }
                usleep(100_000)
            }
        }
        sampler.start()
        defer { rss.running = false }
        let expected = try server.sha256("big")
        let calm = try transfer(neighbour, ns: neighbourNS, server: server, name: "big")
        #expect(calm.down == expected && calm.up == expected, "the same transfer without a flood")
        let baseline = rss.peak

        // The process holding the sandboxes; a supervisor would restart it if it died.
        let worker = h.workerPID
        let floodOut = server.directory + "/flood.json"
        let floods = GatewayTestSupport.BackgroundProcesses()
        defer { floods.killAll() }
        let floodCommand = [
            "python3", Self.flood, "--iface", attacker.tap, "--gateway-mac", attacker.gatewayMAC, "--guest-mac", attacker.mac,
            "--gateway-ip", attacker.gatewayIPv4, "--guest-ip", attacker.guestIPv4, "--gateway-ip6", attacker.gatewayIPv6,
            "--guest-ip6", attacker.guestIPv6, "--seconds", "900",
        ].joined(separator: " ")
        let flood = try floods.start(["sh", "-c", "exec ip netns exec \(attackerNS) \(floodCommand) > \(floodOut)"])
        let statsPath = "/v1/sandboxes/\(attacker.id)/stats"
        try waitFor(seconds: 20) {
            ((try? client.call("GET", statsPath, as: SandboxStats.self))?.counters["frames_suspect_total"] ?? 0) > 1000
        }

        let moved = try transfer(neighbour, ns: neighbourNS, server: server, name: "big")
        #expect(flood.isRunning, "the flood lasted the whole transfer")
        kill(flood.processIdentifier, SIGTERM)
        let ended = eventually(seconds: 10) { !flood.isRunning }
        #expect(ended, "the flood stopped when told to")
        floods.killAll()
        rss.running = false
        #expect(moved.down == expected, "the neighbour's download arrived whole")
        #expect(moved.up == expected, "the neighbour's upload arrived whole")

        let report = (try? String(contentsOfFile: floodOut, encoding: .utf8)) ?? ""
        let sent = (try? JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any])?["sent"] as? Int ?? 0
        #expect(sent > 100_000, "the flood was a flood: \(report)")
        #expect(h.process?.isRunning == true && h.workerPID == worker, "gatewayd lived through it: \(h.log().suffix(2000))")

        let growthMiB = (rss.peak - baseline) / 1024
        print("hostile: \(report.trimmingCharacters(in: .whitespacesAndNewlines)); RSS baseline \(baseline / 1024) MiB, peak +\(growthMiB) MiB")
        #expect(growthMiB <= budgetMiB, "RSS grew \(growthMiB) MiB over the baseline (the attacker's budget: \(budgetMiB))")

        let stats = try client.call("GET", statsPath, as: SandboxStats.self)
        let c = stats.counters
        print("hostile: attacker drops \(stats.drops), counters \(c.filter { $0.key.hasPrefix("frames_") || $0.key.hasPrefix("device_") })")
        #expect((c["frames_policed_total"] ?? 0) > 0, "frames over the rate were dropped and counted: \(c)")
        #expect(stats.drops["overFrameRate"] == c["frames_policed_total"])
        for reason in ["malformed", "spoofed", "badChecksum", "notForUs"] {
            #expect((stats.drops[reason] ?? 0) > 0, "the stack counted \(reason): \(stats.drops)")
        }
        let text = try h.ctl("stats", attacker.id).stdout
        #expect(text.contains("dropped over the rate") && text.contains("overFrameRate"), "\(text)")
        let metrics = try TestHost.run(["curl", "-sS", "--unix-socket", h.socketPath, "http://gatewayd/metrics"])
        #expect(metrics.contains("gatewayd_sandbox_frames_policed_total{sandbox=\"\(attacker.id)\"}"))

        // Once the flood stops the attacker's own link works again: its pause is bounded.
        let after = try TestHost.run([
            "sh", "-c",
            "ip netns exec \(attackerNS) sh -c 'curl -sf --retry 5 --retry-all-errors --max-time 30 http://\(attacker.gatewayIPv4):\(server.port)/small | sha256sum'",
        ])
        #expect(after.hasPrefix(try server.sha256("small")), "the attacker is served again once it stops: \(after)")
        let neighbourStats = try client.call("GET", "/v1/sandboxes/\(neighbour.id)/stats", as: SandboxStats.self)
        #expect(neighbourStats.counters["frames_policed_total"] == 0, "the neighbour lost nothing to policing")
        #expect(neighbourStats.counters["device_pauses_total"] == 0)
    }
}

/// The highest resident set seen by a sampling thread, and whether it is to go on.
final class ResidentPeak: @unchecked Sendable {
    private let lock = NSLock()
    private var highest = 0
    private var going = true

    var peak: Int { lock.withLock { highest } }
    var running: Bool {
        get { lock.withLock { going } }
        set { lock.withLock { going = newValue } }
    }

    func note(_ kilobytes: Int) { lock.withLock { highest = max(highest, kilobytes) } }
}
