// One TCP connection as the fuzzer tracks it from both ends: the guest's (what it put on the wire,
// what reached it in order) and the relay's (what it wrote into the stack, what the stack gave it).
import NetStack
import Wire

/// The bytes each end sends: one fixed pseudo-random sequence read from a different place per
/// stream, so that a byte's value says where in its stream it belongs. A byte delivered twice,
/// early, late or in place of a gap shows up as a mismatch.
enum StreamBytes {
    static let period = 65_521

    static let table: [UInt8] = {
        var state: UInt64 = 0x5EED_F00D
        return (0..<period).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return UInt8(truncatingIfNeeded: z ^ (z >> 31))
        }
    }()

    static func index(stream: Int, offset: Int) -> Int {
        ((offset &+ stream &* 7919) % period + period) % period
    }

    static func fill(_ buffer: UnsafeMutableRawBufferPointer, stream: Int, from offset: Int) {
        var i = index(stream: stream, offset: offset)
        for j in 0..<buffer.count {
            buffer[j] = table[i]
            i += 1
            if i == period { i = 0 }
        }
    }

    static func bytes(stream: Int, from offset: Int, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(0, count))
        out.withUnsafeMutableBytes { fill($0, stream: stream, from: offset) }
        return out
    }

    static func matches(_ bytes: UnsafeRawBufferPointer, stream: Int, from offset: Int) -> Bool {
        var i = index(stream: stream, offset: offset)
        for b in bytes {
            if b != table[i] { return false }
            i += 1
            if i == period { i = 0 }
        }
        return true
    }
}

/// Stream offsets a sender has put on the wire, as sorted disjoint ranges. Past `capacity` the
/// two closest ranges merge: the set only grows, so "delivered ≤ sent" stays a sound check.
struct SentRanges {
    static let capacity = 32
    private(set) var ranges: [Range<Int>] = []

    mutating func insert(_ r: Range<Int>) {
        let r = max(0, r.lowerBound)..<max(0, r.upperBound)
        guard !r.isEmpty else { return }
        var lo = r.lowerBound, hi = r.upperBound
        var kept: [Range<Int>] = []
        var placed = false
        for x in ranges {
            if x.upperBound < lo {
                kept.append(x)
            } else if x.lowerBound > hi {
                if !placed {
                    kept.append(lo..<hi)
                    placed = true
                }
                kept.append(x)
            } else {
                lo = min(lo, x.lowerBound)
                hi = max(hi, x.upperBound)
            }
        }
        if !placed { kept.append(lo..<hi) }
        ranges = kept
        while ranges.count > Self.capacity {
            var best = 0
            for i in 1..<(ranges.count - 1) where ranges[i + 1].lowerBound - ranges[i].upperBound < ranges[best + 1].lowerBound - ranges[best].upperBound {
                best = i
            }
            ranges[best] = ranges[best].lowerBound..<ranges[best + 1].upperBound
            ranges.remove(at: best + 1)
        }
    }

    /// How far from offset 0 every byte has been sent.
    var contiguous: Int { ranges.first.map { $0.lowerBound == 0 ? $0.upperBound : 0 } ?? 0 }
}

/// How the relay answers the guest's SYN.
enum AcceptMode: UInt8 {
    case now, refuse, later
}

final class Connection {
    let serial: Int
    let key: FlowKey
    /// The stack opened it (a published port); otherwise the guest did (egress).
    let inbound: Bool
    var flow: TCPFlowID?

    // The guest's side.
    let guestISN: UInt32
    /// The options of the guest's SYN (or SYN-ACK, inbound).
    var guestOptions = TCPOptions()
    var sent = SentRanges()
    /// Where the guest's stream ends, once it has decided to send FIN.
    var finOffset: Int?
    var stackISN: UInt32?
    /// The guest answered the stack's SYN (a published port's connection).
    var guestAnswered = false
    var stackOptions = TCPOptions()
    /// The stack's bytes the guest holds in order, and whether its FIN followed them.
    var received = 0
    var finReceived = false
    var stackTimestamp: UInt32 = 0
    /// A second incarnation of the same 4-tuple took over: the stack's segments for it are not
    /// checked against this connection's bytes.
    var outboundUnknown = false

    // The relay's side.
    let acceptMode: AcceptMode
    var written = 0
    var writeShut = false
    var delivered = 0
    var established = false
    var peerClosed = false
    /// No event may come any more: `.closed` came, or the relay refused or aborted.
    var over = false

    init(serial: Int, key: FlowKey, inbound: Bool, guestISN: UInt32, acceptMode: AcceptMode) {
        self.serial = serial
        self.key = key
        self.inbound = inbound
        self.guestISN = guestISN
        self.acceptMode = acceptMode
    }

    var guestStream: Int { 2 * serial }
    var relayStream: Int { 2 * serial + 1 }

    var timestampsOn: Bool { guestOptions.timestamp != nil && stackOptions.timestamp != nil }
    var sackOn: Bool { guestOptions.sackPermitted && stackOptions.sackPermitted }
    /// The shift the guest applies to the windows it advertises (RFC 7323: only when both sent one).
    var guestWindowShift: Int {
        guard let g = guestOptions.windowShift, stackOptions.windowScale != nil else { return 0 }
        return Int(g)
    }

    /// The guest's sequence number for a stream offset (offset 0 follows the SYN).
    func guestSeq(_ offset: Int) -> UInt32 { guestISN &+ 1 &+ UInt32(truncatingIfNeeded: offset) }

    /// What the guest acknowledges: everything the stack sent that reached it in order.
    var guestAck: UInt32 {
        guard let isn = stackISN else { return 0 }
        return isn &+ 1 &+ UInt32(truncatingIfNeeded: received) &+ (finReceived ? 1 : 0)
    }
}
