// A sandbox's published ports on its shard: accepts host clients and dials each into the guest
// through the stack (TCP), relays datagrams of host peers through per-peer gateway-side ports
// (UDP), and claims the stack events of those flows before the egress relay sees them.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import NetStack
import SystemPackage
import Wire

final class IngressRelay {
    let driver: StackDriver
    var loop: EventLoop { driver.loop }
    var stack: Stack { driver.stack }
    private(set) var limits = IngressLimits()
    /// The ingress policy: consulted for each accepted TCP client and each new UDP peer.
    var ingressAllowed: IngressHook = { _, _, _ in true }
    private(set) var counters = IngressCounters()
    /// Where listeners and accepted connections are counted (set by the gateway).
    var descriptors = DescriptorBudget.unlimited()
    /// The sandbox's rate limits, shared with its egress relay; nil: none.
    var rates: RateLimiter?
    /// Where clients let in or refused, and their connections' ends, are logged; nil: nowhere.
    var audit: FlowAudit?

    private var ports: [HostBinding: PublishedPort] = [:]
    private var connections: [TCPFlowID: InboundConnection] = [:]
    /// Each connection's client, and how many each client holds.
    private var sources: [TCPFlowID: InboundSource] = [:]
    private var shares = InboundShares()
    /// Which loopback clients are sandboxes' egress (set by the gateway).
    var loopbackClients: LoopbackClients?
    private var udpPeers: UDPPeerTable
    private var udpSweep: EventLoop.TimerID?
    private var nextGatewayPort: UInt16
    /// Set by `closeAll` (detach): a publish racing with the detach must not open a listener.
    private var closed = false
    private let datagram: UnsafeMutableRawBufferPointer

    init(driver: StackDriver) {
        self.driver = driver
        udpPeers = UDPPeerTable(gatewayPorts: limits.gatewayPorts)
        nextGatewayPort = limits.gatewayPorts.lowerBound
        datagram = .allocate(byteCount: 65_536, alignment: 16)
    }

    deinit { datagram.deallocate() }

    /// Takes new limits; the gateway-side port range changes only while no UDP peer holds one.
    func configure(limits new: IngressLimits) {
        if new.gatewayPorts != limits.gatewayPorts {
            if udpPeers.isEmpty { udpPeers = UDPPeerTable(gatewayPorts: new.gatewayPorts) }
            if !new.gatewayPorts.contains(nextGatewayPort) { nextGatewayPort = new.gatewayPorts.lowerBound }
        }
        limits = new
    }

    var isEmpty: Bool { ports.isEmpty && connections.isEmpty }
    var publishedCount: Int { ports.count }
    var connectionCount: Int { connections.count }
    var udpPeerCount: Int { udpPeers.count }

    // MARK: - Publishing (control plane, run on the shard)

    /// Starts serving a port whose socket the allocator bound, taking it over: it is closed on
    /// failure.
    func open(_ binding: HostBinding, guestPort: UInt16, preserveSource: Bool, socket fd: Int32) throws(GatewayError) {
        let socket = OwnedDescriptor(adopting: fd)
        guard !closed else {
            throw GatewayError(.unknownSandbox, "the sandbox is being detached; \(binding) was not published")
        }
        guard ports[binding] == nil else {
            throw GatewayError(.portInUse, "host port \(binding) is already published by this sandbox")
        }
        guard let slot = descriptors.take() else {
            throw GatewayError(
                .exhausted,
                "\(binding) was not published: the sandbox holds all \(descriptors.limit) descriptors of its budget "
                    + "(or the gateway all it may use); close connections or unpublish ports first")
        }
        let port = PublishedPort(
            relay: self, binding: binding, guestPort: guestPort, preserveSource: preserveSource, socket: socket)
        port.descriptor = slot
        do {
            try port.start()
        } catch {
            port.close()
            throw error
        }
        ports[binding] = port
    }

    /// Closes published ports: their sockets, their clients (reset both ways), their UDP peers.
    func close(_ bindings: [HostBinding]) {
        for b in bindings {
            guard let port = ports.removeValue(forKey: b) else { continue }
            port.close()
            for (id, c) in connections where c.binding == b {
                c.abortBoth()
                forget(id)
            }
            if b.protocol == .udp { udpPeers.removeAll(of: b) }
        }
        recount()
        driver.afterWork()
    }

    /// Detach: everything closes and nothing opens afterwards.
    func closeAll() {
        closed = true
        close(Array(ports.keys))
        for c in connections.values { c.abortBoth() }
        connections.removeAll()
        sources.removeAll()
        shares.removeAll()
        udpPeers.removeAll()
        if let t = udpSweep { loop.cancel(t) }
        udpSweep = nil
        recount()
    }

    private func recount() {
        counters.tcpActive = connections.values.filter { !$0.isConnecting }.count
        counters.udpPeers = udpPeers.count
    }

    // MARK: - Stack events

    /// Takes the events of flows this relay opened; false for everything else (egress).
    func handle(_ event: StackEvent) -> Bool {
        if ports.isEmpty && connections.isEmpty { return false }
        switch event {
        case .tcp(let id, let ev):
            guard let c = connections[id] else { return false }
            c.stackEvent(ev)
            return true
        case .udp(let key, let payload):
            return udpFromGuest(key, payload)
        case .tcpConnectionRequest, .echoRequest:
            return false
        }
    }

    // MARK: - TCP

    func acceptConnections(on port: PublishedPort) {
        // A bounded batch per wake-up, so one busy port cannot starve the shard's other work.
        for _ in 0..<64 {
            // Read again each time: admitting a client may end in the port's close.
            guard let listener = port.fd else { break }
            let (fd, peer) = SocketAddress.receiving { accept(listener, $0, $1) }
            let client: OwnedDescriptor
            do {
                client = try OwnedDescriptor.adopting(result: fd)
            } catch .tooManyOpenFiles, .tooManyOpenFilesInSystem, .noBufferSpace, .noMemory {
                port.pause(for: .milliseconds(100))
                break
            } catch {
                break
            }
            // accept4(2) is not exported to Swift here; accepted sockets inherit neither flag.
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            guard let peer else {
                HostSocket.closeWithReset(client)
                continue
            }
            admit(client, peer: IPEndpoint(address: peer.ip, port: peer.port), on: port)
        }
        driver.afterWork()
    }

    /// Policy, then the sandbox's limit, then a connection into the guest; a client refused at
    /// any step is reset (SO_LINGER 0) so it fails at once instead of hanging.
    private func admit(_ client: consuming OwnedDescriptor, peer: IPEndpoint, on port: PublishedPort) {
        func refused(_ reason: FlowEvent.Reason) {
            audit?.inbound(client: peer.address, port: peer.port, guestPort: port.guestPort, refused: reason)
        }
        guard ingressAllowed(peer, port.guestPort, .tcp) else {
            refused(.ingressRule)
            counters.tcpDenied += 1
            HostSocket.closeWithReset(client)
            return
        }
        let source = inboundSource(peer)
        switch shares.admit(source, limits: limits) {
        case .admit:
            break
        case .admitInPlaceOf(let heaviest):
            reclaimOne(of: heaviest)
        case .overShare:
            refused(.budget)
            counters.tcpOverShare += 1
            HostSocket.closeWithReset(client)
            return
        case .overLimit:
            refused(.budget)
            counters.tcpOverLimit += 1
            HostSocket.closeWithReset(client)
            return
        }
        // The client is reset like one over the connection limit (counted by the budget).
        guard let slot = descriptors.take() else {
            refused(.budget)
            HostSocket.closeWithReset(client)
            return
        }
        audit?.inbound(client: peer.address, port: peer.port, guestPort: port.guestPort, refused: nil)
        guard let (id, key) = connectIntoGuest(port, peer: peer) else {
            counters.tcpConnectFailed += 1
            HostSocket.closeWithReset(client)
            return
        }
        HostSocket.setNoDelay(client)
        // Until the connection ends gracefully, a crash of this process resets the client
        // instead of handing it a FIN after a cut-off stream.
        HostSocket.setAbortiveClose(client, true)
        let c = InboundConnection(relay: self, id: id, key: key, binding: port.binding, socket: client)
        c.descriptor = slot
        do {
            try c.start()
        } catch {
            counters.tcpConnectFailed += 1
            c.abortBoth()
            return
        }
        connections[id] = c
        sources[id] = source
        shares.add(source)
        counters.tcpAccepted += 1
    }

    /// A loopback client is the sandbox whose egress dialled it when the gateway knows the
    /// endpoint; every other client is its address.
    private func inboundSource(_ peer: IPEndpoint) -> InboundSource {
        if peer.address.isLoopbackAddress, let sandbox = loopbackClients?.sandbox(at: peer) {
            return .sandbox(sandbox)
        }
        return InboundSource(peer.address)
    }

    /// Resets one connection of a client over its share, so a newcomer within its own share
    /// gets the slot.
    private func reclaimOne(of source: InboundSource) {
        guard let id = sources.first(where: { $0.value == source })?.key, let c = connections[id] else { return }
        c.abortBoth()
        forget(id)
        recount()
        counters.tcpShareReclaimed += 1
    }

    /// Opens the stack's connection to the guest's IPv4 address. It comes from the client's
    /// own address when the port preserves sources and the guest can route back to it, else
    /// from the gateway address and a gateway-side port.
    private func connectIntoGuest(_ port: PublishedPort, peer: IPEndpoint) -> (TCPFlowID, FlowKey)? {
        let c = stack.configuration
        let guest = IPAddress.v4(c.guestIPv4)
        let now = monotonicNanoseconds()
        if port.preserveSource, let source = guestVisibleSource(peer.address) {
            let key = FlowKey(
                guestAddress: guest, guestPort: port.guestPort, remoteAddress: .v4(source), remotePort: peer.port)
            if let id = stack.tcpConnect(key, now: now) { return (id, key) }
        }
        guard stack.tcpConnectionCount < c.maxTCPConnections else { return nil }
        // A few tries: a port may still be held by an earlier connection (TIME-WAIT in the stack).
        for _ in 0..<64 {
            let p = takeGatewayPort()
            let key = FlowKey(
                guestAddress: guest, guestPort: port.guestPort, remoteAddress: .v4(c.gatewayIPv4), remotePort: p)
            if let id = stack.tcpConnect(key, now: now) { return (id, key) }
        }
        return nil
    }

    private func takeGatewayPort() -> UInt16 {
        let p = nextGatewayPort
        nextGatewayPort = p >= limits.gatewayPorts.upperBound ? limits.gatewayPorts.lowerBound : p + 1
        return p
    }

    /// The client's IPv4 address, when an IPv4 guest will route replies to it through the
    /// gateway: not loopback (a martian source to the guest's kernel), not on the guest's subnet
    /// (it would look for it on the link), not IPv6 (the guest is dialled over IPv4).
    private func guestVisibleSource(_ a: IPAddress) -> IPv4Address? {
        let v4: IPv4Address
        switch a {
        case .v4(let x): v4 = x
        case .v6(let x):
            guard let m = x.ipv4Mapped else { return nil }
            v4 = m
        }
        let c = stack.configuration
        if v4.isLoopback || v4.isUnspecified || v4.isMulticast || v4.isBroadcast { return nil }
        if v4.raw & c.subnetMask.raw == c.guestIPv4.raw & c.subnetMask.raw { return nil }
        return v4
    }

    func connectionEstablished() {
        counters.tcpActive += 1
    }

    func connectionFinished(_ id: TCPFlowID, wasEstablished: Bool) {
        if wasEstablished { counters.tcpActive -= 1 }
        forget(id)
    }

    /// A connection is gone: its slot and its client's share are free again.
    private func forget(_ id: TCPFlowID) {
        connections[id] = nil
        if let source = sources.removeValue(forKey: id) { shares.remove(source) }
    }

    func connectionFailed(_ id: TCPFlowID, _ reason: InboundConnection.ResetReason) {
        switch reason {
        case .guestRefused: counters.tcpGuestRefused += 1
        case .guestTimedOut: counters.tcpGuestTimedOut += 1
        }
        forget(id)
    }

    func countToGuest(_ n: Int) { counters.bytesToGuest &+= UInt64(n) }
    func countFromGuest(_ n: Int) { counters.bytesFromGuest &+= UInt64(n) }

    // MARK: - UDP

    func receiveDatagrams(on port: PublishedPort) {
        let now = monotonicNanoseconds()
        for _ in 0..<64 {
            guard let fd = port.fd else { break }
            let (n, peer) = SocketAddress.receiving {
                recvfrom(fd, datagram.baseAddress, datagram.count, Int32(MSG_DONTWAIT), $0, $1)
            }
            if n < 0 { break }
            guard let peer else { continue }
            guard let key = udpKey(for: IPEndpoint(address: peer.ip, port: peer.port), on: port, now: now) else {
                continue
            }
            counters.udpDatagramsIn += 1
            stack.sendUDP(key, payload: UnsafeRawBufferPointer(rebasing: datagram[..<n]))
        }
        driver.afterWork()
    }

    /// The flow a peer's datagrams take into the guest; a new peer is checked against the
    /// policy and given a gateway-side port. nil drops the datagram.
    private func udpKey(for peer: IPEndpoint, on port: PublishedPort, now: UInt64) -> FlowKey? {
        if let key = udpPeers.touch(port.binding, peer: peer, now: now) { return key }
        guard ingressAllowed(peer, port.guestPort, .udp) else {
            counters.udpDenied += 1
            return nil
        }
        let c = stack.configuration
        let guest = IPAddress.v4(c.guestIPv4)
        var key: FlowKey?
        if port.preserveSource, let source = guestVisibleSource(peer.address) {
            let direct = FlowKey(
                guestAddress: guest, guestPort: port.guestPort, remoteAddress: .v4(source), remotePort: peer.port)
            if udpPeers.addDirect(port.binding, peer: peer, stackKey: direct, now: now) { key = direct }
        }
        if key == nil {
            key = udpPeers.addMapped(port.binding, peer: peer, now: now) { p in
                FlowKey(
                    guestAddress: guest, guestPort: port.guestPort, remoteAddress: .v4(c.gatewayIPv4), remotePort: p)
            }
        }
        guard let key else {
            // Every gateway-side port stands for a live peer: the new one waits for one to expire.
            counters.udpPeerLimitDrops += 1
            return nil
        }
        counters.udpPeers = udpPeers.count
        armSweep()
        return key
    }

    /// A guest datagram to a gateway-side port (or a preserved peer) goes back to its peer
    /// through the published port's socket.
    private func udpFromGuest(_ key: FlowKey, _ payload: [UInt8]) -> Bool {
        guard let entry = udpPeers.touch(stackKey: key, now: monotonicNanoseconds()) else {
            // A reply to a peer that expired (or was unpublished) is dropped here: egress would
            // carry it to whatever listens on that port of the host's loopback.
            guard case .v4(let a) = key.remoteAddress, a == stack.configuration.gatewayIPv4,
                limits.gatewayPorts.contains(key.remotePort),
                ports.values.contains(where: { $0.binding.protocol == .udp && $0.guestPort == key.guestPort })
            else { return false }
            counters.udpLateReplies += 1
            return true
        }
        guard let port = ports[entry.binding], let fd = port.fd else { return true }
        let address = SocketAddress(entry.peer.address, port: entry.peer.port)
        let n = payload.withUnsafeBytes { bytes in
            address.withSockAddr { sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, $1) }
        }
        if n >= 0 { counters.udpDatagramsOut += 1 }
        return true
    }

    private func armSweep() {
        guard udpSweep == nil else { return }
        let idle = limits.udpIdleTimeout.nanoseconds
        guard let due = udpPeers.nextExpiry(idle: idle) else { return }
        udpSweep = loop.schedule(at: due) { [weak self] in
            guard let self else { return }
            self.udpSweep = nil
            self.udpPeers.expire(now: monotonicNanoseconds(), idle: idle)
            self.counters.udpPeers = self.udpPeers.count
            self.armSweep()
        }
    }
}
