// Settings of a shard's DNS forwarder: where to forward, which names it answers itself, and the
// bounds (timeouts, outstanding queries, sizes) that keep one sandbox from exhausting it.
import NetStack
import Wire

public struct DNSConfiguration: Sendable {
    /// Resolvers tried in order; each attempt that times out (or answers SERVFAIL or REFUSED)
    /// moves on to the next.
    public var upstreams: [(IPAddress, UInt16)]
    /// Names answered locally with the sandbox's gateway addresses (which stand for the host),
    /// compared ignoring case.
    public var localNames: [String]
    /// How long one upstream gets before the next is tried.
    public var attemptTimeout: Duration
    /// Queries waiting for an upstream across the forwarder; beyond it, SERVFAIL at once.
    public var maxOutstanding: Int
    /// Queries one client (sandbox) may have waiting, so that one busy sandbox cannot use up
    /// the forwarder's whole table for the others on its shard.
    public var maxOutstandingPerClient: Int
    /// TTL of local answers. The gateway addresses of a sandbox do not change while it lives.
    public var localTTL: UInt32
    /// The UDP payload size put in our own OPT records (RFC 6891 §6.2.5). 1232 fits an IPv6
    /// minimum-MTU path without fragmentation (the DNS flag day 2020 value).
    public var advertisedPayloadSize: UInt16
    /// The largest UDP payload size we ask upstreams for, used when the guest can take more than
    /// it advertised itself (it asked over TCP).
    public var upstreamPayloadSize: UInt16

    public static let defaultLocalNames = ["host.gateway.internal"]

    public init(
        upstreams: [(IPAddress, UInt16)], localNames: [String] = DNSConfiguration.defaultLocalNames,
        attemptTimeout: Duration = .seconds(2), maxOutstanding: Int = 1024, maxOutstandingPerClient: Int = 256,
        localTTL: UInt32 = 60, advertisedPayloadSize: UInt16 = 1232, upstreamPayloadSize: UInt16 = 4096
    ) {
        self.upstreams = upstreams
        self.localNames = localNames
        self.attemptTimeout = attemptTimeout
        self.maxOutstanding = maxOutstanding
        self.maxOutstandingPerClient = maxOutstandingPerClient
        self.localTTL = localTTL
        self.advertisedPayloadSize = advertisedPayloadSize
        self.upstreamPayloadSize = upstreamPayloadSize
    }

    /// The host's resolvers from resolv.conf (see `ResolvConf.nameServers(path:)`) and the
    /// defaults for everything else.
    public static func system(resolvConf path: String = ResolvConf.defaultPath) -> DNSConfiguration {
        DNSConfiguration(upstreams: ResolvConf.nameServers(path: path))
    }

    var attemptTimeoutNanoseconds: UInt64 { attemptTimeout.nanoseconds }
}
