// One sandbox's DNS as its domain rules see it: which names it may resolve, the addresses its
// answers pinned (what a domain rule may allow), and how fast it may ask. Lives on the sandbox's
// shard; the DNS forwarder and the egress policy of that shard share it.
import NetStack
import Wire

/// Shared by the sandbox's egress decision and the shard's DNS forwarder, both on the shard's
/// loop: `@unchecked Sendable` because `DNSQueryContext` (Sendable) carries it, never across
/// threads.
public final class DomainPinning: @unchecked Sendable {
    public struct Counters: Sendable, Equatable {
        /// Addresses recorded from answers for names a domain rule covers.
        public var pinsRecorded = 0
        /// Queries answered NXDOMAIN because no allowing rule names them (`dns = "allowed-names"`).
        public var namesNotAllowed = 0
        /// Queries refused (REFUSED) past the sandbox's query rate.
        public var rateLimited = 0
    }

    public private(set) var policy: Policy {
        didSet { ruleTexts = policy.rules.map(\.description) }
    }
    /// Each rule's text, made once per policy rather than per logged flow.
    private var ruleTexts: [String] = []
    public private(set) var pins: DNSPinTable
    public private(set) var counters = Counters()
    private var bucket: TokenBucket
    /// Where the sandbox's DNS answers are logged (the audit holds this object, hence weak).
    weak var audit: FlowAudit?

    /// The names its DNS answers NXDOMAIN (the gateway's and its policy's denied names).
    public private(set) var deniedNames: DNSPolicy

    public init(
        policy: Policy, deniedNames: DNSPolicy = .none, pins: DNSPinTable = DNSPinTable(), queriesPerSecond: Int = 200
    ) {
        self.policy = policy
        self.deniedNames = deniedNames
        ruleTexts = policy.rules.map(\.description)
        self.pins = pins
        // A burst of one second's worth: a resolver library asks A and AAAA for several search
        // domains at once.
        bucket = TokenBucket(ratePerSecond: Double(max(queriesPerSecond, 1)), burst: Double(max(queriesPerSecond, 1)))
    }

    /// Follows a policy switch: new queries and flows see the new rules; pins stay (they record
    /// what was resolved, not what was allowed).
    public func update(policy: Policy, deniedNames: DNSPolicy) {
        self.policy = policy
        self.deniedNames = deniedNames
    }

    /// The text of rule `index` of the current policy.
    func ruleText(_ index: Int) -> String? { ruleTexts.indices.contains(index) ? ruleTexts[index] : nil }

    /// Whether one more query may go on at `now`; counts the refusal otherwise.
    func admitQuery(now: UInt64) -> Bool {
        if bucket.take(1, now: now) { return true }
        counters.rateLimited += 1
        return false
    }

    /// Under `dns = "allowed-names"`, whether `name` may be resolved; counts the refusal.
    func mayResolve(_ name: DNSName) -> Bool {
        guard policy.dnsMode == .allowedNames else { return true }
        if policy.allowsName(Self.key(name)) { return true }
        counters.namesNotAllowed += 1
        return false
    }

    /// Records an answer's addresses (`DNSMessage.resolvedAddresses`) when a domain rule covers
    /// the question's name.
    func record(_ question: DNSQuestion, _ answers: [DNSMessage.ResolvedAddress], now: UInt64) {
        guard policy.hasDomainRules, !answers.isEmpty else { return }
        let name = Self.key(question.name)
        guard policy.hasDomainRule(covering: name) else { return }
        for answer in answers {
            pins.record(name: name, address: answer.address, ttl: answer.ttl, now: now)
            counters.pinsRecorded += 1
        }
    }

    /// A name as pins and patterns hold it: lower-cased text without the trailing dot.
    static func key(_ name: DNSName) -> String {
        var text = name.text.lowercased()
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
