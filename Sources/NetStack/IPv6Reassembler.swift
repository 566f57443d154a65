// IPv6 fragment reassembly (RFC 8200 §4.5) for packets from the guest: the same bounds as
// IPv4, overlaps drop the packet (RFC 5722), atomic fragments never get here (RFC 6946).
import Wire

/// Puts fragmented IPv6 packets back together, keyed by source, destination and the Fragment
/// header's identification (RFC 8200 §4.5). Feed it every non-atomic fragment with `add`.
public struct IPv6Reassembler {
    /// What names one original packet (RFC 8200 §4.5).
    public struct Key: Hashable, Sendable {
        public var source: IPv6Address
        public var destination: IPv6Address
        public var identification: UInt32

        public init(source: IPv6Address, destination: IPv6Address, identification: UInt32) {
            self.source = source
            self.destination = destination
            self.identification = identification
        }
    }

    /// A whole packet: the first fragment's header (`fragment` cleared; `upperProtocol` is what
    /// the first fragment's header chain led to) and its fragmentable part.
    public struct Reassembled {
        public var header: IPv6Header
        /// The fragmentable part: any extension headers that followed the Fragment header in the
        /// first fragment, then the upper-layer header and data.
        public var payload: [UInt8]
        /// Where the upper-layer header starts in `payload`.
        public var upperOffset: Int

        public var upperLength: Int { payload.count - upperOffset }
    }

    struct First {
        var header: IPv6Header
        var upperOffset: Int
    }

    private var table: ReassemblyTable<Key, First>

    public init(limits: ReassemblyLimits = ReassemblyLimits()) {
        table = ReassemblyTable(limits: limits)
    }

    public var limits: ReassemblyLimits { table.limits }
    public var counters: ReassemblyCounters { table.counters }
    public var datagramsInProgress: Int { table.datagrams.count }
    /// Buffer capacity held for packets in progress.
    public var bufferedBytes: Int { table.bufferedBytes }
    /// When `expire` next has work.
    public var nextDeadline: UInt64? { table.nextDeadline }

    /// Adds the fragment `packet` (from the fixed header on), which `header` describes and whose
    /// `fragment` is set and not atomic. Returns the packet once it is whole. Input that breaks a
    /// rule is counted and dropped, with the packet it belongs to.
    public mutating func add(header: IPv6Header, packet: UnsafeRawBufferPointer, now: UInt64) -> Reassembled? {
        guard let info = header.fragment, !info.isAtomic,
            let fragmentEnd = IPv6Reassembler.fragmentHeaderEnd(header, packet)
        else {
            table.counters.malformed += 1
            return nil
        }
        let packetEnd = IPv6Header.length + Int(header.payloadLength)
        let key = Key(source: header.source, destination: header.destination, identification: info.identification)
        // Headers in front of the Fragment header stay in the reassembled packet, whose payload
        // length is 16 bits (RFC 8200 §4.5: longer is a Parameter Problem, and a discard).
        let unfragmentable = fragmentEnd - 8 - IPv6Header.length
        let room = min(limits.maximumDatagramLength, 65535) - unfragmentable
        var first: First?
        var minimumFirst = 0
        if info.offset == 0 {
            // The first fragment must carry the whole header chain and the upper-layer header
            // (RFC 8200 §4.5, RFC 7112); the parser has walked the chain within this fragment.
            let chain = header.upperOffset - fragmentEnd
            first = First(header: header, upperOffset: chain)
            minimumFirst = chain + IPv4Reassembler.upperHeaderLength(header.upperProtocol)
        }
        guard let data = packet.checkedSlice(fragmentEnd, packetEnd - fragmentEnd) else {
            table.counters.malformed += 1
            return nil
        }
        let outcome = table.add(
            key: key, offset: info.offset, data: data, more: info.moreFragments, first: first,
            minimumFirstLength: minimumFirst, room: room, now: now)
        guard case .complete(let f, let payload) = outcome else { return nil }
        var h = f.header
        h.fragment = nil
        let firstUnfragmentable = f.header.upperOffset - f.upperOffset - 8 - IPv6Header.length
        guard firstUnfragmentable + payload.count <= min(limits.maximumDatagramLength, 65535) else {
            table.counters.completed -= 1
            table.counters.tooLong += 1
            return nil
        }
        h.payloadLength = UInt16(firstUnfragmentable + payload.count)
        return Reassembled(header: h, payload: payload, upperOffset: f.upperOffset)
    }

    /// Drops packets whose time is up; returns how many.
    @discardableResult
    public mutating func expire(now: UInt64) -> Int { table.expire(now: now) }

    /// The offset just past the Fragment header. In a fragment other than the first the parser
    /// stopped right there; in the first it went on through the rest of the chain, so walk the
    /// headers in front again, every read checked.
    static func fragmentHeaderEnd(_ header: IPv6Header, _ packet: UnsafeRawBufferPointer) -> Int? {
        guard let info = header.fragment else { return nil }
        if info.offset != 0 { return header.upperOffset }
        let end = IPv6Header.length + Int(header.payloadLength)
        let r = CheckedReader(packet, layer: "ipv6")
        guard end <= packet.count else { return nil }
        var next = header.nextHeader
        var offset = IPv6Header.length
        var walked = 0
        while next != IPProtocol.fragment {
            guard walked < IPv6Header.maximumExtensionHeaders, offset + 2 <= end else { return nil }
            let length: Int
            switch next {
            case IPProtocol.hopByHop, IPProtocol.routing, IPProtocol.destinationOptions:
                guard let units = try? r.u8(offset + 1) else { return nil }
                length = (Int(units) + 1) * 8
            case IPProtocol.ah:
                guard let units = try? r.u8(offset + 1) else { return nil }
                length = (Int(units) + 2) * 4
            default:
                return nil
            }
            guard let following = try? r.u8(offset) else { return nil }
            next = following
            offset += length
            walked += 1
        }
        guard offset + 8 <= end, offset + 8 <= header.upperOffset else { return nil }
        return offset + 8
    }
}
