// What the fuzzer does with each parser's input: parse, read everything the parse exposes, and
// check the round trips that must hold for any input that parsed (a failed check traps).
import Wire

enum FuzzCases {
    static func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

    @Sendable static func macText(_ bytes: UnsafeRawBufferPointer) {
        guard let mac = MACAddress(text(bytes)) else { return }
        precondition(MACAddress(mac.description) == mac, "MAC text round trip")
    }

    @Sendable static func ipv4Text(_ bytes: UnsafeRawBufferPointer) {
        guard let a = IPv4Address(text(bytes)) else { return }
        precondition(IPv4Address(a.description) == a, "IPv4 text round trip")
    }

    @Sendable static func ipv6Text(_ bytes: UnsafeRawBufferPointer) {
        let t = text(bytes)
        if let a = IPv6Address(t) { precondition(IPv6Address(a.description) == a, "IPv6 text round trip") }
        if let a = IPAddress(t) { precondition(IPAddress(a.description) == a, "IP text round trip") }
    }

    /// The partial-checksum completion with offsets taken from the input: it must refuse
    /// offsets outside the packet rather than write there (ASan watches).
    @Sendable static func checksum(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 2 else { return }
        let start = Int(bytes[0]) - 8
        let offset = Int(bytes[1]) - 8
        var copy = Array(bytes[2...])
        copy.withUnsafeMutableBytes { b in
            guard (try? InternetChecksum.completePartial(b, start: start, offset: offset)) != nil else { return }
            precondition(start >= 0 && offset >= 0 && start + offset + 2 <= b.count, "completion in bounds")
        }
        _ = InternetChecksum.of(bytes)
    }

    static let lease = DHCPLeaseParameters(
        serverIdentifier: IPv4Address(10, 0, 2, 2), leaseTime: 3600, subnetMask: IPv4Address(255, 255, 255, 0),
        router: IPv4Address(10, 0, 2, 2), dnsServers: [IPv4Address(10, 0, 2, 3)], interfaceMTU: 1500,
        domainName: "sandbox.internal", domainSearch: ["sandbox.internal", "example.com"],
        broadcastAddress: IPv4Address(10, 0, 2, 255)
    )

    @Sendable static func dhcp(_ bytes: UnsafeRawBufferPointer) {
        guard let m = try? DHCPMessage.parse(bytes) else { return }
        // Read everything.
        var sum = 0
        for option in m.options { sum &+= Int(option.code.rawValue) &+ option.data.count }
        let o = m.options
        _ = (o.messageType, o.requestedIP, o.serverIdentifier, o.leaseTime, o.renewalTime, o.rebindingTime)
        _ = (o.parameterRequestList, o.clientIdentifier, o.hostName, o.domainName, o.maxMessageSize, o.subnetMask)
        _ = (o.interfaceMTU, o.broadcastAddress, m.chaddr, m.serverName, m.bootFileName, o.requests(.router))
        sum &+= o.routers.map { $0.reduce(0) { $0 &+ Int($1.raw) } } ?? 0
        sum &+= o.dnsServers.map { $0.reduce(0) { $0 &+ Int($1.raw) } } ?? 0
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { scratch in
            if let list = try? o.domainSearch(scratch: scratch) {
                for name in list { sum &+= name.text.utf8.count }
            }
        }
        // emit(parse(x)) == x, and parse(emit(parse(x))) == parse(x).
        var out = [UInt8](repeating: 0, count: bytes.count)
        out.withUnsafeMutableBytes { ob in
            guard let n = try? m.emit(into: ob) else { preconditionFailure("emit of a parsed message") }
            precondition(n == bytes.count && ob.elementsEqual(bytes), "DHCP emit(parse(x)) == x")
            guard let again = try? DHCPMessage.parse(UnsafeRawBufferPointer(ob)) else { preconditionFailure("re-parse") }
            precondition(again == m, "DHCP parse(emit(m)) == m")
        }
        // A reply to whatever parsed parses back with the client's fields.
        var reply = [UInt8](repeating: 0, count: 1500)
        reply.withUnsafeMutableBytes { rb in
            for type in [DHCPMessageType.offer, .ack, .nak] {
                let r = DHCPReply(replyingTo: m, type: type, yourAddress: IPv4Address(10, 0, 2, 15))
                guard let n = try? r.emit(into: rb, parameters: lease) else { continue }
                guard let back = try? DHCPMessage.parse(UnsafeRawBufferPointer(rebasing: rb[0..<n])) else {
                    preconditionFailure("DHCP reply does not parse")
                }
                precondition(back.xid == m.xid && back.chaddrField == m.chaddrField && back.options.messageType == type, "DHCP reply fields")
            }
        }
        _ = sum
    }

    @Sendable static func dns(_ bytes: UnsafeRawBufferPointer) {
        guard let m = try? DNSMessage.parse(bytes) else { return }
        var sum = 0
        for q in m.questions { sum &+= checkName(q.name) }
        for section in [m.answers, m.authorities, m.additionals] {
            for r in section {
                sum &+= checkName(r.name)
                switch r.data {
                case .cname(let n), .ptr(let n): sum &+= checkName(n)
                default: break
                }
                // A record written uncompressed parses back equal.
                var out = [UInt8](repeating: 0, count: 2 * 256 + 10 + r.rdata.count)
                out.withUnsafeMutableBytes { ob in
                    guard let n = try? r.emit(into: ob) else { preconditionFailure("record emit") }
                    guard let (back, end) = try? DNSResourceRecord.parse(UnsafeRawBufferPointer(ob), at: 0) else {
                        preconditionFailure("record re-parse")
                    }
                    precondition(end == n && back == r, "DNS record round trip")
                }
            }
        }
        _ = (m.responseCode, m.edns?.effectivePayloadSize)
        // A response to whatever parsed: answers of each kind, then the error forms.
        var out = [UInt8](repeating: 0, count: 4096)
        out.withUnsafeMutableBytes { ob in
            guard var b = try? DNSResponseBuilder(respondingTo: m, into: ob) else { return }
            b.appendA(IPv4Address(10, 0, 2, 15), ttl: 60)
            b.appendAAAA(IPv6Address(high: 0xFD00 << 48, low: 1), ttl: 60)
            if let alias = try? b.appendCNAME("alias.example.com", ttl: 60) {
                b.appendA(IPv4Address(10, 0, 2, 16), ttl: 60, owner: alias)
            }
            _ = try? b.appendPTR("host.sandbox.internal", ttl: 60)
            let n = b.finish()
            guard let r = try? DNSMessage.parse(UnsafeRawBufferPointer(rebasing: ob[0..<n])) else {
                preconditionFailure("built response does not parse")
            }
            precondition(r.header.id == m.header.id && r.header.isResponse, "response header")
            precondition(r.question == m.question, "response question")
            precondition(n <= b.limit, "response within its limit")
            for code in [DNSResponseCode.nameError, .serverFailure, .refused] {
                guard let e = try? DNSResponseBuilder.emitError(code, respondingTo: m, into: ob),
                      let er = try? DNSMessage.parse(UnsafeRawBufferPointer(rebasing: ob[0..<e]))
                else { continue }
                precondition(er.header.answerCount == 0 && (er.responseCode == code || m.edns == nil), "error response")
            }
        }
        var cut = [UInt8](repeating: 0, count: 512)
        cut.withUnsafeMutableBytes { cb in
            if let n = try? DNSResponseBuilder.emitTruncated(m, into: cb) {
                precondition((try? DNSMessage.parse(UnsafeRawBufferPointer(rebasing: cb[0..<n]))) != nil, "truncated copy parses")
            }
        }
        checkRelayEdits(m)
        _ = sum
    }

    /// The relay's edits: the OPT record resized, taken out, or added, then a new ID; each
    /// result parses with the record it was given and the question it had. Only where the OPT
    /// record is the last record (or absent): a name after it could point into its bytes, and
    /// the relay only ever resizes one there.
    static func checkRelayEdits(_ m: DNSMessage) {
        guard (m.optRange?.upperBound ?? m.endOffset) == m.endOffset else { return }
        var resized = m.edns ?? DNSEDNS(udpPayloadSize: 1232)
        resized.udpPayloadSize = 4096
        var relayed = [UInt8](repeating: 0, count: 65_536 + DNSEDNS.fixedLength)
        relayed.withUnsafeMutableBytes { rb in
            for opt in [resized, nil] {
                guard let n = try? m.emit(into: rb, replacingOPTWith: opt) else { continue }
                guard let r = try? DNSMessage.parse(UnsafeRawBufferPointer(rebasing: rb[0..<n])) else {
                    preconditionFailure("relayed copy does not parse")
                }
                precondition(r.edns == opt, "relayed copy's OPT record")
                precondition(r.question == m.question, "relayed copy's question")
                let copy = UnsafeMutableRawBufferPointer(rebasing: rb[0..<n])
                guard (try? DNSHeader.edit(copy, { $0.id = ~$0.id })) != nil,
                      let again = try? DNSMessage.parse(UnsafeRawBufferPointer(copy))
                else { preconditionFailure("relayed copy with a new ID does not parse") }
                precondition(again.question == m.question, "relayed copy's question under a new ID")
            }
        }
    }

    /// Text, wire copy and matching of a parsed name agree with each other.
    static func checkName(_ name: DNSName) -> Int {
        let text = name.text
        precondition(name.matches(text), "a name matches its own text")
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 1) { buf in
            guard let n = try? name.copyWire(into: buf) else { preconditionFailure("copyWire") }
            precondition(n == name.wireLength, "wire length")
            guard let (again, end) = try? DNSName.parse(UnsafeRawBufferPointer(rebasing: buf[0..<n]), at: 0) else {
                preconditionFailure("uncompressed copy parses")
            }
            precondition(end == n && again == name, "uncompressed copy equals")
        }
        return text.utf8.count
    }

    /// A name at an offset the first byte picks, with pointers into the rest.
    @Sendable static func dnsName(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        let body = UnsafeRawBufferPointer(rebasing: bytes[1...])
        guard let (name, end) = try? DNSName.parse(body, at: Int(first) % max(body.count, 1)) else { return }
        precondition(end <= body.count && name.wireLength <= 255, "name bounds")
        _ = checkName(name)
    }

    /// Text → wire (with compression against an earlier name) → text.
    @Sendable static func dnsText(_ bytes: UnsafeRawBufferPointer) {
        let t = text(bytes)
        var out = [UInt8](repeating: 0, count: 600)
        out.withUnsafeMutableBytes { ob in
            guard let n = try? DNSName.encode(t, into: ob, at: 0) else { return }
            guard let (name, end) = try? DNSName.parse(UnsafeRawBufferPointer(rebasing: ob[0..<n]), at: 0) else {
                preconditionFailure("encoded name does not parse")
            }
            precondition(end == n && name.matches(t), "encoded name matches its text")
            let names = [t, "www." + t, t]
            if let m = try? DHCPDomainSearchList.emit(names, into: ob),
               let list = try? DHCPDomainSearchList.parse(UnsafeRawBufferPointer(rebasing: ob[0..<m])) {
                precondition(list.count == 3 && list.allSatisfy { $0 == name || $0.labelCount == name.labelCount + 1 }, "search list")
            }
        }
    }

    @Sendable static func domainSearch(_ bytes: UnsafeRawBufferPointer) {
        guard let list = try? DHCPDomainSearchList.parse(bytes) else { return }
        for name in list { _ = checkName(name) }
    }
}
