// A sandbox's traffic policy: ordered rules, first match wins, then a default, and the DNS names
// it may not resolve; the named profiles operators start from; reading rules from lines of text.
import Wire

/// Ordered rules and a default action. Evaluated once per new flow (not per packet), on the
/// shard's thread; evaluation allocates nothing.
public struct Policy: Hashable, Sendable, CustomStringConvertible {
    public var rules: [PolicyRule]
    public var defaultAction: PolicyAction
    /// Names (and their subdomains) the gateway's DNS answers with NXDOMAIN for sandboxes under
    /// this policy, on top of `GatewayConfiguration.deniedNames` (see `DNSPolicy`). Names, not
    /// addresses: a guest that knows an address still reaches it if the rules allow it.
    public var deniedNames: [String]
    /// Bytes of TCP buffers each sandbox under this policy may hold; nil: the gateway's default.
    public var memoryBudget: Int? = nil
    /// Which names the gateway's DNS answers for sandboxes under this policy.
    public var dnsMode: DNSMode = .all
    /// What happens to a TCP flow allowed by a domain rule whose first bytes are neither a TLS
    /// ClientHello nor an HTTP/1 request, so no name in them can be checked.
    public var unidentifiedTraffic: PolicyAction = .deny
    /// How fast its sandboxes may move bytes, datagrams and new flows, and how many they may hold.
    public var rateLimits = RateLimits()

    /// Which names a sandbox may resolve through the gateway.
    public enum DNSMode: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
        /// Every name not in `deniedNames` (forwarded upstream).
        case all
        /// Only names an allowing domain rule covers and the gateway's own names; others get
        /// NXDOMAIN and are never forwarded, so DNS cannot carry data out.
        case allowedNames = "allowed-names"

        public var description: String { rawValue }
    }

    public init(rules: [PolicyRule] = [], default defaultAction: PolicyAction, deniedNames: [String] = []) {
        self.rules = rules
        self.defaultAction = defaultAction
        self.deniedNames = deniedNames
    }

    /// Reads one rule per line (see `PolicyRule(parsing:)`); blank lines and `#` comments are
    /// skipped. An error names the 1-based line and the offending token.
    public init<Lines: Sequence>(parsing lines: Lines, default defaultAction: PolicyAction) throws(PolicyError)
    where Lines.Element: StringProtocol {
        var rules: [PolicyRule] = []
        var number = 0
        for line in lines {
            number += 1
            let body = line.prefix { $0 != "#" }
            if body.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { continue }
            rules.append(try PolicyRule(parsing: body, line: number))
        }
        self.init(rules: rules, default: defaultAction)
    }

    /// Reads rules from text with one rule per line (LF or CRLF).
    public init(parsing text: String, default defaultAction: PolicyAction) throws(PolicyError) {
        // "\r\n" is one Character, so split on newlines as such rather than on "\n".
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        try self.init(parsing: lines, default: defaultAction)
    }

    /// Decides a new flow. `destination` is what the guest dialled (egress) or the remote peer
    /// (ingress); `isHostAlias` says whether it is one of the sandbox's gateway addresses, which
    /// stand for the host's loopback; `port` is the destination port (nil for ICMP). A domain rule
    /// covers the flow only when `pins` holds a live answer at `now` for a name it names; without
    /// pins no domain rule matches. `name` narrows domain rules to that one name (the TLS SNI or
    /// HTTP Host a flow's first bytes asked for): a rule then covers the flow only if its pattern
    /// covers `name` and `name` itself is pinned to the destination.
    public func evaluate(
        direction: PolicyDirection, destination: IPAddress, isHostAlias: Bool, protocol flowProtocol: PolicyProtocol,
        port: UInt16?, pins: DNSPinTable? = nil, now: UInt64 = 0, name required: String? = nil
    ) -> PolicyDecision {
        let unwrapped: IPAddress
        if case .v6(let a) = destination, let v4 = a.ipv4Mapped { unwrapped = .v4(v4) } else { unwrapped = destination }
        let groups = PolicyGroup.Membership(of: destination, isHostAlias: isHostAlias)
        var unpinned: Int?
        for i in rules.indices {
            let rule = rules[i]
            guard rule.matches(direction: direction, protocol: flowProtocol, port: port) else { continue }
            if case .domain(let pattern) = rule.destination {
                if let required {
                    if pattern.matches(required), pins?.isPinned(required, to: unwrapped, now: now) == true {
                        return PolicyDecision(action: rule.action, source: .rule(i), name: required)
                    }
                } else if let name = pins?.name(pinnedTo: unwrapped, matching: pattern, now: now) {
                    return PolicyDecision(action: rule.action, source: .rule(i), name: name)
                }
                if unpinned == nil && rule.action == .allow { unpinned = i }
                continue
            }
            if rule.destination.matches(unwrapped, groups: groups) {
                return PolicyDecision(action: rule.action, source: .rule(i))
            }
        }
        return PolicyDecision(action: defaultAction, source: .defaultAction, unpinnedDomainRule: unpinned)
    }

    /// Decides a flow that would land on a port the gateway publishes for `sandbox` (this
    /// sandbox's own or another's): only egress `sandbox:` rules naming it cover the flow, their
    /// ports compared with the publication's guest port. With none, it is denied by default
    /// whatever the policy's default: reaching a sandbox is asked for by name.
    public func evaluate(reaching sandbox: String, guestPort: UInt16, protocol flowProtocol: PolicyProtocol) -> PolicyDecision {
        for i in rules.indices {
            let rule = rules[i]
            guard case .sandbox(let id) = rule.destination, id == sandbox,
                rule.matches(direction: .egress, protocol: flowProtocol, port: guestPort)
            else { continue }
            return PolicyDecision(action: rule.action, source: .rule(i))
        }
        return PolicyDecision(action: .deny, source: .defaultAction)
    }

    /// Whether some domain rule (allowing or denying) covers `name` (lower-cased, no trailing
    /// dot): the gateway's DNS pins the answers for such names only.
    public func hasDomainRule(covering name: some StringProtocol) -> Bool {
        rules.contains { $0.destination.domainPattern?.matches(name) ?? false }
    }

    /// Whether an allowing egress rule names `name` by a domain pattern: under
    /// `dns = "allowed-names"` the only names (besides the gateway's own) that are answered.
    public func allowsName(_ name: some StringProtocol) -> Bool {
        rules.contains {
            $0.action == .allow && $0.direction == .egress && ($0.destination.domainPattern?.matches(name) ?? false)
        }
    }

    public var hasDomainRules: Bool { rules.contains { $0.destination.domainPattern != nil } }

    /// The rules, one per line, then the default as a comment.
    public var description: String {
        var text = ""
        for rule in rules { text += "\(rule)\n" }
        text += "# default: \(defaultAction)"
        return text
    }

    // MARK: - Profiles

    /// The profiles `profile(named:)` knows, in order of openness.
    public static let profileNames = ["host-only", "public", "open"]

    /// A named starting point:
    /// - `host-only`: the sandbox reaches the host (its gateway addresses) over TCP, UDP and
    ///   ICMP, and nothing else.
    /// - `public`: the host and the public internet; never private networks, link-local
    ///   addresses, cloud metadata services, loopback or multicast. Reserved and documentation
    ///   ranges fall to the default, deny.
    /// - `open`: everything.
    ///
    /// Every profile allows ingress: a published port is already an operator's explicit choice,
    /// and the profile is about what the sandbox may reach. Add `deny ingress …` rules in front
    /// to narrow who may connect in.
    public static func profile(named name: String) throws(PolicyError) -> Policy {
        switch name.lowercased() {
        case "host-only":
            return Policy(rules: [
                PolicyRule(.allow, .egress, protocol: .tcp, destination: .group(.hostAlias)),
                PolicyRule(.allow, .egress, protocol: .udp, destination: .group(.hostAlias)),
                PolicyRule(.allow, .egress, protocol: .icmp, destination: .group(.hostAlias)),
                PolicyRule(.allow, .ingress),
            ], default: .deny)
        case "public":
            // Metadata first: it is also link-local, and denials count against the rule that
            // names it.
            return Policy(rules: [
                PolicyRule(.allow, .egress, destination: .group(.hostAlias)),
                PolicyRule(.deny, .egress, destination: .group(.metadata)),
                PolicyRule(.deny, .egress, destination: .group(.private)),
                PolicyRule(.deny, .egress, destination: .group(.linkLocal)),
                PolicyRule(.deny, .egress, destination: .group(.loopback)),
                PolicyRule(.deny, .egress, destination: .group(.multicast)),
                PolicyRule(.allow, .egress, destination: .group(.public)),
                PolicyRule(.allow, .ingress),
            ], default: .deny)
        case "open":
            return Policy(rules: [], default: .allow)
        default:
            throw PolicyError(
                .unknownProfile, token: name,
                "unknown policy profile \"\(name)\"; valid profiles: \(profileNames.joined(separator: ", "))"
            )
        }
    }
}
