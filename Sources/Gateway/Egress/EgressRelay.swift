// Carries a sandbox's TCP and UDP flows over host sockets: dials upstream before the guest's
// handshake completes (RST when it cannot), relays both ways with backpressure, propagates
// half-close and resets. Lives on the sandbox's shard; every socket is on that shard's loop.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import NetStack
import Wire

public struct EgressLimits: Sendable {
    public var connectTimeout: Duration = .seconds(10)
    public var udpIdleTimeout: Duration = .seconds(60)
    public var maxUDPSessions = 256
    public var maxTCPRelays = 1024
    /// A relayed TCP flow with no bytes either way for this long is reset on both sides.
    public var tcpIdleTimeout: Duration = .seconds(7200)
    /// Echo requests beyond the gateway wait this long for a reply before the session is dropped.
    public var echoIdleTimeout: Duration = .seconds(30)
    public var maxEchoSessions = 64
    /// DNS-over-TCP connections one sandbox may hold open at once; SYNs beyond are reset.
    public var maxDNSTCPSessions = 64
    /// Queries one DNS-over-TCP connection may have waiting for answers before the gateway
    /// stops reading more from it (RFC 7766 §6.2.1.1 pipelining, bounded).
    public var maxDNSTCPQueriesInFlight = 16
    /// A DNS-over-TCP connection with no query in flight and no traffic for this long is closed
    /// by the gateway (RFC 7766 §6.2.3 suggests seconds, not minutes).
    public var dnsTCPIdleTimeout: Duration = .seconds(10)
    /// New flows per second a sandbox may open when its limits set no rate (0: no limit). Each
    /// guest SYN makes the gateway dial the host, so this bounds what a SYN flood costs the host.
    public var connectionRate = 200
    /// A guest that got its SYN-ACK (its upstream connected) and has not completed the handshake
    /// after this long is reset, and so is the upstream.
    public var halfOpenTimeout: Duration = .milliseconds(3000)
    public init() {}
}

/// Counters the relay keeps per sandbox.
public struct EgressCounters: Sendable {
    public var tcpDenied = 0
    /// Domain-rule flows reset because their first bytes named no allowed, pinned name.
    public var tcpNameDenied = 0
    public var tcpConnectFailed = 0
    /// TCP and UDP flows refused because they would reach a port the gateway publishes and no
    /// `sandbox:` rule decided them (also counted in `tcpDenied` and `udpDenied`).
    public var publishedPortDenied = 0
    public var tcpConnected = 0
    public var tcpActive = 0
    public var udpDenied = 0
    public var udpSessions = 0
    public var udpSessionLimitDrops = 0
    public var udpDatagramsOut = 0
    public var udpDatagramsIn = 0
    public var bytesToHost: UInt64 = 0
    public var bytesFromHost: UInt64 = 0
    public var tcpIdleResets = 0
    public var echoRequests = 0
    public var echoReplies = 0
    public var echoDenied = 0
    /// DNS-over-TCP connections accepted, and those reset because the sandbox had too many.
    public var dnsTCPSessions = 0
    public var dnsTCPRefused = 0
    /// Queries read from DNS-over-TCP connections.
    public var dnsTCPQueries = 0
    /// Connections the gateway closed: idle, or after a message it could not take.
    public var dnsTCPIdleCloses = 0
    public var dnsTCPProtocolErrors = 0
    /// Connections reset because the guest left too many answers unread.
    public var dnsTCPUnreadResets = 0
}

public final class EgressRelay {
    let driver: StackDriver
    var loop: EventLoop { driver.loop }
    var stack: Stack { driver.stack }
    public let limits: EgressLimits
    public private(set) var counters = EgressCounters()

    /// Decides each new flow: (flow, protocol number) → the policy's decision.
    public var policy: (FlowKey, UInt8) -> PolicyDecision = { _, _ in PolicyDecision(action: .allow, source: .defaultAction) }
    /// Where the sandbox's flow decisions and endings are logged; nil: nowhere.
    var audit: FlowAudit?
    /// For a TCP flow a domain rule allowed: whether the name its first bytes ask for (TLS SNI,
    /// HTTP Host) may reach its destination. nil: flows are not held.
    var nameCheck: ((FlowKey, String) -> PolicyDecision)?
    /// What a domain-rule flow whose first bytes name nothing gets (the policy's
    /// `unidentified-traffic`).
    var unidentifiedTraffic: () -> PolicyAction = { .deny }
    /// Answers guest DNS to port 53 of any destination: the flow, whether the query came over
    /// TCP, the query, and where its answer goes (called at most once, perhaps before the hook
    /// returns). Returns false when the query is dropped and no answer will come. Over UDP nil
    /// relays DNS like other UDP; over TCP nil relays it like other TCP, under the egress policy.
    /// Both transports bypass the egress policy when set: the gateway answers them itself.
    public var dns: ((FlowKey, _ overTCP: Bool, UnsafeRawBufferPointer, @escaping ([UInt8]) -> Void) -> Bool)?

    /// The ports the gateway publishes on the host, which a flow to the host must not reach
    /// unless `reaching` allows it; nil: none are checked.
    var publishedPorts: PublishedPortsView?
    /// Where the sockets of flows to published ports record their loopback endpoints as this
    /// sandbox's, so the port's inbound share counts them under it.
    var loopbackClients: (table: LoopbackClients, sandbox: String)?
    /// Decides a flow that would reach a published port (the publication's sandbox and guest
    /// port): the policy's `sandbox:` rules.
    var reaching: (RoutingTable.Target, PolicyProtocol) -> PolicyDecision = { _, _ in
        PolicyDecision(action: .deny, source: .defaultAction)
    }

    /// A raw ICMP socket of the given family, for echo where ping sockets are not allowed to this
    /// process's group (asked of the privileged supervisor when this process has no CAP_NET_RAW).
    var openRawEchoSocket: (Int32) -> OwnedDescriptor? = { family in try? DirectPrivileges().openEchoSocket(family: family) }
    /// Where each host socket of the sandbox's flows is counted (set by the gateway).
    var descriptors = DescriptorBudget.unlimited()
    /// The sandbox's rate limits, shared with its published ports.
    var rates: RateLimiter

    private var tcp: [TCPFlowID: TCPRelay] = [:]
    /// Guest DNS-over-TCP connections, answered by `dns` (DNSTCPSession).
    private var dnsTCP: [TCPFlowID: DNSTCPSession] = [:]
    private var udp: [FlowKey: UDPSession] = [:]

    /// Receive space shared by the sandbox's UDP and echo sessions: each reads and hands its
    /// datagrams to the stack before returning, all on the one loop thread.
    /// Room for the largest datagram, or a DNS-over-TCP message with its two-byte length.
    let datagramBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536 + 2, alignment: 16)

    public init(driver: StackDriver, limits: EgressLimits = EgressLimits()) {
        self.driver = driver
        self.limits = limits
        rates = RateLimiter(RateLimits(), defaultConnectionRate: limits.connectionRate, loop: driver.loop)
    }

    deinit { datagramBuffer.deallocate() }

    /// The host address a guest destination stands for: the gateway's own addresses mean the
    /// host's loopback; anything else is itself.
    func hostDestination(_ a: IPAddress) -> IPAddress {
        let c = stack.configuration
        switch a {
        case .v4(let v) where v == c.gatewayIPv4: return .v4(.loopback)
        case .v6(let v) where v == c.gatewayIPv6 || v == c.gatewayLinkLocal: return .v6(.loopback)
        default: return a
        }
    }

    /// A new flow's verdict: the policy's, or for a flow that would land on a port the gateway
    /// publishes, the `sandbox:` rules' (with the reason to log when none allowed it).
    /// `reachesPublishedPort`: the flow was allowed to a published port.
    private func decide(
        _ key: FlowKey, _ proto: PortProtocol
    ) -> (decision: PolicyDecision, refusal: FlowEvent.Reason?, reachesPublishedPort: Bool) {
        if let ports = publishedPorts?.current, !ports.isEmpty,
            let target = ports.target(reachedBy: hostDestination(key.remoteAddress), port: key.remotePort, protocol: proto)
        {
            let decision = reaching(target, proto == .tcp ? .tcp : .udp)
            if decision.isAllowed { return (decision, nil, true) }
            return (decision, decision.ruleIndex == nil ? .publishedPort : nil, false)
        }
        return (policy(key, proto == .tcp ? IPProtocol.tcp : IPProtocol.udp), nil, false)
    }

    /// Whether a flow would be allowed now (a policy switch keeps the open flows it allows).
    func allows(_ key: FlowKey, _ ipProtocol: UInt8) -> Bool {
        switch ipProtocol {
        case IPProtocol.tcp: decide(key, .tcp).decision.isAllowed
        case IPProtocol.udp: decide(key, .udp).decision.isAllowed
        default: policy(key, ipProtocol).isAllowed
        }
    }

    /// The other family's loopback, tried when the first is refused.
    func loopbackFallback(_ a: IPAddress) -> IPAddress? {
        switch a {
        case .v4(let v) where v == .loopback: return .v6(.loopback)
        case .v6(let v) where v == .loopback: return .v4(.loopback)
        default: return nil
        }
    }

    // MARK: - Stack events

    public func handle(_ event: StackEvent) {
        switch event {
        case .tcpConnectionRequest(let id, let key):
            openTCP(id, key)
        case .tcp(let id, let ev):
            if let session = dnsTCP[id] {
                session.stackEvent(ev)
            } else {
                tcp[id]?.stackEvent(ev)
            }
        case .udp(let key, let payload):
            forwardUDP(key, payload)
        case .echoRequest(let source, let destination, let identifier, let sequence, let payload):
            forwardEcho(source: source, destination: destination, identifier: identifier, sequence: sequence, payload: payload)
        }
    }

    private func openTCP(_ id: TCPFlowID, _ key: FlowKey) {
        if key.remotePort == 53, dns != nil {
            guard dnsTCP.count < limits.maxDNSTCPSessions else {
                counters.dnsTCPRefused += 1
                stack.tcpRefuse(id)
                return
            }
            let session = DNSTCPSession(relay: self, id: id, key: key)
            dnsTCP[id] = session
            counters.dnsTCPSessions += 1
            session.start()
            return
        }
        let (decision, refusal, reachesPublishedPort) = decide(key, .tcp)
        if refusal == .publishedPort { counters.publishedPortDenied += 1 }
        var overLimit: FlowEvent.Reason? = refusal ?? (tcp.count >= limits.maxTCPRelays ? .budget : nil)
        if decision.isAllowed, overLimit == nil, !rates.admitFlow(open: openFlows, now: monotonicNanoseconds()) {
            overLimit = .rateLimit
        }
        guard decision.isAllowed, overLimit == nil else {
            audit?.decided(key, .tcp, decision, overLimit: overLimit)
            counters.tcpDenied += 1
            stack.tcpRefuse(id)
            return
        }
        // Refused like a flow over the limit: the guest sees RST (counted by the budget).
        guard let slot = descriptors.take() else {
            audit?.decided(key, .tcp, decision, overLimit: .budget)
            stack.tcpRefuse(id)
            return
        }
        audit?.decided(key, .tcp, decision)
        let relay = TCPRelay(
            relay: self, id: id, key: key, destination: hostDestination(key.remoteAddress), port: key.remotePort,
            checksName: decision.name != nil && nameCheck != nil)
        if reachesPublishedPort { relay.loopbackClients = loopbackClients }
        relay.descriptor = slot
        tcp[id] = relay
        relay.start()
    }

    /// The verdict on a held flow's first bytes: allowed when they name a name the policy allows
    /// to this address (pinned to it by the sandbox's own DNS); for bytes that name nothing, the
    /// policy's `unidentified-traffic`. `guestFinished`: no more bytes will come.
    func checkName(_ peek: ServerNamePeek, _ key: FlowKey, guestFinished: Bool) -> TCPRelayStateMachine.NameCheck {
        guard let nameCheck else { return .allowed }
        let name: String?
        switch peek {
        case .needMore where !guestFinished:
            return .needMore
        case .tls(let n), .http(let n):
            name = n
        case .needMore, .unidentified:
            name = nil
        }
        if let name {
            let decision = nameCheck(key, name)
            if decision.isAllowed { return .allowed }
            audit?.decided(key, .tcp, PolicyDecision(action: .deny, source: decision.source, name: name), overLimit: .nameMismatch)
            counters.tcpNameDenied += 1
            return .denied
        }
        if unidentifiedTraffic() == .allow { return .allowed }
        audit?.decided(key, .tcp, PolicyDecision(action: .deny, source: .defaultAction), overLimit: .unidentified)
        counters.tcpNameDenied += 1
        return .denied
    }

    func tcpDidConnect() {
        counters.tcpConnected += 1
        counters.tcpActive += 1
    }

    func tcpConnectFailed(_ id: TCPFlowID) {
        counters.tcpConnectFailed += 1
        tcp[id] = nil
    }

    func tcpFinished(_ id: TCPFlowID, wasConnected: Bool) {
        if wasConnected { counters.tcpActive -= 1 }
        tcp[id] = nil
    }

    func countToHost(_ n: Int) { counters.bytesToHost &+= UInt64(n) }
    func countFromHost(_ n: Int) { counters.bytesFromHost &+= UInt64(n) }

    // MARK: - UDP

    private func forwardUDP(_ key: FlowKey, _ payload: [UInt8]) {
        if key.remotePort == 53, let dns {
            let d = driver
            _ = payload.withUnsafeBytes { query in
                dns(key, false, query) { reply in
                    reply.withUnsafeBytes { d.stack.sendUDP(key, payload: $0) }
                    d.afterWork()
                }
            }
            return
        }
        if let s = udp[key] {
            if rates.admitDatagram(.toHost, size: payload.count, now: monotonicNanoseconds()) { s.send(payload) }
            return
        }
        let (decision, refusal, _) = decide(key, .udp)
        if refusal == .publishedPort { counters.publishedPortDenied += 1 }
        guard decision.isAllowed else {
            audit?.decided(key, .udp, decision, overLimit: refusal)
            counters.udpDenied += 1
            // The guest hears at once that this is refused, not after its own timeout.
            stack.sendUDPUnreachable(key, payloadPrefix: Array(payload.prefix(8)), prohibited: true)
            return
        }
        guard udp.count < limits.maxUDPSessions else {
            audit?.decided(key, .udp, decision, overLimit: .budget)
            counters.udpSessionLimitDrops += 1
            return
        }
        let now = monotonicNanoseconds()
        guard rates.admitFlow(open: openFlows, now: now) else {
            audit?.decided(key, .udp, decision, overLimit: .rateLimit)
            stack.sendUDPUnreachable(key, payloadPrefix: Array(payload.prefix(8)), prohibited: true)
            return
        }
        guard rates.admitDatagram(.toHost, size: payload.count, now: now) else { return }
        // Dropped like a datagram over the session limit (counted by the budget).
        guard let slot = descriptors.take() else {
            audit?.decided(key, .udp, decision, overLimit: .budget)
            return
        }
        guard let s = UDPSession(relay: self, key: key, destination: hostDestination(key.remoteAddress)) else { return }
        audit?.decided(key, .udp, decision)
        s.descriptor = slot
        udp[key] = s
        counters.udpSessions += 1
        s.send(payload)
    }

    // MARK: - DNS over TCP

    /// Hands one query from a DNS-over-TCP session to the hook.
    func answerDNS(
        _ key: FlowKey, overTCP: Bool, _ query: UnsafeRawBufferPointer, _ reply: @escaping ([UInt8]) -> Void
    ) -> Bool {
        dns?(key, overTCP, query, reply) ?? false
    }

    /// An answer for a DNS-over-TCP flow; dropped when the flow has gone (the guest reset it,
    /// or the sandbox detached) since its query was asked.
    func dnsTCPAnswered(_ id: TCPFlowID, _ answer: [UInt8]) {
        dnsTCP[id]?.answered(answer)
    }

    func dnsTCPFinished(_ id: TCPFlowID) { dnsTCP[id] = nil }
    func dnsTCPQuery() { counters.dnsTCPQueries += 1 }
    func dnsTCPIdleClose() { counters.dnsTCPIdleCloses += 1 }
    func dnsTCPProtocolError() { counters.dnsTCPProtocolErrors += 1 }
    func dnsTCPUnreadReset() { counters.dnsTCPUnreadResets += 1 }
    public var dnsTCPSessionCount: Int { dnsTCP.count }

    // MARK: - ICMP echo

    private var echo: [EchoSession.Key: EchoSession] = [:]

    private func forwardEcho(source: IPAddress, destination: IPAddress, identifier: UInt16, sequence: UInt16, payload: [UInt8]) {
        let probe = FlowKey(guestAddress: source, guestPort: identifier, remoteAddress: destination, remotePort: 0)
        let decision = policy(probe, source.isIPv6 ? IPProtocol.icmpv6 : IPProtocol.icmp)
        guard decision.isAllowed else {
            audit?.decided(probe, .icmp, decision)
            counters.echoDenied += 1
            return
        }
        let key = EchoSession.Key(guest: source, destination: destination, identifier: identifier)
        if echo[key] == nil {
            guard echo.count < limits.maxEchoSessions, let slot = descriptors.take(),
                let s = EchoSession(relay: self, key: key, hostDestination: hostDestination(destination))
            else {
                audit?.decided(probe, .icmp, decision, overLimit: .budget)
                counters.echoDenied += 1
                return
            }
            s.descriptor = slot
            echo[key] = s
            // Logged per session (a guest's ping run), not per echo request.
            audit?.decided(probe, .icmp, decision)
        }
        counters.echoRequests += 1
        echo[key]?.send(sequence: sequence, payload: payload)
    }

    func echoReplied() { counters.echoReplies += 1 }
    func echoExpired(_ key: EchoSession.Key) { echo[key] = nil }
    func tcpIdleReset() { counters.tcpIdleResets += 1 }

    func udpSent() { counters.udpDatagramsOut += 1 }
    func udpReceived() { counters.udpDatagramsIn += 1 }
    func udpExpired(_ key: FlowKey) { udp[key] = nil }

    public var tcpRelayCount: Int { tcp.count }
    /// TCP flows and UDP sessions open now, against the rate limits' `maxFlows`.
    var openFlows: Int { tcp.count + udp.count }
    public var udpSessionCount: Int { udp.count }

    /// Closes every socket (detach): guest flows are reset, upstreams see RST.
    /// Resets the TCP flows and closes the UDP sessions `denied` says no to (after a policy
    /// switch); each is logged as closed by the gateway. Returns how many went.
    func resetFlows(where denied: (FlowKey, UInt8) -> Bool) -> Int {
        var n = 0
        for (id, r) in tcp where denied(r.key, IPProtocol.tcp) {
            if !r.isConnecting { counters.tcpActive -= 1 }
            r.abortBoth()
            tcp[id] = nil
            n += 1
        }
        for (key, s) in udp where denied(key, IPProtocol.udp) {
            s.close()
            udp[key] = nil
            n += 1
        }
        return n
    }

    public func closeAll() {
        for r in tcp.values { r.abortBoth() }
        tcp.removeAll()
        for s in dnsTCP.values { s.abort() }
        dnsTCP.removeAll()
        for s in udp.values { s.close() }
        udp.removeAll()
        for s in echo.values { s.close() }
        echo.removeAll()
    }
}
