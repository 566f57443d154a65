// Writing a DHCP server's reply (OFFER, ACK, NAK) to a client's message, with the fields RFC 2131
// §4.3.1 Table 3 sets and the options a gateway hands out with a lease.

/// What the server hands out with every lease on one network. Built once, reused per reply.
public struct DHCPLeaseParameters: Sendable {
    /// Option 54: the server's own address on the client's network.
    public var serverIdentifier: IPv4Address
    /// Option 51, seconds.
    public var leaseTime: UInt32
    /// Option 58; nil means half the lease (RFC 2131 §4.4.5).
    public var renewalTime: UInt32?
    /// Option 59; nil means 7/8 of the lease (RFC 2131 §4.4.5).
    public var rebindingTime: UInt32?
    public var subnetMask: IPv4Address?
    public var router: IPv4Address?
    public var dnsServers: [IPv4Address]
    public var interfaceMTU: UInt16?
    /// Option 15.
    public var domainName: String?
    /// Option 119, encoded per RFC 3397.
    public var domainSearch: [String]
    public var broadcastAddress: IPv4Address?

    public init(
        serverIdentifier: IPv4Address, leaseTime: UInt32, renewalTime: UInt32? = nil, rebindingTime: UInt32? = nil,
        subnetMask: IPv4Address? = nil, router: IPv4Address? = nil, dnsServers: [IPv4Address] = [],
        interfaceMTU: UInt16? = nil, domainName: String? = nil, domainSearch: [String] = [],
        broadcastAddress: IPv4Address? = nil
    ) {
        self.serverIdentifier = serverIdentifier
        self.leaseTime = leaseTime
        self.renewalTime = renewalTime
        self.rebindingTime = rebindingTime
        self.subnetMask = subnetMask
        self.router = router
        self.dnsServers = dnsServers
        self.interfaceMTU = interfaceMTU
        self.domainName = domainName
        self.domainSearch = domainSearch
        self.broadcastAddress = broadcastAddress
    }
}

/// A server reply about to be written. `init(replyingTo:…)` fills the fields from the client's
/// message as RFC 2131 Table 3 says; `emit` writes it with the lease options.
public struct DHCPReply {
    public var messageType: DHCPMessageType
    public var xid: UInt32
    public var flags: UInt16
    public var htype: UInt8
    public var hlen: UInt8
    public var chaddrField: DHCPMessage.HardwareAddressField
    public var ciaddr: IPv4Address
    public var yiaddr: IPv4Address
    public var siaddr: IPv4Address
    public var giaddr: IPv4Address
    /// Lease time, T1 and T2: yes for OFFER and an ACK to REQUEST; no for an ACK to INFORM
    /// (RFC 2131 §4.3.5) and for NAK.
    public var includesLease: Bool
    /// Echoed from the client (RFC 6842 §3). Borrowed from the client's message.
    public var clientIdentifier: UnsafeRawBufferPointer?
    /// Option 56, text for the client (a NAK's reason).
    public var message: String?
    /// The longest reply the client accepts: 548 bytes, or more when its option 57 says so
    /// (taken as counting the IP and UDP headers, 28 bytes, as widely done).
    public var maximumLength: Int

    /// A reply of `type` to `request`. For NAK, `yourAddress` is ignored (zero, Table 3).
    public init(replyingTo request: DHCPMessage, type: DHCPMessageType, yourAddress: IPv4Address) {
        messageType = type
        xid = request.xid
        flags = request.flags
        htype = request.htype
        hlen = request.hlen
        chaddrField = request.chaddrField
        giaddr = request.giaddr
        siaddr = .any
        let toInform = request.options.messageType == .inform
        switch type {
        case .nak:
            ciaddr = .any
            yiaddr = .any
            includesLease = false
        case .ack:
            ciaddr = request.ciaddr
            yiaddr = toInform ? .any : yourAddress
            includesLease = !toInform
        default:
            ciaddr = .any
            yiaddr = yourAddress
            includesLease = true
        }
        clientIdentifier = request.options.clientIdentifier
        message = nil
        let asked = Int(request.options.maxMessageSize ?? 0) - 28
        maximumLength = max(DHCPMessage.defaultMaximumLength, asked)
    }

    /// Writes the reply: fixed fields, cookie, options (type, server identifier, lease times,
    /// mask, router, DNS servers, domain name, MTU, broadcast address, domain search, client
    /// identifier, message), end, then pad to 300 bytes (RFC 1542 §3.1.1). NAK carries only
    /// type, server identifier, client identifier and message. `.noSpace` when the reply does
    /// not fit the buffer or `maximumLength`.
    public func emit(into buffer: UnsafeMutableRawBufferPointer, parameters p: DHCPLeaseParameters) throws(WireError) -> Int {
        let limit = min(buffer.count, maximumLength)
        guard limit >= DHCPMessage.headerLength else { throw WireError(.noSpace, "dhcp") }
        let fixed = DHCPMessage(
            op: .reply, htype: htype, hlen: hlen, xid: xid, flags: flags, ciaddr: ciaddr, yiaddr: yiaddr, siaddr: siaddr,
            giaddr: giaddr, chaddrField: chaddrField, options: DHCPOptions()
        )
        fixed.writeFixedFields(into: buffer)
        var w = DHCPOptionWriter(buffer: buffer, at: DHCPMessage.headerLength, limit: limit)
        try w.append(.messageType, byte: messageType.rawValue)
        try w.append(.serverIdentifier, address: p.serverIdentifier)
        if messageType != .nak {
            if includesLease {
                try w.append(.leaseTime, u32: p.leaseTime)
                try w.append(.renewalTime, u32: p.renewalTime ?? p.leaseTime / 2)
                try w.append(.rebindingTime, u32: p.rebindingTime ?? UInt32(UInt64(p.leaseTime) * 7 / 8))
            }
            if let mask = p.subnetMask { try w.append(.subnetMask, address: mask) }
            if let router = p.router { try w.append(.router, address: router) }
            if !p.dnsServers.isEmpty { try w.append(.domainNameServer, addresses: p.dnsServers) }
            if let name = p.domainName { try w.append(.domainName, text: name) }
            if let mtu = p.interfaceMTU { try w.append(.interfaceMTU, u16: mtu) }
            if let broadcast = p.broadcastAddress { try w.append(.broadcastAddress, address: broadcast) }
            try w.appendDomainSearch(p.domainSearch)
        }
        if let id = clientIdentifier { try w.append(.clientIdentifier, bytes: id) }
        if let text = message { try w.append(.message, text: text) }
        try w.appendEnd()
        w.pad(to: DHCPMessage.bootpMinimumLength)
        return w.position
    }
}
