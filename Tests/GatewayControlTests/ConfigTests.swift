// The config file: a full file read into every setting, and each kind of mistake reported with
// its file, line and key.
import Gateway
import GatewayControl
import Foundation
import Logging
import Testing
import Wire

@Suite struct ConfigTests {
    static let full = """
        # gatewayd.toml
        control = "/run/gw/control.sock"   # comment after a value
        control-mode = "0600"
        state-dir = "/var/lib/gw"
        shards = 3
        pin-shards = false
        busy-poll-us = 20
        busy-poll-hit-percent = 60
        shard-nice = -3
        egress-policy = "ci"
        log-format = "json"
        log-level = "debug"
        metrics-address = "127.0.0.1:9464"

        [addresses]
        ipv4-pool = "10.99.0.0/16"
        ipv4-sandbox-prefix = 29
        ipv6-pool = "fd12:3400::/48"

        [ports]
        range = "40000-40100"
        bind = "::1"
        max-inbound-connections = 64

        [limits]
        tcp-relays = 2_048
        udp-sessions = 0x40
        connect-timeout-ms = 2500
        udp-idle-timeout-s = 30

        [dns]
        upstreams = [
            "127.0.0.53",      # systemd-resolved
            "[::1]:5353",
            '9.9.9.9:53',
        ]
        local-names = ["host.gateway.internal", "h\\u00e9te.internal"]
        denied-names = ["ads.example", "Tracker.Example.", "_dmarc.example", "."]

        [policies.ci]
        extends = "host-only"
        rules = ["allow egress tcp 203.0.113.0/24 ports 443", "deny egress udp any"]
        default = "deny"
        denied-names = ["builds.internal"]
        """

    @Test func memoryBudgetsReachTheGatewayAndItsPolicies() throws {
        var c = DaemonConfiguration()
        try c.apply(
            toml: """
                [memory]
                sandbox-budget-mib = 8
                global-budget-mib = 512
                chunk-kib = 32
                trim-interval-ms = 250
                [policies.big]
                extends = "host-only"
                memory-budget-mib = 96
                """, file: "gw.toml")
        let g = c.gatewayConfiguration
        #expect(g.memoryBudget == 8 << 20)
        #expect(g.globalMemoryBudget == 512 << 20)
        #expect(g.bufferChunkSize == 32 << 10)
        #expect(g.memoryTrimInterval == .milliseconds(250))
        #expect(try g.policy(named: "big").memoryBudget == 96 << 20)
        #expect(try g.policy(named: "host-only").memoryBudget == nil)
        var bad = DaemonConfiguration()
        #expect(throws: ConfigError.self) { try bad.apply(toml: "[memory]\nchunk-kib = 24\n", file: "gw.toml") }
        #expect(throws: ConfigError.self) { try bad.apply(toml: "[memory]\nsandbox-budget-mib = 0\n", file: "gw.toml") }
    }

    @Test func rateLimitsReachThePolicyAndTheLimits() throws {
        var c = DaemonConfiguration()
        try c.apply(
            toml: """
                [limits]
                half-open-timeout-ms = 1500
                connection-rate = 50
                [policies.ci]
                extends = "host-only"
                rate-limit = "100mbit"
                rate-limit-down = "1gbit"
                packet-rate = 5000
                connection-rate = 20
                max-flows = 64
                """, file: "gw.toml")
        let g = c.gatewayConfiguration
        #expect(g.limits.halfOpenTimeout == .milliseconds(1500))
        #expect(g.limits.connectionRate == 50)
        let r = try g.policy(named: "ci").rateLimits
        #expect(r == RateLimits(
            toHostBytesPerSecond: 12_500_000, fromHostBytesPerSecond: 125_000_000, packetsPerSecond: 5000,
            connectionsPerSecond: 20, maxFlows: 64))
        #expect(try g.policy(named: "host-only").rateLimits.isEmpty)
        var bad = DaemonConfiguration()
        let error = #expect(throws: ConfigError.self) {
            try bad.apply(toml: "[policies.x]\nrate-limit = \"100 parsecs\"\n", file: "gw.toml")
        }
        #expect(error?.description.contains("e.g. \"100mbit\"") == true, "\(String(describing: error))")
        #expect(throws: ConfigError.self) { try bad.apply(toml: "[policies.x]\nmax-flows = 0\n", file: "gw.toml") }
    }

    @Test func framePolicingLimitsAreReadAndBounded() throws {
        #expect(DaemonConfiguration().gatewayConfiguration.limits.suspectFrameRate == 5000)
        #expect(DaemonConfiguration().gatewayConfiguration.limits.framesPerTurn == 128)
        var c = DaemonConfiguration()
        try c.apply(toml: "[limits]\nsuspect-frame-rate = 0\nframes-per-turn = 16\n", file: "gw.toml")
        #expect(c.gatewayConfiguration.limits.suspectFrameRate == 0)
        #expect(c.gatewayConfiguration.limits.framesPerTurn == 16)
        var bad = DaemonConfiguration()
        #expect(throws: ConfigError.self) { try bad.apply(toml: "[limits]\nframes-per-turn = 0\n", file: "gw.toml") }
        #expect(throws: ConfigError.self) { try bad.apply(toml: "[limits]\nframes-per-turn = 4096\n", file: "gw.toml") }
        #expect(throws: ConfigError.self) { try bad.apply(toml: "[limits]\nsuspect-frame-rate = -1\n", file: "gw.toml") }
    }

    @Test func anAttachSetsRateLimitsOverItsPolicys() throws {
        var request = AttachRequest(id: "a", netns: "n")
        request.rateLimit = "10mbit"
        request.rateLimitUp = "1mbit"
        request.maxFlows = 5
        let spec = try request.spec()
        #expect(spec.rateLimits == RateLimits(toHostBytesPerSecond: 125_000, fromHostBytesPerSecond: 1_250_000, maxFlows: 5))
        // Kept in the state file as the request: decoding it gives the same limits.
        let again = try JSONDecoder().decode(AttachRequest.self, from: JSONEncoder().encode(request))
        #expect(try again.spec().rateLimits == spec.rateLimits)
        request.rateLimitDown = "lots"
        let error = #expect(throws: ControlError.self) { try request.spec() }
        #expect(error?.message.contains("rateLimitDown 'lots'") == true)
    }

    @Test func fullFileSetsEverything() throws {
        var c = DaemonConfiguration()
        try c.apply(toml: Self.full, file: "gw.toml")
        #expect(c.controlPath == "/run/gw/control.sock")
        #expect(c.controlMode == 0o600)
        #expect(c.stateDirectory == "/var/lib/gw")
        #expect(c.shards == 3)
        #expect(c.pinShards == false)
        #expect(c.egressPolicy == "ci")
        #expect(c.logFormat == .json)
        #expect(c.logLevel == .debug)
        #expect(c.metricsAddress == DaemonConfiguration.HostPort(host: "127.0.0.1", port: 9464))
        #expect(c.addresses.ipv4Pool == IPv4Address(10, 99, 0, 0))
        #expect(c.addresses.ipv4PoolPrefix == 16)
        #expect(c.addresses.ipv4SandboxPrefix == 29)
        #expect(c.addresses.ipv6Pool == IPv6Address("fd12:3400::"))
        #expect(c.publishedPortRange == 40000...40100)
        #expect(c.publishBindAddress == "::1")
        #expect(c.maxInboundConnections == 64)
        #expect(c.limits.maxTCPRelays == 2048)
        #expect(c.limits.maxUDPSessions == 64)
        #expect(c.limits.connectTimeout == .milliseconds(2500))
        #expect(c.limits.udpIdleTimeout == .seconds(30))
        #expect(c.dnsUpstreams.map(\.description) == ["127.0.0.53:53", "[::1]:5353", "9.9.9.9:53"])
        #expect(c.dnsLocalNames == ["host.gateway.internal", "h\u{e9}te.internal"])
        let ci = try #require(c.policies["ci"])
        // The file's rules first, then host-only's, then the default.
        #expect(ci.rules.count == 2 + (try Policy.profile(named: "host-only")).rules.count)
        #expect(ci.rules[0] == PolicyRule("allow egress tcp 203.0.113.0/24 ports 443"))
        #expect(ci.defaultAction == .deny)
        let g = c.gatewayConfiguration
        #expect(g.shards == 3 && g.pinShards == false && g.defaultPolicy == "ci")
        #expect(g.busyPoll == .microseconds(20) && g.busyPollHitPercent == 60 && g.shardNice == -3)
        #expect(g.publishing.defaultHostIP == IPAddress("::1"))
        #expect(c.dnsConfiguration.upstreams.count == 3)
        // Denied names, global and the policy's, and both handed to the gateway.
        #expect(ci.deniedNames == ["builds.internal"])
        #expect(c.dnsDeniedNames == ["ads.example", "Tracker.Example.", "_dmarc.example", "."])
        #expect(g.policies == c.policies && g.deniedNames == c.dnsDeniedNames)
        #expect(try g.policy(named: "ci") == ci)
    }

    @Test func emptyFileKeepsDefaults() throws {
        var c = DaemonConfiguration()
        try c.apply(toml: "\n# nothing\n\n", file: "empty.toml")
        #expect(c.controlPath == "/run/gatewayd/control.sock")
        #expect(c.controlMode == 0o660)
        #expect(c.egressPolicy == "host-only")
        #expect(c.gatewayConfiguration.busyPoll == .microseconds(50))
        #expect(c.gatewayConfiguration.busyPollHitPercent == 75)
        #expect(c.gatewayConfiguration.shardNice == nil)
        #expect(c.sweepPrefixes == ["gwt-", "gwb-", "gwv-", "gwe-"])
    }

    struct Mistake: Sendable, CustomStringConvertible {
        var text: String
        var line: Int
        var key: String?
        var says: String
        var description: String { says }
    }

    static let mistakes: [Mistake] = [
        Mistake(text: "shards = 2\nshard = 3\n", line: 2, key: "shard", says: "did you mean 'shards'?"),
        Mistake(
            text: "[addresses]\nipv4-pol = \"10.0.0.0/8\"\n", line: 2, key: "addresses.ipv4-pol",
            says: "did you mean 'ipv4-pool'?"),
        Mistake(text: "\n\nshards = \"two\"\n", line: 3, key: "shards", says: "expected an integer, found a string"),
        Mistake(text: "shards = 0\n", line: 1, key: "shards", says: "0 is out of range: use 1-1024"),
        Mistake(text: "busy-poll-us = -1\n", line: 1, key: "busy-poll-us", says: "-1 is out of range: use 0-10000"),
        Mistake(
            text: "busy-poll-hit-percent = 101\n", line: 1, key: "busy-poll-hit-percent",
            says: "101 is out of range: use 0-100"),
        Mistake(text: "shard-nice = -21\n", line: 1, key: "shard-nice", says: "-21 is out of range: use -20-19"),
        Mistake(
            text: "[addresses]\nipv4-pool = \"10.88.1.0/16\"\n", line: 2, key: "addresses.ipv4-pool",
            says: "not an IPv4 network"),
        Mistake(
            text: "[addresses]\nipv6-pool = \"fd00::/56\"\n", line: 2, key: "addresses.ipv6-pool",
            says: "not an IPv6 /48"),
        Mistake(
            text: "[addresses]\nipv4-pool = \"10.0.0.0/24\"\nipv4-sandbox-prefix = 20\n", line: 3,
            key: "addresses.ipv4-sandbox-prefix", says: "does not fit in a /24 pool"),
        Mistake(text: "[ports]\nrange = \"5000-4000\"\n", line: 2, key: "ports.range", says: "is not a port range"),
        Mistake(
            text: "[dns]\nupstreams = [\"resolver.example\"]\n", line: 2, key: "dns.upstreams",
            says: "not a resolver address"),
        Mistake(text: "[dns]\nupstreams = [53]\n", line: 2, key: "dns.upstreams", says: "found an integer in it"),
        Mistake(
            text: "[policies.x]\nrules = [\"allow egress tcp any ports 99999\"]\n", line: 2, key: "policies.x.rules",
            says: "rule 1"),
        Mistake(text: "[policies.open]\nrules = []\n", line: 1, key: "policies.open", says: "built-in profile"),
        Mistake(text: "[policies.Public]\nrules = []\n", line: 1, key: "policies.Public", says: "built-in profile"),
        Mistake(
            text: "[dns]\nupstreams = []\ndenied-names = [\"ok.test\", \"ads example.com\"]\n", line: 3,
            key: "dns.denied-names", says: "'ads example.com' is not a DNS name"),
        Mistake(text: "[dns]\ndenied-names = [\"a..b\"]\n", line: 2, key: "dns.denied-names", says: "not a DNS name"),
        Mistake(text: "[dns]\ndenied-names = [\"\"]\n", line: 2, key: "dns.denied-names", says: "not a DNS name"),
        Mistake(text: "[dns]\ndenied-names = [\".x\"]\n", line: 2, key: "dns.denied-names", says: "not a DNS name"),
        Mistake(
            text: "[dns]\ndenied-names = [\"\(String(repeating: "a", count: 64)).test\"]\n", line: 2,
            key: "dns.denied-names", says: "not a DNS name"),
        Mistake(
            text: "[dns]\ndenied-names = [\"\(Array(repeating: "abcdefg", count: 32).joined(separator: "."))\"]\n",
            line: 2, key: "dns.denied-names", says: "not a DNS name"),
        Mistake(text: "[dns]\ndenied-names = [\"h\u{e9}te.test\"]\n", line: 2, key: "dns.denied-names", says: "xn--"),
        Mistake(text: "[dns]\ndenied-names = \"ads.test\"\n", line: 2, key: "dns.denied-names", says: "an array of strings"),
        Mistake(text: "[dns]\ndenied-name = []\n", line: 2, key: "dns.denied-name", says: "did you mean 'denied-names'?"),
        Mistake(
            text: "[policies.ci]\nrules = []\n\ndenied-names = [\"ok.test\", \"bad/name\"]\n", line: 4,
            key: "policies.ci.denied-names", says: "'bad/name' is not a DNS name"),
        Mistake(
            text: "[policies.ci]\ndenied-names = [1]\n", line: 2, key: "policies.ci.denied-names",
            says: "found an integer in it"),
        Mistake(text: "egress-policy = \"strict\"\n", line: 1, key: "egress-policy", says: "unknown policy 'strict'"),
        Mistake(text: "log-format = \"xml\"\n", line: 1, key: "log-format", says: "not one of human, json"),
        Mistake(text: "metrics-address = \"9464\"\n", line: 1, key: "metrics-address", says: "not HOST:PORT"),
        Mistake(text: "control = \"relative.sock\"\n", line: 1, key: "control", says: "not an absolute path"),
        Mistake(text: "sweep-prefixes = [\"eth\"]\n", line: 1, key: "sweep-prefixes", says: "does not start with 'gw'"),
        Mistake(text: "addresses = 3\n", line: 1, key: "addresses", says: "expected a table"),
        // Syntax errors carry the line but no key.
        Mistake(text: "shards = 2\n\n[addresses\n", line: 3, key: nil, says: "expected ']'"),
        Mistake(text: "shards 2\n", line: 1, key: nil, says: "expected '='"),
        Mistake(text: "shards = 2\nshards = 3\n", line: 2, key: nil, says: "set twice (first on line 1)"),
        Mistake(text: "[dns]\n[dns]\n", line: 2, key: nil, says: "defined twice"),
        Mistake(text: "log-level = \"info\" shards = 2\n", line: 1, key: nil, says: "one key = value per line"),
        Mistake(text: "x = 1.5\n", line: 1, key: nil, says: "floats and dates"),
        Mistake(text: "x = yes\n", line: 1, key: nil, says: "quote strings"),
        Mistake(text: "x = \"open\n", line: 1, key: nil, says: "string not closed"),
        Mistake(text: "x = [1, 2\n\n", line: 3, key: nil, says: "array not closed"),
        Mistake(text: "x = {a = 1}\n", line: 1, key: nil, says: "inline tables"),
        Mistake(text: "a.b = 1\n", line: 1, key: nil, says: "dotted keys"),
        Mistake(text: "x = \"\\q\"\n", line: 1, key: nil, says: "unknown escape"),
        Mistake(text: "x = 007\n", line: 1, key: nil, says: "no leading zeros"),
        Mistake(
            text: "x = " + String(repeating: "[", count: 40) + "\n", line: 1, key: nil, says: "nested more than 16"),
    ]

    @Test(arguments: mistakes) func mistakeNamesLineAndKey(_ m: Mistake) {
        var c = DaemonConfiguration()
        #expect {
            try c.apply(toml: m.text, file: "bad.toml")
        } throws: { error in
            guard let e = error as? ConfigError else { return false }
            #expect(e.file == "bad.toml")
            #expect(e.line == m.line, "\(e)")
            #expect(e.key == m.key, "\(e)")
            #expect(e.reason.contains(m.says), "\(e)")
            #expect(e.description.hasPrefix("bad.toml:\(m.line): "))
            return true
        }
    }

    @Test func sweepTakesOnlyTheNamesThisDaemonMakes() {
        var c = DaemonConfiguration()
        for name in ["gwv-0", "gwb-12", "gwt-3", "gwe-9999"] { #expect(c.makesDevice(named: name), "\(name)") }
        for name in ["gwv-", "gwv-a1", "gwv-1x", "gwk-1", "eth0", "gwv-ci-1"] { #expect(!c.makesDevice(named: name), "\(name)") }
        c.hostDeviceTag = "ci"
        #expect(c.makesDevice(named: "gwv-ci-1") && c.makesDevice(named: "gwb-ci-40"))
        for name in ["gwv-1", "gwv-cix-1", "gwv-ci-", "gwv-ci1"] { #expect(!c.makesDevice(named: name), "\(name)") }
    }

    @Test func unreadableFileIsReported() {
        #expect {
            _ = try DaemonConfiguration.load(path: "/nonexistent/gatewayd.toml")
        } throws: { error in
            (error as? ConfigError)?.description.contains("cannot read the config file") == true
        }
    }

    @Test func tomlArraysOfTablesAndLiterals() throws {
        let doc = try TOMLDocument(
            parsing: """
                [[rule]]
                name = 'C:\\path'
                [[rule]]
                name = "two"
                n = -1_000
                mask = 0o755
                bits = 0b101
                """)
        guard case .tableArray(let rules)? = doc.root["rule"]?.value else {
            Issue.record("no array of tables")
            return
        }
        #expect(rules.count == 2)
        #expect(rules[0]["name"]?.value == .string("C:\\path"))
        #expect(rules[1]["n"]?.value == .integer(-1000))
        #expect(rules[1]["mask"]?.value == .integer(0o755))
        #expect(rules[1]["bits"]?.value == .integer(5))
        #expect(rules[1]["n"]?.line == 5)
    }

    @Test func hostPortForms() {
        #expect(DaemonConfiguration.HostPort("127.0.0.1:9464") == .init(host: "127.0.0.1", port: 9464))
        #expect(DaemonConfiguration.HostPort("[::1]:80") == .init(host: "::1", port: 80))
        #expect(DaemonConfiguration.HostPort("localhost:80")?.host == "localhost")
        for bad in ["127.0.0.1", "::1:80", "[::1]80", "[nothost]:80", "h:0", "h:65536", ":80", "h:x"] {
            #expect(DaemonConfiguration.HostPort(bad) == nil, "\(bad)")
        }
    }
}
