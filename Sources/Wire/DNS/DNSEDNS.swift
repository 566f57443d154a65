// The EDNS(0) OPT pseudo-record (RFC 6891 §6.1): the requester's UDP payload size, the high bits
// of the response code, the version and the DO bit.

/// A message's OPT record, decoded. Borrows the message: `options` points into it.
public struct DNSEDNS: Hashable {
    /// RFC 6891 §6.2.5: values below 512 are treated as 512.
    public static let minimumPayloadSize: UInt16 = 512

    /// The largest UDP payload the sender can reassemble (the OPT record's CLASS field).
    public var udpPayloadSize: UInt16
    /// The high 8 bits of the 12-bit response code.
    public var extendedRcode: UInt8
    public var version: UInt8
    /// DO: the sender accepts DNSSEC records (RFC 3225).
    public var dnssecOK: Bool
    /// The OPT RDATA: {code, length, data} options, each checked to fit.
    public var options: UnsafeRawBufferPointer

    /// The payload size a responder may use: at least 512.
    public var effectivePayloadSize: Int { Int(max(udpPayloadSize, DNSEDNS.minimumPayloadSize)) }

    /// Decodes an OPT record. Its owner must be the root (RFC 6891 §6.1.2) and its options must
    /// each fit in the RDATA.
    public init(_ record: DNSResourceRecord) throws(WireError) {
        guard record.type == .opt, record.name.isRoot else { throw WireError(.malformed, "dns") }
        udpPayloadSize = record.rrclass.rawValue
        extendedRcode = UInt8(truncatingIfNeeded: record.ttl >> 24)
        version = UInt8(truncatingIfNeeded: record.ttl >> 16)
        dnssecOK = record.ttl & 0x8000 != 0
        options = record.rdata
        var i = 0
        while i < options.count {
            guard i + 4 <= options.count else { throw WireError(.badOption, "dns") }
            let length = Int(options.be16(i + 2))
            guard i + 4 + length <= options.count else { throw WireError(.badOption, "dns") }
            i += 4 + length
        }
    }

    public static func == (a: DNSEDNS, b: DNSEDNS) -> Bool {
        guard a.udpPayloadSize == b.udpPayloadSize, a.extendedRcode == b.extendedRcode, a.version == b.version,
              a.dnssecOK == b.dnssecOK, a.options.count == b.options.count else { return false }
        for i in 0..<a.options.count where a.options[i] != b.options[i] { return false }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(udpPayloadSize)
        hasher.combine(version)
    }
}
