// One TCP connection between the guest and the gateway: RFC 9293's state machine with RFC 7323 options
// and RFC 5961 defences, its buffers and windows. No I/O: segments in as values, out through `emit`.
import Scheduling
import Wire

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
    /// Fast retransmit: the next output resends one segment at SND.UNA before anything new.
    private var retransmitHeadNow = false

    // Receive sequence space.
    private(set) var irs = SequenceNumber(0)
    private(set) var rcvNxt = SequenceNumber(0)
    private var rcvScale: UInt8 = 0
    /// Right edge last advertised; the window never moves it left (RFC 9293 §3.8.6.2.2).
    private var rcvAdvertisedEdge = SequenceNumber(0)
    public let receiveBuffer: ChunkedBuffer
    private var assembler: Assembler
    /// Takes the guest's in-order bytes straight from their frame when nothing is buffered or
    /// held out of order (the layer above writes them to its socket at once), and returns how
    /// many it took; the rest is buffered as usual. It must not call back into the stack. Saves
    /// the copy into the ring for a stream whose reader keeps up. `pushed`: the segment carries
    /// PSH, the end of one of the guest's writes (nothing more of it is coming in this batch).
    public var directReceiver: ((_ bytes: UnsafeRawBufferPointer, _ pushed: Bool) -> Int)?
    /// Sequence number of a FIN that arrived ahead of missing data.
    private var pendingFin: SequenceNumber?
    private var peerFinReceived = false

    // Negotiated options.
    private var peerMSS = 536
    private var timestampsOn = false
    private var tsRecent: UInt32 = 0
    private var sackOn = false
    private let wantWindowScale: Bool

    // RFC 6298 RTT and RTO, the timers, NewReno/SACK loss recovery and the congestion window:
    // values stored inline and mutated in place, so the segment path allocates nothing.
    private var rtt: RTTEstimator
    private var timers = TCPTimers()
    private var recovery: LossRecovery
    private var congestion: CongestionControl
    var cwnd: Int { congestion.cwnd }
    var ssthresh: Int { congestion.ssthresh }

    private var ackNow = false
    private var unackedSegments = 0
    /// Window we last told the peer, to decide when a read warrants a window update.
    private var lastAdvertisedWindow = 0

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
    public var fastRecoveries: Int { recovery.fastRecoveries }
    public private(set) var tailProbes = 0

    /// One line of internal state, for logs when a flow misbehaves.
    public var debugState: String {
        "state=\(state) una=\(sndUna.raw &- iss.raw) nxt=\(sndNxt.raw &- iss.raw) max=\(sndMax.raw &- iss.raw) buf=\(sendBuffer.count) "
            + "wnd=\(sndWnd) cwnd=\(cwnd) ssthresh=\(ssthresh) recovery=\(recovery.inFastRecovery) sacked=\(recovery.scoreboard.sackedBytes) "
            + "fin=\(finQueued)/\(finSent) rto=\(deadline(.retransmit)) probe=\(deadline(.tailLossProbe)) persist=\(deadline(.persist))"
    }

    private func deadline(_ timer: TCPTimers.Timer) -> String {
        timers[timer].map { String($0) } ?? "-"
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
        recovery = LossRecovery(iss: self.iss)
        sendBuffer = ChunkedBuffer(capacity: configuration.sendBufferSize, pool: pool, budget: budget)
        receiveBuffer = ChunkedBuffer(capacity: configuration.receiveBufferSize, pool: pool, budget: budget)
        assembler = Assembler(maxRanges: configuration.maxOutOfOrderRanges)
        rtt = RTTEstimator(configuration)
        congestion = CongestionControl(
            initialWindow: configuration.initialWindowSegments * configuration.localMSS,
            maxSegmentPayload: configuration.maxSegmentPayload)
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
        directReceiver = nil
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
    public var nextDeadline: UInt64? { timers.next }

    /// Tail loss probe (RFC 8985 §7): when outstanding data draws no ACK for about two round
    /// trips, the last segment goes out again, so a lost tail is SACKed instead of waiting
    /// for the RTO.
    private func armProbe(now: UInt64) {
        timers[.tailLossProbe] =
            sackOn && sndMax > sndUna
            ? recovery.probeDeadline(now: now, srtt: rtt.srtt, retransmitAt: timers[.retransmit]) : nil
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
        // RFC 9293 §3.10.7.3. First, check the ACK bit: it must acknowledge our SYN.
        if seg.flags.contains(.ack) && (seg.ack <= iss || seg.ack > sndMax) {
            if !seg.flags.contains(.rst) {
                emit(TCPSegmentOut(seq: seg.ack.raw, ack: 0, flags: [.rst], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0))
            }
            return
        }
        // Second, check the RST bit: with an acceptable ACK the guest refused the connection.
        if seg.flags.contains(.rst) {
            if seg.flags.contains(.ack) { enterClosed(.refused) }
            return
        }
        // Third, check security: no IP security options here.
        // Fourth, check the SYN bit; fifth, with neither SYN nor RST the segment is dropped.
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
            rtt.acknowledged(seg.ack, now: now)
            rtt.stopTiming()
            timers[.retransmit] = nil
            timers.retransmissions = 0
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

        // RFC 9293 §3.10.7.4. First, check sequence number: the segment must overlap the window.
        let segLen = seg.length
        let acceptable: Bool
        if segLen == 0 {
            acceptable = window == 0 ? seq == rcvNxt : seq >= rcvNxt && seq < rcvNxt + window
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

        // Second, check the RST bit (RFC 5961 §3.2): only an exact match resets; in-window gets a
        // challenge ACK. In TIME-WAIT an RST is ignored (RFC 1337): the connection is over, and
        // the bytes the layer above has not read yet must not be thrown away.
        if seg.flags.contains(.rst) && state == .timeWait { return }
        if seg.flags.contains(.rst) {
            if seq == rcvNxt {
                enterClosed(.reset)
            } else {
                ackNow = true
            }
            return
        }

        // Third, check security: no IP security options here.
        // Fourth, check the SYN bit: in a synchronized state it draws a challenge ACK (RFC 5961 §4.2).
        if seg.flags.contains(.syn) {
            ackNow = true
            return
        }

        // Fifth, check the ACK field: without it the segment is dropped.
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

        // Sixth, the URG bit: urgent data is not supported; its bytes are ordinary data.
        // Seventh, process the segment text, and eighth, check the FIN bit (`receiveData`).
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
                    // bound: 0 < dup < payload.count, by the comparisons just above.
                    payload = UnsafeRawBufferPointer(rebasing: payload[dup...])
                }
                seq = rcvNxt
            }
            // Trim past the window; a FIN beyond it is dropped with the bytes.
            if payload.count > window - (seq - rcvNxt) {
                // bound: the condition makes the cut shorter than the payload, max(0, …) keeps it >= 0.
                payload = UnsafeRawBufferPointer(rebasing: payload[..<max(0, window - (seq - rcvNxt))])
                fin = false
            }
            receiveData(seq: seq, payload: payload, fin: fin, pushed: seg.flags.contains(.psh), now: now)
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
                timers[.persist] = nil
                timers.persistProbes = 0
            }
        }

        let newlySacked =
            sackOn && !seg.options.sackBlocks.isEmpty
            ? recovery.addSACKBlocks(seg.options.sackBlocks, sndUna: max(ack, sndUna), sndMax: sndMax) : 0
        if ack > sndUna {
            var acked = ack - sndUna
            // The SYN's sequence number carries no data.
            if sndUna == iss { acked -= 1 }
            let dataAcked = min(acked, sendBuffer.count)
            sendBuffer.consume(dataAcked)
            budget.release(dataAcked)
            // Past every buffered byte only the FIN is left. A timeout may have gone back to
            // SND.UNA since it was sent (`finSent` false again): the guest got it all the same.
            let finAcked = finQueued && ack == sndMax && acked > dataAcked
            if finAcked { finSent = true }
            sndUna = ack
            if sndNxt < sndUna { sndNxt = sndUna }
            if dataAcked > 0 { events.record(.writable) }
            timers.retransmissions = 0

            // RTT: timestamps give a sample per ACK (RFC 7323 §4); else the timed segment's.
            if timestampsOn, let ts = seg.options.timestamp, ts.echo != 0 {
                rtt.add(timestampEcho: ts.echo, now: now)
            } else {
                rtt.acknowledged(ack, now: now)
            }

            let partialACK = recovery.newlyAcknowledged(
                delivered: dataAcked, newlySacked: newlySacked, sndUna: sndUna, sndMax: sndMax, mss: peerMSS,
                receiverWindow: maxSndWnd, congestion: &congestion)
            if partialACK { orderHeadRetransmission() }

            timers[.retransmit] = sndUna == sndMax ? nil : now + rtt.rto
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
            let fastRetransmit = recovery.duplicateACK(
                newlySacked: newlySacked, sndUna: sndUna, sndMax: sndMax, mss: peerMSS, congestion: &congestion)
            if fastRetransmit { orderHeadRetransmission() }
        }
        let lost = recovery.detectLoss(
            newlySacked: newlySacked, sndUna: sndUna, sndMax: sndMax, mss: peerMSS, srtt: rtt.srtt, now: now,
            congestion: &congestion)
        if lost { orderHeadRetransmission() }
    }

    /// Loss recovery asked for the segment at SND.UNA: the next output resends it first.
    private func orderHeadRetransmission() {
        retransmitHeadNow = true
        retransmittedSegments += 1
    }

    private func receiveData(seq: SequenceNumber, payload: UnsafeRawBufferPointer, fin: Bool, pushed: Bool, now: UInt64) {
        let offset = seq - rcvNxt
        if fin { pendingFin = seq + payload.count }
        if offset == 0 {
            if payload.count > 0 {
                // Only with nothing before them in the ring may bytes pass it: order is kept.
                var taken = 0
                var offered = false
                if let take = directReceiver, receiveBuffer.isEmpty, assembler.isEmpty {
                    offered = true
                    taken = min(max(take(payload, pushed), 0), payload.count)
                }
                let buffered = taken == payload.count
                    ? 0 : receiveBuffer.write(UnsafeRawBufferPointer(rebasing: payload[taken...]), at: receiveBuffer.count)
                let n = taken + buffered
                let extra = assembler.advance(by: n)
                receiveBuffer.commit(buffered + extra)
                rcvNxt += n + extra
                growReceiveWindow(by: n + extra)
                // Bytes a receiver left (its socket full or failing, even ones the ring could not
                // take) bring the layer above to its ordinary push, which says what stopped them.
                if buffered + extra > 0 || (offered && taken < payload.count) { events.record(.readable) }
                unackedSegments += max(1, n / max(1, configuration.localMSS))
                // ACK at once when out-of-order data just got filled in, or two segments are
                // waiting (RFC 5681 §4.2); else delay.
                if extra > 0 || unackedSegments >= 2 {
                    ackNow = true
                } else if timers[.delayedACK] == nil {
                    timers[.delayedACK] = now + configuration.delayedACK.nanoseconds
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
        } else if fin {
            // A FIN ahead of missing data: a duplicate ACK tells the guest what is missing.
            ackNow = true
        }
        // Eighth, check the FIN bit: it counts once every byte before it has arrived.
        if let f = pendingFin, f == rcvNxt, !peerFinReceived {
            rcvNxt += 1
            pendingFin = nil
            peerFinReceived = true
            ackNow = true
            releaseReceiveSlack()
            events.record(.peerClosed)
            switch state {
            case .established: state = .closeWait
            // An ACK of our FIN, even in this same segment, has already moved FIN-WAIT-1 on.
            case .finWait1: state = .closing
            case .finWait2: enterTimeWait(now: now)
            default: break
            }
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
        if timers.isDue(.timeWait, now: now) {
            enterClosed(.normal)
            return
        }
        if state == .closed { return }
        if state == .synSent && sndNxt == iss {
            sendSYN(ack: false, now: now, emit: emit)
            return
        }
        if timers.isDue(.retransmit, now: now) {
            onRetransmitTimeout(now: now, emit: emit)
            if state == .closed { return }
        }
        if timers.isDue(.tailLossProbe, now: now) {
            timers[.tailLossProbe] = nil
            if state.isSynchronized && state != .synReceived && !recovery.inFastRecovery && sndMax > sndUna {
                // Resend the last segment's worth of data to draw a SACK; a FIN alone waits for the RTO.
                let dataInFlight = min(sndMax - sndUna, sendBuffer.count)
                let length = min(dataInFlight, segmentLimit)
                if length > 0 {
                    emitSegment(seq: sndUna + (dataInFlight - length), flags: [.ack], payloadOffset: dataInFlight - length, length: length, now: now, emit: emit)
                    retransmittedSegments += 1
                    tailProbes += 1
                }
            }
        }
        if timers.isDue(.persist, now: now) {
            // Zero-window probe: a segment one below SND.NXT draws an ACK with the window.
            emitSegment(seq: sndNxt - 1, flags: [.ack], payloadOffset: 0, length: 0, now: now, emit: emit)
            timers.persistProbes += 1
            timers[.persist] = now + rtt.backedOff(timers.persistProbes)
        }
        if timers.isDue(.delayedACK, now: now) {
            ackNow = true
        }
        output(now: now, emit: emit)
    }

    private func onRetransmitTimeout(now: UInt64, emit: (TCPSegmentOut) -> Void) {
        timers.retransmissions += 1
        let limit = state == .synSent || state == .synReceived ? configuration.maxSYNRetransmissions : configuration.maxRetransmissions
        if timers.retransmissions > limit {
            if state != .synSent {
                emit(TCPSegmentOut(seq: sndNxt.raw, ack: rcvNxt.raw, flags: [.rst, .ack], window: 0, options: TCPOptions(), payloadOffset: 0, payloadLength: 0))
            }
            enterClosed(.timedOut)
            return
        }
        retransmittedSegments += 1
        retransmitTimeouts += 1
        rtt.backOff()
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
        recovery.retransmitTimeout(sndUna: sndUna, sndMax: sndMax, mss: peerMSS, congestion: &congestion)
        // Go back to SND.UNA; that resends an unacknowledged FIN after the data as well.
        sndNxt = sndUna
        finSent = false
        timers[.retransmit] = nil
        output(now: now, emit: emit)
    }

    private func output(now: UInt64, emit: (TCPSegmentOut) -> Void) {
        guard state.isSynchronized, state != .synReceived || sndNxt != iss else { return }
        var sentSomething = false
        // With SACK, recovery resends the holes the scoreboard shows, the one at SND.UNA among them.
        if recovery.inFastRecovery && !recovery.scoreboard.isEmpty {
            retransmitHeadNow = false
            let bufferEnd = sndUna + sendBuffer.count
            while let hole = recovery.nextHole(
                sndUna: sndUna, bufferEnd: bufferEnd, maxLength: segmentLimit, now: now)
            {
                emitSegment(seq: hole.start, flags: [.ack], payloadOffset: hole.start - sndUna, length: hole.length, now: now, emit: emit)
                sentSomething = true
                retransmittedSegments += 1
            }
        }
        if retransmitHeadNow {
            retransmitHeadNow = false
            let length = min(sndNxt - sndUna, sendBuffer.count, peerMSS, segmentLimit)
            if length > 0 {
                emitSegment(seq: sndUna, flags: [.ack], payloadOffset: 0, length: length, now: now, emit: emit)
                sentSomething = true
                timers[.retransmit] = now + rtt.rto
            }
        }
        if state != .synReceived && state != .timeWait {
            while true {
                // After a timeout rewound SND.NXT, skip what the guest already holds.
                if sndNxt < sndMax, let end = recovery.scoreboard.covering(sndNxt) { sndNxt = end }
                let inFlightData = sndNxt - sndUna
                let unsent = sendBuffer.count - inFlightData
                let windowLimit = min(sndWnd, congestion.cwnd)
                let usable = windowLimit - inFlightData
                let wantFin = finQueued && !finSent && unsent <= 0
                if unsent <= 0 && !wantFin { break }
                if unsent > 0 && usable <= 0 {
                    if sndWnd == 0 && timers[.retransmit] == nil && timers[.persist] == nil {
                        timers[.persist] = now + rtt.rto
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
                if !timestampsOn { rtt.sending(sndNxt, highestSent: sndMax, now: now) }
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
                if timers[.retransmit] == nil { timers[.retransmit] = now + rtt.rto }
                if timers[.tailLossProbe] == nil { armProbe(now: now) }
                if flags.contains(.fin) { break }
            }
        }
        if !sentSomething && ackNow {
            emitSegment(seq: sndNxt, flags: [.ack], payloadOffset: 0, length: 0, now: now, emit: emit)
        }
    }

    /// Payload bytes per segment to the guest. Without GSO, a segment must fit the MSS less the
    /// options it carries (RFC 6691); with GSO the device cuts larger ones.
    private var segmentLimit: Int {
        let perSegment = min(peerMSS, configuration.localMSS) - segmentOptions(now: clock).encodedLength
        return configuration.maxSegmentPayload > configuration.localMSS ? configuration.maxSegmentPayload : min(configuration.maxSegmentPayload, perSegment)
    }

    /// The options a segment sent now carries: the timestamp, and SACK blocks for the guest's
    /// out-of-order bytes held.
    private func segmentOptions(now: UInt64) -> TCPOptions {
        var options = TCPOptions()
        if timestampsOn {
            options.timestamp = TCPTimestamp(value: RTTEstimator.timestampClock(now), echo: tsRecent)
        }
        if sackOn {
            for r in assembler.ranges.prefix(timestampsOn ? 3 : 4) {
                _ = options.sackBlocks.append(SACKBlock(start: (rcvNxt + r.start).raw, end: (rcvNxt + r.end).raw))
            }
        }
        return options
    }

    private func emitSegment(seq: SequenceNumber, flags: TCPFlags, payloadOffset: Int, length: Int, now: UInt64, emit: (TCPSegmentOut) -> Void) {
        let options = segmentOptions(now: now)
        let window = advertiseWindow()
        emit(TCPSegmentOut(seq: seq.raw, ack: rcvNxt.raw, flags: flags, window: window, options: options, payloadOffset: payloadOffset, payloadLength: length))
        ackNow = false
        timers[.delayedACK] = nil
        unackedSegments = 0
    }

    private func sendSYN(ack: Bool, now: UInt64, emit: (TCPSegmentOut) -> Void) {
        var options = TCPOptions()
        options.mss = UInt16(clamping: configuration.localMSS)
        if ack {
            if wantWindowScale { options.windowScale = rcvScale }
            options.sackPermitted = sackOn
            if timestampsOn { options.timestamp = TCPTimestamp(value: RTTEstimator.timestampClock(now), echo: tsRecent) }
        } else {
            rcvScale = configuration.receiveWindowScale
            options.windowScale = rcvScale
            options.sackPermitted = true
            options.timestamp = TCPTimestamp(value: RTTEstimator.timestampClock(now), echo: 0)
        }
        // The window in a SYN is never scaled (RFC 7323 §2.2).
        let window = UInt16(clamping: min(grantReceiveWindow(), 65535))
        lastAdvertisedWindow = Int(window)
        rcvAdvertisedEdge = rcvNxt + Int(window)
        emit(TCPSegmentOut(seq: iss.raw, ack: ack ? rcvNxt.raw : 0, flags: ack ? [.syn, .ack] : [.syn], window: window, options: options, payloadOffset: 0, payloadLength: 0))
        sndNxt = iss + 1
        if sndMax < sndNxt { sndMax = sndNxt }
        // A SYN sent again after a timeout is not timed (Karn's rule).
        if timers.retransmissions == 0 { rtt.startTiming(iss, sentAt: now) }
        timers[.retransmit] = now + rtt.rto
        ackNow = false
    }

    // MARK: - Helpers

    private func adoptPeerOptions(_ syn: TCPSegmentIn) {
        if let mss = syn.options.mss { peerMSS = max(64, Int(mss)) } else { peerMSS = 536 }
        if let ws = syn.options.windowScale {
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
        congestion.restart(initialWindow: configuration.initialWindowSegments * peerMSS)
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

    private func enterTimeWait(now: UInt64) {
        // For the layer above the connection is over now: both FINs are acknowledged. The
        // stack keeps it only to answer a retransmitted FIN.
        if state != .timeWait {
            closeReason = .normal
            events.record(.closed)
        }
        state = .timeWait
        timers[.retransmit] = nil
        timers[.persist] = nil
        timers[.timeWait] = now + configuration.timeWait.nanoseconds
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
        timers[.retransmit] = nil
        timers[.delayedACK] = nil
        timers[.persist] = nil
        timers[.timeWait] = nil
        // Unsent bytes have nowhere to go; unread ones stay for the layer above to read.
        discardSendBuffer()
        releaseReceiveSlack()
        if !alreadyReported { events.record(.closed) }
    }
}
