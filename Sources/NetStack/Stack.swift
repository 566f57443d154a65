// One sandbox's userspace TCP/IP stack: Ethernet frames and time in; frames to the guest, TCP
// connections and UDP datagrams for the layer above out. No I/O: the owner moves the bytes.
import Scheduling
import Wire

/// What the layer above must act on, in the order it happened.
public enum StackEvent {
    /// The guest sent a SYN for a new flow: dial upstream, then `tcpAccept` or `tcpRefuse`.
    case tcpConnectionRequest(TCPFlowID, FlowKey)
    /// Something changed on a connection; one event each, in the order they happened.
    case tcp(TCPFlowID, TCPEvent)
    /// A UDP datagram from the guest to anything but the gateway's own services.
    case udp(FlowKey, [UInt8])
    /// An ICMP echo request from the guest to an address other than the gateway's.
    case echoRequest(source: IPAddress, destination: IPAddress, identifier: UInt16, sequence: UInt16, payload: [UInt8])
}

/// Counters for one stack; the gateway exports them per sandbox.
public struct StackCounters: Sendable {
    public var framesIn = 0
    public var bytesIn = 0
    public var framesOut = 0
    public var bytesOut = 0
    public var malformed = 0
    public var notForUs = 0
    public var badChecksum = 0
    public var unsupported = 0
    public var tcpResetsSent = 0
    public var tcpRefusedOverLimit = 0
    public var tcpConnectionsOpened = 0
    public var outputDropped = 0
    /// Loss recovery across closed connections: timeouts, fast recoveries, tail probes, resent segments.
    public var tcpRetransmitTimeouts = 0
    public var tcpFastRecoveries = 0
    public var tcpTailProbes = 0
    public var tcpRetransmittedSegments = 0
    /// Guest TCP bytes a direct receiver took as they arrived (the layer above wrote them to its
    /// socket), never buffered.
    public var tcpBytesTakenDirectly = 0
    /// ICMP errors sent to the guest (time exceeded, destination unreachable).
    public var icmpErrorsSent = 0
    /// Frames whose source MAC or IP is not the sandbox's (anti-spoofing).
    public var spoofed = 0
    public var arpReplies = 0
    public var echoReplies = 0

    /// Frames the stack turned away (malformed, bad checksum, not for it, unsupported, spoofed)
    /// and segments it could only answer with a reset: what a flood of junk shows up as.
    public var refused: Int { malformed + badChecksum + notForUs + unsupported + spoofed + tcpResetsSent }
}

public final class Stack {
    public let configuration: StackConfiguration
    public internal(set) var counters = StackCounters()
    /// Frames ready for the device.
    public var output: FrameQueue
    private var events: [StackEvent] = []

    /// The TCP connections, each with its key and the stack's bookkeeping for it.
    var flows = FlowTable()
    var ipIdentification: UInt16 = 0
    /// The flows in TIME-WAIT, oldest first: past `maxTimeWait` the oldest goes.
    private var timeWaitOrder: [TCPFlowID] = []
    /// Connection timers, earliest first; may hold stale entries (see `nextDeadline`).
    private var deadlines = DeadlineHeap<TCPFlowID>()
    /// Per-stack secret for RFC 6528 initial sequence numbers.
    private let isnSecret: UInt64

    /// Where the connections' buffer chunks come from (the shard's pool, shared by its stacks).
    public let bufferPool: BufferPool
    /// What this sandbox's connections may promise and hold.
    public let memoryBudget: MemoryBudget
    /// Connections the budget cut short, to reopen when memory frees up.
    private var memoryWaiters: [TCPFlowID] = []
    /// When to look at `memoryWaiters` again if nothing here frees memory (another sandbox may,
    /// through the shared budget).
    private var memoryRetryAt: UInt64?
    /// How often a connection waiting for memory is looked at again.
    static let memoryRetryInterval: UInt64 = 10_000_000

    /// Link-layer addresses of the guest, learned from its frames (ARP, NDP, any IP source).
    public internal(set) var neighbors = NeighborTable(capacity: 64)
    /// Records the guest's link address ahead of its first frame (the gateway knows it from the
    /// device), so connections into the guest need not wait for ARP.
    public func learnNeighbor(_ ip: IPAddress, mac: MACAddress, now: UInt64) {
        neighbors.learn(ip, mac: mac, now: now)
    }

    /// When set, segments from the guest are acknowledged once per batch (at `drainOutput`, or
    /// `flushDeferredTCP`) rather than one ACK each; the owner must drain after every batch.
    public var deferTCPOutput = false
    private var deferredFlows: [TCPFlowID] = []

    /// Sends the ACKs and data that deferred segments left pending.
    public func flushDeferredTCP(now: UInt64) {
        guard !deferredFlows.isEmpty else { return }
        let ids = deferredFlows
        deferredFlows.removeAll(keepingCapacity: true)
        for id in ids {
            guard let flow = flows[id] else { continue }
            flow.hasDeferredOutput = false
            flow.connection.flush(now: now, emit: { self.emitSegment(flow, $0) })
            collect(flow)
        }
    }

    /// The sandbox's DHCPv4 server.
    public internal(set) var dhcp: DHCPServer

    /// The guest's fragments waiting for the rest of their datagram.
    public internal(set) var ipv4Reassembler: IPv4Reassembler
    public internal(set) var ipv6Reassembler: IPv6Reassembler
    /// Identification of the last IPv6 packet the stack fragmented (RFC 8200 §4.5).
    var ipv6FragmentIdentification: UInt32 = 0
    /// Faults injected into frames both ways, for testing; nil (the default) costs one check per
    /// frame. Set from `configuration.faults`, or replace it at any time.
    public var faults: FaultInjector?

    /// Extra headroom in front of the Ethernet header.
    var headroom: Int { configuration.vnetHeaderSize }

    /// - Parameters: the pools and budget a gateway's shard shares among its stacks; by
    ///   default the stack gets its own, and no memory limit.
    public init(
        configuration: StackConfiguration, bufferPool: BufferPool? = nil, memoryBudget: MemoryBudget? = nil,
        framePool: FramePool? = nil
    ) {
        self.configuration = configuration
        self.bufferPool = bufferPool ?? BufferPool()
        self.memoryBudget = memoryBudget ?? .unlimited()
        let frameCapacity = configuration.vnetHeaderSize + 14 + 60 + 60 + 65_536
        let frames = framePool ?? FramePool(frameCapacity: frameCapacity)
        precondition(frames.frameCapacity >= frameCapacity, "frame pool's frames are too small for this stack")
        output = FrameQueue(pool: frames)
        dhcp = DHCPServer(configuration: configuration)
        var rng = SystemRandomNumberGenerator()
        isnSecret = rng.next()
        ipv4Reassembler = IPv4Reassembler(limits: configuration.reassembly)
        ipv6Reassembler = IPv6Reassembler(limits: configuration.reassembly)
        faults = configuration.faults.map { FaultInjector(configuration: $0, vnetHeaderSize: configuration.vnetHeaderSize) }
    }

    // MARK: - Input

    /// Processes one frame from the device (virtio-net header first when configured).
    public func receive(frame: UnsafeRawBufferPointer, now: UInt64) {
        if let faults {
            faults.process(input: frame, now: now) { receiveFrame($0, now: now) }
            return
        }
        receiveFrame(frame, now: now)
    }

    func receiveFrame(_ frame: UnsafeRawBufferPointer, now: UInt64) {
        counters.framesIn += 1
        counters.bytesIn += frame.count
        var checksumTrusted = false
        var l2 = frame
        if configuration.vnetHeaderSize > 0 {
            guard frame.count >= configuration.vnetHeaderSize,
                let vnet = try? VirtioNetHeader.parse(frame, size: configuration.vnetHeaderSize)
            else {
                counters.malformed += 1
                return
            }
            // NEEDS_CSUM: the guest's kernel left the checksum for "hardware", i.e. us; the bytes
            // came straight from it, so there is nothing to verify. DATA_VALID says the same.
            checksumTrusted = vnet.flags.contains(.needsChecksum) || vnet.flags.contains(.dataValid)
            guard let rest = frame.checkedSlice(configuration.vnetHeaderSize, frame.count - configuration.vnetHeaderSize)
            else {
                counters.malformed += 1
                return
            }
            l2 = rest
        }
        guard let eth = try? EthernetHeader.parse(l2) else {
            counters.malformed += 1
            return
        }
        if let guest = configuration.guestMAC, eth.source != guest {
            counters.spoofed += 1
            return
        }
        let dst = eth.destination
        guard dst == configuration.gatewayMAC || dst.isMulticast else {
            counters.notForUs += 1
            return
        }
        guard let payload = l2.checkedSlice(eth.headerLength, l2.count - eth.headerLength) else {
            counters.malformed += 1
            return
        }
        switch eth.etherType {
        case EtherType.arp:
            receiveARP(payload, from: eth.source, now: now)
        case EtherType.ipv4:
            receiveIPv4(payload, from: eth.source, checksumTrusted: checksumTrusted, now: now)
        case EtherType.ipv6:
            receiveIPv6(payload, from: eth.source, checksumTrusted: checksumTrusted, now: now)
        default:
            counters.unsupported += 1
        }
    }

    private func receiveARP(_ bytes: UnsafeRawBufferPointer, from mac: MACAddress, now: UInt64) {
        guard let arp = try? ARPPacket.parse(bytes) else {
            counters.malformed += 1
            return
        }
        if !arp.senderIP.isUnspecified && arp.senderMAC == mac && (configuration.guestMAC == nil || configuration.isGuestSource(arp.senderIP)) {
            neighbors.learn(.v4(arp.senderIP), mac: arp.senderMAC, now: now)
        }
        guard arp.operation == .request, arp.targetIP == configuration.gatewayIPv4, !arp.isAnnouncement else { return }
        let reply = ARPPacket(operation: .reply, senderMAC: configuration.gatewayMAC, senderIP: configuration.gatewayIPv4,
                              targetMAC: arp.senderMAC, targetIP: arp.senderIP)
        guard let f = output.obtain() else { return noteOutputDrop() }
        let b = f.storage
        var at = writeVnetHeader(b)
        let eth = EthernetHeader(destination: arp.senderMAC, source: configuration.gatewayMAC, etherType: EtherType.arp)
        guard let n = try? eth.emit(into: b.slice(at, b.count - at)) else { return }
        at += n
        guard let m = try? reply.emit(into: b.slice(at, b.count - at)) else { return }
        at += m
        // Pad to the Ethernet minimum; some guests drop runts.
        let minimum = headroom + 60
        if at < minimum {
            b.slice(at, minimum - at).initializeMemory(as: UInt8.self, repeating: 0)
            at = minimum
        }
        finish(f, length: at)
        counters.arpReplies += 1
    }

    private func receiveIPv4(_ bytes: UnsafeRawBufferPointer, from mac: MACAddress, checksumTrusted: Bool, now: UInt64) {
        let ip: IPv4Header
        do {
            ip = try IPv4Header.parse(bytes)
        } catch {
            if error.code == .badChecksum { counters.badChecksum += 1 } else { counters.malformed += 1 }
            return
        }
        if configuration.guestMAC != nil && !configuration.isGuestSource(ip.source) {
            counters.spoofed += 1
            return
        }
        if !ip.source.isUnspecified { neighbors.learn(.v4(ip.source), mac: mac, now: now) }
        // A router does not forward a packet whose TTL runs out here (RFC 1812 §5.3.1): it
        // answers "time exceeded", which is what traceroute shows as the first hop.
        guard let datagram = bytes.checkedSlice(0, Int(ip.totalLength)),
            let l4 = datagram.checkedSlice(ip.headerLength, ip.payloadLength)
        else {
            counters.malformed += 1
            return
        }
        if ip.ttl <= 1 && ip.destination != configuration.gatewayIPv4 && !ip.destination.isMulticast && !ip.destination.isBroadcast
            && ip.destination != configuration.broadcastIPv4 && !ip.source.isUnspecified
        {
            sendICMPv4Error(to: ip.source, from: configuration.gatewayIPv4, type: ICMPv4Message.timeExceeded, code: 0,
                            quoting: datagram)
            return
        }
        if ip.isFragment {
            receiveIPv4Fragment(ip, fragment: l4, now: now)
            return
        }
        deliverIPv4(ip, l4: l4, checksumTrusted: checksumTrusted, now: now)
    }

    /// Fragments go to the reassembler; a whole datagram goes on as if it had come unfragmented.
    func receiveIPv4Fragment(_ ip: IPv4Header, fragment: UnsafeRawBufferPointer, now: UInt64) {
        guard let whole = ipv4Reassembler.add(header: ip, fragment: fragment, now: now) else { return }
        whole.payload.withUnsafeBytes { deliverIPv4(whole.header, l4: $0, checksumTrusted: false, now: now) }
    }

    func deliverIPv4(_ ip: IPv4Header, l4: UnsafeRawBufferPointer, checksumTrusted: Bool, now: UInt64) {
        if ip.protocolNumber == IPProtocol.icmp {
            receiveICMPv4(ip, l4)
        } else {
            deliverTransport(ip.protocolNumber, l4: l4, source: .v4(ip.source), destination: .v4(ip.destination), checksumTrusted: checksumTrusted, now: now)
        }
    }

    /// TCP and UDP of either family: checksum (unless the device vouched for it), then the flow.
    private func deliverTransport(_ proto: UInt8, l4: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress, checksumTrusted: Bool, now: UInt64) {
        switch proto {
        case IPProtocol.tcp:
            guard checksumTrusted || TransportChecksum.verifies(tcp: true, l4, source: source, destination: destination) else {
                counters.badChecksum += 1
                return
            }
            receiveTCP(l4, source: source, destination: destination, now: now)
        case IPProtocol.udp:
            guard let udp = try? UDPHeader.parse(l4) else {
                counters.malformed += 1
                return
            }
            guard let datagram = l4.checkedSlice(0, Int(udp.length)),
                let payload = datagram.checkedSlice(UDPHeader.length, udp.payloadLength)
            else {
                counters.malformed += 1
                return
            }
            guard checksumTrusted || TransportChecksum.verifies(tcp: false, datagram, source: source, destination: destination) else {
                counters.badChecksum += 1
                return
            }
            receiveUDP(udp, payload: payload, source: source, destination: destination, now: now)
        default:
            counters.unsupported += 1
        }
    }

    private func receiveIPv6(_ bytes: UnsafeRawBufferPointer, from mac: MACAddress, checksumTrusted: Bool, now: UInt64) {
        let ip: IPv6Header
        do {
            ip = try IPv6Header.parse(bytes)
        } catch {
            counters.malformed += 1
            return
        }
        if configuration.guestMAC != nil && !configuration.isGuestSource(ip.source) {
            counters.spoofed += 1
            return
        }
        if !ip.source.isUnspecified && !ip.source.isMulticast { neighbors.learn(.v6(ip.source), mac: mac, now: now) }
        guard let packet = bytes.checkedSlice(0, IPv6Header.length + Int(ip.payloadLength)),
            let l4 = packet.checkedSlice(ip.upperOffset, ip.upperLength)
        else {
            counters.malformed += 1
            return
        }
        if ip.hopLimit <= 1 && !isGatewayIPv6(ip.destination) && !ip.destination.isMulticast && !ip.source.isUnspecified {
            sendICMPv6(to: ip.source, from: configuration.gatewayIPv6, type: ICMPv6Message.timeExceeded, restOfHeader: 0,
                       payload: packet)
            counters.icmpErrorsSent += 1
            return
        }
        if ip.isFragment {
            receiveIPv6Fragment(ip, bytes, mac: mac, now: now)
            return
        }
        deliverIPv6(ip, l4: l4, checksumTrusted: checksumTrusted, mac: mac, now: now)
    }

    /// The upper layer of an unfragmented or reassembled IPv6 packet.
    func deliverIPv6(_ ip: IPv6Header, l4: UnsafeRawBufferPointer, checksumTrusted: Bool, mac: MACAddress, now: UInt64) {
        if ip.upperProtocol == IPProtocol.icmpv6 {
            receiveICMPv6(ip, l4, mac: mac, now: now)
        } else {
            deliverTransport(ip.upperProtocol, l4: l4, source: .v6(ip.source), destination: .v6(ip.destination), checksumTrusted: checksumTrusted, now: now)
        }
    }

    // MARK: - UDP

    func receiveUDP(_ udp: UDPHeader, payload: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress, now: UInt64) {
        if handleLocalUDP(udp, payload: payload, destination: destination, now: now) { return }
        let key = FlowKey(guestAddress: source, guestPort: udp.sourcePort, remoteAddress: destination, remotePort: udp.destinationPort)
        events.append(.udp(key, Array(payload)))
    }

    /// The gateway's own UDP services (DHCP); true when consumed.
    func handleLocalUDP(_ udp: UDPHeader, payload: UnsafeRawBufferPointer, destination: IPAddress, now: UInt64) -> Bool {
        guard udp.destinationPort == 67, case .v4(let dst) = destination else { return false }
        guard dst == configuration.gatewayIPv4 || dst.isBroadcast || dst == configuration.broadcastIPv4 else { return false }
        guard let message = try? DHCPMessage.parse(payload) else {
            counters.malformed += 1
            return true
        }
        if let answer = dhcp.handle(message, now: now) {
            sendDHCP(answer)
        }
        return true
    }

    private func sendDHCP(_ a: DHCPServer.Answer) {
        let params = dhcp.parameters
        let maxLength = DHCPMessage.defaultMaximumLength + 1024
        emitIPRaw(to: a.destinationMAC, source: configuration.gatewayIPv4, destination: a.destinationIP, protocolNumber: IPProtocol.udp, maxL4Length: UDPHeader.length + maxLength) { l4 in
            guard let n = try? a.reply.emit(into: l4.slice(UDPHeader.length, l4.count - UDPHeader.length), parameters: params) else { return 0 }
            _ = try? UDPHeader(sourcePort: 67, destinationPort: 68, payloadLength: n).emit(into: l4)
            UDPHeader.fillChecksum(l4.slice(0, UDPHeader.length + n), source: configuration.gatewayIPv4, destination: a.destinationIP)
            return UDPHeader.length + n
        }
    }

    /// Sends a datagram to the guest as if from `key.remoteAddress:remotePort`.
    /// Datagrams beyond the MTU go out as IP fragments; beyond what IP can carry, they are dropped.
    public func sendUDP(_ key: FlowKey, payload: UnsafeRawBufferPointer) {
        guard let dstMAC = neighbors.lookup(key.guestAddress),
            payload.count <= 65535 - UDPHeader.length - (key.guestAddress.isV6 ? 0 : IPv4Header.minimumLength)
        else {
            counters.outputDropped += 1
            return
        }
        let l4Length = UDPHeader.length + payload.count
        emitIP(to: dstMAC, source: key.remoteAddress, destination: key.guestAddress, protocolNumber: IPProtocol.udp, l4Length: l4Length, gso: nil) { l4 in
            _ = try? UDPHeader(sourcePort: key.remotePort, destinationPort: key.guestPort, payloadLength: payload.count).emit(into: l4)
            if payload.count > 0 { l4.slice(UDPHeader.length, payload.count).copyMemory(from: payload) }
            return UDPHeader.checksumOffset
        }
    }

    // MARK: - Events and timers

    /// Hands every pending event to `body`, in order.
    public func drainEvents(_ body: (StackEvent) -> Void) {
        guard !events.isEmpty else { return }
        let pending = events
        events.removeAll(keepingCapacity: true)
        for e in pending { body(e) }
    }

    public var hasEvents: Bool { !events.isEmpty }

    /// The earliest time `poll` has timer work.
    public var nextDeadline: UInt64? {
        var best: UInt64?
        // Entries whose connection is gone or whose deadline moved are dropped as they surface.
        while let top = deadlines.first {
            if let flow = flows[top.id], flow.connection.nextDeadline == top.deadline {
                best = top.deadline
                break
            }
            deadlines.popMin()
        }
        if let d = ipv4Reassembler.nextDeadline, best == nil || d < best! { best = d }
        if let d = ipv6Reassembler.nextDeadline, best == nil || d < best! { best = d }
        if let d = faults?.nextDeadline, best == nil || d < best! { best = d }
        if let d = memoryRetryAt, best == nil || d < best! { best = d }
        return best
    }

    /// Runs due timers.
    public func poll(now: UInt64) {
        // Only connections whose timer is due, found through the deadline heap: a stack holding
        // a thousand TIME-WAIT connections must not walk them all on every wake-up.
        var due: [TCPFlowID] = []
        while let top = deadlines.first, top.deadline <= now {
            deadlines.popMin()
            if let flow = flows[top.id], flow.connection.nextDeadline == top.deadline, !due.contains(top.id) {
                due.append(top.id)
            }
        }
        for id in due {
            guard let flow = flows[id] else { continue }
            flow.scheduledDeadline = nil  // its entry left the heap: whatever comes next is pushed anew
            flow.connection.poll(now: now, emit: { self.emitSegment(flow, $0) })
            collect(flow)
        }
        if let t = memoryRetryAt, now >= t { wakeMemoryWaiters(now: now) }
        ipv4Reassembler.expire(now: now)
        ipv6Reassembler.expire(now: now)
        if let faults {
            faults.releaseInput(now: now) { receiveFrame($0, now: now) }
            faults.process(&output, now: now)
        }
    }

    func noteOutputDrop() { counters.outputDropped += 1 }

    func appendEvent(_ e: StackEvent) { events.append(e) }

    // MARK: - TCP glue

    private func receiveTCP(_ segment: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress, now: UInt64) {
        let header: TCPHeader
        do {
            header = try TCPHeader.parse(segment)
        } catch {
            counters.malformed += 1
            return
        }
        guard let payload = segment.checkedSlice(header.headerLength, segment.count - header.headerLength) else {
            counters.malformed += 1
            return
        }
        let seg = TCPSegmentIn(header: header, payload: payload)
        let key = FlowKey(guestAddress: source, guestPort: header.sourcePort, remoteAddress: destination, remotePort: header.destinationPort)
        if let flow = flows[key] {
            let conn = flow.connection
            if conn.state == .timeWait && header.flags.contains(.syn) && !header.flags.contains(.ack) {
                // A new incarnation of the same 4-tuple (RFC 9293 §3.10.7.4 TIME-WAIT + SYN): start afresh.
                remove(flow)
            } else {
                if deferTCPOutput {
                    conn.handle(seg, now: now, deferOutput: true, emit: { self.emitSegment(flow, $0) })
                    if !flow.hasDeferredOutput {
                        flow.hasDeferredOutput = true
                        deferredFlows.append(flow.id)
                    }
                } else {
                    conn.handle(seg, now: now, emit: { self.emitSegment(flow, $0) })
                }
                collect(flow)
                // An ACK that freed send buffer may be what a connection waiting for memory needs.
                if !memoryWaiters.isEmpty { wakeMemoryWaiters(now: now) }
                return
            }
        }
        if header.flags.contains(.rst) { return }
        guard header.flags.contains(.syn), !header.flags.contains(.ack) else {
            // No connection: RFC 9293 §3.10.7.1 reset generation.
            sendReset(key: key, for: seg)
            return
        }
        guard isUsableDestination(destination) else {
            sendReset(key: key, for: seg)
            return
        }
        guard let flow = openFlow(key, .guestSYN(seg), now: now) else {
            counters.tcpRefusedOverLimit += 1
            sendReset(key: key, for: seg)
            return
        }
        events.append(.tcpConnectionRequest(flow.id, key))
    }

    /// Who opens a flow.
    private enum Opening {
        /// The guest, with this SYN.
        case guestSYN(TCPSegmentIn)
        /// The gateway, connecting into the guest.
        case intoGuest
    }

    /// Adds a flow for `key` with its connection; nil when the stack holds as many connections
    /// as it may, or `key` has one already.
    private func openFlow(_ key: FlowKey, _ opening: Opening, now: UInt64) -> FlowEntry? {
        guard flows.count < configuration.maxTCPConnections, !flows.contains(key) else { return nil }
        var cfg = configuration.tcp
        if key.guestAddress.isV6 {
            cfg.localMSS = configuration.mtu - IPv6Header.length - TCPHeader.minimumLength
            // Without offloads every segment leaves as it is, and the configured payload was
            // sized for IPv4's header, 20 bytes shorter than IPv6's.
            if !configuration.offloads { cfg.maxSegmentPayload = min(cfg.maxSegmentPayload, cfg.localMSS) }
        }
        let iss = initialSequenceNumber(key, now: now)
        let conn: TCPConnection
        switch opening {
        case .guestSYN(let syn):
            conn = TCPConnection(
                passiveSYN: syn, iss: iss, configuration: cfg, now: now, pool: bufferPool, budget: memoryBudget)
        case .intoGuest:
            conn = TCPConnection(activeISS: iss, configuration: cfg, now: now, pool: bufferPool, budget: memoryBudget)
        }
        counters.tcpConnectionsOpened += 1
        return flows.insert(key, conn)
    }

    /// Broadcast, multicast and unspecified destinations never get a connection.
    private func isUsableDestination(_ a: IPAddress) -> Bool {
        switch a {
        case .v4(let v): !(v.isUnspecified || v.isBroadcast || v.isMulticast || v == configuration.broadcastIPv4)
        case .v6(let v): !(v.isUnspecified || v.isMulticast)
        }
    }

    private func sendReset(key: FlowKey, for seg: TCPSegmentIn) {
        guard let mac = neighbors.lookup(key.guestAddress) else { return }
        let out: TCPSegmentOut
        if seg.flags.contains(.ack) {
            out = TCPSegmentOut(seq: seg.ack.raw, ack: 0, flags: [.rst], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0)
        } else {
            out = TCPSegmentOut(seq: 0, ack: (seg.seq + seg.length).raw, flags: [.rst, .ack], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0)
        }
        counters.tcpResetsSent += 1
        emitTCP(out, key: key, mac: mac, conn: nil)
    }

    /// RFC 6528: a 4 µs clock plus a keyed hash of the 4-tuple.
    private func initialSequenceNumber(_ key: FlowKey, now: UInt64) -> UInt32 {
        var h = Hasher()
        h.combine(isnSecret)
        h.combine(key)
        return UInt32(truncatingIfNeeded: now / 4000) &+ UInt32(truncatingIfNeeded: h.finalize())
    }

    /// Builds the frame for one segment a connection emits. Call sites pass it as a closure
    /// literal (`emit: { emitSegment(flow, $0) }`): non-escaping, so nothing is allocated per packet.
    func emitSegment(_ flow: FlowEntry, _ out: TCPSegmentOut) {
        guard let mac = neighbors.lookup(flow.key.guestAddress) else {
            counters.outputDropped += 1
            return
        }
        if out.flags.contains(.rst) { counters.tcpResetsSent += 1 }
        emitTCP(out, key: flow.key, mac: mac, conn: flow.connection)
    }

    private func emitTCP(_ out: TCPSegmentOut, key: FlowKey, mac: MACAddress, conn: TCPConnection?) {
        var header = TCPHeader(sourcePort: key.remotePort, destinationPort: key.guestPort, sequenceNumber: out.seq,
                               acknowledgmentNumber: out.ack, flags: out.flags, window: out.window, options: out.options)
        header.checksum = 0
        let headerLength = header.emittedLength
        let l4Length = headerLength + out.payloadLength
        // Each piece the device cuts carries the same header, options included.
        let mss = configuration.mtu - (key.guestAddress.isV6 ? 40 : 20) - headerLength
        let gso: GSORequest? = out.payloadLength > mss ? GSORequest(isV6: key.guestAddress.isV6, segmentSize: mss, l4HeaderLength: headerLength) : nil
        emitIP(to: mac, source: key.remoteAddress, destination: key.guestAddress, protocolNumber: IPProtocol.tcp, l4Length: l4Length, gso: gso) { l4 in
            _ = try? header.emit(into: l4)
            if out.payloadLength > 0, let conn {
                _ = conn.sendBuffer.peek(into: l4.slice(headerLength, out.payloadLength), at: out.payloadOffset)
            }
            return TCPHeader.checksumOffset
        }
    }

    /// Takes a connection's events into the stack's queue and retires it once closed and drained.
    func collect(_ flow: FlowEntry) {
        let id = flow.id, conn = flow.connection
        for e in conn.takeEvents() { events.append(.tcp(id, e)) }
        if let d = conn.nextDeadline, flow.scheduledDeadline != d {
            flow.scheduledDeadline = d
            deadlines.insert(.init(deadline: d, id: id))
        }
        if conn.state == .timeWait && !flow.inTimeWait {
            flow.inTimeWait = true
            timeWaitOrder.append(id)
            if timeWaitOrder.count > configuration.maxTimeWait, let oldest = flows[timeWaitOrder.removeFirst()] {
                remove(oldest)
            }
        }
        if conn.waitingForMemory && !flow.waitingForMemory {
            flow.waitingForMemory = true
            memoryWaiters.append(id)
            if memoryRetryAt == nil { memoryRetryAt = 0 }
        }
        if conn.state == .closed && (conn.receiveBuffer.isEmpty || conn.closeReason != .normal) {
            remove(flow)
        }
    }

    /// Reopens the windows and send buffers of connections the budget cut short, if memory is
    /// there now; else looks again a little later.
    func wakeMemoryWaiters(now: UInt64) {
        memoryRetryAt = nil
        guard !memoryWaiters.isEmpty else { return }
        guard memoryBudget.available > 0 else {
            memoryRetryAt = now + Self.memoryRetryInterval
            return
        }
        let ids = memoryWaiters
        memoryWaiters.removeAll(keepingCapacity: true)
        for id in ids {
            guard let flow = flows[id] else { continue }
            flow.waitingForMemory = false
            flow.connection.memoryAvailable()
            flow.connection.poll(now: now, emit: { self.emitSegment(flow, $0) })
            collect(flow)
        }
        if !memoryWaiters.isEmpty && memoryRetryAt == 0 { memoryRetryAt = now + Self.memoryRetryInterval }
    }

    /// Takes a flow out of the table (a second call does nothing); its queued ids and timer
    /// entries go stale and are skipped where they surface.
    func remove(_ flow: FlowEntry) {
        guard flows.remove(flow.id) != nil else { return }
        let c = flow.connection
        counters.tcpRetransmitTimeouts += c.retransmitTimeouts
        counters.tcpFastRecoveries += c.fastRecoveries
        counters.tcpTailProbes += c.tailProbes
        counters.tcpRetransmittedSegments += c.retransmittedSegments
        c.releaseMemory()
        if flow.inTimeWait, let i = timeWaitOrder.firstIndex(of: flow.id) { timeWaitOrder.remove(at: i) }
    }

    // MARK: - TCP socket API for the layer above

    public func tcpState(_ id: TCPFlowID) -> TCPState? { flows[id]?.connection.state }

    /// Why a connection closed, while the stack still holds it (unread bytes or TIME-WAIT).
    public func tcpCloseReason(_ id: TCPFlowID) -> TCPCloseReason? { flows[id]?.connection.closeReason }

    /// Each connection's key and internal state, one line each, for diagnosing a stuck flow.
    public func tcpDebugDescriptions() -> [String] {
        flows.entries.map { "\($0.id) \($0.key) \($0.connection.debugState)" }
    }
    public func tcpKey(_ id: TCPFlowID) -> FlowKey? { flows[id]?.key }
    public var tcpConnectionCount: Int { flows.count }

    public func tcpAccept(_ id: TCPFlowID, now: UInt64) {
        guard let flow = flows[id] else { return }
        let c = flow.connection
        c.accept(now: now, emit: { self.emitSegment(flow, $0) })
        collect(flow)
    }

    public func tcpRefuse(_ id: TCPFlowID) {
        guard let flow = flows[id] else { return }
        let c = flow.connection
        c.refuse(emit: { self.emitSegment(flow, $0) })
        _ = c.takeEvents()
        remove(flow)
    }

    /// Queues bytes for the guest and sends what the windows allow; returns bytes taken.
    public func tcpWrite(_ id: TCPFlowID, _ bytes: UnsafeRawBufferPointer, now: UInt64) -> Int {
        guard let flow = flows[id] else { return 0 }
        let c = flow.connection
        let n = c.write(bytes)
        if n > 0 {
            c.poll(now: now, emit: { self.emitSegment(flow, $0) })
            collect(flow)
        }
        return n
    }

    public func tcpWritableBytes(_ id: TCPFlowID) -> Int { flows[id]?.connection.writableBytes ?? 0 }

    /// The most one `tcpWriteInPlace` offers: as much as one readv's regions reach.
    public var tcpWriteInPlaceLimit: Int { BufferRegions.capacity * bufferPool.chunkSize }

    /// Lets `fill` write straight into the connection's send buffer (a readv from a host socket,
    /// no intermediate copy); `fill` gets free space as regions (memory taken from the pool and
    /// the budget for them; what it leaves unfilled goes back) and returns how many bytes it
    /// wrote. Sends what the windows allow. Returns the bytes taken; 0 without calling `fill`
    /// when the buffer is full or the budget has nothing to give (the connection then reports
    /// `.writable` once it has).
    public func tcpWriteInPlace(_ id: TCPFlowID, now: UInt64, _ fill: (BufferRegions) -> Int) -> Int {
        guard let flow = flows[id] else { return 0 }
        let c = flow.connection
        let reserved = c.reserveSend(tcpWriteInPlaceLimit)
        guard reserved > 0 else {
            collect(flow)
            return 0
        }
        let regions = c.sendBuffer.writableRegions(max: reserved)
        let n = fill(regions)
        let written = min(max(n, 0), regions.byteCount)
        if written > 0 {
            c.sendBuffer.commit(written)
        } else {
            c.sendBuffer.releaseUnwritten()
        }
        c.settleSend(reserved: reserved, written: written)
        guard n > 0 else { return n }
        c.poll(now: now, emit: { self.emitSegment(flow, $0) })
        collect(flow)
        return n
    }

    /// Reads the guest's bytes; 0 with `tcpIsReadClosed` true means end of stream.
    public func tcpRead(_ id: TCPFlowID, into buffer: UnsafeMutableRawBufferPointer, now: UInt64) -> Int {
        guard let flow = flows[id] else { return 0 }
        let c = flow.connection
        let n = c.read(into: buffer)
        if n > 0 {
            c.poll(now: now, emit: { self.emitSegment(flow, $0) })
            collect(flow)
            if !memoryWaiters.isEmpty { wakeMemoryWaiters(now: now) }
        }
        return n
    }

    /// The guest's unread bytes, as regions, for a zero-copy writev; then `tcpConsume`.
    public func tcpReadableRegions(_ id: TCPFlowID) -> BufferRegions? {
        flows[id]?.connection.receiveBuffer.readableRegions()
    }

    public func tcpConsume(_ id: TCPFlowID, _ n: Int, now: UInt64) {
        guard let flow = flows[id], n > 0 else { return }
        let c = flow.connection
        c.consume(n)
        c.poll(now: now, emit: { self.emitSegment(flow, $0) })
        collect(flow)
        if !memoryWaiters.isEmpty { wakeMemoryWaiters(now: now) }
    }

    /// Lets `take` have the guest's in-order bytes as they arrive whenever none wait in the
    /// receive buffer (see `TCPConnection.directReceiver`); nil stops it.
    public func tcpSetDirectReceiver(_ id: TCPFlowID, _ take: ((UnsafeRawBufferPointer, Bool) -> Int)?) {
        guard let take else {
            flows[id]?.connection.directReceiver = nil
            return
        }
        flows[id]?.connection.directReceiver = { [unowned self] bytes, pushed in
            let n = min(max(take(bytes, pushed), 0), bytes.count)
            self.counters.tcpBytesTakenDirectly += n
            return n
        }
    }

    public func tcpReadableBytes(_ id: TCPFlowID) -> Int { flows[id]?.connection.receiveBuffer.count ?? 0 }

    /// Copies the guest's unread bytes from the start, without consuming them; returns how many.
    public func tcpPeek(_ id: TCPFlowID, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        flows[id]?.connection.receiveBuffer.peek(into: buffer) ?? 0
    }

    /// Takes every unread byte without looking at it: for a layer above that will read no more.
    /// (A closed connection stays until its receive buffer is empty, for its last bytes to be read.)
    public func tcpDiscardReadable(_ id: TCPFlowID, now: UInt64) {
        tcpConsume(id, tcpReadableBytes(id), now: now)
    }

    public func tcpIsReadClosed(_ id: TCPFlowID) -> Bool { flows[id]?.connection.isReadClosed ?? true }

    public func tcpShutdownWrite(_ id: TCPFlowID, now: UInt64) {
        guard let flow = flows[id] else { return }
        let c = flow.connection
        c.shutdownWrite()
        c.poll(now: now, emit: { self.emitSegment(flow, $0) })
        collect(flow)
    }

    public func tcpAbort(_ id: TCPFlowID) {
        guard let flow = flows[id] else { return }
        let c = flow.connection
        c.abort(emit: { self.emitSegment(flow, $0) })
        _ = c.takeEvents()
        remove(flow)
    }

    /// Opens a connection into the guest (published ports). The guest must be known on the link.
    public func tcpConnect(_ key: FlowKey, now: UInt64) -> TCPFlowID? {
        guard let flow = openFlow(key, .intoGuest, now: now) else { return nil }
        flow.connection.poll(now: now, emit: { self.emitSegment(flow, $0) })
        collect(flow)
        return flow.id
    }
}

extension IPAddress {
    var isV6: Bool {
        if case .v6 = self { return true }
        return false
    }
}
