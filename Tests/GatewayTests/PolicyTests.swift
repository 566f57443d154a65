// Policy: group membership at the edges of every range (v4 and v6), the profiles, first-match
// order, ports and protocols, the text form and its errors.
import Gateway
import Testing
import Wire

private func ip(_ text: String) -> IPAddress {
    guard let a = IPAddress(text) else { fatalError("bad test address \(text)") }
    return a
}

struct PolicyGroupTests {
    /// Each address with exactly the groups it must be in; every other group must not claim it.
    static let memberships: [(String, Set<PolicyGroup>)] = [
        // Loopback 127/8.
        ("127.0.0.0", [.loopback]), ("127.255.255.255", [.loopback]),
        ("126.255.255.255", [.public]), ("128.0.0.0", [.public]),
        // RFC 1918 and CGNAT.
        ("10.0.0.0", [.private]), ("10.255.255.255", [.private]), ("9.255.255.255", [.public]), ("11.0.0.0", [.public]),
        ("172.16.0.0", [.private]), ("172.31.255.255", [.private]), ("172.15.255.255", [.public]), ("172.32.0.0", [.public]),
        ("192.168.0.0", [.private]), ("192.168.255.255", [.private]), ("192.167.255.255", [.public]),
        ("192.169.0.0", [.public]),
        ("100.64.0.0", [.private]), ("100.127.255.255", [.private]), ("100.63.255.255", [.public]),
        ("100.128.0.0", [.public]),
        // Link-local and metadata.
        ("169.254.0.0", [.linkLocal]), ("169.254.255.255", [.linkLocal]), ("169.253.255.255", [.public]),
        ("169.255.0.0", [.public]),
        ("169.254.169.254", [.linkLocal, .metadata]), ("169.254.169.253", [.linkLocal]), ("169.254.169.255", [.linkLocal]),
        // Multicast and broadcast; class E around them is reserved.
        ("224.0.0.0", [.multicast]), ("239.255.255.255", [.multicast]), ("223.255.255.255", [.public]),
        ("240.0.0.0", []), ("255.255.255.254", []), ("255.255.255.255", [.multicast]),
        // "This network" and the documentation blocks.
        ("0.0.0.0", []), ("0.255.255.255", []), ("1.0.0.0", [.public]),
        ("192.0.2.0", []), ("192.0.2.255", []), ("192.0.1.255", [.public]), ("192.0.3.0", [.public]),
        ("198.51.100.0", []), ("198.51.100.255", []), ("198.51.99.255", [.public]), ("198.51.101.0", [.public]),
        ("203.0.113.0", []), ("203.0.113.255", []), ("203.0.112.255", [.public]), ("203.0.114.0", [.public]),
        ("8.8.8.8", [.public]),
        // IPv6 loopback, unspecified and the rest of ::/8.
        ("::1", [.loopback]), ("::", []), ("::2", []), ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []),
        ("100::", [.public]),
        // Unique local fc00::/7.
        ("fc00::", [.private]), ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", [.private]),
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", [.public]),
        // Link-local fe80::/10.
        ("fe80::", [.linkLocal]), ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", [.linkLocal]),
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", [.public]), ("fec0::", [.public]),
        // Metadata (also unique local).
        ("fd00:ec2::254", [.private, .metadata]), ("fd00:ec2::253", [.private]), ("fd00:ec2::1:254", [.private]),
        // Multicast ff00::/8.
        ("ff00::", [.multicast]), ("ff02::1", [.multicast]), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", [.multicast]),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", [.public]),
        // Documentation 2001:db8::/32 and 3fff::/20.
        ("2001:db8::", []), ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", []),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", [.public]), ("2001:db9::", [.public]),
        ("3fff::", []), ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", []), ("3fff:1000::", [.public]),
        ("2606:4700::1111", [.public]),
        // IPv4 carried in IPv6 is classified as that IPv4 address.
        ("::ffff:169.254.169.254", [.linkLocal, .metadata]), ("::ffff:10.0.0.1", [.private]),
        ("::ffff:8.8.8.8", [.public]), ("::ffff:127.0.0.1", [.loopback]), ("::ffff:192.0.2.1", []),
        ("64:ff9b::a9fe:a9fe", [.linkLocal, .metadata]), ("64:ff9b::808:808", [.public]),
        // Outside the /96 the rest of ::/8 is reserved.
        ("64:ff9b::1:a9fe:a9fe", []),
    ]

    @Test(arguments: memberships)
    func membership(address: String, expected: Set<PolicyGroup>) {
        for group in PolicyGroup.allCases {
            #expect(
                group.contains(ip(address), isHostAlias: false) == expected.contains(group),
                "\(address) in \(group) should be \(expected.contains(group))"
            )
        }
    }

    /// A host alias stands for the host's loopback: it is in `hostAlias` and in no other group,
    /// whatever its address looks like.
    @Test(arguments: ["10.0.2.2", "fd00::2", "fe80::1", "8.8.8.8"])
    func hostAliasIsExclusive(address: String) {
        for group in PolicyGroup.allCases {
            #expect(group.contains(ip(address), isHostAlias: true) == (group == .hostAlias), "\(address) as alias in \(group)")
        }
        #expect(!PolicyGroup.hostAlias.contains(ip(address), isHostAlias: false))
    }

    @Test func namesReadBack() {
        for group in PolicyGroup.allCases { #expect(PolicyGroup(name: group.rawValue) == group) }
        #expect(PolicyGroup(name: "hostAlias") == .hostAlias)
        #expect(PolicyGroup(name: "LinkLocal") == .linkLocal)
        #expect(PolicyGroup(name: "PRIVATE") == .private)
        #expect(PolicyGroup(name: "intranet") == nil)
        #expect(PolicyGroup(name: "") == nil)
    }
}

struct PolicyEvaluationTests {
    func decide(
        _ policy: Policy, _ address: String, _ proto: PolicyProtocol = .tcp, _ port: UInt16? = 443,
        alias: Bool = false, direction: PolicyDirection = .egress
    ) -> PolicyDecision {
        policy.evaluate(direction: direction, destination: ip(address), isHostAlias: alias, protocol: proto, port: port)
    }

    @Test func hostOnlyProfile() throws {
        let p = try Policy.profile(named: "host-only")
        #expect(decide(p, "10.0.2.2", .tcp, 8080, alias: true) == PolicyDecision(action: .allow, source: .rule(0)))
        #expect(decide(p, "10.0.2.2", .udp, 53, alias: true) == PolicyDecision(action: .allow, source: .rule(1)))
        #expect(decide(p, "fd00::2", .icmp, nil, alias: true) == PolicyDecision(action: .allow, source: .rule(2)))
        // The same address, not as the alias, is just another private address.
        #expect(decide(p, "10.0.2.2", .tcp, 8080) == PolicyDecision(action: .deny, source: .defaultAction))
        #expect(decide(p, "8.8.8.8", .udp, 53) == PolicyDecision(action: .deny, source: .defaultAction))
        #expect(decide(p, "2606:4700::1111", .tcp, 443).action == .deny)
        #expect(decide(p, "127.0.0.1", .tcp, 22, direction: .ingress).isAllowed)
    }

    @Test func publicProfile() throws {
        let p = try Policy.profile(named: "public")
        #expect(decide(p, "10.0.2.2", alias: true) == PolicyDecision(action: .allow, source: .rule(0)))
        #expect(decide(p, "8.8.8.8", .udp, 53) == PolicyDecision(action: .allow, source: .rule(6)))
        #expect(decide(p, "2606:4700::1111", .tcp, 443) == PolicyDecision(action: .allow, source: .rule(6)))
        #expect(decide(p, "169.254.169.254", .tcp, 80) == PolicyDecision(action: .deny, source: .rule(1)))
        #expect(decide(p, "fd00:ec2::254", .tcp, 80) == PolicyDecision(action: .deny, source: .rule(1)))
        #expect(decide(p, "::ffff:169.254.169.254", .tcp, 80) == PolicyDecision(action: .deny, source: .rule(1)))
        #expect(decide(p, "10.1.2.3") == PolicyDecision(action: .deny, source: .rule(2)))
        #expect(decide(p, "100.64.0.1") == PolicyDecision(action: .deny, source: .rule(2)))
        #expect(decide(p, "fd12::1") == PolicyDecision(action: .deny, source: .rule(2)))
        #expect(decide(p, "169.254.1.1") == PolicyDecision(action: .deny, source: .rule(3)))
        #expect(decide(p, "fe80::1") == PolicyDecision(action: .deny, source: .rule(3)))
        #expect(decide(p, "127.0.0.1") == PolicyDecision(action: .deny, source: .rule(4)))
        #expect(decide(p, "::1") == PolicyDecision(action: .deny, source: .rule(4)))
        #expect(decide(p, "224.0.0.251", .udp, 5353) == PolicyDecision(action: .deny, source: .rule(5)))
        #expect(decide(p, "255.255.255.255", .udp, 67) == PolicyDecision(action: .deny, source: .rule(5)))
        #expect(decide(p, "192.0.2.1") == PolicyDecision(action: .deny, source: .defaultAction))
        #expect(decide(p, "2001:db8::1") == PolicyDecision(action: .deny, source: .defaultAction))
        #expect(decide(p, "0.0.0.0") == PolicyDecision(action: .deny, source: .defaultAction))
        #expect(decide(p, "10.1.2.3", direction: .ingress).isAllowed)
    }

    @Test func openProfile() throws {
        let p = try Policy.profile(named: "open")
        for a in ["169.254.169.254", "10.0.0.1", "8.8.8.8", "::1", "ff02::1", "192.0.2.1"] {
            #expect(decide(p, a) == PolicyDecision(action: .allow, source: .defaultAction))
        }
    }

    @Test func profileNames() throws {
        for name in Policy.profileNames { _ = try Policy.profile(named: name) }
        #expect(try Policy.profile(named: "PUBLIC") == Policy.profile(named: "public"))
        let error = #expect(throws: PolicyError.self) { try Policy.profile(named: "strict") }
        #expect(error?.code == .unknownProfile)
        #expect(error?.token == "strict")
        #expect(error?.description == "unknown policy profile \"strict\"; valid profiles: host-only, public, open")
    }

    @Test func firstMatchWins() throws {
        let allowFirst = try Policy(
            parsing: ["allow egress tcp 10.0.0.0/8 ports 443", "deny egress any 10.0.0.0/8"], default: .allow
        )
        #expect(decide(allowFirst, "10.1.1.1", .tcp, 443) == PolicyDecision(action: .allow, source: .rule(0)))
        #expect(decide(allowFirst, "10.1.1.1", .tcp, 80) == PolicyDecision(action: .deny, source: .rule(1)))
        #expect(decide(allowFirst, "10.1.1.1", .udp, 443) == PolicyDecision(action: .deny, source: .rule(1)))
        #expect(decide(allowFirst, "11.1.1.1", .tcp, 80) == PolicyDecision(action: .allow, source: .defaultAction))

        let denyFirst = Policy(rules: Array(allowFirst.rules.reversed()), default: .allow)
        #expect(decide(denyFirst, "10.1.1.1", .tcp, 443) == PolicyDecision(action: .deny, source: .rule(0)))
    }

    @Test(arguments: [
        (UInt16(79), false), (80, true), (81, false), (442, false), (443, true), (444, false),
        (999, false), (1000, true), (1500, true), (2000, true), (2001, false), (0, false), (65535, false),
    ])
    func portRanges(port: UInt16, allowed: Bool) throws {
        let p = try Policy(parsing: ["allow egress any any ports 80,443,1000-2000"], default: .deny)
        #expect(decide(p, "8.8.8.8", .tcp, port).isAllowed == allowed)
        #expect(decide(p, "8.8.8.8", .udp, port).isAllowed == allowed)
    }

    @Test func portsNeverMatchPortlessFlows() throws {
        let p = try Policy(parsing: ["allow egress any any ports 0-65535"], default: .deny)
        #expect(decide(p, "8.8.8.8", .icmp, nil).action == .deny)
        #expect(decide(p, "8.8.8.8", .tcp, 0).action == .allow)
        #expect(decide(p, "8.8.8.8", .tcp, 65535).action == .allow)
    }

    @Test func protocols() throws {
        let p = try Policy(parsing: ["allow egress tcp any", "allow egress icmp any", "deny egress udp any"], default: .allow)
        #expect(decide(p, "8.8.8.8", .tcp) == PolicyDecision(action: .allow, source: .rule(0)))
        #expect(decide(p, "8.8.8.8", .icmp, nil) == PolicyDecision(action: .allow, source: .rule(1)))
        #expect(decide(p, "8.8.8.8", .udp) == PolicyDecision(action: .deny, source: .rule(2)))
        // A rule for one protocol does not match a flow given as `any`; a rule for `any` does.
        #expect(decide(p, "8.8.8.8", .any) == PolicyDecision(action: .allow, source: .defaultAction))
        let q = try Policy(parsing: ["deny egress any any"], default: .allow)
        for proto in PolicyProtocol.allCases { #expect(decide(q, "8.8.8.8", proto).action == .deny) }
        #expect(PolicyProtocol(ipProtocol: 6) == .tcp)
        #expect(PolicyProtocol(ipProtocol: 17) == .udp)
        #expect(PolicyProtocol(ipProtocol: 1) == .icmp)
        #expect(PolicyProtocol(ipProtocol: 58) == .icmp)
        #expect(PolicyProtocol(ipProtocol: 132) == nil)
    }

    @Test func directions() throws {
        let p = try Policy(parsing: ["deny ingress tcp any ports 22", "allow egress any any"], default: .deny)
        #expect(decide(p, "192.168.1.5", .tcp, 22, direction: .ingress) == PolicyDecision(action: .deny, source: .rule(0)))
        #expect(decide(p, "192.168.1.5", .tcp, 22) == PolicyDecision(action: .allow, source: .rule(1)))
        #expect(decide(p, "192.168.1.5", .tcp, 80, direction: .ingress) == PolicyDecision(action: .deny, source: .defaultAction))
    }

    @Test func sandboxRulesAloneDecideFlowsToPublishedPorts() throws {
        let p = try Policy(
            parsing: [
                "allow egress any any", "deny egress tcp sandbox:web ports 81", "allow egress tcp sandbox:web ports 80,81",
                "allow egress udp sandbox:dns",
            ], default: .allow)
        #expect(p.evaluate(reaching: "web", guestPort: 80, protocol: .tcp) == PolicyDecision(action: .allow, source: .rule(2)))
        #expect(p.evaluate(reaching: "web", guestPort: 81, protocol: .tcp) == PolicyDecision(action: .deny, source: .rule(1)))
        // Neither `any` nor the policy's default allows them: an unnamed sandbox, port or protocol is denied.
        let denied = PolicyDecision(action: .deny, source: .defaultAction)
        #expect(p.evaluate(reaching: "web", guestPort: 8080, protocol: .tcp) == denied)
        #expect(p.evaluate(reaching: "web", guestPort: 80, protocol: .udp) == denied)
        #expect(p.evaluate(reaching: "db", guestPort: 80, protocol: .tcp) == denied)
        #expect(p.evaluate(reaching: "dns", guestPort: 5353, protocol: .udp) == PolicyDecision(action: .allow, source: .rule(3)))
        // And a sandbox rule covers no ordinary destination.
        let only = try Policy(parsing: ["allow egress any sandbox:web"], default: .deny)
        #expect(decide(only, "127.0.0.1", .tcp, 80).action == .deny)
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.255.255.255", true), ("10.0.0.0/8", "11.0.0.0", false), ("10.0.0.0/8", "9.255.255.255", false),
        ("0.0.0.0/0", "255.255.255.255", true), ("0.0.0.0/0", "::1", false), ("::/0", "::1", true), ("::/0", "1.2.3.4", false),
        ("192.0.2.7", "192.0.2.7", true), ("192.0.2.7", "192.0.2.6", false), ("192.0.2.6/31", "192.0.2.7", true),
        ("fd00::/64", "fd00::ffff:ffff:ffff:ffff", true), ("fd00::/64", "fd00:0:0:1::", false),
        ("fd00::/65", "fd00::7fff:ffff:ffff:ffff", true), ("fd00::/65", "fd00::8000:0:0:0", false),
        ("fd00::/127", "fd00::1", true), ("fd00::/127", "fd00::2", false),
        ("fd00::1", "fd00::1", true), ("fd00::1", "fd00::", false),
        ("8000::/1", "ffff::", true), ("8000::/1", "7fff::", false),
        // A mapped destination is its IPv4 address; a mapped block is an IPv4 block.
        ("10.0.0.0/8", "::ffff:10.1.2.3", true), ("::ffff:10.0.0.0/104", "10.1.2.3", true),
    ])
    func cidrMatching(block: String, address: String, matches: Bool) throws {
        let p = try Policy(parsing: ["deny egress any \(block)"], default: .allow)
        #expect(decide(p, address).action == (matches ? .deny : .allow), "\(address) in \(block)")
    }
}

struct PolicyTextTests {
    @Test(arguments: [
        "allow egress tcp 10.0.0.0/8 ports 80,443",
        "deny egress any group:metadata",
        "allow egress udp group:public ports 1000-2000",
        "allow egress icmp group:host-alias",
        "deny ingress tcp any ports 22,8000-8100,9000",
        "allow egress any 192.0.2.7",
        "deny egress tcp fd00:ec2::/32 ports 0-65535",
        "allow egress any fd00::1",
        "deny egress any ::/0",
        "allow egress udp group:link-local ports 5353",
        "allow egress tcp sandbox:web ports 80",
        "deny egress any sandbox:pp-1_x",
    ])
    func roundTrip(text: String) throws {
        let rule = try PolicyRule(parsing: text)
        #expect(rule.description == text)
        #expect(try PolicyRule(parsing: rule.description) == rule)
        #expect(PolicyRule(text) == rule)
    }

    @Test func parsedFields() throws {
        let rule = try PolicyRule(parsing: "  ALLOW  Egress\tTCP 10.0.0.0/8 ports 80,443  # web ")
        let expected = PolicyRule(
            .allow, .egress, protocol: .tcp, destination: .cidr(ip("10.0.0.0"), prefixLength: 8), ports: [80...80, 443...443]
        )
        #expect(rule == expected)
        #expect(rule.description == "allow egress tcp 10.0.0.0/8 ports 80,443")
        #expect(try PolicyRule(parsing: "deny egress any 10.0.0.1/32").description == "deny egress any 10.0.0.1")
        #expect(try PolicyRule(parsing: "deny egress any group:hostAlias").destination == .group(.hostAlias))
        let mapped = try PolicyRule(parsing: "deny egress any ::ffff:10.0.0.0/104")
        #expect(mapped.destination == .cidr(ip("10.0.0.0"), prefixLength: 8))
    }

    @Test(arguments: [
        ("", nil, "empty rule"),
        ("permit egress tcp any", "permit", "unknown action \"permit\" (expected one of: allow, deny)"),
        ("allow", nil, "missing direction (egress or ingress) after \"allow\""),
        ("allow outbound tcp any", "outbound", "unknown direction \"outbound\" (expected one of: egress, ingress)"),
        ("allow egress", nil, "missing protocol"),
        ("allow egress sctp any", "sctp", "unknown protocol \"sctp\" (expected one of: tcp, udp, icmp, any)"),
        ("allow egress tcp", nil, "missing destination"),
        (
            "allow egress tcp group:intranet", "group:intranet",
            "unknown group \"intranet\" (expected one of: host-alias, loopback, private, link-local, metadata, multicast, public)"
        ),
        ("allow egress tcp example.com", "example.com", "is not any, group:NAME"),
        ("allow egress tcp 10.0.0.256/8", "10.0.0.256/8", "is not any"),
        ("allow egress tcp 10.0.0.0/33", "10.0.0.0/33", "bad prefix length \"33\""),
        ("allow egress tcp fd00::/129", "fd00::/129", "expected 0 to 128"),
        ("allow egress tcp 10.0.0.0/", "10.0.0.0/", "bad prefix length"),
        ("allow egress tcp 10.0.0.0/-1", "10.0.0.0/-1", "bad prefix length"),
        ("allow egress tcp 10.1.2.3/8", "10.1.2.3/8", "has host bits set; the block is 10.0.0.0/8"),
        ("allow egress tcp fd00::1/64", "fd00::1/64", "the block is fd00::/64"),
        ("allow egress tcp any port 80", "port", "unexpected \"port\" after the destination"),
        ("allow egress tcp any ports", nil, "missing port list"),
        ("allow egress tcp any ports 80,", "80,", "bad port \"\" in \"80,\""),
        ("allow egress tcp any ports 65536", "65536", "bad port \"65536\""),
        ("allow egress tcp any ports http", "http", "bad port \"http\""),
        ("allow egress tcp any ports 2000-1000", "2000-1000", "runs backwards; write 1000-2000"),
        ("allow egress tcp any ports 1-2-3", "1-2-3", "bad port \"2-3\""),
        ("allow egress tcp any ports 80, 443", "443", "unexpected \"443\" after the port list"),
        ("allow egress icmp any ports 80", "ports", "icmp has no ports"),
        ("allow ingress tcp sandbox:web", "sandbox:web", "sandbox destinations apply to egress only"),
        ("allow egress tcp sandbox:", "sandbox:", "needs a sandbox ID"),
    ] as [(String, String?, String)])
    func errors(text: String, token: String?, reason: String) {
        let error = #expect(throws: PolicyError.self) { try PolicyRule(parsing: text, line: 7) }
        #expect(error?.code == .badRule)
        #expect(error?.line == 7)
        #expect(error?.token == token)
        #expect(error?.reason.contains(reason) == true, "\(error?.reason ?? "no error")")
        #expect(error?.description.hasPrefix("policy line 7: ") == true)
        #expect(PolicyRule(text) == nil)
    }

    @Test func policyFromLines() throws {
        let text = """
            # egress for the build farm
            allow egress tcp group:host-alias

            deny egress any group:metadata   # never
            allow egress udp group:public ports 53
            """
        let p = try Policy(parsing: text, default: .deny)
        #expect(p.rules.count == 3)
        #expect(p.rules.map(\.description) == [
            "allow egress tcp group:host-alias", "deny egress any group:metadata", "allow egress udp group:public ports 53",
        ])
        #expect(p.description.hasSuffix("# default: deny"))
        #expect(try Policy(parsing: p.description, default: .deny) == p)

        let crlf = try Policy(parsing: "allow egress tcp any\r\n\r\ndeny egress udp any\r\n", default: .deny)
        #expect(crlf.rules.map(\.description) == ["allow egress tcp any", "deny egress udp any"])
        let crlfError = #expect(throws: PolicyError.self) {
            try Policy(parsing: "allow egress tcp any\r\n\r\ndeny egress udp anywhere\r\n", default: .deny)
        }
        #expect(crlfError?.line == 3 && crlfError?.token == "anywhere")

        let bad = ["allow egress tcp any", "", "# fine", "deny egress tcp 10.0.0.0/8 ports 22-"]
        let error = #expect(throws: PolicyError.self) { try Policy(parsing: bad, default: .deny) }
        #expect(error?.line == 4)
        #expect(error?.token == "22-")
        #expect(error?.description == "policy line 4: bad port \"\" in \"22-\" (ports are 0 to 65535)")
    }

    @Test func decisionDescriptions() {
        #expect(PolicyDecision(action: .deny, source: .rule(2)).description == "deny by rule 3")
        #expect(PolicyDecision(action: .allow, source: .defaultAction).description == "allow by default")
        #expect(PolicyDecision(action: .deny, source: .rule(2)).ruleIndex == 2)
        #expect(PolicyDecision(action: .deny, source: .defaultAction).ruleIndex == nil)
    }
}
