// Domain rules against a kernel guest: flows reach a name's address only after the sandbox
// resolved it through the gateway, only that sandbox, only while the answer lives; under
// `dns = "allowed-names"` other names are never forwarded; the query rate is enforced.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct DomainRuleEgressTests {
    static let rules = """
        allow egress tcp domain:allowed.test ports 80,443
        allow egress tcp domain:*.wild.test ports 80,443
        allow egress udp domain:allowed.test ports 5353
        allow egress icmp domain:a.wild.test
        """

    /// A gateway whose "domains" policy holds `rules`, its DNS upstream the internet's resolver.
    static func gateway(
        _ inet: InternetFixture, dnsMode: Policy.DNSMode = .all, configure: (inout GatewayConfiguration) -> Void = { _ in }
    ) throws -> GatewayFixture {
        let fx = try GatewayFixture { cfg in
            cfg.dns = DNSConfiguration(upstreams: [(inet.resolver.address, inet.resolver.port)], attemptTimeout: .milliseconds(500))
            var policy = try! Policy(parsing: rules, default: .deny)
            policy.dnsMode = dnsMode
            cfg.policies["domains"] = policy
            configure(&cfg)
        }
        try inet.start(in: fx)
        return fx
    }

    /// Runs `body` with an internet (`ttl` for its answers) and a gateway whose DNS uses its
    /// resolver; both are removed after, also when the body fails.
    static func withGateway(
        ttl: UInt32 = 300, dnsMode: Policy.DNSMode = .all, configure: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (InternetFixture, GatewayFixture) throws -> Void
    ) throws {
        let inet = try InternetFixture(ttl: ttl)
        defer { inet.stop() }
        let fx = try gateway(inet, dnsMode: dnsMode, configure: configure)
        defer { fx.tearDown() }
        try body(inet, fx)
    }

    static func attach(_ fx: GatewayFixture) throws -> (SandboxInfo, String) {
        let (info, ns) = try fx.attach { $0.policy = "domains" }
        try fx.resolveThroughGateway(ns, info)
        return (info, ns)
    }

    /// curl's exit code and output; 7 is "could not connect" (refused), 0 success.
    static func curl(_ fx: GatewayFixture, _ ns: String, _ url: String, _ extra: String = "") throws -> (code: Int, out: String) {
        let out = try fx.run(in: ns, "curl -sS --max-time 5 \(extra) \(url) 2>&1; echo rc=$?")
        let code = out.split(separator: "rc=").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? -1
        return (code, out)
    }

    @Test func onlyWhatThisSandboxResolvedIsReachable() throws {
        try Self.withGateway { inet, fx in
            let (infoA, a) = try Self.attach(fx)
            let (_, b) = try Self.attach(fx)

            // The address of an allowed name, dialled before resolving it: refused at once.
            let start = Date()
            let early = try Self.curl(fx, a, "http://\(inet.allowed)/f")
            #expect(early.code == 7, "\(early.out)")
            #expect(Date().timeIntervalSince(start) < 3)

            // Resolved through the gateway: reachable by name; at its address only under that name
            // (an HTTP Host of the bare address names no pinned name: reset after the handshake).
            let byName = try Self.curl(fx, a, "http://allowed.test/f")
            #expect(byName.code == 0 && byName.out.hasPrefix("allowed"), "\(byName.out)")
            #expect(try Self.curl(fx, a, "http://allowed.test/f", "--resolve allowed.test:80:\(inet.allowed)").code == 0)
            let bareAddress = try Self.curl(fx, a, "http://\(inet.allowed)/f")
            #expect(bareAddress.code != 0 && bareAddress.code != 7, "\(bareAddress.out)")
            // The wildcard covers names under it, not the name itself.
            let wild = try Self.curl(fx, a, "http://a.wild.test/f")
            #expect(wild.code == 0 && wild.out.hasPrefix("wildcard"), "\(wild.out)")
            // A name no rule allows resolves (dns = "all") but is refused.
            #expect(try Self.curl(fx, a, "http://other.test/f").code == 7)
            // Another port of the allowed address is not covered.
            #expect(try Self.curl(fx, a, "http://allowed.test:8080/f").code == 7)

            // The flow log has each verdict and each end, with bytes and how it ended.
            let log = fx.gateway.flowLog
            // A client that closes first may end with FIN or, as curl now and then does, with RST.
            let clientEnded: (FlowRecord) -> Bool = {
                $0.event == .end && $0.destination == "\(inet.allowed):80" && ($0.ending == .fin || $0.ending == .guestReset)
            }
            try waitFor(seconds: 5) {
                log.flush()
                return log.recent(sandbox: infoA.id).contains(where: clientEnded)
            }
            let records = log.recent(sandbox: infoA.id)
            let allowedFlow = records.first { $0.event == .flow && $0.verdict == .allowed && $0.name == "allowed.test" }
            #expect(allowedFlow?.rule == "allow egress tcp domain:allowed.test ports 80,443")
            #expect(records.contains { $0.event == .flow && $0.reason == .noPin && $0.destination == "\(inet.allowed):80" })
            let end = records.first(where: clientEnded)
            #expect((end?.bytesIn ?? 0) > 0 && (end?.bytesOut ?? 0) > 0 && end?.durationMs != nil, "\(records)")
            let query = records.first { $0.event == .dns && $0.name == "allowed.test" && $0.queryType == "A" }
            #expect(query?.answers == ["\(inet.allowed)"] && query?.responseCode == "NOERROR" && query?.verdict == .allowed)

            // Pins are per sandbox: B never resolved allowed.test, so its address is refused for B.
            #expect(try Self.curl(fx, b, "http://\(inet.allowed)/f").code == 7)

            let stats = try fx.gateway.stats(infoA.id)
            #expect(stats.dns.pins >= 2)
            #expect(stats.dns.pinsRecorded >= 2)
            // other.test matched no domain rule, so its answer pinned nothing.
            #expect(try fx.gateway.stats(infoA.id).drops["tcpDenied"] ?? 0 >= 3)
        }
    }

    /// A Python script run in the guest with `arguments`; its output, trimmed.
    static func python(_ fx: GatewayFixture, _ ns: String, _ script: String, _ arguments: String...) throws -> String {
        try fx.run(in: ns, "python3 -c '\(script)' \(arguments.joined(separator: " "))")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A TLS handshake from the guest to `host`:443 naming `sni`: "reset", "timeout", or another
    /// error's name (the recording server never answers, and closes after 2 s).
    static func tls(_ fx: GatewayFixture, _ ns: String, _ host: String, sni: String) throws -> String {
        let script = """
            import socket, ssl, sys
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = socket.create_connection((sys.argv[1], 443), timeout=3)
            try:
                ctx.wrap_socket(s, server_hostname=sys.argv[2])
                print("handshake")
            except ConnectionResetError:
                print("reset")
            except (socket.timeout, TimeoutError):
                print("timeout")
            except Exception as e:
                print(type(e).__name__)
            """
        return try python(fx, ns, script, host, sni)
    }

    @Test func theNameInTheFirstBytesMustBePinnedToTheAddress() throws {
        try Self.withGateway { inet, fx in
            let (info, ns) = try Self.attach(fx)
            #expect(try Self.curl(fx, ns, "http://allowed.test/f").code == 0)
            #expect(try Self.curl(fx, ns, "http://a.wild.test/f").code == 0)

            // SNI naming a name no rule allows, and one allowed but pinned to another address
            // (domain fronting): reset, and the server got a connection but not one byte.
            #expect(try Self.tls(fx, ns, "allowed.test", sni: "other.test") == "reset")
            #expect(try Self.tls(fx, ns, "allowed.test", sni: "a.wild.test") == "reset")
            // Bytes that name nothing (the policy's default for them is deny).
            _ = try fx.run(in: ns, "printf 'SSH-2.0-probe\\r\\n' | nc -w 3 allowed.test 443; true")
            // The right name goes through: the server sees the ClientHello.
            // (The recording server never answers: the handshake ends when it gives up.)
            #expect(try Self.tls(fx, ns, "allowed.test", sni: "allowed.test") != "reset")
            try waitFor(seconds: 5) { inet.received.count == 4 }
            #expect(inet.received.prefix(3).allSatisfy { $0 == 0 }, "held bytes must never reach the server: \(inet.received)")
            #expect(inet.received[3] > 100, "the allowed ClientHello arrives whole: \(inet.received)")

            // HTTP: the Host header is checked the same way.
            let fronted = try Self.curl(fx, ns, "http://allowed.test/f", "-H 'Host: a.wild.test'")
            #expect(fronted.code != 0, "\(fronted.out)")
            #expect(try Self.curl(fx, ns, "http://allowed.test/f", "-H 'Host: allowed.test:80'").code == 0)

            // Each denial is in the flow log with its name and reason.
            fx.gateway.flowLog.flush()
            let denied = fx.gateway.flowLog.recent(sandbox: info.id).filter { $0.verdict == .denied }
            #expect(denied.contains { $0.reason == .nameMismatch && $0.name == "other.test" })
            #expect(denied.contains { $0.reason == .nameMismatch && $0.name == "a.wild.test" && $0.destination?.hasSuffix(":443") == true })
            #expect(denied.contains { $0.reason == .unidentified })
            #expect(denied.contains { $0.reason == .nameMismatch && $0.destination?.hasSuffix(":80") == true })
            #expect(try fx.gateway.stats(info.id).flows.denied["name mismatch"] == 3)
        }
    }

    /// A UDP datagram from the guest to `host`:5353: "reply", "refused" (an ICMP unreachable or
    /// prohibited came back) or "timeout".
    static func udp(_ fx: GatewayFixture, _ ns: String, _ host: String) throws -> String {
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.connect((sys.argv[1], 5353))
            try:
                s.send(b"ping")
                print("reply" if s.recv(100) == b"ping" else "other")
            except (socket.timeout, TimeoutError):
                print("timeout")
            except OSError as e:
                print("refused" if e.errno in (111, 113) else type(e).__name__)
            """
        return try python(fx, ns, script, host)
    }

    @Test func udpFollowsThePinsToo() throws {
        try Self.withGateway { inet, fx in
            let (info, ns) = try Self.attach(fx)
            // Before the name is resolved through the gateway, the address is refused at once.
            #expect(try Self.udp(fx, ns, "\(inet.allowed)") == "refused")
            #expect(try Self.udp(fx, ns, "allowed.test") == "reply")
            // other.test resolves (dns = "all") but no rule names it.
            #expect(try Self.udp(fx, ns, "other.test") == "refused")
            fx.gateway.flowLog.flush()
            let records = fx.gateway.flowLog.recent(sandbox: info.id).filter { $0.protocol == "udp" && $0.event == .flow }
            #expect(records.contains { $0.verdict == .allowed && $0.name == "allowed.test" })
            #expect(records.contains { $0.verdict == .denied && $0.reason == .noPin })
        }
    }

    @Test func icmpFollowsThePinsToo() throws {
        try Self.withGateway { inet, fx in
            let (_, ns) = try Self.attach(fx)
            let ping = "ping -c 1 -W 2"
            #expect(try fx.run(in: ns, "\(ping) \(inet.wildcard) >/dev/null 2>&1; echo rc=$?").contains("rc=1"))
            #expect(try fx.run(in: ns, "getent ahostsv4 a.wild.test | head -1").hasPrefix("\(inet.wildcard) "))
            #expect(try fx.run(in: ns, "\(ping) \(inet.wildcard) >/dev/null 2>&1; echo rc=$?").contains("rc=0"))
            // Pinned for a name the ICMP rule does not cover: still no echo.
            #expect(try fx.run(in: ns, "getent ahostsv4 allowed.test >/dev/null; \(ping) \(inet.allowed) >/dev/null 2>&1; echo rc=$?")
                .contains("rc=1"))
        }
    }

    @Test func allowedNamesModeNeverForwardsOtherNames() throws {
        try Self.withGateway(dnsMode: .allowedNames) { inet, fx in
            let (info, ns) = try Self.attach(fx)
            let allowed = try fx.run(in: ns, "getent ahostsv4 allowed.test | head -1")
            #expect(allowed.hasPrefix("\(inet.allowed) "))
            let other = try fx.run(in: ns, "getent ahostsv4 other.test; echo rc=$?")
            #expect(other.contains("rc=2"), "\(other)")
            // The gateway's own name still resolves.
            #expect(try fx.run(in: ns, "getent ahostsv4 host.gateway.internal | head -1").hasPrefix(info.gatewayIPv4 + " "))
            let asked = inet.resolver.queries.compactMap { q in
                q.withUnsafeBytes { b in (try? DNSMessage.parse(b))?.question?.name.text.lowercased() }
            }
            #expect(asked.contains("allowed.test"))
            #expect(!asked.contains("other.test"), "a name no rule allows must never reach the upstream: \(asked)")
            #expect(try fx.gateway.stats(info.id).dns.namesNotAllowed >= 1)
        }
    }

    @Test func lapsedPinClosesNewFlowsOnly() throws {
        try Self.withGateway(ttl: 2, configure: { $0.pinTTLFloor = .seconds(1) }) { inet, fx in
            let (_, ns) = try Self.attach(fx)
            #expect(try Self.curl(fx, ns, "http://allowed.test/f").code == 0)
            // A download that outlives the pin (4 MiB at 1 MiB/s) ...
            let long = try fx.background([
                "ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "20", "--limit-rate", "1M", "-o", "/dev/null",
                "-w", "%{size_download}", "http://allowed.test/big",
            ])
            Thread.sleep(forTimeInterval: 3)
            // ... while a new flow to the same address under the same name, without asking DNS
            // again, is refused once the pin lapsed.
            #expect(try Self.curl(fx, ns, "http://allowed.test/f", "--resolve allowed.test:80:\(inet.allowed)").code == 7)
            long.waitUntilExit()
            #expect(long.terminationStatus == 0, "the flow opened under the pin must finish")
            // Resolving again pins again.
            #expect(try Self.curl(fx, ns, "http://allowed.test/f").code == 0)
        }
    }

    /// A download slowed to 2 MB/s: `/huge`, too large for the buffers on the way and still open
    /// long after, or with `whole` `/big`, which ends in about two seconds.
    static func slowDownload(_ fx: GatewayFixture, _ ns: String, whole: Bool = false) throws -> Process {
        try fx.background([
            "ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "20", "--limit-rate", "2M", "-o", "/dev/null",
            whole ? "http://allowed.test/big" : "http://allowed.test/huge",
        ])
    }

    @Test func policySwitchResetsWhatTheNewPolicyDenies() throws {
        try Self.withGateway { inet, fx in
            let (info, ns) = try Self.attach(fx)
            let download = try Self.slowDownload(fx, ns)
            Thread.sleep(forTimeInterval: 1)
            // host-only denies the internet: the open download is reset, new flows are refused.
            #expect(try fx.gateway.setPolicy(info.id, to: "host-only") >= 1)
            download.waitUntilExit()
            // 56: "failure in receiving network data" (the reset); 28 would be curl's own timeout.
            #expect(download.terminationStatus == 56, "the download must end at the switch, reset")
            #expect(try Self.curl(fx, ns, "http://allowed.test/f").code == 7)
            #expect(fx.gateway.list().first { $0.id == info.id }?.policy == "host-only")
            fx.gateway.flowLog.flush()
            #expect(fx.gateway.flowLog.recent(sandbox: info.id).contains { $0.event == .end && $0.ending == .closedByGateway })

            // Back, keeping flows on the next switch: the download survives it and finishes.
            try fx.gateway.setPolicy(info.id, to: "domains")
            #expect(try Self.curl(fx, ns, "http://allowed.test/f").code == 0)
            let kept = try Self.slowDownload(fx, ns, whole: true)
            Thread.sleep(forTimeInterval: 1)
            #expect(try fx.gateway.setPolicy(info.id, to: "host-only", keepFlows: true) == 0)
            kept.waitUntilExit()
            #expect(kept.terminationStatus == 0)
            // An unknown policy is refused and changes nothing.
            #expect(throws: GatewayError.self) { try fx.gateway.setPolicy(info.id, to: "no-such-policy") }
            #expect(fx.gateway.list().first { $0.id == info.id }?.policy == "host-only")
        }
    }

    @Test func reloadedPoliciesApplyToRunningSandboxes() throws {
        try Self.withGateway { inet, fx in
            let (info, ns) = try Self.attach(fx)
            #expect(try Self.curl(fx, ns, "http://allowed.test/f").code == 0)
            // The same policy name, now allowing only the wildcard names.
            let narrowed = try Policy(parsing: "allow egress tcp domain:*.wild.test ports 80", default: .deny)
            let bad = ["domains": narrowed, "broken": Policy(rules: [], default: .deny, deniedNames: ["a..b"])]
            #expect(throws: GatewayError.self) { try fx.gateway.reloadPolicies(bad, deniedNames: []) }
            #expect(try Self.curl(fx, ns, "http://allowed.test/f").code == 0, "a refused reload changes nothing")
            #expect(try fx.gateway.reloadPolicies(["domains": narrowed], deniedNames: []) == [info.id])
            #expect(try Self.curl(fx, ns, "http://allowed.test/f").code == 7)
            #expect(try Self.curl(fx, ns, "http://a.wild.test/f").code == 0)
        }
    }

    @Test func queryRateIsEnforcedPerSandbox() throws {
        try Self.withGateway(configure: { $0.dnsQueryRate = 5 }) { inet, fx in
            let (info, ns) = try Self.attach(fx)
            let (_, calm) = try Self.attach(fx)
            // 40 lookups at once from one sandbox: past the burst of 5 they are REFUSED.
            let out = try fx.run(in: ns, "ok=0; for i in $(seq 40); do getent ahostsv4 allowed.test >/dev/null && ok=$((ok+1)); done; echo $ok")
            let answered = Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(answered >= 5 && answered < 40, "\(out)")
            #expect(try fx.gateway.stats(info.id).dns.rateLimited > 0)
            // Its neighbour's budget is its own.
            #expect(try fx.run(in: calm, "getent ahostsv4 allowed.test | head -1").hasPrefix("\(inet.allowed) "))
        }
    }
}
