// Sandboxes against each other's published ports through the host: refused at once and logged
// unless a `sandbox:` rule names the sandbox, and one client address cannot take a published
// sandbox's whole inbound cap.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct CrossSandboxTests {
    static let webServer = """
        import http.server, socketserver, sys, threading
        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"hello from web\\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args): pass
        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True
        class Echo(socketserver.BaseRequestHandler):
            def handle(self):
                self.request[1].sendto(b"echo " + self.request[0], self.client_address)
        threading.Thread(target=socketserver.UDPServer(("0.0.0.0", 9000), Echo).serve_forever, daemon=True).start()
        Server(("0.0.0.0", 8000), Hello).serve_forever()
        """

    /// A sandbox (host-only) serving HTTP on 8000 and UDP echo on 9000, both published on
    /// loopback.
    static func web(_ fx: GatewayFixture, id: String) throws -> (info: SandboxInfo, ns: String, tcp: UInt16, udp: UInt16) {
        let (info, ns) = try fx.attach(id)
        _ = try fx.background(["ip", "netns", "exec", ns, "python3", "-u", "-c", webServer])
        try TestHost.waitForListener(port: 8000, in: ns, udp: false, seconds: 10)
        try TestHost.waitForListener(port: 9000, in: ns, udp: true, seconds: 10)
        let tcp = GatewayFixture.freePort(), udp = GatewayFixture.freePort()
        _ = try fx.gateway.publish(sandboxID: id, spec: "127.0.0.1:\(tcp):8000")
        _ = try fx.gateway.publish(sandboxID: id, spec: "127.0.0.1:\(udp):9000/udp")
        return (info, ns, tcp, udp)
    }

    /// curl's exit code and output; 7 is "could not connect" (refused), 0 success.
    static func curl(_ fx: GatewayFixture, _ ns: String, _ url: String) throws -> (code: Int, out: String) {
        let out = try fx.run(in: ns, "curl -sS --max-time 5 \(url) 2>&1; echo rc=$?")
        let code = out.split(separator: "rc=").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? -1
        return (code, out)
    }

    /// One datagram to `host`:`port` from inside `ns`: the answer, "prohibited" (ICMP
    /// administratively prohibited, as every UDP denial is answered), "refused" or "timeout".
    static func udp(_ fx: GatewayFixture, _ ns: String, _ host: String, _ port: UInt16) throws -> String {
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.connect((sys.argv[1], int(sys.argv[2])))
            s.send(b"ping")
            try:
                print(s.recv(100).decode())
            except ConnectionRefusedError:
                print("refused")
            except (socket.timeout, TimeoutError):
                print("timeout")
            except OSError as e:
                print("prohibited" if e.errno == 113 else e.strerror)
            """
        return try fx.run(in: ns, "python3 -c '\(script)' \(host) \(port)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func publishedPortsAreReachedOnlyThroughSandboxRules() throws {
        let webID = "web-\(UInt16.random(in: 0...9999))"
        let fx = try GatewayFixture { cfg in
            cfg.policies["to-web"] = try! Policy(
                parsing: ["allow egress tcp sandbox:\(webID) ports 8000", "allow egress udp sandbox:\(webID) ports 9000"],
                default: .allow)
        }
        defer { fx.tearDown() }
        let ports = try Self.web(fx, id: webID)
        let (a, nsA) = try fx.attach { $0.policy = "open" }
        let (friend, nsFriend) = try fx.attach { $0.policy = "to-web" }

        // A host port nobody publishes is still reachable: only publications are refused.
        let plain = GatewayFixture.freePort()
        let dir = try fx.temporaryDirectory("plain")
        try Data("plain\n".utf8).write(to: URL(fileURLWithPath: dir + "/f"))
        _ = try fx.background(["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, String(plain)])
        try TestHost.waitForListener(port: plain, in: nil, udp: false, seconds: 10)
        #expect(try Self.curl(fx, nsA, "http://\(a.gatewayIPv4):\(plain)/f").out.hasPrefix("plain"))

        // Under the open policy, web's published port is refused at once, TCP and UDP.
        let start = Date()
        let refused = try Self.curl(fx, nsA, "http://\(a.gatewayIPv4):\(ports.tcp)/")
        #expect(refused.code == 7, "\(refused.out)")
        #expect(Date().timeIntervalSince(start) < 3)
        #expect(try Self.udp(fx, nsA, a.gatewayIPv4, ports.udp) == "prohibited")
        // The host's own clients still reach it.
        #expect(try TestHost.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:\(ports.tcp)/"]) == "hello from web\n")

        // Named by a sandbox rule: reached, both transports.
        let allowed = try Self.curl(fx, nsFriend, "http://\(friend.gatewayIPv4):\(ports.tcp)/")
        #expect(allowed.code == 0 && allowed.out.hasPrefix("hello from web"), "\(allowed.out)")
        #expect(try Self.udp(fx, nsFriend, friend.gatewayIPv4, ports.udp) == "echo ping")

        // Each refusal is in the flow log with its reason, and counted.
        fx.gateway.flowLog.flush()
        let logA = fx.gateway.flowLog.recent(sandbox: a.id)
        #expect(logA.contains {
            $0.verdict == .denied && $0.reason == .publishedPort && $0.protocol == "tcp"
                && $0.destination == "\(a.gatewayIPv4):\(ports.tcp)"
        }, "\(logA)")
        #expect(logA.contains { $0.verdict == .denied && $0.reason == .publishedPort && $0.protocol == "udp" })
        #expect(try fx.gateway.stats(a.id).drops["publishedPortDenied"] == 2)
        #expect(try fx.gateway.stats(a.id).flows.denied["published port"] == 2)
        let logFriend = fx.gateway.flowLog.recent(sandbox: friend.id)
        #expect(logFriend.contains {
            $0.verdict == .allowed && $0.rule == "allow egress tcp sandbox:\(webID) ports 8000"
        }, "\(logFriend)")
    }

    @Test func aPolicySwitchKeepsTheFlowsOnlyASandboxRuleStillAllows() throws {
        let webID = "switch-\(UInt16.random(in: 0...9999))"
        let rule = "allow egress tcp sandbox:\(webID) ports 8000"
        let fx = try GatewayFixture { cfg in
            cfg.policies["to-web"] = try! Policy(parsing: [rule], default: .allow)
            cfg.policies["to-web-strict"] = try! Policy(parsing: [rule], default: .deny)
        }
        defer { fx.tearDown() }
        let ports = try Self.web(fx, id: webID)
        let (friend, ns) = try fx.attach { $0.policy = "to-web" }
        _ = try fx.background([
            "ip", "netns", "exec", ns, "python3", "-c",
            "import socket, time; s = socket.create_connection(('\(friend.gatewayIPv4)', \(ports.tcp))); time.sleep(30)",
        ])
        try waitFor(seconds: 10) { (try? fx.gateway.ingressCounters(sandboxID: webID).tcpActive) == 1 }
        // Its default denies the host, but the sandbox rule still allows the flow: kept.
        #expect(try fx.gateway.setPolicy(friend.id, to: "to-web-strict") == 0)
        // host-only allows the host, but no rule names web: reset.
        #expect(try fx.gateway.setPolicy(friend.id, to: "host-only") == 1)
    }

    @Test func aSandboxCannotReachItsOwnPublishedPort() throws {
        let webID = "self-\(UInt16.random(in: 0...9999))"
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let web = try Self.web(fx, id: webID)
        let (info, ns, ports) = (web.info, web.ns, web)
        // Through its gateway address (host-only allows the host) the publication is refused ...
        let viaHost = try Self.curl(fx, ns, "http://\(info.gatewayIPv4):\(ports.tcp)/")
        #expect(viaHost.code == 7, "\(viaHost.out)")
        // ... while its own server is right there.
        #expect(try Self.curl(fx, ns, "http://127.0.0.1:8000/").out.hasPrefix("hello from web"))
        fx.gateway.flowLog.flush()
        #expect(fx.gateway.flowLog.recent(sandbox: webID).contains { $0.reason == .publishedPort })
    }

    /// Holds `count` idle connections to `host`:`port` for `seconds`, then writes how many are
    /// still open and how many were reset to the file `out`.
    static let flood = """
        import socket, sys, time
        host, port, count, seconds, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
        flood = []
        held = reset = 0
        for _ in range(count):
            try:
                flood.append(socket.create_connection((host, port), timeout=5))
            except OSError as e:
                # Through a gateway, a client reset at once may never see its connect succeed.
                print(repr(e), file=sys.stderr)
                reset += 1
        time.sleep(seconds)
        for s in flood:
            s.settimeout(0.3)
            try:
                reset += 1 if s.recv(1) == b"" else 0
            except ConnectionResetError:
                reset += 1
            except (socket.timeout, TimeoutError):
                held += 1
        open(out, "w").write(f"{held} {reset}")
        """

    /// An HTTP/1.0 GET from `source` (an address of the host's loopback); the status line.
    static func get(_ port: UInt16, from source: String) throws -> String {
        let script = """
            import socket, sys
            c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5, source_address=(sys.argv[2], 0))
            c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            answer = b""
            while True:
                chunk = c.recv(1000)
                if not chunk: break
                answer += chunk
            print(answer.split(b"\\r\\n")[0].decode())
            """
        return try TestHost.run(["timeout", "30", "python3", "-c", script, String(port), source])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func oneClientAddressLeavesRoomForAnother() throws {
        let webID = "cap-\(UInt16.random(in: 0...9999))"
        let fx = try GatewayFixture { $0.publishing.limits.maxInboundConnections = 8 }
        defer { fx.tearDown() }
        let ports = try Self.web(fx, id: webID)
        // 12 idle connections from 127.0.0.1: alone, it may hold the whole cap of 8 ...
        let out = try fx.temporaryDirectory("flood") + "/counts"
        let flood = try fx.background(["python3", "-c", Self.flood, "127.0.0.1", String(ports.tcp), "12", "4", out])
        try waitFor(seconds: 10) { (try? fx.gateway.ingressCounters(sandboxID: webID).tcpOverLimit) == 4 }
        // ... until another address comes: each then holds half, the flood giving up a connection
        // for each of the newcomer's.
        #expect(try Self.get(ports.tcp, from: "127.0.0.2") == "HTTP/1.0 200 OK")
        // (That one has gone, so there is room again without taking any.)
        #expect(try Self.get(ports.tcp, from: "127.0.0.2") == "HTTP/1.0 200 OK")
        flood.waitUntilExit()
        #expect((try? String(contentsOfFile: out, encoding: .utf8)) == "7 5")
        let counters = try fx.gateway.ingressCounters(sandboxID: webID)
        #expect(counters.tcpOverLimit == 4)
        #expect(counters.tcpShareReclaimed == 1)
    }

    @Test func aSandboxsEgressIsAClientOfItsOwn() throws {
        let webID = "cap-\(UInt16.random(in: 0...9999))"
        let fx = try GatewayFixture { cfg in
            cfg.publishing.limits.maxInboundConnections = 8
            cfg.policies["to-web"] = try! Policy(parsing: ["allow egress tcp sandbox:\(webID) ports 8000"], default: .deny)
        }
        defer { fx.tearDown() }
        let ports = try Self.web(fx, id: webID)
        let (a, nsA) = try fx.attach { $0.policy = "to-web" }
        // Sandbox A fills web's cap through its gateway address; on the host its connections come
        // from 127.0.0.1 like the host's own clients, yet the host's client is a client apart.
        let out = try fx.temporaryDirectory("flood") + "/counts"
        let flood = try fx.background([
            "ip", "netns", "exec", nsA, "python3", "-c", Self.flood, a.gatewayIPv4, String(ports.tcp), "12", "4", out,
        ])
        let filled = eventually(seconds: 10) { (try? fx.gateway.ingressCounters(sandboxID: webID).tcpOverLimit) == 4 }
        let seen = (try? fx.gateway.ingressCounters(sandboxID: webID)).map { "\($0)" } ?? ""
        #expect(filled, "\(seen) \((try? fx.gateway.stats(a.id)).map { "\($0.drops)" } ?? "")")
        #expect(try Self.get(ports.tcp, from: "127.0.0.1") == "HTTP/1.0 200 OK")
        flood.waitUntilExit()
        #expect((try? String(contentsOfFile: out, encoding: .utf8)) == "7 5")
        #expect(try fx.gateway.ingressCounters(sandboxID: webID).tcpShareReclaimed == 1)
    }
}
