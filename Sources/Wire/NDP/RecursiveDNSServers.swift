// The Recursive DNS Server option of a Router Advertisement (RFC 8106 §5.1): a lifetime and up
// to three server addresses held inline.

/// DNS servers advertised for `lifetime` seconds; a collection of their addresses.
public struct RecursiveDNSServers: RandomAccessCollection, Hashable, Sendable {
    /// RFC 8106 §5.1 allows any number; hosts use at most three (resolv.conf's MAXNS), so more
    /// are ignored on parse.
    public static let capacity = 3
    /// All ones means forever; zero withdraws the servers (RFC 8106 §5.1).
    public static let infiniteLifetime: UInt32 = 0xFFFF_FFFF

    public var lifetime: UInt32
    private var list = FixedList<3, IPv6Address>(filler: .any)
    public var count: Int { list.count }

    public init(lifetime: UInt32) {
        self.lifetime = lifetime
    }

    /// Servers from a sequence; those beyond `capacity` are dropped.
    public init(lifetime: UInt32, _ addresses: some Sequence<IPv6Address>) {
        self.init(lifetime: lifetime)
        for a in addresses where !append(a) { break }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { list.count }
    public var isFull: Bool { list.isFull }

    public subscript(position: Int) -> IPv6Address {
        get { list[position] }
        set { list[position] = newValue }
    }

    /// Adds a server at the end; false (and nothing changes) when full.
    @discardableResult
    public mutating func append(_ address: IPv6Address) -> Bool { list.append(address) }

    /// Option bytes `emit` writes: 8 + 16 per address (length 1 + 2n units), none when empty.
    public var optionLength: Int { count == 0 ? 0 : 8 + 16 * count }

    /// Reads the option (type and length octets included). RFC 8106 §5.1: the length is odd and
    /// at least 3 units; anything else throws `.badOption`.
    static func parse(option bytes: UnsafeRawBufferPointer) throws(WireError) -> RecursiveDNSServers {
        let r = CheckedReader(bytes, layer: "ndp")
        let units = bytes.count / NDPOption.unit
        guard units >= 3, units % 2 == 1 else { throw WireError(.badOption, "ndp") }
        var servers = RecursiveDNSServers(lifetime: try r.be32(4))
        var offset = 8
        while offset + 16 <= bytes.count, servers.append(try r.ipv6(offset)) { offset += 16 }
        return servers
    }

    /// Writes the option at `offset`; the caller has checked room for `optionLength` bytes.
    /// Nothing is written when there are no addresses (RFC 8106 §5.1 requires at least one).
    func emit(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        guard count > 0 else { return }
        buffer.setU8(NDPOption.recursiveDNSServer, offset)
        buffer.setU8(UInt8(optionLength / NDPOption.unit), offset + 1)
        buffer.setBE16(0, offset + 2)
        buffer.setBE32(lifetime, offset + 4)
        var o = offset + 8
        for a in self {
            buffer.setIPv6(a, o)
            o += 16
        }
    }
}
