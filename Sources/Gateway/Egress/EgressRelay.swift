// Carries a sandbox's TCP and UDP flows over host sockets: dials upstream before the guest's
// handshake completes (RST when it cannot), relays both ways with backpressure, propagates
// half-close and resets. Lives on the sandbox's shard; every socket is on that shard's loop.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import NetStack
import Wire

/// What a flow may do, decided once when it starts.
public enum EgressVerdict: Sendable {
    case allow
    case deny
}

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
    public init() {}
}

/// Counters the relay keeps per sandbox.
public struct EgressCounters: Sendable {
    public var tcpDenied = 0
    public var tcpConnectFailed = 0
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
}

public final class EgressRelay {
    let driver: StackDriver
    var loop: EventLoop { driver.loop }
    var stack: Stack { driver.stack }
    public let limits: EgressLimits
    public private(set) var counters = EgressCounters()

    /// Decides each new flow: (flow, protocol number) → verdict.
    public var policy: (FlowKey, UInt8) -> EgressVerdict = { _, _ in .allow }
    /// Answers guest DNS over UDP (any destination, port 53); nil relays it like other UDP.
    public var dns: ((FlowKey, [UInt8], @escaping ([UInt8]) -> Void) -> Void)?
    /// Where guest DNS over TCP (port 53, any destination) goes: the first upstream resolver.
    /// Such flows bypass the egress policy, as DNS over UDP does.
    public var dnsOverTCP: (IPAddress, UInt16)?

    private var tcp: [TCPFlowID: TCPRelay] = [:]
    private var udp: [FlowKey: UDPSession] = [:]

    /// Receive space shared by the sandbox's UDP and echo sessions: each reads and hands its
    /// datagrams to the stack before returning, all on the one loop thread.
    let datagramBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)

    public init(driver: StackDriver, limits: EgressLimits = EgressLimits()) {
        self.driver = driver
        self.limits = limits
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
            tcp[id]?.stackEvents(ev)
        case .udp(let key, let payload):
            forwardUDP(key, payload)
        case .echoRequest(let source, let destination, let identifier, let sequence, let payload):
            forwardEcho(source: source, destination: destination, identifier: identifier, sequence: sequence, payload: payload)
        }
    }

    private func openTCP(_ id: TCPFlowID, _ key: FlowKey) {
        let now = monotonicNanoseconds()
        if key.remotePort == 53, let (resolver, port) = dnsOverTCP, tcp.count < limits.maxTCPRelays {
            let relay = TCPRelay(relay: self, id: id, key: key, destination: resolver, port: port)
            tcp[id] = relay
            relay.start()
            return
        }
        guard case .allow = policy(key, IPProtocol.tcp), tcp.count < limits.maxTCPRelays else {
            counters.tcpDenied += 1
            stack.tcpRefuse(id, now: now)
            return
        }
        let relay = TCPRelay(relay: self, id: id, key: key, destination: hostDestination(key.remoteAddress), port: key.remotePort)
        tcp[id] = relay
        relay.start()
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
            dns(key, payload) { reply in
                reply.withUnsafeBytes { d.stack.sendUDP(key, payload: $0, now: monotonicNanoseconds()) }
                d.afterWork()
            }
            return
        }
        if let s = udp[key] {
            s.send(payload)
            return
        }
        guard case .allow = policy(key, IPProtocol.udp) else {
            counters.udpDenied += 1
            // The guest hears at once that this is refused, not after its own timeout.
            stack.sendUDPUnreachable(key, payloadPrefix: Array(payload.prefix(8)), prohibited: true)
            return
        }
        guard udp.count < limits.maxUDPSessions else {
            counters.udpSessionLimitDrops += 1
            return
        }
        guard let s = UDPSession(relay: self, key: key, destination: hostDestination(key.remoteAddress)) else { return }
        udp[key] = s
        counters.udpSessions += 1
        s.send(payload)
    }

    // MARK: - ICMP echo

    private var echo: [EchoSession.Key: EchoSession] = [:]

    private func forwardEcho(source: IPAddress, destination: IPAddress, identifier: UInt16, sequence: UInt16, payload: [UInt8]) {
        let probe = FlowKey(guestAddress: source, guestPort: identifier, remoteAddress: destination, remotePort: 0)
        guard case .allow = policy(probe, source.isIPv6 ? IPProtocol.icmpv6 : IPProtocol.icmp) else {
            counters.echoDenied += 1
            return
        }
        let key = EchoSession.Key(guest: source, destination: destination, identifier: identifier)
        if echo[key] == nil {
            guard echo.count < limits.maxEchoSessions,
                let s = EchoSession(relay: self, key: key, hostDestination: hostDestination(destination))
            else {
                counters.echoDenied += 1
                return
            }
            echo[key] = s
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
    public var udpSessionCount: Int { udp.count }

    /// Closes every socket (detach): guest flows are reset, upstreams see RST.
    public func closeAll() {
        for r in tcp.values { r.abortBoth() }
        tcp.removeAll()
        for s in udp.values { s.close() }
        udp.removeAll()
        for s in echo.values { s.close() }
        echo.removeAll()
    }
}
