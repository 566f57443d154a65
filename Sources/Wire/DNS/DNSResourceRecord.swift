// One resource record of an answer, authority or additional section (RFC 1035 §4.1.3), with
// typed data for A, AAAA (RFC 3596 §2.2), CNAME and PTR and the rest kept as an rdata range.

/// What a record's RDATA holds, for the types the gateway reads; other types are `.other`
/// and keep their bytes in `DNSResourceRecord.rdata`.
public enum DNSRecordData: Hashable {
    case a(IPv4Address)
    case aaaa(IPv6Address)
    case cname(DNSName)
    case ptr(DNSName)
    /// The EDNS pseudo-record; `DNSMessage.edns` has it decoded.
    case opt
    case other
}

/// A resource record. Borrows the message it was parsed from: `name`, names in `data` and
/// `rdata` all point into it.
public struct DNSResourceRecord: Hashable, CustomStringConvertible {
    public var name: DNSName
    public var type: DNSRecordType
    public var rrclass: DNSClass
    public var ttl: UInt32
    /// The RDATA bytes as they sit in the message (names in them may hold pointers).
    public var rdata: UnsafeRawBufferPointer
    /// Where `rdata` starts in the message.
    public var rdataOffset: Int
    public var data: DNSRecordData

    /// Parses the record at `offset` of a whole message; returns it and the offset after it.
    /// A and AAAA data of the wrong length, or a CNAME/PTR name that does not end exactly at
    /// the end of RDATA, throw `.malformed`.
    public static func parse(_ message: UnsafeRawBufferPointer, at offset: Int) throws(WireError) -> (record: DNSResourceRecord, end: Int) {
        let r = CheckedReader(message, layer: "dns")
        let (name, nameEnd) = try DNSName.parse(message, at: offset, namesStart: DNSHeader.length)
        guard nameEnd + 10 <= message.count else { throw WireError(.truncated, "dns") }
        let type = DNSRecordType(rawValue: try r.be16(nameEnd))
        let rrclass = DNSClass(rawValue: try r.be16(nameEnd + 2))
        let ttl = try r.be32(nameEnd + 4)
        let rdlength = Int(try r.be16(nameEnd + 8))
        let rdataOffset = nameEnd + 10
        guard rdataOffset + rdlength <= message.count else { throw WireError(.truncated, "dns") }
        let rdata = try r.bytes(rdataOffset, rdlength)
        let data: DNSRecordData
        switch type {
        case .a:
            guard rdlength == 4 else { throw WireError(.malformed, "dns") }
            data = .a(try r.ipv4(rdataOffset))
        case .aaaa:
            guard rdlength == 16 else { throw WireError(.malformed, "dns") }
            data = .aaaa(try r.ipv6(rdataOffset))
        case .cname, .ptr:
            guard rdlength > 0 else { throw WireError(.malformed, "dns") }
            let (target, end) = try DNSName.parse(message, at: rdataOffset, namesStart: DNSHeader.length)
            guard end == rdataOffset + rdlength else { throw WireError(.malformed, "dns") }
            data = type == .cname ? .cname(target) : .ptr(target)
        case .opt:
            data = .opt
        default:
            data = .other
        }
        let record = DNSResourceRecord(name: name, type: type, rrclass: rrclass, ttl: ttl, rdata: rdata, rdataOffset: rdataOffset, data: data)
        return (record, rdataOffset + rdlength)
    }

    /// Writes the record with its owner name, and the name in CNAME and PTR data, uncompressed;
    /// returns the bytes written. Other RDATA is copied as it is: names inside NS, MX, SOA or
    /// SRV data keep any pointers, which only mean something in the original message.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let n = try name.copyWire(into: buffer)
        guard buffer.count >= n + 10 else { throw WireError(.noSpace, "dns") }
        buffer.setBE16(type.rawValue, n)
        buffer.setBE16(rrclass.rawValue, n + 2)
        buffer.setBE32(ttl, n + 4)
        let body = UnsafeMutableRawBufferPointer(rebasing: buffer[(n + 10)...])
        var length: Int
        switch data {
        case .cname(let target), .ptr(let target):
            length = try target.copyWire(into: body)
        default:
            guard body.count >= rdata.count else { throw WireError(.noSpace, "dns") }
            for (i, b) in rdata.enumerated() { body.setU8(b, i) }
            length = rdata.count
        }
        buffer.setBE16(UInt16(length), n + 8)
        return n + 10 + length
    }

    /// Equal records: same owner name (ignoring case), type, class, TTL and data; names inside
    /// the data compare as names, so the same record compressed differently is equal.
    public static func == (a: DNSResourceRecord, b: DNSResourceRecord) -> Bool {
        guard a.name == b.name, a.type == b.type, a.rrclass == b.rrclass, a.ttl == b.ttl else { return false }
        switch (a.data, b.data) {
        case (.cname(let x), .cname(let y)), (.ptr(let x), .ptr(let y)): return x == y
        case (.a(let x), .a(let y)): return x == y
        case (.aaaa(let x), .aaaa(let y)): return x == y
        case (.opt, .opt), (.other, .other):
            return a.rdata.elementsEqual(b.rdata)
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(type)
        hasher.combine(ttl)
    }

    public var description: String {
        let value: String
        switch data {
        case .a(let a): value = a.description
        case .aaaa(let a): value = a.description
        case .cname(let n), .ptr(let n): value = n.text
        case .opt, .other: value = "(\(rdata.count) bytes)"
        }
        return "\(name.text) \(ttl) \(type) \(value)"
    }
}
