// Policies and DNS denied names defined in the config file reaching sandboxes: name resolution
// (defined policies, then profiles, else an error listing both), the control API's answer to an
// unknown name, and a real daemon whose guests are held to a config-defined policy.
import Foundation
import Gateway
import GatewayControl
import GatewayTestSupport
import Logging
import Testing

@Suite struct PolicyResolutionTests {
    static let file = """
        [dns]
        denied-names = ["blocked.test"]

        [policies.web]
        rules = ["allow egress tcp group:host-alias ports 8080"]
        denied-names = ["web-only.test"]

        [policies.builds]
        extends = "public"
        """

    static func configuration() throws -> GatewayConfiguration {
        var c = DaemonConfiguration()
        try c.apply(toml: file, file: "p.toml")
        var g = c.gatewayConfiguration
        g.shards = 1
        g.pinShards = false
        // Never a real resolver: nothing here sends a query, but nothing could reach one either.
        g.dns = DNSConfiguration(upstreams: [(.v4(.loopback), 9)], attemptTimeout: .milliseconds(300))
        return g
    }

    @Test func definedPoliciesThenProfiles() throws {
        let g = try Self.configuration()
        let web = try g.policy(named: "web")
        #expect(web.deniedNames == ["web-only.test"])
        #expect(web.defaultAction == .deny)
        #expect(web.rules == [try #require(PolicyRule("allow egress tcp group:host-alias ports 8080"))])
        // `extends` puts the profile's rules after the policy's own (none here).
        #expect(try g.policy(named: "builds").rules == Policy.profile(named: "public").rules)
        #expect(try g.policy(named: "open") == Policy.profile(named: "open"))
        #expect(try g.policy(named: "HOST-ONLY") == Policy.profile(named: "host-only"))
        #expect(g.policyNames == ["host-only", "public", "open", "builds", "web"])
    }

    @Test func aDefinedNameWinsOverAProfile() throws {
        var g = GatewayConfiguration(shards: 1)
        g.policies["open"] = Policy(default: .deny)
        #expect(try g.policy(named: "open").defaultAction == .deny)
        #expect(g.policyNames == ["host-only", "public", "open"])
    }

    @Test(arguments: ["nosuch", "Web", ""])
    func unknownNameListsTheNamesThereAre(_ name: String) throws {
        let g = try Self.configuration()
        let error = #expect(throws: GatewayError.self) { try g.policy(named: name) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == "unknown policy '\(name)': use one of host-only, public, open, builds, web")
    }

    /// Attach refuses before it touches the system: no namespace is needed to see the message.
    @Test func attachWithAnUnknownPolicyFails() throws {
        let gateway = try Gateway(configuration: Self.configuration())
        defer { gateway.shutdown() }
        var spec = SandboxSpec(id: "p1", mode: .netns("gwtest-none"))
        spec.policy = "nosuch"
        let error = #expect(throws: GatewayError.self) { try gateway.attach(spec) }
        #expect(error?.code == .invalidArgument)
        #expect(
            error?.message == "sandbox 'p1': unknown policy 'nosuch': use one of host-only, public, open, builds, web")
        #expect(gateway.list().isEmpty)
    }

    @Test func controlAPIAnswers400ForAnUnknownPolicy() throws {
        let directory = NSTemporaryDirectory() + "gwpol-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory + "/netns", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The service checks the namespace file exists before asking the gateway.
        #expect(FileManager.default.createFile(atPath: directory + "/netns/ns", contents: nil))
        let gateway = try Gateway(configuration: Self.configuration())
        defer { gateway.shutdown() }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = ControlService(
            gateway: gateway, store: nil, logger: logger, namespaceDirectory: directory + "/netns")
        let body = #"{"id": "p2", "netns": "ns", "policy": "nosuch"}"#
        let response = service.handle(ControlRequest(method: "POST", uri: "/v1/sandboxes", body: Array(body.utf8)))
        #expect(response.status == 400)
        let error = try JSONDecoder().decode(ControlError.Body.self, from: Data(response.bytes)).error
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("unknown policy 'nosuch': use one of host-only, public, open, builds, web"))
    }

    /// A name the config reader never lets through still fails at start when set in code, naming
    /// the policy.
    @Test func gatewayRefusesABadDeniedNameAtStart() throws {
        var g = try Self.configuration()
        g.policies["bad"] = Policy(default: .deny, deniedNames: ["ok.test", ""])
        let error = #expect(throws: GatewayError.self) { _ = try Gateway(configuration: g) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.hasPrefix("policy 'bad': ") == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        "example.com", "EXAMPLE.com.", ".", "_sip._tcp.example", "xn--hte-9la.test", "a-b.c-d",
        String(repeating: "a", count: 63) + ".test",
        // 253 characters, the most a name may have written out.
        String(repeating: "abcde.", count: 41) + "ab.test",
    ])
    func acceptedDeniedNames(_ name: String) throws {
        var c = DaemonConfiguration()
        try c.apply(toml: "[dns]\ndenied-names = [\"\(name)\"]\n", file: "ok.toml")
        #expect(c.dnsDeniedNames == [name])
        // The gateway takes every name the reader accepts.
        var g = try Self.configuration()
        g.deniedNames = c.dnsDeniedNames
        _ = try DNSPolicy(deniedSuffixes: g.deniedNames)
    }
}

/// gatewayd with a config file of the test's own: a guest under a config-defined policy reaches
/// one host port and not another, and its DNS denies the global and the policy's names, while a
/// guest under host-only is held only to the global ones.
@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct PolicyConfigEndToEndTests {
    @Test func configDefinedPolicyAndDeniedNamesReachTheGuest() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        let servers = BackgroundProcesses()
        defer { servers.stop() }
        // Ports the kernel picks, so that no other test's socket can hold one already.
        let allowed = try servers.startReporting(["python3", "-u", "-c", Self.okServer])
        let other = try servers.startReporting(["python3", "-u", "-c", Self.okServer])
        let resolverPort = try servers.startReporting(["python3", "-u", "-c", Self.anyNameResolver])

        let config = try String(contentsOfFile: h.configPath, encoding: .utf8) + """

            [dns]
            upstreams = ["127.0.0.1:\(resolverPort)"]
            denied-names = ["blocked.test"]

            [policies.web]
            rules = ["allow egress tcp group:host-alias ports \(allowed)"]
            default = "deny"
            denied-names = ["web-only.test"]
            """
        try config.write(toFile: h.configPath, atomically: true, encoding: .utf8)
        try h.start()

        let nsWeb = try h.scratch.namespace().name!
        let nsPlain = try h.scratch.namespace().name!
        let webID = "web-\(h.scratch.tag)"
        let plainID = "plain-\(h.scratch.tag)"
        let attach = try h.ctl("attach", webID, "--netns", nsWeb, "--policy", "web")
        #expect(attach.status == 0, "\(attach.stderr)")
        #expect(attach.stdout.contains("policy       web"), "\(attach.stdout)")
        #expect(try h.ctl("attach", plainID, "--netns", nsPlain).status == 0)
        let views = try JSONDecoder().decode([SandboxView].self, from: Data(h.ctl("list", "--json").stdout.utf8))
        #expect(Dictionary(uniqueKeysWithValues: views.map { ($0.id, $0.policy) }) == [webID: "web", plainID: "host-only"])
        let web = try #require(views.first { $0.id == webID })
        let plain = try #require(views.first { $0.id == plainID })

        // TCP: the web policy allows the one port; the other is refused at once (curl exit 7)
        // though a server listens there, and host-only still reaches it.
        func curl(_ ns: String, _ gateway: String, _ port: Int) throws -> String {
            try TestHost.run([
                "ip", "netns", "exec", ns, "sh", "-c",
                "curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://\(gateway):\(port)/ 2>&1; echo \" rc=$?\"",
            ])
        }
        #expect(try curl(nsWeb, web.gatewayIPv4, allowed).hasPrefix("200 rc=0"))
        let refused = try curl(nsWeb, web.gatewayIPv4, other)
        #expect(refused.contains("rc=7"), "\(refused)")
        #expect(try curl(nsPlain, plain.gatewayIPv4, other).hasPrefix("200 rc=0"))
        struct Drops: Decodable { var drops: [String: Int] }
        let drops = try JSONDecoder().decode(Drops.self, from: Data(h.ctl("stats", webID, "--json").stdout.utf8)).drops
        #expect(drops["tcpDenied", default: 0] >= 1, "\(drops)")

        // DNS: the upstream answers every name, so an NXDOMAIN can only be the gateway's.
        for (ns, gateway) in [(nsWeb, web.gatewayIPv4), (nsPlain, plain.gatewayIPv4)] {
            let dir = "/etc/netns/\(ns)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try "nameserver \(gateway)\n".write(toFile: dir + "/resolv.conf", atomically: true, encoding: .utf8)
        }
        defer { for ns in [nsWeb, nsPlain] { try? FileManager.default.removeItem(atPath: "/etc/netns/\(ns)") } }
        #expect(try Self.lookup(nsWeb, "svc.example.test") == "192.0.2.7")
        #expect(try Self.lookup(nsWeb, "x.blocked.test") == "NXDOMAIN")
        #expect(try Self.lookup(nsWeb, "WEB-ONLY.test") == "NXDOMAIN")
        #expect(try Self.lookup(nsWeb, "a.b.web-only.test") == "NXDOMAIN")
        #expect(try Self.lookup(nsWeb, "notweb-only.test") == "192.0.2.7")
        #expect(try Self.lookup(nsPlain, "blocked.test") == "NXDOMAIN")
        #expect(try Self.lookup(nsPlain, "web-only.test") == "192.0.2.7")
        #expect(try Self.lookup(nsPlain, "host.gateway.internal") == plain.gatewayIPv4)

        // An unknown policy: exit 4 with the names there are, and HTTP 400 from the API.
        let nsOther = try h.scratch.namespace().name!
        let unknown = try h.ctl("attach", "x-\(h.scratch.tag)", "--netns", nsOther, "--policy", "nosuch")
        #expect(unknown.status == 4)
        #expect(
            unknown.stderr
                == "gatewayctl: sandbox 'x-\(h.scratch.tag)': unknown policy 'nosuch': use one of host-only, public, open, web\n")
        let http = try TestHost.run([
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", h.socketPath, "-X", "POST", "-d",
            #"{"id":"y-\#(h.scratch.tag)","netns":"\#(nsOther)","policy":"nosuch"}"#, "http://gatewayd/v1/sandboxes",
        ])
        #expect(http == "400")
        #expect(h.links(in: nsOther).allSatisfy { !$0.hasPrefix("gwt-") })
    }

    /// getent's answer in the namespace: the first IPv4 address, or NXDOMAIN when the name does
    /// not exist (getaddrinfo's EAI_NONAME, as against EAI_AGAIN for a resolver that failed).
    static func lookup(_ ns: String, _ name: String) throws -> String {
        let script = """
            import socket
            try:
                print(socket.getaddrinfo("\(name)", None, socket.AF_INET)[0][4][0])
            except socket.gaierror as e:
                print("NXDOMAIN" if e.errno == socket.EAI_NONAME else "error %d" % e.errno)
            """
        return try TestHost.run(["timeout", "20", "ip", "netns", "exec", ns, "python3", "-c", script])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// An HTTP server on 127.0.0.1 answering "ok" to every GET; prints its port once it listens.
    static let okServer = """
        import http.server
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            def log_message(self, *args):
                pass
        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        print(s.server_address[1])
        s.serve_forever()
        """

    /// A loopback resolver that answers every A query with 192.0.2.7 (RFC 5737 documentation
    /// space) and any other type with no records; prints its port first.
    static let anyNameResolver = """
        import socket, struct
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        while True:
            q, peer = s.recvfrom(4096)
            if len(q) < 17: continue
            i = 12
            while i < len(q) and q[i] != 0: i += 1 + q[i]
            end = i + 5
            if end > len(q): continue
            qtype = q[i + 1:i + 3]
            a = qtype == b"\\x00\\x01"
            header = q[:2] + b"\\x81\\x80" + struct.pack(">HHHH", 1, 1 if a else 0, 0, 0)
            answer = b"\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x3c\\x00\\x04" + bytes([192, 0, 2, 7]) if a else b""
            s.sendto(header + q[12:end] + answer, peer)
        """
}

/// Host-side helpers the test starts on loopback, killed when it ends.
final class BackgroundProcesses: @unchecked Sendable {
    private var processes: [Process] = []

    /// Starts a program that prints the port it bound on its first line, and returns that port.
    func startReporting(_ arguments: [String]) throws -> Int {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        processes.append(p)
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), let b = byte.first, b != 0x0A {
            line.append(b)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            throw HarnessError("\(arguments) printed no port")
        }
        return port
    }

    func stop() {
        for p in processes where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
    }
}
