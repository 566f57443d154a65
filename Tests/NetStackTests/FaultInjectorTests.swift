// Fault injection: the flag's parser, repeatable decisions, rates over many frames, damage that
// checksums catch, the stack's hooks, and a TCP transfer that survives a bad link intact.
import Testing
import Wire
@testable import NetStack

@Suite struct FaultConfigurationTests {
    @Test func parsesTheFlagExample() throws {
        let c = try FaultConfiguration(parsing: "loss=0.05,reorder=0.05,duplicate=0.01,corrupt=0.001,seed=42")
        #expect(c.loss == 0.05 && c.reorder == 0.05 && c.duplicate == 0.01 && c.corrupt == 0.001 && c.seed == 42)
        #expect(c.reorderDepth == 3 && c.reorderDelay == .milliseconds(1) && c.direction == .both)
        #expect(c.isActive)
    }

    @Test func parsesEveryKeyAndSpaces() throws {
        let c = try FaultConfiguration(parsing: " loss = 1 , hold=5, delay=250us,direction=in, seed=18446744073709551615 ")
        #expect(c.loss == 1 && c.reorderDepth == 5 && c.reorderDelay == .microseconds(250) && c.direction == .input)
        #expect(c.seed == UInt64.max)
        #expect(try FaultConfiguration(parsing: "delay=2").reorderDelay == .milliseconds(2), "plain numbers are milliseconds")
        #expect(try FaultConfiguration(parsing: "delay=1s").reorderDelay == .seconds(1))
        #expect(try FaultConfiguration(parsing: "seed=7").isActive == false)
    }

    @Test(arguments: [
        "loss=0.05,reorder=0.05,duplicate=0.01,corrupt=0.001,seed=42",
        "loss=1,direction=out,hold=64,delay=1500ns",
        "corrupt=0.5,delay=3s,direction=in",
    ])
    func descriptionReadsBack(_ text: String) throws {
        let c = try FaultConfiguration(parsing: text)
        #expect(try FaultConfiguration(parsing: c.description) == c)
    }

    @Test(arguments: [
        ("", "empty"),
        ("loss", "not key=value"),
        ("loss=0.1,,seed=2", "not key=value"),
        ("lose=0.1", "unknown fault setting 'lose'"),
        ("loss=1.5", "loss=1.5: expected a probability"),
        ("loss=-0.1", "expected a probability"),
        ("duplicate=lots", "duplicate=lots: expected a probability"),
        ("corrupt=nan", "expected a probability"),
        ("loss=0.1,loss=0.2", "'loss' is given twice"),
        ("seed=-1", "seed=-1: expected an unsigned 64-bit integer"),
        ("hold=0", "hold=0: expected a frame count from 1 to 64"),
        ("hold=65", "expected a frame count"),
        ("delay=soon", "delay=soon: expected a duration"),
        ("delay=11s", "expected a duration"),
        ("direction=up", "direction=up: expected in, out or both"),
    ])
    func refusesBadInputWithAClearMessage(_ text: String, _ fragment: String) {
        do {
            _ = try FaultConfiguration(parsing: text)
            Issue.record("'\(text)' was accepted")
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)")
            #expect(error.description.hasPrefix("invalid fault specification"))
        }
    }
}

@Suite struct SplitMix64Tests {
    @Test func matchesTheReferenceSequence() {
        // The first outputs of the reference splitmix64.c from a zero state.
        var g = SplitMix64(seed: 0)
        let first = g.next()
        #expect(first == 0xE220_A839_7B1D_CDAF)
        let second = g.next()
        #expect(second == 0x6E78_9E6A_A1B9_65F4)
        let third = g.next()
        #expect(third == 0x06C4_5D18_8009_454F)
    }

    @Test func chanceHonoursTheExtremes() {
        var g = SplitMix64(seed: 5)
        for _ in 0..<10_000 {
            let never = g.chance(0)
            #expect(!never)
            let always = g.chance(1)
            #expect(always)
        }
    }
}

/// Small valid frames (no virtio-net header) numbered in their payload, for driving an injector.
enum NumberedFrames {
    static let src = IPv4Address(10, 0, 2, 15)
    static let dst = IPv4Address(192, 0, 2, 1)

    static func make(_ n: UInt32) -> [UInt8] {
        var payload = [UInt8](repeating: 0, count: 32)
        payload.withUnsafeMutableBytes { $0.setBE32(n, 0) }
        let udp = Datagram.udp(from: src, to: dst, dstPort: 9, payload: payload)
        var f = [UInt8](repeating: 0, count: 14 + 20 + udp.count)
        f.withUnsafeMutableBytes { b in
            _ = try! EthernetHeader(destination: Guest.mac, source: StackConfiguration().gatewayMAC, etherType: EtherType.ipv4).emit(into: b)
            _ = try! IPv4Header(source: src, destination: dst, protocolNumber: IPProtocol.udp, payloadLength: udp.count).emit(into: b.slice(14, 20))
            udp.withUnsafeBytes { b.slice(34, udp.count).copyMemory(from: $0) }
        }
        return f
    }

    static func number(_ f: UnsafeRawBufferPointer) -> UInt32 { f.uncheckedBE32(14 + 20 + 8) }

    /// True when an IP or UDP checksum of the frame fails.
    static func isDamaged(_ f: UnsafeRawBufferPointer, vnet: Int = 0) -> Bool {
        let l3 = f.uncheckedSlice(vnet + 14, f.count - vnet - 14)
        switch f.uncheckedBE16(vnet + 12) {
        case EtherType.ipv4:
            guard let ip = try? IPv4Header.parse(l3) else { return true }
            let l4 = l3.uncheckedSlice(ip.headerLength, ip.payloadLength)
            guard let udp = try? UDPHeader.parse(l4) else { return true }
            return !UDPHeader.verifyChecksum(l4.uncheckedSlice(0, Int(udp.length)), source: ip.source, destination: ip.destination)
        default:
            guard let ip = try? IPv6Header.parse(l3) else { return true }
            let l4 = l3.uncheckedSlice(ip.upperOffset, ip.upperLength)
            guard ip.upperProtocol == IPProtocol.udp, let udp = try? UDPHeader.parse(l4) else { return true }
            return !UDPHeader.verifyChecksum(l4.uncheckedSlice(0, Int(udp.length)), source: ip.source, destination: ip.destination)
        }
    }
}

@Suite struct FaultInjectorTests {
    static let t0: UInt64 = 1_000_000_000

    /// Frame numbers as delivered on the input side, with time stepping 10 µs per frame.
    static func runInput(_ c: FaultConfiguration, frames: Int) -> (delivered: [UInt32], injector: FaultInjector) {
        let inj = FaultInjector(configuration: c, vnetHeaderSize: 0)
        var out: [UInt32] = []
        out.reserveCapacity(frames + frames / 10)
        var now = t0
        let base = NumberedFrames.make(0)
        var f = base
        for i in 0..<frames {
            f.withUnsafeMutableBytes { $0.setBE32(UInt32(i), 14 + 20 + 8) }
            f.withUnsafeBytes { inj.process(input: $0, now: now) { out.append(NumberedFrames.number($0)) } }
            now += 10_000
            inj.releaseInput(now: now) { out.append(NumberedFrames.number($0)) }
        }
        inj.releaseInput(now: .max) { out.append(NumberedFrames.number($0)) }
        return (out, inj)
    }

    @Test func sameSeedSameDecisionsOtherSeedOthers() throws {
        let c = try FaultConfiguration(parsing: "loss=0.1,reorder=0.1,duplicate=0.1,corrupt=0.1,seed=42")
        let a = Self.runInput(c, frames: 5000)
        let b = Self.runInput(c, frames: 5000)
        #expect(a.delivered == b.delivered)
        #expect(a.injector.inputCounters == b.injector.inputCounters)
        var other = c
        other.seed = 43
        #expect(Self.runInput(other, frames: 5000).delivered != a.delivered)

        // The output side too, and it does not disturb the input stream.
        func runOutput(_ c: FaultConfiguration) -> [UInt32] {
            let inj = FaultInjector(configuration: c, vnetHeaderSize: 0)
            var q = FrameQueue(frameCapacity: 2048)
            var got: [UInt32] = []
            for round in 0..<100 {
                for i in 0..<20 {
                    let f = q.obtain()!
                    let bytes = NumberedFrames.make(UInt32(round * 20 + i))
                    bytes.withUnsafeBytes { f.storage.copyMemory(from: $0) }
                    f.length = bytes.count
                    q.enqueue(f)
                }
                inj.process(&q, now: Self.t0 + UInt64(round) * 100_000)
                q.drain { got.append(NumberedFrames.number($0.bytes)) }
            }
            return got
        }
        #expect(runOutput(c) == runOutput(c))
        #expect(runOutput(c) != runOutput(other))
    }

    @Test func ratesMatchTheConfigurationOverManyFrames() throws {
        let c = try FaultConfiguration(parsing: "loss=0.05,reorder=0.05,duplicate=0.01,corrupt=0.001,seed=2024")
        let n = 100_000
        let (delivered, inj) = Self.runInput(c, frames: n)
        let k = inj.inputCounters
        #expect(k.frames == n)
        // Expected counts and about five standard deviations either side.
        #expect(abs(k.lost - 5000) < 350, "lost \(k.lost)")
        #expect(abs(k.reordered - 4750) < 350, "reordered \(k.reordered)")  // held only when not lost
        #expect(abs(k.duplicated - 902) < 150, "duplicated \(k.duplicated)")  // neither lost nor held
        #expect(abs(k.corrupted - 95) < 50, "corrupted \(k.corrupted)")
        #expect(k.corruptionSkipped == 0)
        #expect(delivered.count == n - k.lost + k.duplicated, "every frame accounted for")
        #expect(inj.heldFrames == 0)
    }

    @Test func reorderingOnlyPermutesAndHoldsBackByDepth() throws {
        var c = FaultConfiguration(reorder: 0.2, seed: 9, reorderDepth: 3, reorderDelay: .seconds(10))
        c.direction = .input
        let (delivered, inj) = Self.runInput(c, frames: 2000)
        #expect(delivered.sorted() == (0..<2000).map(UInt32.init), "nothing lost or added")
        #expect(delivered != delivered.sorted())
        #expect(inj.inputCounters.reordered > 300)
        // A held frame comes out after at most `depth` later frames were offered, unless holding
        // was full; a frame released by count lands 3 places after its number at most.
        var late = 0
        for (position, number) in delivered.enumerated() where Int(number) < position { late = max(late, position - Int(number)) }
        #expect(late <= 16)
    }

    @Test func heldFrameIsReleasedByTimeToo() throws {
        let c = FaultConfiguration(reorder: 1, reorderDepth: 3, reorderDelay: .milliseconds(2))
        let inj = FaultInjector(configuration: c, vnetHeaderSize: 0)
        var got: [UInt32] = []
        NumberedFrames.make(7).withUnsafeBytes { inj.process(input: $0, now: Self.t0) { got.append(NumberedFrames.number($0)) } }
        #expect(got.isEmpty && inj.heldFrames == 1)
        #expect(inj.nextDeadline == Self.t0 + 2_000_000)
        inj.releaseInput(now: Self.t0 + 1_999_999) { got.append(NumberedFrames.number($0)) }
        #expect(got.isEmpty)
        inj.releaseInput(now: Self.t0 + 2_000_000) { got.append(NumberedFrames.number($0)) }
        #expect(got == [7] && inj.nextDeadline == nil)
    }

    @Test func outputQueueIsRewrittenInPlaceAndOnlyOnce() throws {
        let inj = FaultInjector(configuration: FaultConfiguration(duplicate: 1), vnetHeaderSize: 0)
        var q = FrameQueue(frameCapacity: 2048)
        for i in 0..<5 as Range<UInt32> {
            let f = q.obtain()!
            let b = NumberedFrames.make(i)
            b.withUnsafeBytes { f.storage.copyMemory(from: $0) }
            f.length = b.count
            q.enqueue(f)
        }
        inj.process(&q, now: Self.t0)
        inj.process(&q, now: Self.t0)
        #expect(q.frames.map { NumberedFrames.number($0.bytes) } == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
        #expect(Set(q.frames.map { ObjectIdentifier($0) }).count == 10, "copies, not the same buffer twice")
        #expect(inj.outputCounters.duplicated == 5)

        let lossy = FaultInjector(configuration: FaultConfiguration(loss: 1), vnetHeaderSize: 0)
        let before = q.frames.map { ObjectIdentifier($0) }
        lossy.process(&q, now: Self.t0)  // the first injector's frames count as seen only for it
        #expect(q.frames.count == 10, "frames another injector already saw are left alone")
        q.drain { _ in }
        for _ in 0..<10 { q.enqueue(q.obtain()!) }
        #expect(Set(q.frames.map { ObjectIdentifier($0) }) == Set(before), "the pool hands the same buffers back")
        lossy.process(&q, now: Self.t0)
        #expect(q.frames.isEmpty && lossy.outputCounters.lost == 10)
    }

    @Test(arguments: [false, true])
    func corruptedOutputFramesFailTheirChecksums(_ offloads: Bool) throws {
        var config = StackConfiguration(offloads: offloads)
        config.faults = FaultConfiguration(corrupt: 1, seed: 3)
        let s = Stack(configuration: config)
        s.learnGuest()
        let v4 = FlowKey(guestAddress: .v4(Guest.ipv4), guestPort: 4000, remoteAddress: .v4(IPv4Address(192, 0, 2, 9)), remotePort: 53)
        let v6 = FlowKey(guestAddress: .v6(Guest.ipv6), guestPort: 4000, remoteAddress: .v6(IPv6Address("2001:db8::9")!), remotePort: 53)
        var frames = 0
        for i in 0..<300 {
            let key = i % 2 == 0 ? v4 : v6
            pattern(20 + i, seed: UInt8(truncatingIfNeeded: i)).withUnsafeBytes { s.sendUDP(key, payload: $0) }
            s.drainOutput(now: Self.t0) { f in
                frames += 1
                let vnet = try? VirtioNetHeader.parse(f.bytes, size: 10)
                #expect(vnet?.flags.isEmpty == true, "a damaged frame must not ask for its checksum to be completed")
                #expect(NumberedFrames.isDamaged(f.bytes, vnet: 10), "frame \(i) slipped through")
            }
        }
        #expect(frames == 300)
        #expect(s.faults?.outputCounters.corrupted == 300)
    }

    @Test func gsoFramesAreNotCorrupted() throws {
        let inj = FaultInjector(configuration: FaultConfiguration(corrupt: 1), vnetHeaderSize: 10)
        var q = FrameQueue(frameCapacity: 4096)
        let f = q.obtain()!
        var v = VirtioNetHeader()
        v.flags = .needsChecksum
        v.gsoType = .tcpv4
        v.gsoSize = 1448
        _ = try v.emit(into: f.storage, size: 10)
        let body = NumberedFrames.make(1)
        body.withUnsafeBytes { f.storage.slice(10, body.count).copyMemory(from: $0) }
        f.length = 10 + body.count
        let before = Array(f.bytes)
        q.enqueue(f)
        inj.process(&q, now: Self.t0)
        #expect(Array(q.frames[0].bytes) == before)
        #expect(inj.outputCounters.corruptionSkipped == 1 && inj.outputCounters.corrupted == 0)
    }

    @Test func corruptedInputNeverReachesTheStackAsValid() throws {
        var config = StackConfiguration()
        config.faults = try FaultConfiguration(parsing: "corrupt=1,direction=in,seed=11")
        let s = Stack(configuration: config)
        for i in 0..<200 {
            let icmp = Datagram.echoRequestV4(identifier: 1, sequence: UInt16(i), payload: pattern(64 + i))
            // Half of them claim NEEDS_CSUM, as a guest with offloads sends them.
            var frame = Guest.ipv4Frame(to: config.gatewayIPv4, protocolNumber: IPProtocol.icmp, l4: icmp, checksumAt: 2)
            if i % 2 == 1 { frame[0] = VirtioNetHeader.Flags.dataValid.rawValue }
            s.receive(frame, now: Self.t0)
        }
        #expect(s.counters.echoReplies == 0)
        #expect(try s.sentFrames().isEmpty)
        #expect(s.faults?.inputCounters.corrupted == 200)
        #expect(s.counters.badChecksum + s.counters.malformed + s.counters.notForUs + s.counters.unsupported == 200)
    }

    @Test func stackWithoutFaultsIsUntouchedAndLossDropsInput() throws {
        let plain = Stack(configuration: StackConfiguration())
        #expect(plain.faults == nil)
        plain.receive(Guest.arpRequest(for: plain.configuration.gatewayIPv4))
        #expect(plain.counters.framesIn == 1 && plain.counters.arpReplies == 1)

        let s = Stack(configuration: StackConfiguration())
        s.injectFaults(FaultConfiguration(loss: 1, direction: .input))
        s.receive(Guest.arpRequest(for: s.configuration.gatewayIPv4))
        #expect(s.counters.framesIn == 0 && s.faults?.inputCounters.lost == 1)
        s.injectFaults(nil)
        s.receive(Guest.arpRequest(for: s.configuration.gatewayIPv4))
        #expect(s.counters.framesIn == 1)
    }

    @Test func pollReleasesHeldFramesBothWays() throws {
        var config = StackConfiguration()
        config.faults = FaultConfiguration(reorder: 1, seed: 1, reorderDepth: 5, reorderDelay: .milliseconds(3))
        let s = Stack(configuration: config)
        s.receive(Guest.arpRequest(for: config.gatewayIPv4), now: Self.t0)
        #expect(s.counters.framesIn == 0, "held")
        #expect(s.nextDeadline == Self.t0 + 3_000_000)
        s.poll(now: Self.t0 + 3_000_000)
        #expect(s.counters.framesIn == 1 && s.counters.arpReplies == 1)
        // The reply was held on the way out by the same poll; the next deadline frees it.
        #expect(s.output.isEmpty)
        let due = try #require(s.nextDeadline)
        s.poll(now: due)
        #expect(try s.sentFrames().count == 1)
    }
}

/// Two TCP connections joined by a link of frames, each direction through its own injector.
final class FaultyLink {
    static let a = IPv4Address(10, 0, 2, 15)
    static let b = IPv4Address(10, 0, 2, 2)
    var now: UInt64 = 1_000_000_000
    let client: TCPConnection
    var server: TCPConnection?
    let toServer: FaultInjector
    let toClient: FaultInjector
    var inFlightToServer: [[UInt8]] = []
    var inFlightToClient: [[UInt8]] = []
    var rejected = 0
    let configuration: TCPConfiguration

    /// - Parameter gso: the sender puts up to 65,000 bytes in a segment, as the stack does on
    ///   a TAP with offloads.
    init(faults: FaultConfiguration, gso: Bool = false, bufferSize: Int = 64 * 1024) {
        var cfg = TCPConfiguration()
        cfg.sendBufferSize = bufferSize
        cfg.receiveBufferSize = bufferSize
        if gso { cfg.maxSegmentPayload = 65_000 }
        configuration = cfg
        client = TCPConnection(activeISS: 1_000_000, configuration: cfg, now: now)
        var back = faults
        back.seed = faults.seed &+ 1
        toServer = FaultInjector(configuration: faults, vnetHeaderSize: 0)
        toClient = FaultInjector(configuration: back, vnetHeaderSize: 0)
    }

    static func frame(_ out: TCPSegmentOut, _ conn: TCPConnection, from src: IPv4Address, to dst: IPv4Address, ports: (UInt16, UInt16)) -> [UInt8] {
        let h = TCPHeader(sourcePort: ports.0, destinationPort: ports.1, sequenceNumber: out.seq, acknowledgmentNumber: out.ack,
                          flags: out.flags, window: out.window, options: out.options)
        let hl = h.emittedLength
        var f = [UInt8](repeating: 0, count: 34 + hl + out.payloadLength)
        f.withUnsafeMutableBytes { b in
            _ = try! EthernetHeader(destination: Guest.mac, source: Guest.mac, etherType: EtherType.ipv4).emit(into: b)
            _ = try! IPv4Header(source: src, destination: dst, protocolNumber: IPProtocol.tcp, payloadLength: hl + out.payloadLength).emit(into: b.slice(14, 20))
            let l4 = b.slice(34, hl + out.payloadLength)
            _ = try! h.emit(into: l4)
            if out.payloadLength > 0 { _ = conn.sendBuffer.peek(into: l4.slice(hl, out.payloadLength), at: out.payloadOffset) }
            TCPHeader.fillChecksum(l4, source: src, destination: dst)
        }
        return f
    }

    /// What the client's stream should hold, to check every segment it sends against.
    var expected: [UInt8]?
    var senderMismatches: [String] = []
    func clientEmit(_ out: TCPSegmentOut) {
        let f = Self.frame(out, client, from: Self.a, to: Self.b, ports: (40000, 80))
        if let expected, out.payloadLength > 0 {
            let start = Int(out.seq &- 1_000_001)
            let payload = Array(f[(f.count - out.payloadLength)...])
            if start < 0 || start + out.payloadLength > expected.count || Array(expected[start..<(start + out.payloadLength)]) != payload {
                senderMismatches.append("offset \(start), \(out.payloadLength) bytes")
            }
        }
        inFlightToServer.append(f)
    }
    func serverEmit(_ out: TCPSegmentOut) { inFlightToClient.append(Self.frame(out, server!, from: Self.b, to: Self.a, ports: (80, 40000))) }

    /// Parses as a receiving stack would: any failed checksum drops the frame.
    func segment(_ f: UnsafeRawBufferPointer, _ body: (TCPSegmentIn) -> Void) {
        guard let ip = try? IPv4Header.parse(f.uncheckedSlice(14, f.count - 14)) else { rejected += 1; return }
        let l4 = f.uncheckedSlice(14 + ip.headerLength, ip.payloadLength)
        guard TCPHeader.verifyChecksum(l4, source: ip.source, destination: ip.destination), let h = try? TCPHeader.parse(l4) else {
            rejected += 1
            return
        }
        body(TCPSegmentIn(header: h, payload: l4.uncheckedSlice(h.headerLength, l4.count - h.headerLength)))
    }

    func deliverToServer(_ f: UnsafeRawBufferPointer) {
        segment(f) { seg in
            if let server {
                server.handle(seg, now: now, emit: serverEmit)
            } else if seg.flags == [.syn] {
                server = TCPConnection(passiveSYN: seg, iss: 9_000_000, configuration: configuration, now: now)
                server!.accept(now: now, emit: serverEmit)
            }
        }
    }

    func deliverToClient(_ f: UnsafeRawBufferPointer) {
        segment(f) { client.handle($0, now: now, emit: clientEmit) }
    }

    /// One millisecond: frames in flight arrive (through the injectors), timers run.
    func step() {
        let up = inFlightToServer
        inFlightToServer.removeAll()
        for f in up { f.withUnsafeBytes { toServer.process(input: $0, now: now, deliver: deliverToServer) } }
        toServer.releaseInput(now: now, deliver: deliverToServer)
        let down = inFlightToClient
        inFlightToClient.removeAll()
        for f in down { f.withUnsafeBytes { toClient.process(input: $0, now: now, deliver: deliverToClient) } }
        toClient.releaseInput(now: now, deliver: deliverToClient)
        client.poll(now: now, emit: clientEmit)
        if let server { server.poll(now: now, emit: serverEmit) }
        now += 1_000_000
    }
}

@Suite struct FaultyTransferTests {
    @Test(arguments: [
        "loss=0.05,reorder=0.05,duplicate=0.02,corrupt=0.01,seed=1",
        "loss=0.02,reorder=0.2,duplicate=0.05,corrupt=0.02,seed=77,hold=6,delay=5ms",
        "loss=0.1,seed=5",
    ])
    func tcpDeliversIdenticalBytesOverABadLink(_ spec: String) throws {
        let link = FaultyLink(faults: try FaultConfiguration(parsing: spec))
        let data = pattern(300_000, seed: 17)
        link.expected = data
        var written = 0
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var shut = false
        for _ in 0..<600_000 {
            if written < data.count {
                written += data.withUnsafeBytes { link.client.write($0.uncheckedSlice(written, data.count - written)) }
            } else if !shut {
                link.client.shutdownWrite()
                shut = true
            }
            link.step()
            if let server = link.server {
                while true {
                    let n = buffer.withUnsafeMutableBytes { server.read(into: $0) }
                    if n == 0 { break }
                    received += buffer[..<n]
                }
                if server.isReadClosed { break }
            }
        }
        #expect(received.count == data.count)
        // The index of the first wrong byte, rather than two 300 kB arrays, when it fails.
        let firstWrong = zip(received, data).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstWrong == nil, "identical bytes despite the faults")
        #expect(link.server?.isReadClosed == true, "the FIN arrived")
        #expect(link.senderMismatches.isEmpty, "the sender only ever sent the right bytes")
        let k = link.toServer.inputCounters
        #expect(k.lost > 0 && k.frames > 200)
        if link.toServer.configuration.corrupt > 0 {
            #expect(link.rejected > 0, "damaged frames were caught by checksums")
        }
    }

    /// Found by the test above: a receive ring that emptied moved its head back to 0, and with
    /// it the out-of-order bytes already stored past the readable end.
    @Test func receiveRingKeepsOutOfOrderBytesWhenItEmpties() {
        let ring = ChunkedBuffer(capacity: 64, pool: BufferPool(chunkSize: 4096), budget: .unlimited())
        let a = pattern(10, seed: 1)
        let b = pattern(10, seed: 2)
        let c = pattern(10, seed: 3)
        a.withUnsafeBytes { _ = ring.append($0) }
        ring.consume(5)
        // b is lost; c arrives out of order, 10 bytes past the readable end.
        c.withUnsafeBytes { _ = ring.write($0, at: ring.count + 10) }
        var out = [UInt8](repeating: 0, count: 64)
        let n = out.withUnsafeMutableBytes { ring.read(into: $0) }
        #expect(n == 5)
        b.withUnsafeBytes { _ = ring.write($0, at: ring.count) }
        ring.commit(20)
        let m = out.withUnsafeMutableBytes { ring.read(into: $0) }
        #expect(Array(out[..<m]) == b + c)
    }
}
