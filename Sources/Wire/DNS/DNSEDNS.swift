// The EDNS(0) OPT pseudo-record (RFC 6891 §6.1): the requester's UDP payload size, the high bits
// of the response code, the version and the DO bit; decoded from a message and written into one.

/// A message's OPT record. Decoded, it borrows the message: `options` points into it; to write
/// one, build it with the fields wanted (and options from a decoded record, or none).
public struct DNSEDNS: Hashable {
    /// RFC 6891 §6.2.5: values below 512 are treated as 512.
    public static let minimumPayloadSize: UInt16 = 512
    /// An OPT record without options: root owner (1), TYPE, CLASS, TTL, RDLENGTH (RFC 6891 §6.1.2).
    public static let fixedLength = 11

    /// The largest UDP payload the sender can reassemble (the OPT record's CLASS field).
    public var udpPayloadSize: UInt16
    /// The high 8 bits of the 12-bit response code.
    public var extendedRcode: UInt8
    public var version: UInt8
    /// DO: the sender accepts DNSSEC records (RFC 3225).
    public var dnssecOK: Bool
    /// The Z flags after DO: zero from senders (RFC 6891 §6.1.4), kept so that a record re-emits
    /// unchanged.
    public var reservedFlags: UInt16
    /// The OPT RDATA: {code, length, data} options, each checked to fit.
    public var options: UnsafeRawBufferPointer

    /// The payload size a responder may use: at least 512.
    public var effectivePayloadSize: Int { Int(max(udpPayloadSize, DNSEDNS.minimumPayloadSize)) }

    /// An OPT record to write; `options` (whole {code, length, data} options) must outlive it.
    public init(
        udpPayloadSize: UInt16, extendedRcode: UInt8 = 0, version: UInt8 = 0, dnssecOK: Bool = false,
        reservedFlags: UInt16 = 0, options: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)
    ) {
        self.udpPayloadSize = udpPayloadSize
        self.extendedRcode = extendedRcode
        self.version = version
        self.dnssecOK = dnssecOK
        self.reservedFlags = reservedFlags & 0x7FFF
        self.options = options
    }

    /// The record's TTL field: extended RCODE, version, then the DO bit leading the flags.
    var ttl: UInt32 { UInt32(extendedRcode) << 24 | UInt32(version) << 16 | (dnssecOK ? 0x8000 : 0) | UInt32(reservedFlags & 0x7FFF) }

    /// The bytes `emit` writes.
    public var encodedLength: Int { DNSEDNS.fixedLength + options.count }

    /// Writes the record, owned by the root name, at the start of `buffer`; returns its length.
    /// Throws `.noSpace` when it does not fit and `.badOption` when the options cannot fit the
    /// 16-bit RDLENGTH.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard options.count <= Int(UInt16.max) else { throw WireError(.badOption, "dns") }
        guard buffer.count >= encodedLength else { throw WireError(.noSpace, "dns") }
        buffer.setU8(0, 0)
        buffer.setBE16(DNSRecordType.opt.rawValue, 1)
        buffer.setBE16(udpPayloadSize, 3)
        buffer.setBE32(ttl, 5)
        buffer.setBE16(UInt16(options.count), 9)
        if !options.isEmpty { buffer.slice(DNSEDNS.fixedLength, options.count).copyMemory(from: options) }
        return encodedLength
    }

    /// Decodes an OPT record. Its owner must be the root (RFC 6891 §6.1.2) and its options must
    /// each fit in the RDATA.
    public init(_ record: DNSResourceRecord) throws(WireError) {
        guard record.type == .opt, record.name.isRoot else { throw WireError(.malformed, "dns") }
        udpPayloadSize = record.rrclass.rawValue
        extendedRcode = UInt8(truncatingIfNeeded: record.ttl >> 24)
        version = UInt8(truncatingIfNeeded: record.ttl >> 16)
        dnssecOK = record.ttl & 0x8000 != 0
        reservedFlags = UInt16(truncatingIfNeeded: record.ttl & 0x7FFF)
        options = record.rdata
        let r = CheckedReader(options, layer: "dns")
        var i = 0
        while i < options.count {
            guard i + 4 <= options.count else { throw WireError(.badOption, "dns") }
            let length = Int(try r.be16(i + 2))
            guard i + 4 + length <= options.count else { throw WireError(.badOption, "dns") }
            i += 4 + length
        }
    }

    public static func == (a: DNSEDNS, b: DNSEDNS) -> Bool {
        guard a.udpPayloadSize == b.udpPayloadSize, a.extendedRcode == b.extendedRcode, a.version == b.version,
              a.dnssecOK == b.dnssecOK, a.reservedFlags == b.reservedFlags, a.options.count == b.options.count else { return false }
        return a.options.elementsEqual(b.options)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(udpPayloadSize)
        hasher.combine(version)
    }
}
