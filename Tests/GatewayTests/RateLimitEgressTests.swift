// Rate limits against a kernel guest: iperf3 through a limited sandbox runs near the limit each
// way with few retransmissions while an unlimited neighbour runs far faster; new flows over the
// connection rate are refused and logged; a guest that never completes its handshakes holds no
// host connection past the half-open timeout. Servers listen on the host's loopback only.
import Foundation
import Gateway
import GatewayTestSupport
import Testing

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct RateLimitEgressTests {
    /// What one iperf3 run measured, from its JSON.
    struct Iperf {
        var megabitsPerSecond: Double
        var bytes: Double
        var retransmits: Int

        init(json: String) throws {
            let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            let end = object?["end"] as? [String: Any]
            let sent = end?["sum_sent"] as? [String: Any]
            let received = end?["sum_received"] as? [String: Any]
            guard let sent, let received, let bps = received["bits_per_second"] as? Double else {
                throw IperfFailed(output: json)
            }
            megabitsPerSecond = bps / 1e6
            bytes = received["bytes"] as? Double ?? 0
            retransmits = sent["retransmits"] as? Int ?? 0
        }
    }

    struct IperfFailed: Error, CustomStringConvertible {
        var output: String
        var description: String { "iperf3 gave no result: \(output.prefix(2000))" }
    }

    /// iperf3 servers on 127.0.0.1, one per port.
    static func iperfServers(_ fx: GatewayFixture, count: Int) throws -> [UInt16] {
        var ports: [UInt16] = []
        while ports.count < count {
            let port = GatewayFixture.freePort()
            guard !ports.contains(port) else { continue }
            _ = try fx.background(["iperf3", "-s", "-B", "127.0.0.1", "-p", String(port)])
            try fx.waitForListener(port: port)
            ports.append(port)
        }
        return ports
    }

    /// One iperf3 client per (namespace, gateway, port) at the same time; `reverse`: the host sends.
    static func iperf(_ clients: [(ns: String, gateway: String, port: UInt16)], reverse: Bool, seconds: Int = 4) throws -> [Iperf] {
        let dir = NSTemporaryDirectory() + "gw-iperf-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Started side by side as processes of their own, each writing its JSON to a file.
        let runs = try clients.enumerated().map { i, c in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments =
                ["timeout", "30", "ip", "netns", "exec", c.ns, "iperf3", "-c", c.gateway, "-p", String(c.port), "-t", String(seconds), "-J"]
                + (reverse ? ["-R"] : [])
            try #require(FileManager.default.createFile(atPath: "\(dir)/\(i).json", contents: nil))
            process.standardOutput = FileHandle(forWritingAtPath: "\(dir)/\(i).json")
            try process.run()
            return process
        }
        for process in runs { process.waitUntilExit() }
        return try clients.indices.map { i in
            try Iperf(json: String(contentsOfFile: "\(dir)/\(i).json", encoding: .utf8))
        }
    }

    static func limited(_ rate: String) -> Policy {
        var policy = try! Policy.profile(named: "host-only")
        policy.rateLimits.bytesPerSecond = RateLimits.bytesPerSecond(parsing: rate)
        return policy
    }

    @Test func aLimitedSandboxRunsNearItsRateEachWayBesideAnUnlimitedOne() throws {
        let fx = try GatewayFixture { $0.policies["limited"] = Self.limited("100mbit") }
        defer { fx.tearDown() }
        let (limitedInfo, limited) = try fx.attach { $0.policy = "limited" }
        let (freeInfo, free) = try fx.attach()
        let ports = try Self.iperfServers(fx, count: 2)
        for reverse in [false, true] {
            let r = try Self.iperf(
                [(limited, limitedInfo.gatewayIPv4, ports[0]), (free, freeInfo.gatewayIPv4, ports[1])], reverse: reverse)
            let way = reverse ? "from the host" : "to the host"
            #expect((60...110).contains(r[0].megabitsPerSecond), "\(way): \(r[0].megabitsPerSecond) Mbit/s")
            #expect(r[1].megabitsPerSecond > 3 * r[0].megabitsPerSecond, "\(way): neighbour \(r[1].megabitsPerSecond) Mbit/s")
            if !reverse {
                // The guest sent: its retransmissions say whether the limit cost it segments.
                let segments = r[0].bytes / 1448
                #expect(Double(r[0].retransmits) < segments / 100, "\(r[0].retransmits) retransmits of \(Int(segments))")
            }
        }
        let stats = try fx.gateway.stats(limitedInfo.id).rateLimits
        #expect(stats.toHostBytesPerSecond == 12_500_000)
        #expect(stats.throttlesToHost > 0 && stats.throttlesFromHost > 0)
        #expect(stats.secondsLimitedToHost > 1 && stats.secondsLimitedFromHost > 1, "\(stats)")
        let freeStats = try fx.gateway.stats(freeInfo.id).rateLimits
        #expect(freeStats.throttlesToHost == 0 && freeStats.secondsLimitedFromHost == 0)
    }

    @Test func aPolicySwitchChangesTheLimitAtOnce() throws {
        let fx = try GatewayFixture { $0.policies["limited"] = Self.limited("50mbit") }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let port = try Self.iperfServers(fx, count: 1)[0]
        let free = try Self.iperf([(ns, info.gatewayIPv4, port)], reverse: true, seconds: 2)[0]
        #expect(free.megabitsPerSecond > 200, "\(free.megabitsPerSecond) Mbit/s unlimited")
        try fx.gateway.setPolicy(info.id, to: "limited")
        let limited = try Self.iperf([(ns, info.gatewayIPv4, port)], reverse: true, seconds: 3)[0]
        #expect((30...55).contains(limited.megabitsPerSecond), "\(limited.megabitsPerSecond) Mbit/s at 50mbit")
        try fx.gateway.setPolicy(info.id, to: "host-only")
        #expect(try fx.gateway.stats(info.id).rateLimits.fromHostBytesPerSecond == nil)
    }

    /// Figures for Tools/README-rate-limits.md: each limit each way, one after another
    /// (GW_RATE_BENCH=1 to run).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["GW_RATE_BENCH"] != nil))
    func accuracyAtEachRate() throws {
        let rates = ["10mbit", "100mbit", "1000mbit"]
        let fx = try GatewayFixture { cfg in
            for rate in rates { cfg.policies[rate] = Self.limited(rate) }
        }
        defer { fx.tearDown() }
        let ports = try Self.iperfServers(fx, count: 1)
        for rate in rates {
            let (info, ns) = try fx.attach { $0.policy = rate }
            for reverse in [false, true] {
                let r = try Self.iperf([(ns, info.gatewayIPv4, ports[0])], reverse: reverse, seconds: 5)[0]
                print(
                    "rate-bench \(rate) \(reverse ? "from-host" : "to-host") \(String(format: "%.1f", r.megabitsPerSecond)) Mbit/s retransmits \(r.retransmits) of \(Int(r.bytes / 1448)) segments"
                )
            }
        }
    }

    @Test func newFlowsOverTheConnectionRateAreRefusedAndLogged() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach { $0.rateLimits.connectionsPerSecond = 5 }
        let port = try fx.httpServer(files: ["f": Data("x".utf8)])
        let script = """
            import socket, sys
            ok = refused = 0
            for i in range(30):
                try:
                    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
                    ok += 1
                    s.close()
                except ConnectionRefusedError:
                    refused += 1
            print(ok, refused)
            """
        let out = try fx.run(in: ns, "python3 -c '\(script)' \(info.gatewayIPv4) \(port)")
        let counts = out.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(counts.count == 2, "\(out)")
        // A burst of 5, then 5 a second for however long the loop took.
        #expect(counts.first.map { (5...12).contains($0) } == true, "\(out)")
        #expect(counts.last.map { $0 >= 18 } == true, "\(out)")
        let stats = try fx.gateway.stats(info.id)
        #expect(stats.rateLimits.connectionsRefused == counts.last)
        let log = fx.gateway.flowLog
        try waitFor(seconds: 5) {
            log.flush()
            return log.recent(sandbox: info.id).contains { $0.event == .flow && $0.reason == .rateLimit }
        }
    }

    @Test func aGuestThatNeverCompletesItsHandshakesHoldsNoHostConnection() throws {
        let fx = try GatewayFixture { $0.limits.halfOpenTimeout = .milliseconds(1000) }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        // A host server that never accepts: the kernel completes each dial into its backlog.
        let port = GatewayFixture.freePort()
        _ = try fx.background([
            "python3", "-c",
            "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', \(port)))\ns.listen(256)\ntime.sleep(600)",
        ])
        try fx.waitForListener(port: port)
        // SYNs from another address of the sandbox's subnet, which the guest's kernel does not
        // own: nothing answers the gateway's ARP for it, so the SYN-ACKs go nowhere and no RST
        // comes back, and the handshakes stay half-open, as a SYN flood leaves them.
        let script = """
            import ipaddress, random, socket, struct, sys
            guest, dst, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
            src = str(ipaddress.ip_address(guest) + 5)
            def checksum(b):
                if len(b) % 2: b += bytes(1)
                s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
                while s >> 16: s = (s & 0xFFFF) + (s >> 16)
                return ~s & 0xFFFF
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            for i in range(n):
                tcp = struct.pack("!HHIIBBHHH", 40000 + i, port, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
                pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
                tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
                ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
                raw.sendto(ip + tcp, (dst, 0))
            """
        let flood = 20
        try fx.run(in: ns, "python3 -c '\(script)' \(info.guestIPv4) \(info.gatewayIPv4) \(port) \(flood)")
        func established() throws -> Int {
            let out = try TestHost.run(["ss", "-Htn", "state", "established", "( sport = :\(port) )"])
            return out.split(separator: "\n").count
        }
        // The gateway dialled the host for each SYN...
        try waitFor(seconds: 5) { try established() == flood }
        // ...and after the half-open timeout holds none of them.
        let started = Date()
        try waitFor(seconds: 5) { try established() == 0 }
        #expect(Date().timeIntervalSince(started) < 3)
        let stats = try fx.gateway.stats(info.id)
        #expect(stats.rateLimits.halfOpenResets == flood)
        let log = fx.gateway.flowLog
        try waitFor(seconds: 5) {
            log.flush()
            return log.recent(sandbox: info.id).filter { $0.event == .end && $0.ending == .halfOpen }.count == flood
        }
    }
}
