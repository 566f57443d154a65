// Domain rules: the pattern's grammar and matching, the per-sandbox pin table (TTL floor and
// ceiling, capacity, expiry), and policy decisions that allow by name only through a live pin.
import Gateway
import Testing
import Wire

private func ip(_ text: String) -> IPAddress {
    guard let a = IPAddress(text) else { fatalError("bad test address \(text)") }
    return a
}

private let second: UInt64 = 1_000_000_000

struct DomainPatternTests {
    @Test func grammar() {
        #expect(DomainPattern("PyPI.org.")?.description == "pypi.org")
        #expect(DomainPattern("*.GitHubUserContent.com")?.description == "*.githubusercontent.com")
        #expect(DomainPattern("_dmarc.example.test") != nil)
        for bad in ["", ".", "*.", "*", "a..b", "a.*.b", "**.a", "a b", "a/b", "ex@mple.test",
                    String(repeating: "a", count: 64) + ".test", String(repeating: "a.", count: 127) + "ab"] {
            #expect(DomainPattern(bad) == nil, "\(bad)")
        }
    }

    @Test func matching() throws {
        let exact = try #require(DomainPattern("pypi.org"))
        #expect(exact.matches("pypi.org"))
        #expect(!exact.matches("files.pypi.org"))
        #expect(!exact.matches("xpypi.org"))
        let wild = try #require(DomainPattern("*.example.org"))
        #expect(wild.matches("a.example.org"))
        #expect(wild.matches("a.b.example.org"))
        #expect(!wild.matches("example.org"))
        #expect(!wild.matches("badexample.org"))
        #expect(!wild.matches("a.example.org.evil.test"))
    }
}

struct DNSPinTableTests {
    @Test func pinLivesForTTLWithFloorAndCeiling() throws {
        var pins = DNSPinTable()
        let pattern = try #require(DomainPattern("allowed.test"))
        pins.record(name: "allowed.test", address: ip("198.18.0.10"), ttl: 1, now: 0)
        // A 1 s TTL still lasts the 60 s floor.
        #expect(pins.name(pinnedTo: ip("198.18.0.10"), matching: pattern, now: 59 * second) == "allowed.test")
        #expect(pins.name(pinnedTo: ip("198.18.0.10"), matching: pattern, now: 60 * second) == nil)
        pins.record(name: "allowed.test", address: ip("198.18.0.11"), ttl: 3600, now: 0)
        #expect(pins.isPinned("allowed.test", to: ip("198.18.0.11"), now: 3599 * second))
        #expect(!pins.isPinned("allowed.test", to: ip("198.18.0.11"), now: 3600 * second))
        // A TTL of years is cut to a day.
        pins.record(name: "allowed.test", address: ip("198.18.0.12"), ttl: .max, now: 0)
        #expect(!pins.isPinned("allowed.test", to: ip("198.18.0.12"), now: 86_400 * second))
        // An IPv4-mapped address is the IPv4 address.
        #expect(pins.isPinned("allowed.test", to: ip("::ffff:198.18.0.11"), now: 0))
        #expect(!pins.isPinned("other.test", to: ip("198.18.0.11"), now: 0))
    }

    @Test func repeatAnswerExtendsAndDoesNotDuplicate() {
        var pins = DNSPinTable()
        pins.record(name: "a.test", address: ip("198.18.0.1"), ttl: 60, now: 0)
        pins.record(name: "a.test", address: ip("198.18.0.1"), ttl: 60, now: 50 * second)
        #expect(pins.count == 1)
        #expect(pins.isPinned("a.test", to: ip("198.18.0.1"), now: 100 * second))
        pins.record(name: "b.test", address: ip("198.18.0.1"), ttl: 60, now: 0)
        #expect(pins.count == 2)
        #expect(Set(pins.names(pinnedTo: ip("198.18.0.1"), now: 70 * second)) == ["a.test"])
    }

    @Test func capacityEvictsTheEarliestToExpire() {
        var pins = DNSPinTable(capacity: 3)
        pins.record(name: "a.test", address: ip("198.18.0.1"), ttl: 300, now: 0)
        pins.record(name: "b.test", address: ip("198.18.0.2"), ttl: 100, now: 0)
        pins.record(name: "c.test", address: ip("198.18.0.3"), ttl: 200, now: 0)
        pins.record(name: "d.test", address: ip("198.18.0.4"), ttl: 400, now: 0)
        #expect(pins.count == 3)
        #expect(pins.evictions == 1)
        #expect(!pins.isPinned("b.test", to: ip("198.18.0.2"), now: 0))
        #expect(pins.isPinned("d.test", to: ip("198.18.0.4"), now: 0))
        // Lapsed pins make room before anything live is evicted.
        pins.record(name: "e.test", address: ip("198.18.0.5"), ttl: 60, now: 250 * second)
        #expect(pins.evictions == 1)
        #expect(pins.isPinned("a.test", to: ip("198.18.0.1"), now: 250 * second))
        #expect(pins.removeExpired(now: 1000 * second) == 3)
        #expect(pins.count == 0)
    }
}

struct DomainPolicyTests {
    static let policy = try! Policy(parsing: """
        deny egress tcp domain:blocked.allowed.test
        allow egress tcp domain:allowed.test ports 80,443
        allow egress tcp domain:*.allowed.test ports 443
        allow egress udp domain:dns.allowed.test ports 53
        """, default: .deny)

    static func decide(
        _ address: String, _ proto: PolicyProtocol = .tcp, port: UInt16? = 443,
        pins: DNSPinTable?, now: UInt64 = 0
    ) -> PolicyDecision {
        Self.policy.evaluate(
            direction: .egress, destination: ip(address), isHostAlias: false, protocol: proto, port: port,
            pins: pins, now: now)
    }

    @Test func allowedOnlyThroughALivePin() {
        var pins = DNSPinTable()
        // Never resolved: the default decides, and says which domain rule lacked a pin.
        let before = Self.decide("198.18.0.10", pins: pins)
        #expect(!before.isAllowed)
        #expect(before.ruleIndex == nil && before.unpinnedDomainRule == 1)
        pins.record(name: "allowed.test", address: ip("198.18.0.10"), ttl: 60, now: 0)
        let after = Self.decide("198.18.0.10", pins: pins)
        #expect(after.isAllowed && after.ruleIndex == 1 && after.name == "allowed.test")
        // Another port, another protocol, another address, no pins at all, a lapsed pin.
        #expect(!Self.decide("198.18.0.10", port: 22, pins: pins).isAllowed)
        #expect(!Self.decide("198.18.0.10", .udp, port: 443, pins: pins).isAllowed)
        #expect(!Self.decide("198.18.0.11", pins: pins).isAllowed)
        #expect(!Self.decide("198.18.0.10", pins: nil).isAllowed)
        #expect(!Self.decide("198.18.0.10", pins: pins, now: 61 * second).isAllowed)
    }

    @Test func firstMatchingRuleWinsAmongDomains() {
        var pins = DNSPinTable()
        pins.record(name: "blocked.allowed.test", address: ip("198.18.0.20"), ttl: 60, now: 0)
        pins.record(name: "cdn.allowed.test", address: ip("198.18.0.21"), ttl: 60, now: 0)
        let blocked = Self.decide("198.18.0.20", pins: pins)
        #expect(!blocked.isAllowed && blocked.ruleIndex == 0)
        let cdn = Self.decide("198.18.0.21", pins: pins)
        #expect(cdn.isAllowed && cdn.ruleIndex == 2 && cdn.name == "cdn.allowed.test")
        // The wildcard rule is for 443 only.
        #expect(!Self.decide("198.18.0.21", port: 80, pins: pins).isAllowed)
    }

    @Test func namesForDNS() {
        #expect(Self.policy.hasDomainRule(covering: "blocked.allowed.test"))
        #expect(Self.policy.hasDomainRule(covering: "x.allowed.test"))
        #expect(!Self.policy.hasDomainRule(covering: "other.test"))
        #expect(Self.policy.allowsName("allowed.test"))
        #expect(Self.policy.allowsName("dns.allowed.test"))
        #expect(!Self.policy.allowsName("other.test"))
        #expect(Self.policy.hasDomainRules)
        #expect(!(try! Policy.profile(named: "public")).hasDomainRules)
    }

    @Test func textRoundTripAndErrors() throws {
        for text in ["allow egress tcp domain:pypi.org ports 443", "deny egress any domain:*.example.test"] {
            let rule = try PolicyRule(parsing: text)
            #expect(rule.description == text)
            #expect(try PolicyRule(parsing: rule.description) == rule)
        }
        #expect(try PolicyRule(parsing: "allow egress tcp DOMAIN:PyPI.Org").destination.domainPattern?.name == "pypi.org")
        let ingress = #expect(throws: PolicyError.self) { try PolicyRule(parsing: "allow ingress tcp domain:a.test") }
        #expect(ingress?.reason.contains("egress only") == true)
        let bad = #expect(throws: PolicyError.self) { try PolicyRule(parsing: "allow egress tcp domain:a..b", line: 4) }
        #expect(bad?.description == "policy line 4: \"a..b\" is not a domain name or *.SUFFIX (such as pypi.org or *.example.org)")
    }
}
