// The TCP steps: a guest that opens connections and sends segments mutated from the valid ones,
// a relay that accepts, reads, writes and closes, the clock; and the guest's view of what the
// stack sends it, checked against what the relay wrote.
import NetStack
import Wire

extension StackScenario {
    var guestClock: UInt32 { UInt32(truncatingIfNeeded: now / 1_000_000) }

    /// A payload length: mostly up to a segment's worth in steps of 8, sometimes much larger.
    func payloadLength(_ code: UInt8) -> Int {
        if code < 192 { return Int(code) * 8 }
        let large = [1460, 1448, 1220, 2048, 2920, 4096, 8192, 16_384, 30_000, 60_000, 1, 3, 536]
        return large[Int(code - 192) % large.count]
    }

    func slotConnection() -> Connection? { slots[input.below(Self.slotCount)] }

    // MARK: - The guest

    func open() {
        let slot = input.below(Self.slotCount)
        let shape = input.byte()
        let optionBits = input.byte()
        let isn = input.u32()
        let v6 = shape & 1 != 0
        let remoteIndex = Int(shape >> 1) & 7
        let remote: IPAddress =
            v6
            ? .v6(GuestIdentity.remotesV6[remoteIndex % GuestIdentity.remotesV6.count])
            : .v4(GuestIdentity.remotesV4[remoteIndex % GuestIdentity.remotesV4.count])
        let port = GuestIdentity.ports[Int(shape >> 4) % GuestIdentity.ports.count]
        serials += 1
        let key = FlowKey(
            guestAddress: v6 ? .v6(GuestIdentity.ipv6) : .v4(GuestIdentity.ipv4), guestPort: UInt16(20_000 + serials),
            remoteAddress: remote, remotePort: port)
        let mode = AcceptMode(rawValue: (optionBits >> 5 & 3) % 3)!
        let c = Connection(serial: serials, key: key, inbound: false, guestISN: isn, acceptMode: mode)
        c.guestOptions = synOptions(optionBits)
        slots[slot] = c
        byKey[key] = c
        sendTCP(c, seq: isn, ack: 0, flags: [.syn], window: optionBits & 128 != 0 ? 512 : 64_240, options: c.guestOptions,
                payloadOffset: 0, payloadLength: 0, ipMutation: nil)
    }

    /// The options of a SYN (or the guest's SYN-ACK) as `bits` choose them.
    func synOptions(_ bits: UInt8) -> TCPOptions {
        var o = TCPOptions()
        if bits & 1 != 0 { o.mss = bits & 16 != 0 ? input.u16() : 1460 }
        if bits & 2 != 0 { o.windowScale = input.byte() % 16 }
        o.sackPermitted = bits & 4 != 0
        if bits & 8 != 0 { o.timestamp = TCPTimestamp(value: guestClock, echo: 0) }
        return o
    }

    func segment() {
        guard let c = slotConnection() else { return }
        let lengthCode = input.byte()
        let mutations = input.byte()
        var length = payloadLength(lengthCode)
        var offset = c.sent.contiguous
        var flags: TCPFlags = [.ack]
        var ack = c.guestAck
        var window = UInt16(clamping: 0xFFFF)
        var options = TCPOptions()
        if c.timestampsOn { options.timestamp = TCPTimestamp(value: guestClock, echo: c.stackTimestamp) }
        if c.inbound && c.stackISN != nil && !c.guestAnswered {
            // A published port's connection: the guest answers the stack's SYN first.
            c.guestAnswered = true
            c.guestOptions = synOptions(input.byte())
            flags = [.syn, .ack]
            length = 0
            options = c.guestOptions
        }
        if mutations & 1 != 0 { offset += Int(Int16(bitPattern: input.u16())) }
        if mutations & 2 != 0 {
            let delta = Int32(Int16(bitPattern: input.u16()))
            ack &+= UInt32(bitPattern: input.bool() ? delta << 16 : delta)
        }
        if mutations & 4 != 0 { window = input.u16() }
        var keepFIN = true
        if mutations & 8 != 0 {
            let raw = input.byte()
            keepFIN = raw & TCPFlags.fin.rawValue != 0
            flags = TCPFlags(rawValue: raw).subtracting(.fin)
        }
        if mutations & 16 != 0 {
            let count = input.below(5)
            var blocks: [SACKBlock] = []
            for _ in 0..<count {
                let start = ack &+ UInt32(bitPattern: Int32(Int16(bitPattern: input.u16())) &* 8)
                blocks.append(SACKBlock(start: start, end: start &+ UInt32(input.u16())))
            }
            options.sackBlocks = SACKBlocks(blocks.prefix(options.timestamp == nil ? 4 : 3))
        }
        if mutations & 32 != 0 {
            // A retransmission of something already sent.
            offset = Int(input.u16()) % (c.sent.contiguous + 1)
        }
        if mutations & 64 != 0 {
            options.timestamp = input.bool() ? nil : TCPTimestamp(value: input.u32(), echo: input.u32())
        }
        // A SYN's sequence number is the ISN, whatever else changed: a different one would start
        // a different stream. Data with it begins the stream.
        if flags.contains(.syn) { offset = 0 }
        let ipMutation: UInt8? = mutations & 128 != 0 ? input.byte() : nil
        if let fin = c.finOffset {
            length = max(0, min(length, fin - offset))
            if offset + length == fin && keepFIN && !flags.contains(.syn) { flags.insert(.fin) }
        }
        let seq = flags.contains(.syn) ? c.guestISN : c.guestSeq(offset)
        if Self.trace {
            print("  guest \(c.key.guestPort): offset \(offset) +\(length) \(flags) ack \(ack &- (c.stackISN ?? 0)) window \(window) ip \(ipMutation ?? 0) sack \(options.sackBlocks.map { ($0.start &- (c.stackISN ?? 0), $0.end &- (c.stackISN ?? 0)) })")
        }
        c.sent.insert(offset..<offset + length)
        sendTCP(c, seq: seq, ack: ack, flags: flags, window: window, options: options, payloadOffset: offset,
                payloadLength: length, ipMutation: ipMutation)
    }

    func finish() {
        guard let c = slotConnection() else { return }
        if c.finOffset == nil { c.finOffset = c.sent.ranges.last?.upperBound ?? 0 }
        guard let fin = c.finOffset, fin >= 0 else { return }
        var options = TCPOptions()
        if c.timestampsOn { options.timestamp = TCPTimestamp(value: guestClock, echo: c.stackTimestamp) }
        sendTCP(c, seq: c.guestSeq(fin), ack: c.guestAck, flags: [.fin, .ack], window: 0xFFFF, options: options,
                payloadOffset: fin, payloadLength: 0, ipMutation: nil)
    }

    /// One segment from the guest, its payload the guest's stream bytes at `payloadOffset`.
    func sendTCP(
        _ c: Connection, seq: UInt32, ack: UInt32, flags: TCPFlags, window: UInt16, options: TCPOptions,
        payloadOffset: Int, payloadLength: Int, ipMutation: UInt8?
    ) {
        let header = TCPHeader(
            sourcePort: c.key.guestPort, destinationPort: c.key.remotePort, sequenceNumber: seq,
            acknowledgmentNumber: flags.contains(.ack) ? ack : 0, flags: flags, window: window, options: options)
        var l4 = [UInt8](repeating: 0, count: header.emittedLength + payloadLength)
        l4.withUnsafeMutableBytes { b in
            _ = try? header.emit(into: b)
            StreamBytes.fill(b.slice(header.emittedLength, payloadLength), stream: c.guestStream, from: payloadOffset)
        }
        sendIP(source: c.key.guestAddress, destination: c.key.remoteAddress, protocolNumber: IPProtocol.tcp, l4: l4,
               mutation: ipMutation)
    }

    // MARK: - The relay

    func relay() {
        guard let c = slotConnection() else { return }
        let action = input.byte()
        let amount = payloadLength(input.byte())
        guard let id = c.flow, !c.over || stack.tcpState(id) != nil else { return }
        switch action % 10 {
        case 0:
            if stack.tcpState(id) == .synPending && !c.over { stack.tcpAccept(id, now: now) }
        case 1:
            if stack.tcpState(id) == .synPending && !c.over {
                stack.tcpRefuse(id)
                c.over = true
            }
        case 2:
            var buffer = [UInt8](repeating: 0, count: amount)
            let n = buffer.withUnsafeMutableBytes { stack.tcpRead(id, into: $0, now: now) }
            take(c, Array(buffer[..<n]))
        case 3:
            if let regions = stack.tcpReadableRegions(id) {
                let bytes = regions.bytes(max: amount)
                take(c, bytes)
                stack.tcpConsume(id, bytes.count, now: now)
            }
        case 4:
            var rest = [UInt8](repeating: 0, count: stack.tcpReadableBytes(id))
            _ = rest.withUnsafeMutableBytes { stack.tcpPeek(id, into: $0) }
            take(c, rest)
            stack.tcpDiscardReadable(id, now: now)
        case 5:
            let bytes = StreamBytes.bytes(stream: c.relayStream, from: c.written, count: amount)
            let n = bytes.withUnsafeBytes { stack.tcpWrite(id, $0, now: now) }
            precondition(n >= 0 && n <= amount, "write took more than it was given")
            c.written += n
        case 6:
            let from = c.written
            let n = stack.tcpWriteInPlace(id, now: now) { regions in
                var done = 0
                for i in 0..<regions.count where done < amount {
                    let r = regions[i]
                    let k = min(r.count, amount - done)
                    StreamBytes.fill(UnsafeMutableRawBufferPointer(rebasing: r[..<k]), stream: c.relayStream, from: from + done)
                    done += k
                }
                return done
            }
            precondition(n >= 0 && n <= amount, "in-place write took more than was filled")
            c.written += n
        case 7:
            stack.tcpShutdownWrite(id, now: now)
            c.writeShut = true
        case 8:
            stack.tcpAbort(id)
            c.over = true
        case 9:
            // The relay takes the guest's bytes as they arrive, up to `amount` of each segment
            // (its socket's room), or stops taking them (0): either way the next bytes it gets,
            // taken or read, must be the stream's next.
            guard amount > 0 else { return stack.tcpSetDirectReceiver(id, nil) }
            // Some receivers decline every few calls (a socket full now and then).
            let declineEvery = Int(action / 10) % 4
            var calls = 0
            stack.tcpSetDirectReceiver(id) { [unowned self, unowned c] bytes, _ in
                calls += 1
                if declineEvery > 0 && calls % (declineEvery + 1) == 0 { return 0 }
                let n = min(bytes.count, amount)
                self.take(c, Array(bytes[..<n]))
                self.stats.directBytes += n
                return n
            }
        default:
            break
        }
    }

    /// The relay got `bytes`: they must be the guest's next ones.
    func take(_ c: Connection, _ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        if c.finOffset != -1 {
            precondition(
                bytes.withUnsafeBytes { StreamBytes.matches($0, stream: c.guestStream, from: c.delivered) },
                "delivered bytes are not the guest's next bytes")
        }
        c.delivered += bytes.count
        stats.deliveredBytes += bytes.count
    }

    func publish() {
        let slot = input.below(Self.slotCount)
        let shape = input.byte()
        let isn = input.u32()
        let v6 = shape & 1 != 0
        serials += 1
        let key = FlowKey(
            guestAddress: v6 ? .v6(GuestIdentity.ipv6) : .v4(GuestIdentity.ipv4),
            guestPort: GuestIdentity.ports[Int(shape >> 1) % GuestIdentity.ports.count],
            remoteAddress: v6 ? .v6(configuration.gatewayIPv6) : .v4(configuration.gatewayIPv4),
            remotePort: UInt16(40_000 + serials))
        let c = Connection(serial: serials, key: key, inbound: true, guestISN: isn, acceptMode: .now)
        slots[slot] = c
        byKey[key] = c
        guard let id = stack.tcpConnect(key, now: now) else { return }
        precondition(byFlow[id] == nil, "a new connection took a flow id in use")
        c.flow = id
        byFlow[id] = c
    }

    // MARK: - Time

    func advanceTime() {
        let code = input.byte()
        if code < 64 {
            // Straight to the next timer, and a little past it.
            if let d = stack.nextDeadline, d > now { now = d }
            now += UInt64(code) * 1_000_000
        } else {
            let steps: [UInt64] = [1, 5, 40, 200, 1_000, 3_000, 10_000, 31_000, 61_000, 120_000, 600_000]
            now += steps[Int(code - 64) % steps.count] * 1_000_000
        }
        stack.poll(now: now)
    }

    // MARK: - What reaches the guest

    /// A TCP segment the stack sent (already parsed and checksum-checked): its bytes must be the
    /// relay's at that place in the stream, its FIN only after the relay shut down its side.
    func observe(_ h: TCPHeader, payload: UnsafeRawBufferPointer, remote: IPAddress, guest: IPAddress) {
        let key = FlowKey(guestAddress: guest, guestPort: h.destinationPort, remoteAddress: remote, remotePort: h.sourcePort)
        guard let c = byKey[key] else { return }
        if Self.trace {
            print("  stack \(key.guestPort): seq \(h.sequenceNumber &- (c.stackISN ?? h.sequenceNumber)) +\(payload.count) \(h.flags) ack \(h.acknowledgmentNumber &- c.guestISN)")
        }
        if h.flags.contains(.rst) { return }
        if h.flags.contains(.syn) {
            if let isn = c.stackISN, isn != h.sequenceNumber { c.outboundUnknown = true }
            c.stackISN = h.sequenceNumber
            c.stackOptions = h.options
            if let ts = h.options.timestamp { c.stackTimestamp = ts.value }
            if h.flags.contains(.ack) && !c.inbound && !c.outboundUnknown {
                precondition(h.acknowledgmentNumber == c.guestISN &+ 1, "SYN-ACK acknowledges \(h.acknowledgmentNumber), the guest's SYN was \(c.guestISN)")
            }
            return
        }
        guard let isn = c.stackISN, !c.outboundUnknown else { return }
        if let ts = h.options.timestamp { c.stackTimestamp = ts.value }
        let offset = Int(Int32(bitPattern: h.sequenceNumber &- isn &- 1))
        if payload.count > 0 {
            precondition(offset >= 0 && offset + payload.count <= c.written, "the stack sent bytes the relay never wrote")
            precondition(StreamBytes.matches(payload, stream: c.relayStream, from: offset), "the stack sent the wrong bytes")
        }
        let end = offset + payload.count
        if h.flags.contains(.fin) {
            precondition(c.writeShut && end == c.written, "FIN where the relay's stream does not end")
        }
        if offset <= c.received && end > c.received {
            stats.guestReceivedBytes += end - c.received
            c.received = end
        }
        if h.flags.contains(.fin) && end == c.received { c.finReceived = true }
    }
}
