// Router Advertisement (RFC 4861 §4.2): the gateway's default route, prefixes for SLAAC, the
// link MTU and DNS servers (RFC 8106). Parsed and built without the heap.

public struct RouterAdvertisement: Hashable, Sendable {
    /// Header, hop limit, flags, router lifetime, reachable time, retrans timer
    /// (RFC 4861 §6.1.2: ICMP length ≥ 16).
    public static let minimumLength = 16
    /// The MTU option is always one unit (RFC 4861 §4.6.4).
    public static let mtuOptionLength = 8

    static let managedBit: UInt8 = 0x80
    static let otherConfigBit: UInt8 = 0x40

    /// Hop limit hosts should use; 0 leaves theirs unchanged.
    public var curHopLimit: UInt8
    /// M: addresses are available from DHCPv6.
    public var managed: Bool
    /// O: other configuration is available from DHCPv6.
    public var otherConfig: Bool
    /// Seconds as default router; 0 means not a default router.
    public var routerLifetime: UInt16
    /// Milliseconds; 0 means unspecified.
    public var reachableTime: UInt32
    /// Milliseconds; 0 means unspecified.
    public var retransTimer: UInt32
    public var sourceLinkAddress: MACAddress?
    public var mtu: UInt32?
    public var prefixes: PrefixInformationList
    /// Prefix options past `PrefixInformationList.capacity` that parse skipped.
    public var droppedPrefixes: Int
    /// The first RDNSS option's servers (RFC 8106); later RDNSS options are ignored.
    public var rdnss: RecursiveDNSServers?

    public init(
        curHopLimit: UInt8 = 64, managed: Bool = false, otherConfig: Bool = false, routerLifetime: UInt16,
        reachableTime: UInt32 = 0, retransTimer: UInt32 = 0, sourceLinkAddress: MACAddress? = nil,
        mtu: UInt32? = nil, prefixes: PrefixInformationList = PrefixInformationList(),
        rdnss: RecursiveDNSServers? = nil
    ) {
        self.curHopLimit = curHopLimit
        self.managed = managed
        self.otherConfig = otherConfig
        self.routerLifetime = routerLifetime
        self.reachableTime = reachableTime
        self.retransTimer = retransTimer
        self.sourceLinkAddress = sourceLinkAddress
        self.mtu = mtu
        self.prefixes = prefixes
        self.droppedPrefixes = 0
        self.rdnss = rdnss
    }

    /// Parses a whole ICMPv6 message (checksum already verified by `ICMPv6Message.parse`).
    /// Enforces code 0, the minimum length and well-formed options; unknown options (DNSSL,
    /// route information) are skipped.
    public static func parse(_ message: UnsafeRawBufferPointer) throws(WireError) -> RouterAdvertisement {
        let r = CheckedReader(message, layer: "ndp")
        let area = try ICMPv6Message.ndpOptions(
            message, type: ICMPv6Message.routerAdvertisement, minimumLength: minimumLength)
        let flags = try r.u8(5)
        var ra = RouterAdvertisement(
            curHopLimit: try r.u8(4), managed: flags & managedBit != 0, otherConfig: flags & otherConfigBit != 0,
            routerLifetime: try r.be16(6), reachableTime: try r.be32(8), retransTimer: try r.be32(12))
        var it = NDPOptionIterator(area)
        while let option = try it.next() {
            switch option.type {
            case NDPOption.sourceLinkLayerAddress:
                if let mac = option.linkLayerAddress { ra.sourceLinkAddress = mac }
            case NDPOption.mtu:
                guard option.bytes.count == mtuOptionLength else { throw WireError(.badOption, "ndp") }
                ra.mtu = try CheckedReader(option.bytes, layer: "ndp").be32(4)
            case NDPOption.prefixInformation:
                let prefix = try PrefixInformation.parse(option: option.bytes)
                if !ra.prefixes.append(prefix) { ra.droppedPrefixes += 1 }
            case NDPOption.recursiveDNSServer:
                let servers = try RecursiveDNSServers.parse(option: option.bytes)
                if ra.rdnss == nil { ra.rdnss = servers }
            default:
                break
            }
        }
        return ra
    }

    /// The RFC 4861 §6.1.2 rule that needs the IP header: advertisements come from a link-local
    /// address.
    public func validate(source: IPv6Address) throws(WireError) {
        guard source.isLinkLocal else { throw WireError(.malformed, "ndp") }
    }

    public var encodedLength: Int {
        Self.minimumLength
            + (sourceLinkAddress == nil ? 0 : NDPOption.linkLayerAddressLength)
            + (mtu == nil ? 0 : Self.mtuOptionLength)
            + prefixes.count * PrefixInformation.optionLength
            + (rdnss?.optionLength ?? 0)
    }

    /// Writes the whole ICMPv6 message with its checksum; returns its length. Options go in the
    /// order source link-layer address, MTU, prefixes, RDNSS.
    public func build(
        into buffer: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address
    ) throws(WireError) -> Int {
        let length = encodedLength
        try ICMPv6Message.ndpHeader(buffer, type: ICMPv6Message.routerAdvertisement, length: length)
        buffer.setU8(curHopLimit, 4)
        buffer.setU8((managed ? Self.managedBit : 0) | (otherConfig ? Self.otherConfigBit : 0), 5)
        buffer.setBE16(routerLifetime, 6)
        buffer.setBE32(reachableTime, 8)
        buffer.setBE32(retransTimer, 12)
        var offset = Self.minimumLength
        if let sourceLinkAddress {
            NDPOption.writeLinkLayerAddress(
                sourceLinkAddress, type: NDPOption.sourceLinkLayerAddress, into: buffer, at: offset)
            offset += NDPOption.linkLayerAddressLength
        }
        if let mtu {
            buffer.setU8(NDPOption.mtu, offset)
            buffer.setU8(1, offset + 1)
            buffer.setBE16(0, offset + 2)
            buffer.setBE32(mtu, offset + 4)
            offset += Self.mtuOptionLength
        }
        for prefix in prefixes {
            prefix.emit(into: buffer, at: offset)
            offset += PrefixInformation.optionLength
        }
        if let rdnss {
            rdnss.emit(into: buffer, at: offset)
            offset += rdnss.optionLength
        }
        ICMPv6Message.fillChecksum(buffer.slice(0, length), source: source, destination: destination)
        return length
    }
}
