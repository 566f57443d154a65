// IPv4 fragment reassembly (RFC 791 §3.2) for datagrams from the guest, bounded by
// `ReassemblyLimits` and strict about overlaps (RFC 5722's rule, applied to IPv4 as hosts do).
import Wire


/// Puts fragmented IPv4 datagrams back together, keyed by source, destination, protocol and
/// identification (RFC 791 §3.2). Feed it every fragment with `add`; call `expire` from the
/// stack's timers.
public struct IPv4Reassembler {
    /// What names one original datagram (RFC 791 §3.2).
    public struct Key: Hashable, Sendable {
        public var source: IPv4Address
        public var destination: IPv4Address
        public var protocolNumber: UInt8
        public var identification: UInt16

        public init(source: IPv4Address, destination: IPv4Address, protocolNumber: UInt8, identification: UInt16) {
            self.source = source
            self.destination = destination
            self.protocolNumber = protocolNumber
            self.identification = identification
        }
    }

    /// A whole datagram: the first fragment's header, rewritten to describe the datagram
    /// (no fragment flags, `totalLength` covering everything), and the upper-layer bytes.
    public struct Reassembled {
        public var header: IPv4Header
        /// The datagram's payload (TCP, UDP, ICMP…), `header.payloadLength` bytes.
        public var payload: [UInt8]
    }

    private var table: ReassemblyTable<Key, IPv4Header>

    public init(limits: ReassemblyLimits = ReassemblyLimits()) {
        table = ReassemblyTable(limits: limits)
    }

    public var limits: ReassemblyLimits { table.limits }
    public var counters: ReassemblyCounters { table.counters }
    public var datagramsInProgress: Int { table.datagrams.count }
    /// Buffer capacity held for datagrams in progress.
    public var bufferedBytes: Int { table.bufferedBytes }
    /// When `expire` next has work.
    public var nextDeadline: UInt64? { table.nextDeadline }

    /// Adds the fragment described by `header` whose payload is `fragment` (the
    /// `header.payloadLength` bytes after the header). Returns the datagram once it is whole.
    /// Input that breaks a rule is counted and dropped, with the datagram it belongs to.
    public mutating func add(header: IPv4Header, fragment: UnsafeRawBufferPointer, now: UInt64) -> Reassembled? {
        let key = Key(
            source: header.source, destination: header.destination, protocolNumber: header.protocolNumber,
            identification: header.identification)
        // The reassembled datagram keeps the first fragment's header, options and all, and its
        // total length is 16 bits (RFC 791 §3.1): the data must fit behind that header.
        let room = min(limits.maximumDatagramLength, 65535) - header.headerLength
        let outcome = table.add(
            key: key, offset: header.fragmentOffset, data: fragment, more: header.moreFragments,
            first: header.fragmentOffset == 0 ? header : nil,
            minimumFirstLength: IPv4Reassembler.upperHeaderLength(header.protocolNumber), room: room, now: now)
        guard case .complete(var first, let payload) = outcome else { return nil }
        // A first fragment with a longer header than later ones could push the total past
        // 65535 only if `room` was computed from a shorter one; check against its own header.
        guard first.headerLength + payload.count <= min(limits.maximumDatagramLength, 65535) else {
            table.counters.completed -= 1
            table.counters.tooLong += 1
            return nil
        }
        first.totalLength = UInt16(first.headerLength + payload.count)
        first.moreFragments = false
        first.fragmentOffset = 0
        return Reassembled(header: first, payload: payload)
    }

    /// Drops datagrams whose time is up; returns how many.
    @discardableResult
    public mutating func expire(now: UInt64) -> Int { table.expire(now: now) }

    /// The upper-layer header a first fragment must carry whole (RFC 1858 §3: a TCP header
    /// split across fragments lets flags slip past filters; RFC 7112 says the same for IPv6).
    static func upperHeaderLength(_ protocolNumber: UInt8) -> Int {
        switch protocolNumber {
        case IPProtocol.tcp: 20
        case IPProtocol.udp, IPProtocol.icmp, IPProtocol.icmpv6: 8
        default: 1
        }
    }
}
