// A DHCPv4 message (RFC 2131 §2, the BOOTP layout of RFC 951): the fixed fields, the magic
// cookie, and the options as a view. The UDP payload of ports 67/68.

/// A parsed (or to-be-emitted) DHCP message. Borrows the buffer it was parsed from: `sname`,
/// `file` and `options` are slices of it, valid while it is.
public struct DHCPMessage: Equatable {
    /// RFC 2131 §2: 236 bytes of fixed fields, then the 4-byte magic cookie (RFC 2131 §3).
    public static let fixedLength = 236
    public static let headerLength = 240
    public static let magicCookie: UInt32 = 0x6382_5363
    /// RFC 1542 §3.1.1 (BOOTP): a message of at least 300 bytes, which some clients insist on.
    public static let bootpMinimumLength = 300
    /// RFC 2131 §2: a client must accept 576-byte IP datagrams, hence 548 bytes of DHCP.
    public static let defaultMaximumLength = 548

    /// BOOTREQUEST from clients, BOOTREPLY from servers.
    public enum Operation: UInt8, Sendable {
        case request = 1
        case reply = 2
    }

    public var op: Operation
    /// Hardware address type (1: Ethernet).
    public var htype: UInt8
    /// Hardware address length (6 for Ethernet); at most 16, the size of `chaddr`.
    public var hlen: UInt8
    public var hops: UInt8
    /// Transaction ID, chosen by the client.
    public var xid: UInt32
    public var secs: UInt16
    /// Only the high bit is defined: BROADCAST (RFC 2131 §2, Figure 2).
    public var flags: UInt16
    public var ciaddr: IPv4Address
    public var yiaddr: IPv4Address
    public var siaddr: IPv4Address
    public var giaddr: IPv4Address
    /// The 16-byte client hardware address field as sent.
    public var chaddrField: HardwareAddressField
    /// The 64-byte 'sname' field as sent (empty when built from scratch: written as zeros).
    public var sname: UnsafeRawBufferPointer
    /// The 128-byte 'file' field as sent (empty when built from scratch: written as zeros).
    public var file: UnsafeRawBufferPointer
    public var options: DHCPOptions

    /// The 16 bytes of 'chaddr', big-endian halves.
    public struct HardwareAddressField: Hashable, Sendable {
        public var high: UInt64
        public var low: UInt64

        public init(high: UInt64 = 0, low: UInt64 = 0) {
            self.high = high
            self.low = low
        }

        /// An Ethernet address in the first six bytes, the rest zero.
        public init(mac: MACAddress) {
            high = mac.raw << 16
            low = 0
        }
    }

    public init(
        op: Operation, htype: UInt8 = 1, hlen: UInt8 = 6, hops: UInt8 = 0, xid: UInt32, secs: UInt16 = 0, flags: UInt16 = 0,
        ciaddr: IPv4Address = .any, yiaddr: IPv4Address = .any, siaddr: IPv4Address = .any, giaddr: IPv4Address = .any,
        chaddrField: HardwareAddressField, sname: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        file: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0), options: DHCPOptions
    ) {
        self.op = op
        self.htype = htype
        self.hlen = hlen
        self.hops = hops
        self.xid = xid
        self.secs = secs
        self.flags = flags
        self.ciaddr = ciaddr
        self.yiaddr = yiaddr
        self.siaddr = siaddr
        self.giaddr = giaddr
        self.chaddrField = chaddrField
        self.sname = sname
        self.file = file
        self.options = options
    }

    /// The client's MAC address, when the hardware is Ethernet (htype 1, hlen 6).
    public var chaddr: MACAddress? {
        htype == 1 && hlen == 6 ? MACAddress(raw: chaddrField.high >> 16) : nil
    }

    /// BROADCAST: the client cannot receive unicast before it has its address (RFC 2131 §4.1).
    public var broadcast: Bool {
        get { flags & 0x8000 != 0 }
        set { flags = newValue ? flags | 0x8000 : flags & 0x7FFF }
    }

    /// The server host name field as text bytes (up to its NUL); nil when it holds options.
    public var serverName: UnsafeRawBufferPointer? { options.overload & 2 != 0 ? nil : DHCPMessage.untilNUL(sname) }
    /// The boot file name field as text bytes (up to its NUL); nil when it holds options.
    public var bootFileName: UnsafeRawBufferPointer? { options.overload & 1 != 0 ? nil : DHCPMessage.untilNUL(file) }

    static func untilNUL(_ b: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: b.prefix { $0 != 0 })
    }

    /// Parses a DHCP message (a UDP payload). Shorter than 240 bytes: `.truncated`; a wrong
    /// magic cookie or an hlen over 16: `.malformed`; an op other than 1 or 2: `.unsupported`;
    /// an option running past its area or a bad option 52: `.badOption`.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> DHCPMessage {
        let r = CheckedReader(bytes, layer: "dhcp")
        guard bytes.count >= headerLength else { throw WireError(.truncated, "dhcp") }
        guard let op = Operation(rawValue: try r.u8(0)) else { throw WireError(.unsupported, "dhcp") }
        guard try r.u8(2) <= 16, try r.be32(236) == magicCookie else { throw WireError(.malformed, "dhcp") }
        let sname = try r.bytes(44, 64)
        let file = try r.bytes(108, 128)
        let options = try DHCPOptions(field: try r.bytes(headerLength, bytes.count - headerLength), file: file, sname: sname)
        return DHCPMessage(
            op: op, htype: try r.u8(1), hlen: try r.u8(2), hops: try r.u8(3), xid: try r.be32(4), secs: try r.be16(8),
            flags: try r.be16(10), ciaddr: try r.ipv4(12), yiaddr: try r.ipv4(16), siaddr: try r.ipv4(20), giaddr: try r.ipv4(24),
            chaddrField: HardwareAddressField(high: try r.be64(28), low: try r.be64(36)), sname: sname, file: file, options: options
        )
    }

    /// Writes the fixed fields, 'sname' and 'file' as held (zeros when empty), the cookie and the
    /// options field as held. Returns the bytes written.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let total = DHCPMessage.headerLength + options.field.count
        guard buffer.count >= total, sname.count <= 64, file.count <= 128 else { throw WireError(.noSpace, "dhcp") }
        writeFixedFields(into: buffer)
        for i in 0..<sname.count { buffer.setU8(sname[i], 44 + i) }
        for i in 0..<file.count { buffer.setU8(file[i], 108 + i) }
        for i in 0..<options.field.count { buffer.setU8(options.field[i], DHCPMessage.headerLength + i) }
        return total
    }

    /// The first 240 bytes with 'sname' and 'file' zeroed.
    func writeFixedFields(into buffer: UnsafeMutableRawBufferPointer) {
        buffer.setU8(op.rawValue, 0)
        buffer.setU8(htype, 1)
        buffer.setU8(hlen, 2)
        buffer.setU8(hops, 3)
        buffer.setBE32(xid, 4)
        buffer.setBE16(secs, 8)
        buffer.setBE16(flags, 10)
        buffer.setIPv4(ciaddr, 12)
        buffer.setIPv4(yiaddr, 16)
        buffer.setIPv4(siaddr, 20)
        buffer.setIPv4(giaddr, 24)
        buffer.setBE64(chaddrField.high, 28)
        buffer.setBE64(chaddrField.low, 36)
        for i in 44..<236 { buffer.setU8(0, i) }
        buffer.setBE32(DHCPMessage.magicCookie, 236)
    }

    /// Equal fields, and the same bytes in 'sname', 'file' and the options.
    public static func == (a: DHCPMessage, b: DHCPMessage) -> Bool {
        a.op == b.op && a.htype == b.htype && a.hlen == b.hlen && a.hops == b.hops && a.xid == b.xid && a.secs == b.secs
            && a.flags == b.flags && a.ciaddr == b.ciaddr && a.yiaddr == b.yiaddr && a.siaddr == b.siaddr
            && a.giaddr == b.giaddr && a.chaddrField == b.chaddrField && sameField(a.sname, b.sname)
            && sameField(a.file, b.file) && a.options == b.options
    }

    static func sameBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        a.elementsEqual(b)
    }

    /// As written: an empty field equals one of zeros.
    static func sameField(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let n = max(a.count, b.count)
        // bound: each subscript is guarded by the comparison with that buffer's count beside it.
        for i in 0..<n where (i < a.count ? a[i] : 0) != (i < b.count ? b[i] : 0) { return false }
        return true
    }
}
