// DHCPv4 parsing and the reply builder against a busybox udhcpc DISCOVER and an ISC dhclient
// REQUEST: truncations, option bounds, cookie, overload, typed options, RFC 3396/3397 encoding.
import Testing
@testable import Wire

@Suite struct DHCPTests {
    /// busybox udhcpc 1.36 DISCOVER from 52:54:00:12:34:56, 0.0.0.0:68 → 255.255.255.255:67:
    /// message type, client identifier (type 1 + MAC), max size 576, parameter request list,
    /// vendor class "udhcp 1.36.1", end, padded to 300 bytes.
    static let udhcpcDiscoverFrame: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00, 0x45, 0x10,
        0x01, 0x48, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x79, 0x96, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF,
        0xFF, 0xFF, 0x00, 0x44, 0x00, 0x43, 0x01, 0x34, 0x8A, 0xA6, 0x01, 0x01, 0x06, 0x00, 0x39, 0x03,
        0xF3, 0x26, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x82, 0x53, 0x63, 0x35, 0x01, 0x01, 0x3D, 0x07, 0x01,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x39, 0x02, 0x02, 0x40, 0x37, 0x07, 0x01, 0x03, 0x06, 0x0C,
        0x0F, 0x1C, 0x2A, 0x3C, 0x0C, 0x75, 0x64, 0x68, 0x63, 0x70, 0x20, 0x31, 0x2E, 0x33, 0x36, 0x2E,
        0x31, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]

    /// ISC dhclient 4.4 REQUEST (SELECTING) from 52:54:00:ab:cd:ef, secs 3: message type,
    /// server identifier 10.0.2.2, requested address 10.0.2.15, host name "debian", its
    /// 13-entry parameter request list, end, padded to 300 bytes.
    static let dhclientRequestFrame: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF, 0x08, 0x00, 0x45, 0x10,
        0x01, 0x48, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x79, 0x96, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF,
        0xFF, 0xFF, 0x00, 0x44, 0x00, 0x43, 0x01, 0x34, 0xCD, 0x15, 0x01, 0x01, 0x06, 0x00, 0x7C, 0x1E,
        0x5A, 0x0B, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x82, 0x53, 0x63, 0x35, 0x01, 0x03, 0x36, 0x04, 0x0A,
        0x00, 0x02, 0x02, 0x32, 0x04, 0x0A, 0x00, 0x02, 0x0F, 0x0C, 0x06, 0x64, 0x65, 0x62, 0x69, 0x61,
        0x6E, 0x37, 0x0D, 0x01, 0x1C, 0x02, 0x03, 0x0F, 0x06, 0x77, 0x0C, 0x2C, 0x2F, 0x1A, 0x79, 0x2A,
        0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]

    /// Where each sample's end option sits: every prefix up to it is cut short.
    static let discoverEnd = 279
    static let requestEnd = 278

    static func payload(_ frame: [UInt8]) throws -> [UInt8] { try SampleFrame.udpPayload(frame) }

    /// Runs `body` on the parsed message while its bytes are alive.
    static func with<R>(_ bytes: [UInt8], _ body: (DHCPMessage) throws -> R) throws -> R {
        try bytes.withUnsafeBytes { b in try body(try DHCPMessage.parse(b)) }
    }

    static func parse(_ bytes: [UInt8]) throws(WireError) {
        let result: Result<Void, WireError> = bytes.withUnsafeBytes { b in
            do throws(WireError) {
                _ = try DHCPMessage.parse(b)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    static func bytes(_ b: UnsafeRawBufferPointer?) -> [UInt8]? { b.map { Array($0) } }

    // MARK: Parsing real messages

    @Test func udhcpcDiscover() throws {
        let d = try Self.payload(Self.udhcpcDiscoverFrame)
        #expect(d.count == 300)
        try Self.with(d) { m in
            #expect(m.op == .request && m.htype == 1 && m.hlen == 6 && m.hops == 0)
            #expect(m.xid == 0x3903_F326 && m.secs == 0 && !m.broadcast)
            #expect(m.chaddr == MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56))
            #expect(m.ciaddr == .any && m.yiaddr == .any && m.giaddr == .any)
            #expect(Self.bytes(m.serverName) == [] && Self.bytes(m.bootFileName) == [])
            let o = m.options
            #expect(o.overload == 0)
            #expect(o.messageType == .discover)
            #expect(Self.bytes(o.clientIdentifier) == [0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
            #expect(o.maxMessageSize == 576)
            #expect(Self.bytes(o.parameterRequestList) == [1, 3, 6, 12, 15, 28, 42])
            #expect(o.requests(.router) && o.requests(.domainNameServer) && !o.requests(.domainSearch))
            #expect(Self.bytes(o.first(.vendorClassIdentifier)) == Array("udhcp 1.36.1".utf8))
            #expect(o.map(\.code.rawValue) == [53, 61, 57, 55, 60])
            #expect(o.requestedIP == nil && o.serverIdentifier == nil && o.hostName == nil && o.leaseTime == nil)
        }
    }

    @Test func dhclientRequest() throws {
        let r = try Self.payload(Self.dhclientRequestFrame)
        try Self.with(r) { m in
            #expect(m.op == .request && m.xid == 0x7C1E_5A0B && m.secs == 3)
            #expect(m.chaddr?.description == "52:54:00:ab:cd:ef")
            let o = m.options
            #expect(o.messageType == .request)
            #expect(o.serverIdentifier == IPv4Address(10, 0, 2, 2))
            #expect(o.requestedIP == IPv4Address(10, 0, 2, 15))
            #expect(Self.bytes(o.hostName) == Array("debian".utf8))
            #expect(o.parameterRequestList?.count == 13)
            #expect(o.requests(.domainSearch) && o.requests(.interfaceMTU))
            #expect(o.clientIdentifier == nil && o.maxMessageSize == nil)
        }
    }

    /// Every prefix that ends before or at the end option throws; prefixes that only drop
    /// trailing padding are whole messages and parse to the same options.
    @Test(arguments: [(DHCPTests.udhcpcDiscoverFrame, DHCPTests.discoverEnd), (DHCPTests.dhclientRequestFrame, DHCPTests.requestEnd)])
    func everyTruncationThrows(_ frame: [UInt8], _ end: Int) throws {
        let bytes = try Self.payload(frame)
        #expect(bytes[end] == 255)
        for n in 0...end {
            #expect(throws: WireError.self, "prefix of \(n) bytes") { try Self.parse(Array(bytes[0..<n])) }
        }
        for n in (end + 1)..<bytes.count {
            let types = try Self.with(Array(bytes[0..<n])) { $0.options.map(\.code) }
            let full = try Self.with(bytes) { $0.options.map(\.code) }
            #expect(types == full)
        }
        for n in 0..<240 { expectError(.truncated) { try Self.parse(Array(bytes[0..<n])) } }
    }

    @Test func optionLengthPastTheEnd() throws {
        var d = try Self.payload(Self.udhcpcDiscoverFrame)
        // Vendor class (60) at 265: its length byte claims 200.
        #expect(d[265] == 60)
        d[266] = 200
        expectError(.badOption) { try Self.parse(d) }
        // A length byte that would be the last byte of the message.
        d = Array(try Self.payload(Self.udhcpcDiscoverFrame)[0..<266])
        expectError(.badOption) { try Self.parse(d) }
        // Length 255 on the first option.
        d = try Self.payload(Self.udhcpcDiscoverFrame)
        d[241] = 255
        expectError(.badOption) { try Self.parse(d) }
    }

    @Test func knownOptionsWithWrongLengths() throws {
        let base = try Self.payload(Self.dhclientRequestFrame)
        // Message type with length 2 (swallowing the next code): 53 is at 240.
        var r = base
        r[241] = 2
        expectError(.badOption) { try Self.parse(r) }
        // Server identifier (54, at 243) of 3 bytes followed by a one-byte filler option.
        r = base
        r[244] = 3
        r[248] = 0  // the fourth address byte becomes a pad
        expectError(.badOption) { try Self.parse(r) }
        // Message type 9 (a leasequery) parses; the enum does not know it.
        r = base
        r[242] = 9
        try Self.with(r) { m in #expect(m.options.messageType == nil && m.options.first(.messageType)?[0] == 9) }
    }

    @Test func badCookie() throws {
        var d = try Self.payload(Self.udhcpcDiscoverFrame)
        d[236] = 0x63; d[237] = 0x82; d[238] = 0x53; d[239] = 0x64
        expectError(.malformed) { try Self.parse(d) }
    }

    @Test func badFixedFields() throws {
        var d = try Self.payload(Self.udhcpcDiscoverFrame)
        d[0] = 3
        expectError(.unsupported) { try Self.parse(d) }
        d = try Self.payload(Self.udhcpcDiscoverFrame)
        d[2] = 17
        expectError(.malformed) { try Self.parse(d) }
        d[1] = 6  // IEEE 802: not a MAC we read
        d[2] = 16
        try Self.with(d) { m in #expect(m.chaddr == nil) }
    }

    // MARK: Option overload

    /// A reply whose options continue in 'file' (domain name) and 'sname' (host name), with
    /// option 52 = 3 in the options field.
    static func overloaded(overload: UInt8 = 3, fileOptions: [UInt8]? = nil) -> [UInt8] {
        var m = [UInt8](repeating: 0, count: 240)
        m[0] = 2; m[1] = 1; m[2] = 6
        m[4] = 0xAA; m[5] = 0xBB; m[6] = 0xCC; m[7] = 0xDD
        m[28] = 0x52; m[29] = 0x54; m[33] = 0x01
        let sname: [UInt8] = [12, 4] + Array("node".utf8) + [255]
        for (i, b) in sname.enumerated() { m[44 + i] = b }
        let file: [UInt8] = fileOptions ?? [15, 16] + Array("example.internal".utf8) + [0, 0, 255]
        for (i, b) in file.enumerated() { m[108 + i] = b }
        m[236] = 0x63; m[237] = 0x82; m[238] = 0x53; m[239] = 0x63
        m += [53, 1, 5, 52, 1, overload, 51, 4, 0, 0, 0x0E, 0x10, 255]
        return m
    }

    @Test func overloadIntoFileAndSname() throws {
        try Self.with(Self.overloaded()) { m in
            #expect(m.op == .reply && m.xid == 0xAABB_CCDD)
            let o = m.options
            #expect(o.overload == 3)
            // Options field first, then 'file', then 'sname' (RFC 2131 §4.1).
            #expect(o.map(\.code.rawValue) == [53, 52, 51, 15, 12])
            #expect(Self.bytes(o.domainName) == Array("example.internal".utf8))
            #expect(Self.bytes(o.hostName) == Array("node".utf8))
            #expect(o.leaseTime == 3600 && o.messageType == .ack)
            #expect(m.serverName == nil && m.bootFileName == nil)
        }
        // Only 'sname' overloaded: 'file' is a file name again and its bytes are not options.
        try Self.with(Self.overloaded(overload: 2)) { m in
            #expect(m.options.map(\.code.rawValue) == [53, 52, 51, 12])
            // The file name runs to the first NUL: the bytes that were option 15.
            #expect(m.bootFileName?.count == 18)
        }
    }

    @Test func hostileOverload() throws {
        expectError(.badOption) { try Self.parse(Self.overloaded(overload: 0)) }
        expectError(.badOption) { try Self.parse(Self.overloaded(overload: 4)) }
        // An option in 'file' that runs past the 128-byte field.
        expectError(.badOption) { try Self.parse(Self.overloaded(fileOptions: Array(repeating: 0, count: 120) + [15, 20, 0x61])) }
        // 'file' without an end option is accepted: the field's size bounds it.
        try Self.with(Self.overloaded(fileOptions: Array(repeating: 0, count: 125) + [15, 1, 0x61])) { m in
            #expect(Self.bytes(m.options.domainName) == [0x61])
        }
    }

    // MARK: Round trips

    @Test(arguments: [DHCPTests.udhcpcDiscoverFrame, DHCPTests.dhclientRequestFrame])
    func emitParsedIsIdentity(_ frame: [UInt8]) throws {
        let bytes = try Self.payload(frame)
        var out = [UInt8](repeating: 0xEE, count: 600)
        let n = try Self.with(bytes) { m in try out.withUnsafeMutableBytes { try m.emit(into: $0) } }
        #expect(Array(out[0..<n]) == bytes)
    }

    @Test func parseEmittedIsIdentity() throws {
        let bytes = try Self.payload(Self.dhclientRequestFrame)
        var out = [UInt8](repeating: 0, count: 600)
        try bytes.withUnsafeBytes { b in
            var m = try DHCPMessage.parse(b)
            m.xid = 0x0102_0304
            m.broadcast = true
            m.giaddr = IPv4Address(10, 0, 2, 1)
            m.hops = 1
            let n = try out.withUnsafeMutableBytes { try m.emit(into: $0) }
            #expect(n == bytes.count)
            try out.withUnsafeBytes { o in
                let back = try DHCPMessage.parse(UnsafeRawBufferPointer(rebasing: o[0..<n]))
                #expect(back == m)
                #expect(back.broadcast && back.flags == 0x8000)
                #expect(back != (try DHCPMessage.parse(b)))
            }
        }
        var small = [UInt8](repeating: 0, count: 299)
        try bytes.withUnsafeBytes { b in
            let m = try DHCPMessage.parse(b)
            small.withUnsafeMutableBytes { s -> Void in
                #expect(throws: WireError(.noSpace, "dhcp")) { _ = try m.emit(into: s) }
            }
        }
    }

    // MARK: Reply builder

    static let parameters = DHCPLeaseParameters(
        serverIdentifier: IPv4Address(10, 0, 2, 2), leaseTime: 86400, subnetMask: IPv4Address(255, 255, 255, 0),
        router: IPv4Address(10, 0, 2, 2), dnsServers: [IPv4Address(10, 0, 2, 3), IPv4Address(10, 0, 2, 4)],
        interfaceMTU: 1500, domainName: "sandbox.internal", domainSearch: ["sandbox.internal", "corp.example.com", "example.com"],
        broadcastAddress: IPv4Address(10, 0, 2, 255)
    )

    @Test func offerRoundTrip() throws {
        let d = try Self.payload(Self.udhcpcDiscoverFrame)
        var out = [UInt8](repeating: 0xEE, count: 1500)
        let n = try Self.with(d) { request in
            let reply = DHCPReply(replyingTo: request, type: .offer, yourAddress: IPv4Address(10, 0, 2, 15))
            return try out.withUnsafeMutableBytes { try reply.emit(into: $0, parameters: Self.parameters) }
        }
        #expect(n >= DHCPMessage.bootpMinimumLength && n <= DHCPMessage.defaultMaximumLength)
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.op == .reply && m.xid == 0x3903_F326 && m.hops == 0 && m.secs == 0)
            #expect(m.chaddr == MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56))
            #expect(m.yiaddr == IPv4Address(10, 0, 2, 15) && m.ciaddr == .any && m.siaddr == .any)
            let o = m.options
            #expect(o.messageType == .offer)
            #expect(o.serverIdentifier == IPv4Address(10, 0, 2, 2))
            #expect(o.leaseTime == 86400 && o.renewalTime == 43200 && o.rebindingTime == 75600)
            #expect(o.subnetMask == IPv4Address(255, 255, 255, 0))
            #expect(o.routers.map(Array.init) == [IPv4Address(10, 0, 2, 2)])
            #expect(o.dnsServers.map(Array.init) == [IPv4Address(10, 0, 2, 3), IPv4Address(10, 0, 2, 4)])
            #expect(o.interfaceMTU == 1500)
            #expect(o.broadcastAddress == IPv4Address(10, 0, 2, 255))
            #expect(Self.bytes(o.domainName) == Array("sandbox.internal".utf8))
            #expect(Self.bytes(o.clientIdentifier) == [0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
            var scratch = [UInt8](repeating: 0, count: 1024)
            let names = try scratch.withUnsafeMutableBytes { s in try o.domainSearch(scratch: s).map { $0.map(\.text) } }
            #expect(names == ["sandbox.internal", "corp.example.com", "example.com"])
            // "example.com" is a pointer into "corp.example.com" (offset 18 + 5): 18 + 18 + 2 bytes.
            let search = try #require(Self.bytes(o.first(.domainSearch)))
            #expect(search.count == 38 && search[36] == 0xC0 && search[37] == 23)
            // The message type comes first, padding last.
            #expect(o.first(where: { _ in true })?.code == .messageType)
        }
        // Nothing written past the reported length.
        #expect(out[n] == 0xEE)
    }

    @Test func ackNakAndInform() throws {
        let r = try Self.payload(Self.dhclientRequestFrame)
        var out = [UInt8](repeating: 0, count: 1500)
        // ACK to the REQUEST.
        var n = try Self.with(r) { request in
            try out.withUnsafeMutableBytes {
                try DHCPReply(replyingTo: request, type: .ack, yourAddress: IPv4Address(10, 0, 2, 15)).emit(into: $0, parameters: Self.parameters)
            }
        }
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.options.messageType == .ack && m.yiaddr == IPv4Address(10, 0, 2, 15) && m.options.leaseTime == 86400)
            #expect(m.options.clientIdentifier == nil)
        }
        // NAK: no address, no lease, no parameters; a message for the client.
        n = try Self.with(r) { request in
            var nak = DHCPReply(replyingTo: request, type: .nak, yourAddress: IPv4Address(10, 0, 2, 15))
            nak.message = "requested address not available"
            return try out.withUnsafeMutableBytes { try nak.emit(into: $0, parameters: Self.parameters) }
        }
        #expect(n == DHCPMessage.bootpMinimumLength)
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.options.messageType == .nak && m.yiaddr == .any && m.ciaddr == .any)
            #expect(m.options.map(\.code) == [.messageType, .serverIdentifier, .message])
            #expect(Self.bytes(m.options.first(.message)) == Array("requested address not available".utf8))
        }
        // ACK to an INFORM from 10.0.2.50: ciaddr kept, no yiaddr, no lease (RFC 2131 §4.3.5).
        var inform = r
        inform[242] = DHCPMessageType.inform.rawValue
        inform[12] = 10; inform[13] = 0; inform[14] = 2; inform[15] = 50
        n = try Self.with(inform) { request in
            try out.withUnsafeMutableBytes {
                try DHCPReply(replyingTo: request, type: .ack, yourAddress: IPv4Address(10, 0, 2, 15)).emit(into: $0, parameters: Self.parameters)
            }
        }
        try Self.with(Array(out[0..<n])) { m in
            #expect(m.ciaddr == IPv4Address(10, 0, 2, 50) && m.yiaddr == .any)
            #expect(m.options.leaseTime == nil && m.options.renewalTime == nil && m.options.subnetMask != nil)
        }
    }

    @Test func replyThatDoesNotFit() throws {
        let d = try Self.payload(Self.udhcpcDiscoverFrame)
        var out = [UInt8](repeating: 0, count: 250)
        try Self.with(d) { request in
            let reply = DHCPReply(replyingTo: request, type: .offer, yourAddress: IPv4Address(10, 0, 2, 15))
            out.withUnsafeMutableBytes { o -> Void in
                #expect(throws: WireError(.noSpace, "dhcp")) { _ = try reply.emit(into: o, parameters: Self.parameters) }
            }
            // 80 DNS servers do not fit the 548 bytes the client accepts (its option 57 is 576).
            var many = Self.parameters
            many.dnsServers = (0..<80).map { IPv4Address(10, 0, 3, UInt8($0)) }
            var big = [UInt8](repeating: 0, count: 1500)
            try big.withUnsafeMutableBytes { o throws -> Void in
                #expect(throws: WireError(.noSpace, "dhcp")) { _ = try reply.emit(into: o, parameters: many) }
                var larger = reply
                larger.maximumLength = 1500
                let length = try larger.emit(into: o, parameters: many)
                #expect(length > 548)
            }
        }
    }

    // MARK: Domain search (RFC 3397) and long options (RFC 3396)

    /// RFC 3397 §3's example: "eng.apple.com" and "marketing.apple.com".
    @Test func rfc3397Example() throws {
        var out = [UInt8](repeating: 0, count: 64)
        let n = try out.withUnsafeMutableBytes { try DHCPDomainSearchList.emit(["eng.apple.com.", "marketing.apple.com."], into: $0) }
        let expected: [UInt8] = [3] + Array("eng".utf8) + [5] + Array("apple".utf8) + [3] + Array("com".utf8) + [0]
            + [9] + Array("marketing".utf8) + [0xC0, 0x04]
        #expect(Array(out[0..<n]) == expected)
        let names = try expected.withUnsafeBytes { try DHCPDomainSearchList.parse($0).map(\.text) }
        #expect(names == ["eng.apple.com", "marketing.apple.com"])
    }

    @Test func domainSearchHostile() {
        let loops: [[UInt8]] = [
            [0xC0, 0x00],  // points at itself
            [1, 0x61, 0xC0, 0x04, 0xC0, 0x00],  // second name points forward of its start
            [1, 0x61, 0xC0],  // pointer cut short
            [0x40] + Array(repeating: 0x61, count: 64) + [0],
        ]
        for data in loops {
            #expect(throws: WireError.self) { try data.withUnsafeBytes { _ = try DHCPDomainSearchList.parse($0) } }
        }
    }

    /// A search list longer than 255 bytes goes out as several option 119s that concatenate
    /// back to one list (RFC 3396 §7).
    @Test func longDomainSearchSplits() throws {
        // About 27 bytes each after compression (only "example.org" is shared): 16 of them need two options.
        let names = (0..<16).map { "host-\($0)-\(String(repeating: "y", count: 10)).zone-\($0).example.org" }
        var p = Self.parameters
        p.domainSearch = names
        let d = try Self.payload(Self.udhcpcDiscoverFrame)
        var out = [UInt8](repeating: 0, count: 1500)
        let n = try Self.with(d) { request in
            var reply = DHCPReply(replyingTo: request, type: .offer, yourAddress: IPv4Address(10, 0, 2, 15))
            reply.maximumLength = 1500
            return try out.withUnsafeMutableBytes { try reply.emit(into: $0, parameters: p) }
        }
        try Self.with(Array(out[0..<n])) { m in
            let pieces = m.options.filter { $0.code == .domainSearch }.map(\.data.count)
            #expect(pieces.count == 2 && pieces[0] == 255)
            var scratch = [UInt8](repeating: 0, count: 1024)
            let back = try scratch.withUnsafeMutableBytes { s in try m.options.domainSearch(scratch: s).map { $0.map(\.text) } }
            #expect(back == names)
            // Too small a scratch buffer is refused, not overrun.
            var tiny = [UInt8](repeating: 0, count: 100)
            tiny.withUnsafeMutableBytes { s -> Void in
                #expect(throws: WireError(.noSpace, "dhcp")) { _ = try m.options.domainSearch(scratch: s) }
            }
        }
    }

    @Test func optionWriterSplitsAnyLongOption() throws {
        let data = (0..<600).map { UInt8(truncatingIfNeeded: $0) }
        var out = [UInt8](repeating: 0, count: 700)
        let end = try out.withUnsafeMutableBytes { o in
            var w = DHCPOptionWriter(buffer: o, at: 0)
            try data.withUnsafeBytes { try w.append(.vendorClassIdentifier, bytes: $0) }
            try w.appendEnd()
            return w.position
        }
        #expect(end == 600 + 3 * 2 + 1)
        #expect(out[0] == 60 && out[1] == 255 && out[257] == 60 && out[258] == 255 && out[514] == 60 && out[515] == 90)
        try out.withUnsafeBytes { o in
            let options = try DHCPOptions(field: UnsafeRawBufferPointer(rebasing: o[0..<end]))
            var scratch = [UInt8](repeating: 0, count: 600)
            let joined = try scratch.withUnsafeMutableBytes { try options.concatenated(.vendorClassIdentifier, into: $0).map(Array.init) }
            #expect(joined == data)
        }
        // Exactly full, then one byte over.
        var tight = [UInt8](repeating: 0, count: 6)
        try tight.withUnsafeMutableBytes { o in
            var w = DHCPOptionWriter(buffer: o, at: 0)
            try w.append(.leaseTime, u32: 1)
            #expect(throws: WireError(.noSpace, "dhcp")) { try w.appendEnd() }
        }
    }
}
