// Drives one TCPConnection as a scripted guest would: segments in, segments (with payload bytes) out, time by hand.
import Wire
@testable import NetStack

struct SentSegment {
    var seq: UInt32
    var ack: UInt32
    var flags: TCPFlags
    var window: UInt16
    var options: TCPOptions
    var payload: [UInt8]
}

final class TCPHarness {
    var now: UInt64 = 1_000_000_000
    let conn: TCPConnection
    var sent: [SentSegment] = []
    /// The guest's next sequence number.
    var guestSeq: UInt32
    /// Every event the connection recorded, in order.
    var events: [TCPEvent] = []
    let ourISN: UInt32

    static let guestISN: UInt32 = 1000
    static let ourISN: UInt32 = 50_000

    /// A passive connection: the guest's SYN has arrived; accept it unless told not to.
    init(configuration: TCPConfiguration = TCPConfiguration(), guestISN: UInt32 = TCPHarness.guestISN, ourISN: UInt32 = TCPHarness.ourISN, synOptions: TCPOptions? = nil, accept: Bool = true, budget: MemoryBudget = .unlimited(), pool: BufferPool = BufferPool()) {
        var opts = TCPOptions()
        if let synOptions { opts = synOptions } else {
            opts.mss = 1460
            opts.windowScale = 7
            opts.sackPermitted = true
            opts.timestamp = TCPTimestamp(value: 1, echo: 0)
        }
        let syn = TCPSegmentIn(seq: guestISN, flags: [.syn], window: 64240, options: opts)
        conn = TCPConnection(passiveSYN: syn, iss: ourISN, configuration: configuration, now: now, pool: pool, budget: budget)
        self.ourISN = ourISN
        guestSeq = guestISN &+ 1
        if accept { conn.accept(now: now, emit: record) }
    }

    /// An active connection into the guest.
    init(activeConfiguration: TCPConfiguration, ourISN: UInt32 = TCPHarness.ourISN) {
        conn = TCPConnection(activeISS: ourISN, configuration: activeConfiguration, now: now)
        self.ourISN = ourISN
        guestSeq = TCPHarness.guestISN
    }

    func record(_ out: TCPSegmentOut) {
        var payload = [UInt8](repeating: 0, count: out.payloadLength)
        if out.payloadLength > 0 {
            let n = payload.withUnsafeMutableBytes { conn.sendBuffer.peek(into: $0, at: out.payloadOffset) }
            precondition(n == out.payloadLength, "segment names bytes the send buffer does not hold")
        }
        sent.append(SentSegment(seq: out.seq, ack: out.ack, flags: out.flags, window: out.window, options: out.options, payload: payload))
    }

    /// Sends a segment from the guest; returns what the connection emitted in answer.
    @discardableResult
    func guest(seq: UInt32? = nil, ack: UInt32? = nil, flags: TCPFlags = [.ack], window: UInt16 = 65535, options: TCPOptions = TCPOptions(), payload: [UInt8] = [], advance: Bool = true) -> [SentSegment] {
        let before = sent.count
        let s = seq ?? guestSeq
        let a = ack ?? (sent.last.map { $0.seq &+ UInt32($0.payload.count) &+ ($0.flags.contains(.syn) || $0.flags.contains(.fin) ? 1 : 0) } ?? 0)
        payload.withUnsafeBytes { p in
            let seg = TCPSegmentIn(seq: s, ack: a, flags: flags, window: window, options: options, payload: p)
            conn.handle(seg, now: now, emit: record)
        }
        if advance && seq == nil {
            guestSeq = guestSeq &+ UInt32(payload.count) &+ (flags.contains(.fin) || flags.contains(.syn) ? 1 : 0)
        }
        events.append(contentsOf: conn.takeEvents())
        return Array(sent[before...])
    }

    @discardableResult
    func poll(after duration: Duration = .zero) -> [SentSegment] {
        now += duration.nanoseconds
        let before = sent.count
        conn.poll(now: now, emit: record)
        events.append(contentsOf: conn.takeEvents())
        return Array(sent[before...])
    }

    @discardableResult
    func write(_ bytes: [UInt8]) -> Int {
        let n = bytes.withUnsafeBytes { conn.write($0) }
        return n
    }

    func readAll() -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { conn.read(into: $0) }
            if n == 0 { break }
            out += buf[..<n]
        }
        return out
    }

    /// Completes the passive handshake with the guest's ACK.
    func establish() {
        guest(ack: ourISN &+ 1)
    }
}

func bytes(_ n: Int, seed: UInt8 = 0) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) } }
