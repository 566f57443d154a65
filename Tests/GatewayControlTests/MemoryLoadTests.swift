// gatewayd's memory under real traffic: busy sandboxes fetching from a loopback server that
// closes first stay within bounds and give memory back once idle; a sandbox at its memory budget
// still moves every byte, beside a neighbour that is not held back.
import Foundation
import Gateway
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct MemoryLoadTests {
    /// A loopback HTTP/1.0 server (it closes each connection after its answer) serving `files`.
    final class FileServer {
        let directory: String
        let port: UInt16
        let background = GatewayTestSupport.BackgroundProcesses()

        init(tag: String, files: [String: Int]) throws {
            directory = "/tmp/gwmem-\(tag)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for (name, size) in files {
                try TestHost.run(["sh", "-c", "head -c \(size) /dev/urandom > \(directory)/\(name)"])
            }
            port = UInt16.random(in: 20_000...29_999)
            _ = try background.start([
                "python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory,
            ])
            try TestHost.waitForListener(port: port)
        }

        func sha256(_ name: String) throws -> String {
            try TestHost.run(["sha256sum", directory + "/" + name]).split(separator: " ")[0].description
        }

        func stop() {
            background.killAll()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// Attaches `count` namespace sandboxes; returns (namespace, gateway address) pairs.
    func attach(_ h: DaemonHarness, count: Int, prefix: String = "m", budgetMiB: Int? = nil) throws -> [(ns: String, gateway: String)] {
        let client = ControlClient(socketPath: h.socketPath)
        return try (0..<count).map { i in
            let ns = try h.scratch.namespace().name!
            var request = AttachRequest(id: "\(prefix)\(i)-\(h.scratch.tag)", netns: ns)
            request.memoryBudgetMiB = budgetMiB
            let view = try client.call("POST", "/v1/sandboxes", body: request, as: SandboxView.self)
            return (ns, view.gatewayIPv4)
        }
    }

    @Test(arguments: [(1, 64, 16), (4, 160, 16)])
    func sequentialGetsFromAServerThatClosesFirstStayBounded(sandboxes: Int, duringMiB: Int, afterMiB: Int) throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let server = try FileServer(tag: h.scratch.tag, files: ["blob": 1 << 20])
        defer { server.stop() }
        let guests = try attach(h, count: sandboxes)
        let clients = GatewayTestSupport.BackgroundProcesses()
        defer { clients.killAll() }
        let baseline = try h.residentKilobytes()
        let counts = (0..<sandboxes).map { "\(server.directory)/count-\($0)" }
        for (i, g) in guests.enumerated() {
            let loop = """
                end=$(( $(date +%s) + 15 )); n=0
                while [ $(date +%s) -lt $end ]; do
                  curl -sf -o /dev/null http://\(g.gateway):\(server.port)/blob && n=$((n+1))
                done
                echo $n > \(counts[i])
                """
            _ = try clients.start(["ip", "netns", "exec", g.ns, "sh", "-c", loop])
        }
        var peak = baseline
        let loadEnd = Date().addingTimeInterval(16)
        while Date() < loadEnd && !counts.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
            peak = max(peak, try h.residentKilobytes())
            usleep(200_000)
        }
        clients.killAll()
        let fetched = counts.map { path -> Int in
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        // The load must have been real: a thousand connections would leave a gigabyte before.
        #expect(fetched.allSatisfy { $0 >= 20 }, "GETs per sandbox: \(fetched)")
        Thread.sleep(forTimeInterval: 10)
        let after = try h.residentKilobytes()
        let growth = (peak - baseline) / 1024
        let left = (after - baseline) / 1024
        print("memory: \(sandboxes) sandbox(es), \(fetched) GETs of 1 MiB: RSS \(baseline / 1024) MiB, peak +\(growth) MiB, 10 s after +\(left) MiB")
        #expect(growth <= duringMiB, "RSS grew \(growth) MiB under load (bound \(duringMiB))")
        #expect(left <= afterMiB, "RSS still \(left) MiB above idle 10 s after (bound \(afterMiB))")
    }

    @Test func aSandboxAtItsBudgetMovesEveryByteBesideAnUnhinderedNeighbour() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let size = 256 << 20
        let server = try FileServer(tag: h.scratch.tag, files: ["big": size])
        defer { server.stop() }
        let tight = try attach(h, count: 1, budgetMiB: 1)[0]
        let neighbour = try attach(h, count: 1, prefix: "n")[0]
        let expected = try server.sha256("big")
        // Both download at once; each pipes through sha256sum so nothing touches the disk.
        let commands = [tight, neighbour].map { g in
            "ip netns exec \(g.ns) sh -c 'curl -sf http://\(g.gateway):\(server.port)/big | sha256sum'"
        }
        let group = DispatchGroup()
        nonisolated(unsafe) var results: [String] = ["", ""]
        for (i, command) in commands.enumerated() {
            group.enter()
            DispatchQueue.global().async {
                results[i] = (try? TestHost.run(["sh", "-c", command])) ?? "failed"
                group.leave()
            }
        }
        #expect(group.wait(timeout: .now() + 600) == .success)
        #expect(results[0].hasPrefix(expected), "the sandbox at its budget got every byte: \(results[0])")
        #expect(results[1].hasPrefix(expected), "the neighbour got every byte: \(results[1])")
        // And the other way: the guest uploads the file to a loopback sink that hashes it, so
        // the budget bounds the windows the gateway offers the guest.
        let sinkPort = UInt16.random(in: 30_000...32_000)
        let digestPath = server.directory + "/upload.sha256"
        let sink = GatewayTestSupport.BackgroundProcesses()
        defer { sink.killAll() }
        _ = try sink.start([
            "python3", "-c",
            """
            import hashlib, socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(sinkPort))); s.listen(1)
            c, _ = s.accept(); h = hashlib.sha256()
            while True:
                b = c.recv(1 << 20)
                if not b: break
                h.update(b)
            open("\(digestPath)", "w").write(h.hexdigest())
            """,
        ])
        try TestHost.waitForListener(port: sinkPort)
        try TestHost.run([
            "ip", "netns", "exec", tight.ns, "sh", "-c",
            "nc -N \(tight.gateway) \(sinkPort) < \(server.directory)/big",
        ])
        var digest = ""
        _ = eventually(every: 0.05) {
            digest = (try? String(contentsOfFile: digestPath, encoding: .utf8)) ?? ""
            return !digest.isEmpty
        }
        #expect(digest == expected, "the upload at the budget arrived whole: \(digest)")
        let client = ControlClient(socketPath: h.socketPath)
        let stats = try client.call("GET", "/v1/sandboxes/m0-\(h.scratch.tag)/stats", as: SandboxStats.self)
        #expect(stats.memory.budgetBytes == 1 << 20)
        #expect(stats.memory.budgetShortfalls > 0, "the budget was reached: \(stats.memory)")
        #expect(stats.memory.peakHeldBytes <= (1 << 20) + 64 * 1024, "held at most the budget and a few chunks: \(stats.memory)")
        #expect(stats.memory.heldBytes == 0)
    }
}
