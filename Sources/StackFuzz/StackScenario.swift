// One fuzz input run against a fresh Stack: the first bytes choose its configuration, the rest is a
// sequence of steps; after each step the stack's events and frames are taken and its invariants checked.
#if canImport(Glibc)
import Glibc
#endif
import FuzzDriver
import NetStack
import Wire

/// The steps an input is made of; its byte modulo the count picks one. Append only: seeds in
/// Tools/fuzz-corpus-stack are written with these numbers.
enum Step: UInt8, CaseIterable {
    /// The guest opens a connection (SYN) on a slot.
    case open
    /// The guest sends a segment on a slot's connection, mutated as the input says.
    case segment
    /// The guest ends its stream there: FIN after what it has sent.
    case finish
    /// The relay acts on a slot's connection: accept, read, write, shut down, abort.
    case relay
    /// The clock moves on; due timers run.
    case time
    /// The stack opens a connection into the guest (a published port).
    case publish
    case fragmentsV4
    case fragmentsV6
    case arp
    case ndp
    case dhcp
    case icmp
    case udp
    /// Input bytes as a frame, unchecked.
    case rawFrame
}

/// The configuration bits at the start of an input.
struct ScenarioOptions {
    var bits: UInt8

    var vnet: Bool { bits & 1 != 0 }
    var offloads: Bool { bits & 2 != 0 }
    var smallBudget: Bool { bits & 4 != 0 }
    var smallBuffers: Bool { bits & 8 != 0 }
    var deferOutput: Bool { bits & 16 != 0 }
    var antiSpoofing: Bool { bits & 32 != 0 }
    var smallLimits: Bool { bits & 64 != 0 }
    var smallMTU: Bool { bits & 128 != 0 }

    static let budgetLimit = 96 * 1024

    var configuration: StackConfiguration {
        var c = StackConfiguration(mtu: smallMTU ? 1280 : 1500, vnetHeaderSize: vnet ? 10 : 0, offloads: offloads)
        if smallBuffers {
            c.tcp.sendBufferSize = 16 * 1024
            c.tcp.receiveBufferSize = 16 * 1024
            c.tcp.initialReceiveWindow = 4 * 1024
            c.tcp.maxOutOfOrderRanges = 3
        }
        if antiSpoofing { c.guestMAC = GuestIdentity.mac }
        if smallLimits {
            c.maxTCPConnections = 3
            c.maxTimeWait = 1
            c.reassembly = ReassemblyLimits(maximumDatagrams: 3, maximumBufferedBytes: 8 * 1024)
        }
        return c
    }
}

/// The guest's own addresses and the peers it talks to.
enum GuestIdentity {
    static let mac = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
    static let ipv4 = IPv4Address(10, 0, 2, 15)
    static let ipv6 = IPv6Address("fd00:0:0:2::15")!
    static let linkLocal = IPv6Address(linkLocalFrom: mac)
    /// Mostly ordinary remote hosts; then the gateway's own addresses, and ones that never get a connection.
    static let remotesV4: [IPv4Address] = [
        IPv4Address(192, 0, 2, 1), IPv4Address(198, 51, 100, 7), IPv4Address(10, 0, 2, 2), IPv4Address(10, 0, 2, 255),
        IPv4Address(224, 0, 0, 1),
    ]
    static let remotesV6: [IPv6Address] = [
        IPv6Address("2001:db8::1")!, IPv6Address("2001:db8::2")!, IPv6Address("fd00:0:0:2::2")!, IPv6Address("ff02::1")!,
    ]
    static let ports: [UInt16] = [80, 443, 8080, 53, 22]
}

extension IPAddress {
    var isV6: Bool {
        if case .v6 = self { return true }
        return false
    }
}

final class StackScenario {
    /// Shared by every input so that each input's stack must give all of its chunks back.
    /// Unsafe but sound: libFuzzer runs one input at a time on one thread.
    nonisolated(unsafe) static let bufferPool = BufferPool(chunkSize: 4096, slabChunks: 16, keepWarm: 4)
    nonisolated(unsafe) static let framePool = FramePool(frameCapacity: FramePool.standardCapacity, keepWarm: 8)
    static let slotCount = 4
    /// STACKFUZZ_TRACE=1 in a replay prints each step and the connections after it.
    static let trace = getenv("STACKFUZZ_TRACE") != nil
    static let maxSteps = 400

    let options: ScenarioOptions
    let configuration: StackConfiguration
    let budget: MemoryBudget
    let stack: Stack
    var input: FuzzInput
    var now: UInt64 = 1_000_000_000

    var slots: [Connection?] = Array(repeating: nil, count: StackScenario.slotCount)
    var byKey: [FlowKey: Connection] = [:]
    var byFlow: [TCPFlowID: Connection] = [:]
    var serials = 0
    var frameCheck: EmittedFrameCheck
    /// The last datagram and echo request the stack raised, for the relay to answer.
    var lastDatagram: FlowKey?
    var lastEcho: (source: IPAddress, destination: IPAddress, identifier: UInt16, sequence: UInt16)?

    /// What a run reached, for the replay's summary of the seeds.
    var stats = Stats()
    struct Stats {
        var steps = 0
        var established = 0
        var deliveredBytes = 0
        /// Of those, the ones a direct receiver took as they arrived.
        var directBytes = 0
        var guestReceivedBytes = 0
        var framesChecked = 0
    }

    init(_ bytes: UnsafeRawBufferPointer) {
        input = FuzzInput(bytes)
        options = ScenarioOptions(bits: input.byte())
        configuration = options.configuration
        budget = options.smallBudget ? MemoryBudget(limit: ScenarioOptions.budgetLimit) : .unlimited()
        precondition(Self.bufferPool.chunksInUse == 0, "a previous input's stack kept buffer chunks")
        stack = Stack(configuration: configuration, bufferPool: Self.bufferPool, memoryBudget: budget, framePool: Self.framePool)
        stack.deferTCPOutput = options.deferOutput
        frameCheck = EmittedFrameCheck(configuration: configuration)
        // As the gateway does from the device: the guest's link address is known before its first frame.
        if input.bool() {
            stack.learnNeighbor(.v4(GuestIdentity.ipv4), mac: GuestIdentity.mac, now: now)
            stack.learnNeighbor(.v6(GuestIdentity.ipv6), mac: GuestIdentity.mac, now: now)
        }
    }

    func run() {
        while !input.isEmpty && stats.steps < Self.maxSteps {
            stats.steps += 1
            let step = Step(rawValue: input.byte() % UInt8(Step.allCases.count))!
            perform(step)
            if Self.trace { print("step \(stats.steps): \(step); \(stack.tcpDebugDescriptions())") }
            settle()
            checkInvariants()
        }
        // Whatever the input left, the stack runs down: every connection ends and gives its memory back.
        windDown()
    }

    func perform(_ step: Step) {
        switch step {
        case .open: open()
        case .segment: segment()
        case .finish: finish()
        case .relay: relay()
        case .time: advanceTime()
        case .publish: publish()
        case .fragmentsV4: fragmentsV4()
        case .fragmentsV6: fragmentsV6()
        case .arp: arp()
        case .ndp: ndp()
        case .dhcp: dhcp()
        case .icmp: icmp()
        case .udp: udp()
        case .rawFrame: rawFrame()
        }
    }

    // MARK: - Frames in, events and frames out

    func deliver(_ frame: [UInt8]) {
        frame.withUnsafeBytes { stack.receive(frame: $0, now: now) }
    }

    /// What the gateway's shard does after a batch of frames: flush deferred ACKs, hand events
    /// to the relays, write the frames to the device.
    func settle() {
        for _ in 0..<8 {
            if stack.deferTCPOutput { stack.flushDeferredTCP(now: now) }
            var events: [StackEvent] = []
            stack.drainEvents { events.append($0) }
            for e in events { handle(e) }
            var frames: [[UInt8]] = []
            stack.output.drain { frames.append(Array($0.bytes)) }
            for f in frames {
                stats.framesChecked += 1
                frameCheck.check(f, now: now) { header, payload, remote, guest in
                    observe(header, payload: payload, remote: remote, guest: guest)
                }
            }
            if !stack.hasEvents && stack.output.isEmpty { return }
        }
    }

    func handle(_ event: StackEvent) {
        switch event {
        case .tcpConnectionRequest(let id, let key):
            precondition(byFlow[id] == nil, "a connection request for a flow id already in use")
            let c: Connection
            if let known = byKey[key], known.flow == nil, !known.inbound {
                c = known
            } else {
                // A SYN the fuzzer did not open as a connection (a raw frame, fragments, a new
                // incarnation of a 4-tuple): tracked for its events only.
                serials += 1
                c = Connection(serial: serials, key: key, inbound: false, guestISN: 0, acceptMode: .now)
                c.outboundUnknown = true
                c.finOffset = -1
            }
            c.flow = id
            byFlow[id] = c
            switch c.acceptMode {
            case .now: stack.tcpAccept(id, now: now)
            case .refuse:
                stack.tcpRefuse(id)
                c.over = true
            case .later: break
            }
        case .tcp(let id, let e):
            guard let c = byFlow[id] else { preconditionFailure("event \(e) for a flow never announced") }
            precondition(!c.over, "event \(e) after the connection was over for the relay")
            switch e {
            case .established:
                precondition(!c.established, "established twice")
                c.established = true
                stats.established += 1
            case .peerClosed:
                precondition(!c.peerClosed, "peer closed twice")
                c.peerClosed = true
                // Everything the guest sent before its FIN is with the relay or waiting for it.
                if let fin = c.finOffset, fin >= 0, stack.tcpState(id) != nil {
                    precondition(c.delivered + stack.tcpReadableBytes(id) == fin, "peer closed before all its bytes arrived")
                }
            case .closed:
                c.over = true
            case .readable, .writable:
                break
            }
        case .udp(let key, _):
            lastDatagram = key
        case .echoRequest(let source, let destination, let identifier, let sequence, _):
            lastEcho = (source, destination, identifier, sequence)
        }
    }

    // MARK: - Invariants

    func checkInvariants() {
        precondition(stack.output.isEmpty, "frames left after settling")
        precondition(stack.tcpConnectionCount <= configuration.maxTCPConnections, "more connections than allowed")
        // Memory: the budget is never overdrawn, the chunks held are the pool's chunks in use,
        // and they follow the reservations (each buffer rounds up to chunks, at most two extra).
        precondition(budget.reserved <= budget.limit, "budget overdrawn")
        precondition(budget.heldBytes == Self.bufferPool.chunksInUse * Self.bufferPool.chunkSize, "held bytes disagree with the pool")
        precondition(
            budget.heldBytes <= budget.reserved + 4 * Self.bufferPool.chunkSize * stack.tcpConnectionCount,
            "buffers hold more than their reservations")
        if stack.tcpConnectionCount == 0 {
            precondition(budget.reserved == 0 && budget.heldBytes == 0, "memory still reserved with no connection")
        }
        for r in [
            (stack.ipv4Reassembler.bufferedBytes, stack.ipv4Reassembler.datagramsInProgress),
            (stack.ipv6Reassembler.bufferedBytes, stack.ipv6Reassembler.datagramsInProgress),
        ] {
            precondition(r.0 <= configuration.reassembly.maximumBufferedBytes, "reassembly over its byte limit")
            precondition(r.1 <= configuration.reassembly.maximumDatagrams, "reassembly over its datagram limit")
        }
        for (id, c) in byFlow where stack.tcpState(id) != nil {
            checkReadable(id, c)
        }
    }

    /// The guest's bytes waiting for the relay continue exactly what it was given, and are no
    /// more than the guest sent and the buffer holds.
    func checkReadable(_ id: TCPFlowID, _ c: Connection) {
        let readable = stack.tcpReadableBytes(id)
        precondition(readable <= configuration.tcp.receiveBufferSize, "receive buffer beyond its size")
        guard c.finOffset != -1 else { return }
        if stack.tcpIsReadClosed(id) {
            precondition(c.finOffset == c.delivered, "end of stream where the guest sent no FIN")
        }
        precondition(
            c.delivered + readable <= c.sent.contiguous,
            "\(readable) bytes readable after \(c.delivered) delivered, the guest sent \(c.sent.ranges) (\(c.key))")
        if let fin = c.finOffset { precondition(c.delivered + readable <= fin, "bytes past the guest's FIN") }
        guard readable > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: readable)
        let n = buffer.withUnsafeMutableBytes { stack.tcpPeek(id, into: $0) }
        precondition(n == readable, "peek gave fewer bytes than readable")
        precondition(
            buffer.withUnsafeBytes { StreamBytes.matches($0, stream: c.guestStream, from: c.delivered) },
            "readable bytes are not the guest's next bytes")
    }

    /// Both ends close and read everything, time runs out every timer: no connection and no
    /// memory is left.
    func windDown() {
        for (id, c) in byFlow where stack.tcpState(id) != nil {
            stack.tcpAbort(id)
            c.over = true
        }
        settle()
        for _ in 0..<4 {
            now += 200_000_000_000
            stack.poll(now: now)
            settle()
        }
        checkInvariants()
        precondition(stack.tcpConnectionCount == 0, "connections left after every one was aborted")
        precondition(stack.ipv4Reassembler.datagramsInProgress == 0 && stack.ipv6Reassembler.datagramsInProgress == 0,
                     "fragments outlived the reassembly timeout")
    }
}
