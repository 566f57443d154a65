// Writing a DNS response to a parsed query: the question copied, flags set, A/AAAA/CNAME/PTR
// answers whose names point at the question, error responses, and TC when answers don't fit.

/// A name already written in the response, for answers to name as their owner: the question,
/// or the target of a CNAME appended earlier.
public struct DNSNameReference: Hashable, Sendable {
    public let offset: Int
}

/// Builds a response in place in a caller's buffer; allocates nothing.
///
/// The size limit is 512 bytes (RFC 1035 §4.2.1) unless the query carried EDNS, then the
/// client's payload size (RFC 6891 §6.2.5), never more than the buffer. When an answer does not
/// fit, every answer is dropped and TC is set (RFC 2181 §9: a partial RRset must not be used);
/// the client retries over TCP. Later appends are then refused.
public struct DNSResponseBuilder {
    public let buffer: UnsafeMutableRawBufferPointer
    /// The most bytes the finished response may take.
    public let limit: Int
    public private(set) var header: DNSHeader
    /// Bytes written so far (before `finish` adds the OPT record).
    public private(set) var count: Int
    /// The payload size we advertise in our OPT record; nil when the query had no EDNS, in
    /// which case the response must not carry one (RFC 6891 §7).
    public let advertisedPayloadSize: UInt16?
    /// The question's name, owner of answers by default; nil when the query had no question.
    public let question: DNSNameReference?
    private var responseCode: DNSResponseCode
    private let answersStart: Int
    private var compressor = DNSNameCompressor()

    /// Starts a response to `query`: same ID, opcode, RD and CD, QR and RA set, the first
    /// question copied. `limit` overrides the size limit the query implies (a TCP response
    /// may use 65535). Throws `.noSpace` when not even the header and question fit.
    public init(
        respondingTo query: DNSMessage, into buffer: UnsafeMutableRawBufferPointer,
        responseCode: DNSResponseCode = .noError, authoritative: Bool = false,
        advertisedPayloadSize: UInt16 = 1232, limit: Int? = nil
    ) throws(WireError) {
        self.buffer = buffer
        let implied = query.edns?.effectivePayloadSize ?? 512
        self.limit = min(limit ?? implied, buffer.count, 65535)
        self.advertisedPayloadSize = query.edns == nil ? nil : advertisedPayloadSize
        // Extended codes need the OPT record to carry their high bits.
        self.responseCode = query.edns == nil && responseCode.rawValue > 15 ? .serverFailure : responseCode
        header = DNSHeader(
            id: query.header.id, isResponse: true, opcode: query.header.opcode, authoritative: authoritative,
            recursionDesired: query.header.recursionDesired, recursionAvailable: true,
            checkingDisabled: query.header.checkingDisabled, rcode: UInt8(truncatingIfNeeded: self.responseCode.rawValue & 0x0F)
        )
        let reserve = self.advertisedPayloadSize == nil ? 0 : DNSEDNS.fixedLength
        var pos = DNSHeader.length
        if let q = query.question {
            let out = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<self.limit])
            guard pos < out.count else { throw WireError(.noSpace, "dns") }
            pos += try q.emit(into: UnsafeMutableRawBufferPointer(rebasing: out[pos...]))
            header.questionCount = 1
            question = DNSNameReference(offset: DNSHeader.length)
            compressor.register(nameAt: DNSHeader.length, in: UnsafeRawBufferPointer(buffer))
        } else {
            question = nil
        }
        guard pos + reserve <= self.limit else { throw WireError(.noSpace, "dns") }
        count = pos
        answersStart = pos
    }

    /// True once an answer did not fit: TC is set and the answers are gone.
    public var isTruncated: Bool { header.truncated }

    private var reserve: Int { advertisedPayloadSize == nil ? 0 : DNSEDNS.fixedLength }

    /// Drops every answer and sets TC.
    private mutating func truncate() {
        count = answersStart
        header.answerCount = 0
        header.truncated = true
        compressor.rewind(to: answersStart)
    }

    /// Writes owner, type, class IN, TTL; returns the offset of RDLENGTH, or nil when even that
    /// does not fit.
    private mutating func beginRecord(owner: DNSNameReference, type: DNSRecordType, ttl: UInt32) -> Int? {
        guard !header.truncated, header.answerCount < UInt16.max, owner.offset < 0x4000,
              count + 12 + reserve <= limit else { return nil }
        buffer.setBE16(0xC000 | UInt16(owner.offset), count)
        buffer.setBE16(type.rawValue, count + 2)
        buffer.setBE16(DNSClass.internet.rawValue, count + 4)
        buffer.setBE32(ttl, count + 6)
        return count + 10
    }

    private mutating func appendFixed(owner: DNSNameReference?, type: DNSRecordType, ttl: UInt32, length: Int, write: (UnsafeMutableRawBufferPointer, Int) -> Void) -> Bool {
        guard let owner = owner ?? question else { return false }
        guard let rdlength = beginRecord(owner: owner, type: type, ttl: ttl), rdlength + 2 + length + reserve <= limit else {
            if !header.truncated { truncate() }
            return false
        }
        buffer.setBE16(UInt16(length), rdlength)
        write(buffer, rdlength + 2)
        count = rdlength + 2 + length
        header.answerCount += 1
        return true
    }

    /// Appends an A answer owned by `owner` (default: the question's name). Returns false when
    /// it did not fit and the response is now truncated.
    @discardableResult
    public mutating func appendA(_ address: IPv4Address, ttl: UInt32, owner: DNSNameReference? = nil) -> Bool {
        appendFixed(owner: owner, type: .a, ttl: ttl, length: 4) { $0.setIPv4(address, $1) }
    }

    @discardableResult
    public mutating func appendAAAA(_ address: IPv6Address, ttl: UInt32, owner: DNSNameReference? = nil) -> Bool {
        appendFixed(owner: owner, type: .aaaa, ttl: ttl, length: 16) { $0.setIPv6(address, $1) }
    }

    /// Appends a record whose RDATA is a name (CNAME, PTR), compressed against names already
    /// written. Returns a reference to the target name (to own the answers that follow a
    /// CNAME), or nil when it did not fit and the response is now truncated. Throws only for a
    /// malformed target.
    private mutating func appendName(_ target: String, type: DNSRecordType, ttl: UInt32, owner: DNSNameReference?) throws(WireError) -> DNSNameReference? {
        guard let owner = owner ?? question else { return nil }
        guard let rdlength = beginRecord(owner: owner, type: type, ttl: ttl) else {
            if !header.truncated { truncate() }
            return nil
        }
        let start = rdlength + 2
        let end: Int
        do {
            end = try compressor.write(target, at: start, in: buffer, limit: limit - reserve)
        } catch where error.code == .noSpace {
            compressor.rewind(to: start)
            truncate()
            return nil
        }
        buffer.setBE16(UInt16(end - start), rdlength)
        count = end
        header.answerCount += 1
        // A target written as nothing but a pointer: owners that follow point where it points.
        if end - start == 2 {
            // bound: the compressor wrote these two bytes, inside `buffer`, just above.
            return DNSNameReference(offset: Int(UnsafeRawBufferPointer(buffer).uncheckedBE16(start) & 0x3FFF))
        }
        return DNSNameReference(offset: start)
    }

    @discardableResult
    public mutating func appendCNAME(_ target: String, ttl: UInt32, owner: DNSNameReference? = nil) throws(WireError) -> DNSNameReference? {
        try appendName(target, type: .cname, ttl: ttl, owner: owner)
    }

    /// Appends a PTR answer (a reverse lookup, RFC 1035 §3.3.12).
    @discardableResult
    public mutating func appendPTR(_ target: String, ttl: UInt32, owner: DNSNameReference? = nil) throws(WireError) -> DNSNameReference? {
        try appendName(target, type: .ptr, ttl: ttl, owner: owner)
    }

    /// Writes the header (and our OPT record when the query had EDNS); returns the length of
    /// the response.
    public mutating func finish() -> Int {
        var end = count
        if let size = advertisedPayloadSize {
            // Our payload size and the response code's high bits; version 0, no DO bit, no
            // options (RFC 6891 §6.1.2–§6.1.3). `init` reserved the room.
            let opt = DNSEDNS(udpPayloadSize: size, extendedRcode: UInt8(truncatingIfNeeded: responseCode.rawValue >> 4))
            end += (try? opt.emit(into: buffer.slice(end, buffer.count - end))) ?? 0
            header.additionalCount = 1
        }
        _ = try? header.emit(into: buffer)
        return end
    }

    /// A response with no answers: NXDOMAIN, SERVFAIL, REFUSED, FORMERR, NOTIMP.
    public static func emitError(
        _ responseCode: DNSResponseCode, respondingTo query: DNSMessage, into buffer: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        var builder = try DNSResponseBuilder(respondingTo: query, into: buffer, responseCode: responseCode)
        return builder.finish()
    }

    /// Cuts a response (one relayed from upstream, say) down to header and question with TC
    /// set, when it is larger than the client can take. `response` and `buffer` may not
    /// overlap. The response's OPT record stays out; `edns`, when given, goes in its place.
    public static func emitTruncated(
        _ response: DNSMessage, into buffer: UnsafeMutableRawBufferPointer, edns: DNSEDNS? = nil
    ) throws(WireError) -> Int {
        var header = response.header
        header.truncated = true
        header.answerCount = 0
        header.authorityCount = 0
        header.additionalCount = edns == nil ? 0 : 1
        header.questionCount = response.question == nil ? 0 : 1
        var pos = try header.emit(into: buffer)
        if let q = response.question {
            pos += try q.emit(into: UnsafeMutableRawBufferPointer(rebasing: buffer[pos...]))
        }
        if let edns { pos += try edns.emit(into: buffer.slice(pos, buffer.count - pos)) }
        return pos
    }
}
