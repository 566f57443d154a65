// Settings of published ports: where automatic host ports come from, the per-sandbox limits of
// inbound traffic, and the ingress policy hook.
import Wire

/// Decides whether a client may reach a sandbox's published port; called once per accepted TCP
/// connection and once per new UDP peer, on the sandbox's shard. A denied TCP client is reset.
public typealias IngressHook = @Sendable (_ peer: IPEndpoint, _ guestPort: UInt16, _ protocol: PortProtocol) -> Bool

public struct PublishingConfiguration: Sendable {
    /// Automatic host ports; nil reads the kernel's ephemeral range and reserved ports.
    public var autoPorts: AutoPortRange?
    /// The host address a port binds when its spec names none.
    public var defaultHostIP = PublishSpec.defaultHostIP
    public var limits = IngressLimits()
    /// The ingress policy every sandbox starts with: allow everything.
    public var ingressAllowed: IngressHook = { _, _, _ in true }

    public init() {}
}

/// Per-sandbox limits on inbound traffic.
public struct IngressLimits: Sendable {
    /// Concurrent inbound TCP connections per sandbox; the next client is reset.
    public var maxInboundConnections = 256
    /// While several clients (addresses, or sandboxes reaching the port through their egress)
    /// hold connections, each may hold the cap split evenly between them, but never fewer than
    /// this. A client alone may use the whole cap. See `InboundShares`.
    public var inboundShareFloor = 4
    /// How long the guest may take to answer a connection before the client is reset.
    public var guestConnectTimeout: Duration = .seconds(5)
    /// How long the guest's last bytes may take to reach a client after the guest closed.
    public var closeFlushTimeout: Duration = .seconds(10)
    /// Ports on the gateway address that stand for host clients towards the guest
    /// (the dynamic range, RFC 6335 §6).
    public var gatewayPorts: ClosedRange<UInt16> = 49152...65535
    /// A UDP peer's gateway-side port is given back after this long without a datagram.
    public var udpIdleTimeout: Duration = .seconds(60)

    public init() {}
}

/// Inbound counters of one sandbox.
public struct IngressCounters: Sendable, Hashable, Codable {
    public var tcpAccepted = 0
    /// Reset by the ingress policy.
    public var tcpDenied = 0
    /// Reset because the sandbox had its maximum of inbound connections.
    public var tcpOverLimit = 0
    /// Reset because the client held its fair share of that maximum.
    public var tcpOverShare = 0
    /// Connections reset at the maximum to make room for a client within its share, each
    /// taken from the client furthest over its own.
    public var tcpShareReclaimed = 0
    /// Reset because the guest answered with RST (nothing listening).
    public var tcpGuestRefused = 0
    /// Reset because the guest did not answer in time.
    public var tcpGuestTimedOut = 0
    /// Reset because the stack could not open another connection.
    public var tcpConnectFailed = 0
    public var tcpActive = 0
    public var udpPeers = 0
    public var udpDenied = 0
    /// Datagrams of new peers dropped because every gateway-side port was taken.
    public var udpPeerLimitDrops = 0
    /// Guest datagrams to a gateway-side port whose peer had expired, dropped.
    public var udpLateReplies = 0
    public var udpDatagramsIn = 0
    public var udpDatagramsOut = 0
    public var bytesToGuest: UInt64 = 0
    public var bytesFromGuest: UInt64 = 0

    public init() {}
}
