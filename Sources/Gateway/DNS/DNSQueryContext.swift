// What the DNS forwarder needs to know about the sandbox a query came from: its gateway
// addresses (the host alias), its DNS policy, and how large a reply its transport can take.
import Wire

public struct DNSQueryContext: Sendable {
    /// The reply size a TCP caller passes (RFC 1035 §4.2.2: a two-byte length prefix).
    public static let tcpReplySize = 65535

    /// The sandbox's gateway addresses, the answers for the local names; nil when the sandbox
    /// has no address of that family (the local name then has no record of that type).
    public var gatewayIPv4: IPv4Address?
    public var gatewayIPv6: IPv6Address?
    public var policy: DNSPolicy
    /// The largest reply the guest's transport takes. nil for UDP: 512 bytes (RFC 1035 §4.2.1),
    /// or the query's EDNS payload size (RFC 6891 §6.2.5) up to `datagramLimit`. TCP callers
    /// pass `tcpReplySize`.
    public var maxReplySize: Int?
    /// For UDP, the most a reply may carry on the sandbox's link without IP fragmentation,
    /// which the stack does not do. The default, 1232, fits any IPv6 link (1280 − 48).
    public var datagramLimit: Int
    /// Who asked, for the per-client cap and `DNSForwarder.forget(client:)`: a sandbox ID.
    public var client: UInt64
    /// The asking sandbox's descriptor budget, which a retry over TCP takes its socket from.
    var descriptors: DescriptorBudget?
    /// The asking sandbox's domain rules: which names it may resolve, how fast, and where the
    /// answers' addresses are pinned. nil: every name, no pins.
    public var pinning: DomainPinning?

    public init(
        gatewayIPv4: IPv4Address?, gatewayIPv6: IPv6Address? = nil, policy: DNSPolicy = .none,
        maxReplySize: Int? = nil, datagramLimit: Int = 1232, client: UInt64 = 0
    ) {
        self.gatewayIPv4 = gatewayIPv4
        self.gatewayIPv6 = gatewayIPv6
        self.policy = policy
        self.maxReplySize = maxReplySize
        self.datagramLimit = datagramLimit
        self.client = client
    }

    /// The same, with retries over TCP counted against `budget`.
    func counting(against budget: DescriptorBudget) -> DNSQueryContext {
        var c = self
        c.descriptors = budget
        return c
    }

    /// The same, under `pinning`'s names, rate and pins.
    func pinning(to pinning: DomainPinning) -> DNSQueryContext {
        var c = self
        c.pinning = pinning
        return c
    }

    /// The reply size limit for `query`.
    func replyLimit(for query: DNSMessage) -> Int {
        if let maxReplySize { return min(max(maxReplySize, 512), 65535) }
        guard let edns = query.edns else { return 512 }
        return max(min(edns.effectivePayloadSize, datagramLimit), 512)
    }
}
