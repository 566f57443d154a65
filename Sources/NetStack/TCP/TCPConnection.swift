// One TCP connection between the guest and the gateway: the RFC 9293 state machine with
// RFC 7323 options, RFC 6298 timers, RFC 5681/6582 congestion control and RFC 5961 defences.
// It does no I/O: segments come in as values, go out through `emit`, and time is a number.
import Scheduling
import Wire

/// A segment as the connection sees it: the parsed header plus its payload bytes.
public struct TCPSegmentIn {
    public var seq: SequenceNumber
    public var ack: SequenceNumber
    public var flags: TCPFlags
    public var window: UInt16
    public var options: TCPOptions
    public var payload: UnsafeRawBufferPointer

    public init(header: TCPHeader, payload: UnsafeRawBufferPointer) {
        seq = SequenceNumber(header.sequenceNumber)
        ack = SequenceNumber(header.acknowledgmentNumber)
        flags = header.flags
        window = header.window
        options = header.options
        self.payload = payload
    }

    public init(seq: UInt32, ack: UInt32 = 0, flags: TCPFlags, window: UInt16 = 65535, options: TCPOptions = TCPOptions(), payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        self.seq = SequenceNumber(seq)
        self.ack = SequenceNumber(ack)
        self.flags = flags
        self.window = window
        self.options = options
        self.payload = payload
    }

    /// Sequence space the segment occupies (RFC 9293 SEG.LEN: data plus SYN and FIN).
    var length: Int { payload.count + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0) }
}

/// A segment the connection wants sent. Its payload is `payloadLength` bytes of the send buffer
/// starting `payloadOffset` bytes after its head (the byte at SND.UNA); the owner copies them.
public struct TCPSegmentOut {
    public var seq: UInt32
    public var ack: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    public var options: TCPOptions
    public var payloadOffset: Int
    public var payloadLength: Int
}

public final class TCPConnection {
    public let configuration: TCPConfiguration
    public private(set) var state: TCPState
    public private(set) var closeReason: TCPCloseReason?
    /// Accumulated since the owner last took them (`takeEvents`).
    public private(set) var events = TCPEventLog()

    // Send sequence space (RFC 9293 §3.3.1).
    let iss: SequenceNumber
    private(set) var sndUna: SequenceNumber
    private(set) var sndNxt: SequenceNumber
    /// Highest sequence ever sent, so a go-back-N after a timeout knows what was in flight.
    private var sndMax: SequenceNumber
    private var sndWnd = 0
    private var sndWl1 = SequenceNumber(0)
    private var sndWl2 = SequenceNumber(0)
    private var maxSndWnd = 0
    private var sndScale: UInt8 = 0
    /// The layer above's bytes, head = the byte at SND.UNA (once the SYN is acknowledged).
    public let sendBuffer: ChunkedBuffer
    /// The layer above has no more to send: a FIN follows the buffer.
    private var finQueued = false
    private var finSent = false

    // Receive sequence space.
    private(set) var irs = SequenceNumber(0)
    private(set) var rcvNxt = SequenceNumber(0)
    private var rcvScale: UInt8 = 0
    /// Right edge last advertised; the window never moves it left (RFC 9293 §3.8.6.2.2).
    private var rcvAdvertisedEdge = SequenceNumber(0)
    public let receiveBuffer: ChunkedBuffer
    private var assembler: Assembler
    /// Sequence number of a FIN that arrived ahead of missing data.
    private var pendingFin: SequenceNumber?
    private var peerFinReceived = false

    // Negotiated options.
    private var peerMSS = 536
    private var timestampsOn = false
    private var tsRecent: UInt32 = 0
    private var sackOn = false
    private let wantWindowScale: Bool

    // RTT estimation (RFC 6298) in nanoseconds.
    private var srtt: UInt64 = 0
    private var rttvar: UInt64 = 0
    private var rto: UInt64
    private var rttTiming: (seq: SequenceNumber, sentAt: UInt64)?

    // Congestion control: NewReno (RFC 5681, RFC 6582).
    private(set) var cwnd: Int
    private(set) var ssthresh = Int.max
    private var dupAcks = 0
    private var recover: SequenceNumber
    private var inFastRecovery = false
    private var scoreboard = SACKScoreboard()
    /// Next sequence number loss recovery considers for a hole retransmission.
    private var holeCursor = SequenceNumber(0)
    /// Bytes of holes recovery may resend now: packet conservation, refilled by what each ACK
    /// reports delivered (RFC 6675's pipe, kept as a running budget).
    private var recoveryBudget = 0
    private var bytesAckedInAvoidance = 0
    /// When the hole at SND.UNA was last resent in this recovery; a retransmission that is
    /// itself lost shows as SACKs still arriving long after it (RFC 8985's idea, simplified).
    private var headRetransmittedAt: UInt64 = 0
    /// Tail loss probe (RFC 8985 §7): fires when outstanding data draws no ACK for ~2 RTT, and
    /// resends the last segment so a lost tail is SACKed instead of waiting for the RTO.
    private var probeAt: UInt64?

    // Timers, as absolute UInt64 nanoseconds; nil when off.
    private var retransmitAt: UInt64?
    private var retransmitCount = 0
    private var delayedAckAt: UInt64?
    private var persistAt: UInt64?
    private var persistBackoff = 0
    private var timeWaitAt: UInt64?

    private var ackNow = false
    private var unackedSegments = 0
    /// Window we last told the peer, to decide when a read warrants a window update.
    private var lastAdvertisedWindow = 0
    private var synAckOptions = TCPOptions()

    // Memory (see `MemoryBudget`): what this connection promised or holds, and how far its
    // receive window has grown.
    private let budget: MemoryBudget
    /// Reserved for the receive side: at least the bytes buffered plus the window promised.
    private var rcvReserved = 0
    /// The receive window this connection aims to offer. It starts small, so that a sandbox's
    /// idle connections promise little, and doubles each time the guest fills it.
    private var rcvWindowTarget: Int
    private var rcvSinceGrowth = 0
    /// The latest time a call brought, for the budget's time-at-limit.
    private var clock: UInt64
    /// The budget cut a window or a read short: the stack retries when memory frees up.
    public internal(set) var waitingForMemory = false

    // Counters for the layer above's statistics.
    public private(set) var retransmittedSegments = 0
    public private(set) var droppedOutOfWindow = 0
    public private(set) var retransmitTimeouts = 0
    public private(set) var fastRecoveries = 0
    public private(set) var tailProbes = 0

    /// One line of internal state, for logs when a flow misbehaves.
    public var debugState: String {
        "state=\(state) una=\(sndUna.raw &- iss.raw) nxt=\(sndNxt.raw &- iss.raw) max=\(sndMax.raw &- iss.raw) buf=\(sendBuffer.count) "
            + "wnd=\(sndWnd) cwnd=\(cwnd) ssthresh=\(ssthresh) recovery=\(inFastRecovery) sacked=\(scoreboard.sackedBytes) "
            + "fin=\(finQueued)/\(finSent) rto=\(retransmitAt.map { String($0) } ?? "-") probe=\(probeAt.map { String($0) } ?? "-") persist=\(persistAt.map { String($0) } ?? "-")"
    }

    /// A connection for a SYN from the guest; nothing is sent until `accept` or `refuse`.
    public convenience init(
        passiveSYN syn: TCPSegmentIn, iss: UInt32, configuration: TCPConfiguration, now: UInt64,
        pool: BufferPool = BufferPool(), budget: MemoryBudget = .unlimited()
    ) {
        self.init(
            state: .synPending, iss: iss, wantWindowScale: syn.options.windowScale != nil,
            configuration: configuration, now: now, pool: pool, budget: budget)
        irs = syn.seq
        rcvNxt = syn.seq + 1
        adoptPeerOptions(syn)
        sndWnd = Int(syn.window)  // never scaled in a SYN (RFC 7323 §2.2)
        maxSndWnd = sndWnd
        sndWl1 = syn.seq
        rcvAdvertisedEdge = rcvNxt
    }

    /// A connection the gateway opens into the guest (published ports); the SYN goes out on the first `poll`.
    public convenience init(
        activeISS iss: UInt32, configuration: TCPConfiguration, now: UInt64,
        pool: BufferPool = BufferPool(), budget: MemoryBudget = .unlimited()
    ) {
        self.init(
            state: .synSent, iss: iss, wantWindowScale: true, configuration: configuration, now: now, pool: pool,
            budget: budget)
        ackNow = true  // makes the first poll send the SYN
    }

    /// What both directions of opening share: sequence space from the ISS, buffers, timers and
    /// windows at their configured starting values. `now` starts the clock the budget charges by.
    private init(
        state: TCPState, iss: UInt32, wantWindowScale: Bool, configuration: TCPConfiguration, now: UInt64,
        pool: BufferPool, budget: MemoryBudget
    ) {
        self.configuration = configuration
        self.budget = budget
        clock = now
        rcvWindowTarget = min(configuration.receiveBufferSize, max(configuration.initialReceiveWindow, 2 * configuration.localMSS))
        self.state = state
        self.iss = SequenceNumber(iss)
        sndUna = self.iss
        sndNxt = self.iss
        sndMax = self.iss
        recover = self.iss
        sendBuffer = ChunkedBuffer(capacity: configuration.sendBufferSize, pool: pool, budget: budget)
        receiveBuffer = ChunkedBuffer(capacity: configuration.receiveBufferSize, pool: pool, budget: budget)
        assembler = Assembler(maxRanges: configuration.maxOutOfOrderRanges)
        rto = configuration.initialRTO.nanoseconds
        cwnd = configuration.initialWindowSegments * configuration.localMSS
        self.wantWindowScale = wantWindowScale
    }

    // MARK: - The layer above

    /// Takes the accumulated events and clears them.
    public func takeEvents() -> TCPEventLog {
        defer { events = TCPEventLog() }
        return events
    }

    /// The upstream is connected: answer the guest's SYN.
    public func accept(now: UInt64, emit: (TCPSegmentOut) -> Void) {
        guard state == .synPending else { return }
        clock = now
        state = .synReceived
        sendSYN(ack: true, now: now, emit: emit)
    }

    /// The upstream refused or failed: answer the guest's SYN with RST so its connect fails at once.
    public func refuse(emit: (TCPSegmentOut) -> Void) {
        guard state == .synPending else { return }
        emit(TCPSegmentOut(seq: 0, ack: rcvNxt.raw, flags: [.rst, .ack], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0))
        enterClosed(.aborted)
    }

    /// Queues bytes for the guest; returns how many fit (backpressure: the rest is the caller's).
    public func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        let reserved = reserveSend(bytes.count)
        guard reserved > 0 else { return 0 }
        let n = sendBuffer.append(UnsafeRawBufferPointer(rebasing: bytes[..<reserved]))
        settleSend(reserved: reserved, written: n)
        return n
    }

    /// The layer above may still queue bytes (no FIN queued, not closed).
    private var acceptsWrites: Bool {
        switch state {
        case .synPending, .synSent, .synReceived, .established, .closeWait: !finQueued
        default: false
        }
    }

    /// Room left in the send buffer, as far as the budget lets it be filled now.
    public var writableBytes: Int { acceptsWrites ? min(sendBuffer.free, budget.available) : 0 }

    /// Reserves budget for up to `n` more bytes in the send buffer; returns how many the caller
    /// may write, then hands back what it did not use with `settleSend`. The send buffer's bytes
    /// stay reserved until acknowledged.
    func reserveSend(_ n: Int) -> Int {
        guard acceptsWrites else { return 0 }
        let want = min(n, sendBuffer.free)
        let got = budget.reserve(want, now: clock)
        if got < want { waitingForMemory = true }
        return got
    }

    /// Releases what a write reserved and did not use.
    func settleSend(reserved: Int, written: Int) {
        budget.release(reserved - written)
    }

    /// Unsent and unacknowledged bytes are dropped, with their reservation.
    private func discardSendBuffer() {
        budget.release(sendBuffer.count)
        sendBuffer.removeAll()
    }

    /// Reads the guest's in-order bytes. After a read that reopens the window enough, a window
    /// update is due; the owner's next `poll` sends it.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = receiveBuffer.read(into: buffer)
        noteRead()
        return n
    }

    /// Consumes bytes the owner already copied out of `receiveBuffer` (zero-copy readers).
    public func consume(_ n: Int) {
        receiveBuffer.consume(n)
        noteRead()
    }

    private func noteRead() {
        // After the guest's FIN nothing more can come: a window update would only draw an RST
        // from a guest that has closed.
        if peerFinReceived || !state.isSynchronized {
            releaseReceiveSlack()
            return
        }
        // Under memory pressure, room this connection is not promising goes back to the
        // budget at once, for whichever connection asks first.
        if budget.isAtLimit { releaseReceiveSlack() }
        offerWindowUpdateIfGrown()
    }

    /// Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): a window update goes out only when the
    /// window grew by a full segment or half the buffer.
    private func offerWindowUpdateIfGrown() {
        let window = grantReceiveWindow()
        if window - lastAdvertisedWindow >= min(configuration.receiveBufferSize / 2, 2 * configuration.localMSS) {
            ackNow = true
        }
    }

    /// Memory freed up after the budget cut this connection short: reopen its window, and let
    /// the layer above fill its send buffer again.
    func memoryAvailable() {
        waitingForMemory = false
        if state.isSynchronized && !peerFinReceived { offerWindowUpdateIfGrown() }
        if writableBytes > 0 { events.record(.writable) }
    }

    /// Every buffer and reservation goes back: the connection is leaving the stack.
    func releaseMemory() {
        discardSendBuffer()
        receiveBuffer.removeAll()
        budget.release(rcvReserved)
        rcvReserved = 0
    }

    deinit { budget.release(sendBuffer.count + rcvReserved) }

    /// True once the guest's FIN has been consumed in order and every byte before it was read.
    public var isReadClosed: Bool { peerFinReceived && receiveBuffer.isEmpty }

    /// The layer above has nothing more to send: FIN after the queued bytes.
    public func shutdownWrite() {
        switch state {
        case .synPending, .synSent, .synReceived, .established, .closeWait:
            finQueued = true
        default:
            break
        }
    }

    /// Resets the connection (upstream reset, policy, detach).
    public func abort(emit: (TCPSegmentOut) -> Void) {
        switch state {
        case .synPending:
            refuse(emit: emit)
            return
        case .closed, .timeWait:
            enterClosed(.aborted)
            return
        case .synSent:
            break
        default:
            emit(TCPSegmentOut(seq: sndNxt.raw, ack: rcvNxt.raw, flags: [.rst, .ack], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0))
        }
        enterClosed(.aborted)
    }

    /// The earliest time `poll` has work to do, for the owner's timer.
    /// Read after every segment (the stack's deadline heap), so it builds no array.
    public var nextDeadline: UInt64? {
        func earlier(_ a: UInt64?, _ b: UInt64?) -> UInt64? {
            guard let a else { return b }
            guard let b else { return a }
            return min(a, b)
        }
        return earlier(earlier(earlier(retransmitAt, delayedAckAt), earlier(persistAt, timeWaitAt)), probeAt)
    }

    private func armProbe(now: UInt64) {
        guard sackOn, !inFastRecovery, sndMax > sndUna, srtt > 0 else {
            probeAt = nil
            return
        }
        let pto = max(2 * srtt, 10_000_000)
        probeAt = retransmitAt.map { min($0, now + pto) } ?? now + pto
    }

    // MARK: - Segments from the guest

    /// - Parameter deferOutput: leave the ACK (and any data the ACK lets out) for a later
    ///   `flush`, so a batch of segments draws one ACK instead of one each.
    public func handle(_ seg: TCPSegmentIn, now: UInt64, deferOutput: Bool = false, emit: (TCPSegmentOut) -> Void) {
        clock = now
        switch state {
        case .closed:
            return
        case .synPending:
            // The guest retransmits its SYN while the upstream dials: stay silent. An RST
            // (the guest gave up) ends it.
            if seg.flags.contains(.rst) && seg.seq == rcvNxt { enterClosed(.reset) }
            return
        case .synSent:
            handleInSYNSent(seg, now: now, emit: emit)
            return
        default:
            handleSynchronized(seg, now: now, emit: emit)
        }
        if !deferOutput { output(now: now, emit: emit) }
    }

    /// Sends what `handle(deferOutput: true)` left: the ACK, a window update, new data.
    public func flush(now: UInt64, emit: (TCPSegmentOut) -> Void) {
        output(now: now, emit: emit)
    }

    private func handleInSYNSent(_ seg: TCPSegmentIn, now: UInt64, emit: (TCPSegmentOut) -> Void) {
        // RFC 9293 §3.10.7.3.
        if seg.flags.contains(.ack) && (seg.ack <= iss || seg.ack > sndMax) {
            if !seg.flags.contains(.rst) {
                emit(TCPSegmentOut(seq: seg.ack.raw, ack: 0, flags: [.rst], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0))
            }
            return
        }
        if seg.flags.contains(.rst) {
            if seg.flags.contains(.ack) { enterClosed(.refused) }
            return
        }
        guard seg.flags.contains(.syn) else { return }
        irs = seg.seq
        rcvNxt = seg.seq + 1
        rcvAdvertisedEdge = rcvNxt
        adoptPeerOptions(seg)
        if seg.flags.contains(.ack) {
            sndUna = seg.ack
            sndWnd = Int(seg.window) << Int(sndScale)
            maxSndWnd = sndWnd
            sndWl1 = seg.seq
            sndWl2 = seg.ack
            if let t = rttTiming, seg.ack > t.seq { sampleRTT(now - t.sentAt) }
            rttTiming = nil
            retransmitAt = nil
            retransmitCount = 0
            state = .established
            events.record(.established)
            events.record(.writable)
            ackNow = true
            output(now: now, emit: emit)
        } else {
            // Simultaneous open.
            state = .synReceived
            sndNxt = iss
            sendSYN(ack: true, now: now, emit: emit)
        }
    }

    private func handleSynchronized(_ seg: TCPSegmentIn, now: UInt64, emit: (TCPSegmentOut) -> Void) {
        var seq = seg.seq
        var payload = seg.payload
        var fin = seg.flags.contains(.fin)
        // Everything the budget holds room for is acceptable: at least the window promised.
        let window = receiveRoom

        // 1. Acceptability (RFC 9293 §3.10.7.4, first check).
        let segLen = seg.length
        let acceptable: Bool
        if segLen == 0 {
            acceptable = window == 0 ? seq == rcvNxt : (seq >= rcvNxt && seq < rcvNxt + window) || seq == rcvNxt
        } else {
            acceptable = window > 0 && ((seq >= rcvNxt && seq < rcvNxt + window) || (seq + segLen - 1 >= rcvNxt && seq + segLen - 1 < rcvNxt + window))
        }
        if !acceptable {
            if state == .synReceived && seg.flags.contains(.syn) && seg.seq == irs {
                // The guest did not get our SYN-ACK: repeat it.
                sndNxt = iss
                sendSYN(ack: true, now: now, emit: emit)
                return
            }
            droppedOutOfWindow += 1
            if !seg.flags.contains(.rst) { ackNow = true }
            return
        }

        // 2. RST (RFC 5961 §3.2): only an exact match resets; in-window gets a challenge ACK.
        // In TIME-WAIT an RST is ignored (RFC 1337): the connection is over, and the bytes the
        // layer above has not read yet must not be thrown away.
        if seg.flags.contains(.rst) && state == .timeWait { return }
        if seg.flags.contains(.rst) {
            if seq == rcvNxt {
                enterClosed(.reset)
            } else {
                ackNow = true
            }
            return
        }

        // 3. SYN in a synchronized state (RFC 5961 §4.2): challenge ACK.
        if seg.flags.contains(.syn) {
            ackNow = true
            return
        }

        // 4. ACK.
        guard seg.flags.contains(.ack) else { return }
        if state == .synReceived {
            guard seg.ack > sndUna && seg.ack <= sndMax else {
                emit(TCPSegmentOut(seq: seg.ack.raw, ack: 0, flags: [.rst], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0))
                return
            }
            state = .established
            sndWnd = Int(seg.window) << Int(sndScale)
            maxSndWnd = sndWnd
            sndWl1 = seq
            sndWl2 = seg.ack
            events.record(.established)
            events.record(.writable)
        }
        // RFC 5961 §5.2: an ACK for data never sent, or far older than the window, is suspect.
        if seg.ack > sndMax {
            ackNow = true
            return
        }
        if seg.ack < sndUna - max(maxSndWnd, 1) {
            ackNow = true
            return
        }
        if timestampsOn, let ts = seg.options.timestamp, seq <= rcvNxt {
            tsRecent = ts.value
        }
        processACK(seg, now: now)

        // 5. Data.
        if !state.acceptsData {
            payload = UnsafeRawBufferPointer(start: nil, count: 0)
            fin = false
        }
        if payload.count > 0 || fin {
            // Trim what we already have.
            if seq < rcvNxt {
                let dup = rcvNxt - seq
                if dup >= payload.count {
                    if dup > payload.count { fin = false }  // the FIN too is old
                    payload = UnsafeRawBufferPointer(start: nil, count: 0)
                } else {
                    payload = UnsafeRawBufferPointer(rebasing: payload[dup...])
                }
                seq = rcvNxt
            }
            // Trim past the window; a FIN beyond it is dropped with the bytes.
            if payload.count > window - (seq - rcvNxt) {
                payload = UnsafeRawBufferPointer(rebasing: payload[..<max(0, window - (seq - rcvNxt))])
                fin = false
            }
            receiveData(seq: seq, payload: payload, fin: fin, now: now)
        }
    }

    private func processACK(_ seg: TCPSegmentIn, now: UInt64) {
        let ack = seg.ack
        let advertised = Int(seg.window) << Int(sndScale)
        var windowChanged = false
        // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2).
        if sndWl1 < seg.seq || (sndWl1 == seg.seq && sndWl2 <= ack) {
            windowChanged = advertised != sndWnd
            sndWnd = advertised
            maxSndWnd = max(maxSndWnd, sndWnd)
            sndWl1 = seg.seq
            sndWl2 = ack
            if sndWnd > 0 {
                persistAt = nil
                persistBackoff = 0
            }
        }

        var newlySacked = 0
        if sackOn && !seg.options.sackBlocks.isEmpty {
            for b in seg.options.sackBlocks {
                newlySacked += scoreboard.add(start: SequenceNumber(b.start), end: SequenceNumber(b.end), una: max(ack, sndUna), max: sndMax)
            }
        }
        if ack > sndUna {
            scoreboard.advance(to: ack)
            var acked = ack - sndUna
            // The SYN's sequence number carries no data.
            if sndUna == iss { acked -= 1 }
            let dataAcked = min(acked, sendBuffer.count)
            sendBuffer.consume(dataAcked)
            budget.release(dataAcked)
            let finAcked = finSent && ack == sndMax && acked > dataAcked
            sndUna = ack
            if sndNxt < sndUna { sndNxt = sndUna }
            if dataAcked > 0 { events.record(.writable) }
            retransmitCount = 0

            // RTT: timestamps give a sample per ACK (RFC 7323 §4); else Karn-safe timing.
            if timestampsOn, let ts = seg.options.timestamp, ts.echo != 0 {
                // TSval is our clock in milliseconds, modulo 2^32.
                let elapsedMs = UInt32(truncatingIfNeeded: now / 1_000_000) &- ts.echo
                if elapsedMs < 60_000 { sampleRTT(UInt64(max(elapsedMs, 1)) * 1_000_000) }
            } else if let t = rttTiming, ack > t.seq {
                sampleRTT(now - t.sentAt)
                rttTiming = nil
            }

            congestionOnNewACK(ack: ack, acked: dataAcked)
            if inFastRecovery { recoveryBudget += dataAcked + newlySacked }

            retransmitAt = sndUna == sndMax ? nil : now + rto
            armProbe(now: now)
            if finAcked {
                switch state {
                case .finWait1: state = .finWait2
                case .closing: enterTimeWait(now: now)
                case .lastAck: enterClosed(.normal)
                default: break
                }
            }
        } else if ack == sndUna && seg.payload.isEmpty && !seg.flags.contains(.fin) && !windowChanged && sndMax > sndUna {
            // A duplicate ACK (RFC 5681 §2).
            dupAcks += 1
            if dupAcks == 3 && !inFastRecovery && ack - 1 >= recover {
                enterFastRecovery()
            } else if inFastRecovery {
                cwnd += peerMSS
                recoveryBudget += newlySacked
            }
        }
        if inFastRecovery && newlySacked > 0 && holeCursor > sndUna && now - headRetransmittedAt > max(2 * srtt, 5_000_000) {
            holeCursor = sndUna
            recoveryBudget = max(recoveryBudget, peerMSS)
        }
        // SACK-based loss detection (RFC 6675 §5 IsLost): more than three segments' worth
        // delivered above a hole at SND.UNA means the hole is lost, dupACK count or not.
        // With little in flight there cannot be three segments above a hole: then a hole with
        // everything after it SACKed is lost too (early retransmit, RFC 5827).
        let flight = sndMax - sndUna
        let threshold = min(3 * peerMSS, max(1, flight - min(flight, peerMSS)))
        if sackOn && !inFastRecovery && sndUna >= recover && !scoreboard.isEmpty && scoreboard.sackedBytes >= threshold {
            enterFastRecovery()
        }
    }

    private func receiveData(seq: SequenceNumber, payload: UnsafeRawBufferPointer, fin: Bool, now: UInt64) {
        let offset = seq - rcvNxt
        if fin { pendingFin = seq + payload.count }
        if offset == 0 {
            if payload.count > 0 {
                let n = receiveBuffer.write(payload, at: receiveBuffer.count)
                let extra = assembler.advance(by: n)
                receiveBuffer.commit(n + extra)
                rcvNxt += n + extra
                growReceiveWindow(by: n + extra)
                events.record(.readable)
                unackedSegments += max(1, n / max(1, configuration.localMSS))
                // ACK at once when out-of-order data just got filled in, or two segments are
                // waiting (RFC 5681 §4.2); else delay.
                if extra > 0 || unackedSegments >= 2 {
                    ackNow = true
                } else if delayedAckAt == nil {
                    delayedAckAt = now + configuration.delayedACK.nanoseconds
                }
            }
        } else if payload.count > 0 {
            let start = receiveBuffer.count + offset
            let n = receiveBuffer.write(payload, at: start)
            if n > 0 && !assembler.add(start: offset, end: offset + n) {
                droppedOutOfWindow += 1
            }
            // Out of order: an immediate duplicate ACK (with SACK blocks) drives fast retransmit.
            ackNow = true
        } else if fin && offset > 0 {
            // A FIN ahead of missing data: a duplicate ACK tells the guest what is missing.
            ackNow = true
        }
        if let f = pendingFin, f == rcvNxt, !peerFinReceived {
            rcvNxt += 1
            pendingFin = nil
            peerFinReceived = true
            ackNow = true
            releaseReceiveSlack()
            events.record(.peerClosed)
            switch state {
            case .synReceived, .established: state = .closeWait
            case .finWait1: state = finSent && sndUna == sndMax ? .timeWait : .closing
            case .finWait2: enterTimeWait(now: now)
            default: break
            }
            if state == .timeWait { enterTimeWait(now: now) }
        }
    }

    /// Doubles the window target each time the guest has sent a whole target's worth, while
    /// the budget has room for it (receive-buffer auto-tuning, like slow start).
    private func growReceiveWindow(by n: Int) {
        rcvSinceGrowth += n
        guard rcvSinceGrowth >= rcvWindowTarget, rcvWindowTarget < receiveBuffer.capacity else { return }
        rcvSinceGrowth = 0
        if budget.available >= rcvWindowTarget { rcvWindowTarget = min(2 * rcvWindowTarget, receiveBuffer.capacity) }
    }

    // MARK: - Timers and output

    /// Runs due timers and sends what the windows allow. Call after `write`, `read`,
    /// `shutdownWrite`, and when `nextDeadline` passes.
    public func poll(now: UInt64, emit: (TCPSegmentOut) -> Void) {
        clock = now
        if let t = timeWaitAt, now >= t {
            enterClosed(.normal)
            return
        }
        if state == .closed { return }
        if state == .synSent && sndNxt == iss {
            sendSYN(ack: false, now: now, emit: emit)
            return
        }
        if let t = retransmitAt, now >= t {
            onRetransmitTimeout(now: now, emit: emit)
            if state == .closed { return }
        }
        if let t = probeAt, now >= t {
            probeAt = nil
            if state.isSynchronized && state != .synReceived && !inFastRecovery && sndMax > sndUna {
                // Resend the last segment's worth of data (or the FIN) to draw a SACK.
                let dataInFlight = min(sndMax - sndUna, sendBuffer.count)
                let length = min(dataInFlight, segmentLimit)
                if length > 0 {
                    emitSegment(seq: sndUna + (dataInFlight - length), flags: [.ack], payloadOffset: dataInFlight - length, length: length, now: now, emit: emit)
                    retransmittedSegments += 1
                    tailProbes += 1
                }
            }
        }
        if let t = persistAt, now >= t {
            // Zero-window probe: a segment one below SND.NXT draws an ACK with the window.
            emitSegment(seq: sndNxt - 1, flags: [.ack], payloadOffset: 0, length: 0, now: now, emit: emit)
            persistBackoff += 1
            persistAt = now + min(rto << UInt64(min(persistBackoff, 10)), configuration.maxRTO.nanoseconds)
        }
        if let t = delayedAckAt, now >= t {
            ackNow = true
        }
        output(now: now, emit: emit)
    }

    private func onRetransmitTimeout(now: UInt64, emit: (TCPSegmentOut) -> Void) {
        retransmitCount += 1
        let limit = state == .synSent || state == .synReceived ? configuration.maxSYNRetransmissions : configuration.maxRetransmissions
        if retransmitCount > limit {
            if state != .synSent {
                emit(TCPSegmentOut(seq: sndNxt.raw, ack: rcvNxt.raw, flags: [.rst, .ack], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0))
            }
            enterClosed(.timedOut)
            return
        }
        retransmittedSegments += 1
        retransmitTimeouts += 1
        rto = min(rto * 2, configuration.maxRTO.nanoseconds)
        rttTiming = nil
        switch state {
        case .synSent:
            sndNxt = iss
            sendSYN(ack: false, now: now, emit: emit)
            return
        case .synReceived:
            sndNxt = iss
            sendSYN(ack: true, now: now, emit: emit)
            return
        default:
            break
        }
        // RFC 5681 §3.1 eq. 4 and loss window; go back to SND.UNA.
        let flight = sndMax - sndUna
        ssthresh = max(flight / 2, 2 * peerMSS)
        cwnd = peerMSS
        inFastRecovery = false
        dupAcks = 0
        recover = sndMax
        sndNxt = sndUna
        // Going back to SND.UNA resends an unacknowledged FIN after the data as well.
        finSent = false
        retransmitAt = nil
        output(now: now, emit: emit)
    }

    private func output(now: UInt64, emit: (TCPSegmentOut) -> Void) {
        guard state.isSynchronized, state != .synReceived || sndNxt != iss else { return }
        var sentSomething = false
        if inFastRecovery && sackOn && !scoreboard.isEmpty {
            retransmitHeadNow = false
            if holeCursor < sndUna { holeCursor = sndUna }
            while recoveryBudget > 0, let hole = scoreboard.nextHole(from: holeCursor) {
                let length = min(hole.end - hole.start, recoveryBudget, configuration.maxSegmentPayload, sendBuffer.count - (hole.start - sndUna))
                if length <= 0 { break }
                emitSegment(seq: hole.start, flags: [.ack], payloadOffset: hole.start - sndUna, length: length, now: now, emit: emit)
                if hole.start == sndUna { headRetransmittedAt = now }
                sentSomething = true
                retransmittedSegments += 1
                holeCursor = hole.start + length
                recoveryBudget -= length
            }
        }
        if retransmitHeadNow {
            retransmitHeadNow = false
            let length = min(sndNxt - sndUna, sendBuffer.count, peerMSS)
            if length > 0 {
                emitSegment(seq: sndUna, flags: [.ack], payloadOffset: 0, length: length, now: now, emit: emit)
                sentSomething = true
                retransmitAt = now + rto
            }
        }
        if state != .synReceived && state != .timeWait {
            while true {
                // After a timeout rewound SND.NXT, skip what the guest already holds.
                if sndNxt < sndMax, let end = scoreboard.covering(sndNxt) { sndNxt = end }
                let inFlightData = sndNxt - sndUna
                let unsent = sendBuffer.count - inFlightData
                let windowLimit = min(sndWnd, cwnd)
                let usable = windowLimit - inFlightData
                let wantFin = finQueued && !finSent && unsent <= 0
                if unsent <= 0 && !wantFin { break }
                if unsent > 0 && usable <= 0 {
                    if sndWnd == 0 && retransmitAt == nil && persistAt == nil {
                        persistAt = now + rto
                    }
                    break
                }
                let length = max(0, min(unsent, usable, segmentLimit))
                // Sender SWS avoidance: hold back a runt while data is in flight and more is queued
                // that the window, not the queue, limits.
                if length > 0 && length < min(segmentLimit, peerMSS) && length < unsent && inFlightData > 0 { break }
                var flags: TCPFlags = [.ack]
                let isLast = length == unsent
                if isLast && length > 0 { flags.insert(.psh) }
                if finQueued && isLast && !finSent { flags.insert(.fin) }
                if length == 0 && !flags.contains(.fin) { break }
                emitSegment(seq: sndNxt, flags: flags, payloadOffset: inFlightData, length: length, now: now, emit: emit)
                sentSomething = true
                if rttTiming == nil && !timestampsOn && sndNxt >= sndMax { rttTiming = (sndNxt, now) }
                sndNxt += length
                if flags.contains(.fin) {
                    finSent = true
                    sndNxt += 1
                    switch state {
                    case .established, .synReceived: state = .finWait1
                    case .closeWait: state = .lastAck
                    default: break
                    }
                }
                if sndMax < sndNxt { sndMax = sndNxt }
                if retransmitAt == nil { retransmitAt = now + rto }
                if probeAt == nil { armProbe(now: now) }
                if flags.contains(.fin) { break }
            }
        }
        if !sentSomething && ackNow {
            emitSegment(seq: sndNxt, flags: [.ack], payloadOffset: 0, length: 0, now: now, emit: emit)
        }
    }

    /// Payload bytes per segment to the guest. Without GSO, a segment must fit the MSS less the
    /// options every segment carries (RFC 6691); with GSO the device cuts larger ones.
    private var segmentLimit: Int {
        let perSegment = min(peerMSS, configuration.localMSS) - (timestampsOn ? 12 : 0)
        return configuration.maxSegmentPayload > configuration.localMSS ? configuration.maxSegmentPayload : min(configuration.maxSegmentPayload, perSegment)
    }

    private func emitSegment(seq: SequenceNumber, flags: TCPFlags, payloadOffset: Int, length: Int, now: UInt64, emit: (TCPSegmentOut) -> Void) {
        var options = TCPOptions()
        if timestampsOn {
            options.timestamp = TCPTimestamp(value: UInt32(truncatingIfNeeded: now / 1_000_000), echo: tsRecent)
        }
        if sackOn {
            for r in assembler.ranges.prefix(timestampsOn ? 3 : 4) {
                _ = options.sackBlocks.append(SACKBlock(start: (rcvNxt + r.start).raw, end: (rcvNxt + r.end).raw))
            }
        }
        let window = advertiseWindow()
        emit(TCPSegmentOut(seq: seq.raw, ack: rcvNxt.raw, flags: flags, window: window, options: options, payloadOffset: payloadOffset, payloadLength: length))
        ackNow = false
        delayedAckAt = nil
        unackedSegments = 0
    }

    private func sendSYN(ack: Bool, now: UInt64, emit: (TCPSegmentOut) -> Void) {
        var options = TCPOptions()
        options.mss = UInt16(clamping: configuration.localMSS)
        if ack {
            if wantWindowScale { options.windowScale = rcvScale }
            options.sackPermitted = sackOn
            if timestampsOn { options.timestamp = TCPTimestamp(value: UInt32(truncatingIfNeeded: now / 1_000_000), echo: tsRecent) }
        } else {
            rcvScale = configuration.receiveWindowScale
            options.windowScale = rcvScale
            options.sackPermitted = true
            options.timestamp = TCPTimestamp(value: UInt32(truncatingIfNeeded: now / 1_000_000), echo: 0)
        }
        // The window in a SYN is never scaled (RFC 7323 §2.2).
        let window = UInt16(clamping: min(grantReceiveWindow(), 65535))
        lastAdvertisedWindow = Int(window)
        rcvAdvertisedEdge = rcvNxt + Int(window)
        emit(TCPSegmentOut(seq: iss.raw, ack: ack ? rcvNxt.raw : 0, flags: ack ? [.syn, .ack] : [.syn], window: window, options: options, payloadOffset: 0, payloadLength: 0))
        sndNxt = iss + 1
        if sndMax < sndNxt { sndMax = sndNxt }
        if retransmitCount == 0 { rttTiming = (iss, now) }
        retransmitAt = now + rto
        ackNow = false
    }

    // MARK: - Helpers

    private func adoptPeerOptions(_ syn: TCPSegmentIn) {
        if let mss = syn.options.mss { peerMSS = max(64, Int(mss)) } else { peerMSS = 536 }
        if let ws = syn.options.windowScale, state == .synPending || wantWindowScale {
            sndScale = min(ws, 14)
            rcvScale = configuration.receiveWindowScale
        } else {
            sndScale = 0
            rcvScale = 0
        }
        sackOn = syn.options.sackPermitted
        if let ts = syn.options.timestamp {
            timestampsOn = true
            tsRecent = ts.value
        } else {
            timestampsOn = false
        }
        cwnd = configuration.initialWindowSegments * peerMSS
    }

    /// Bytes past RCV.NXT the connection can store: what it reserved less what it buffers.
    /// Out-of-order data past the in-order point lies inside this room, so all of it counts.
    private var receiveRoom: Int { rcvReserved - receiveBuffer.count }

    /// Reserves what the window should be now (up to the target, as far as the budget goes) and
    /// returns it. Never less than what was promised: the promise is already reserved.
    private func grantReceiveWindow() -> Int {
        // After the guest's FIN no more data can come: nothing to promise.
        if peerFinReceived || state == .closed { return receiveRoom }
        let want = min(receiveBuffer.capacity, rcvWindowTarget) - receiveBuffer.count
        let room = receiveRoom
        if want > room {
            let got = budget.reserve(want - room, now: clock)
            rcvReserved += got
            // A window that cannot take even a segment leaves the guest waiting: the stack
            // reopens it when memory frees up.
            if got < want - room && receiveRoom < min(want, configuration.localMSS) { waitingForMemory = true }
        }
        return receiveRoom
    }

    /// Gives back reserved room beyond the bytes buffered and the window promised.
    private func releaseReceiveSlack() {
        let promised = peerFinReceived || !state.isSynchronized ? 0 : max(0, rcvAdvertisedEdge - rcvNxt)
        let keep = receiveBuffer.count + promised
        if rcvReserved > keep {
            budget.release(rcvReserved - keep)
            rcvReserved = keep
        }
    }

    private func advertiseWindow() -> UInt16 {
        var window = grantReceiveWindow()
        // Never move the right edge left.
        let edgeWindow = rcvAdvertisedEdge - rcvNxt
        if window < edgeWindow { window = edgeWindow }
        let scaled = min(window >> Int(rcvScale), 65535)
        lastAdvertisedWindow = scaled << Int(rcvScale)
        let edge = rcvNxt + lastAdvertisedWindow
        if edge > rcvAdvertisedEdge { rcvAdvertisedEdge = edge }
        return UInt16(scaled)
    }

    private func sampleRTT(_ sample: UInt64) {
        // RFC 6298 §2 with alpha 1/8, beta 1/4, G folded into the minimum.
        if srtt == 0 {
            srtt = sample
            rttvar = sample / 2
        } else {
            let diff = srtt > sample ? srtt - sample : sample - srtt
            rttvar = (3 * rttvar + diff) / 4
            srtt = (7 * srtt + sample) / 8
        }
        rto = min(max(srtt + 4 * rttvar, configuration.minRTO.nanoseconds), configuration.maxRTO.nanoseconds)
    }

    private func congestionOnNewACK(ack: SequenceNumber, acked: Int) {
        if inFastRecovery {
            if ack >= recover {
                // Full acknowledgment (RFC 6582 §3.2 step 3).
                cwnd = min(ssthresh, max(sndMax - sndUna, peerMSS) + peerMSS)
                inFastRecovery = false
                dupAcks = 0
            } else {
                // Partial acknowledgment: retransmit the next hole and deflate.
                retransmitHeadNow = true
                cwnd = max(cwnd - acked + peerMSS, peerMSS)
                retransmittedSegments += 1
            }
            return
        }
        dupAcks = 0
        if cwnd < ssthresh {
            cwnd += min(acked, configuration.maxSegmentPayload)  // slow start (RFC 5681 eq. 2, ABC RFC 3465)
        } else {
            // Congestion avoidance by bytes acknowledged (RFC 3465 §2.1): one ACK for a 64 KB GSO
            // segment must count as much as the 45 ACKs its pieces would have drawn.
            bytesAckedInAvoidance += acked
            if bytesAckedInAvoidance >= cwnd {
                bytesAckedInAvoidance -= cwnd
                cwnd += peerMSS
            }
        }
        // No point in a window the receiver could never use.
        cwnd = min(cwnd, max(maxSndWnd, 2 * configuration.maxSegmentPayload) * 2)
    }

    private func enterFastRecovery() {
        // RFC 6582 §3.2 step 2.
        let flight = sndMax - sndUna
        ssthresh = max(flight / 2, 2 * peerMSS)
        recover = sndMax
        inFastRecovery = true
        fastRecoveries += 1
        cwnd = ssthresh + 3 * peerMSS
        retransmitHeadNow = true
        retransmittedSegments += 1
        holeCursor = sndUna
        recoveryBudget = max(peerMSS, min(configuration.maxSegmentPayload, scoreboard.sackedBytes))
    }

    /// Fast retransmit: the next output resends one segment at SND.UNA before anything new.
    private var retransmitHeadNow = false

    private func enterTimeWait(now: UInt64) {
        // For the layer above the connection is over now: both FINs are acknowledged. The
        // stack keeps it only to answer a retransmitted FIN.
        if state != .timeWait {
            closeReason = .normal
            events.record(.closed)
        }
        state = .timeWait
        retransmitAt = nil
        persistAt = nil
        timeWaitAt = now + configuration.timeWait.nanoseconds
        // Only its few words of state stay: everything sent is acknowledged, nothing more comes.
        discardSendBuffer()
        releaseReceiveSlack()
    }

    /// Every way to CLOSED reports `.closed` once; a connection already reported on its way
    /// through TIME-WAIT is not reported again.
    private func enterClosed(_ reason: TCPCloseReason) {
        let alreadyReported = state == .timeWait
        state = .closed
        closeReason = reason
        retransmitAt = nil
        delayedAckAt = nil
        persistAt = nil
        timeWaitAt = nil
        // Unsent bytes have nowhere to go; unread ones stay for the layer above to read.
        discardSendBuffer()
        releaseReceiveSlack()
        if !alreadyReported { events.record(.closed) }
    }
}
