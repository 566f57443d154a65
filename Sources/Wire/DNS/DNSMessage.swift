// A whole DNS message (RFC 1035 §4.1) validated in one pass: header, every question and record,
// and the EDNS OPT record noted. Sections are then read by iterating, which cannot fail.

/// A parsed DNS message. Keeps only offsets into the message it borrows (valid while that
/// buffer is); iterating a section re-reads names and records that `parse` already checked.
public struct DNSMessage {
    public let bytes: UnsafeRawBufferPointer
    public var header: DNSHeader
    /// The first question, which is the only one in practice (RFC 9619 makes QDCOUNT > 1 an
    /// error for QUERY).
    public let question: DNSQuestion?
    /// Where the answer, authority and additional sections start, and where the last record ends
    /// (any bytes after it are ignored).
    public let answerOffset: Int
    public let authorityOffset: Int
    public let additionalOffset: Int
    public let endOffset: Int
    /// The OPT record of the additional section, when there is one.
    public let edns: DNSEDNS?
    /// Where that OPT record sits in the message.
    public let optRange: Range<Int>?

    /// Parses and validates the whole message. Counts that promise more entries than the bytes
    /// hold throw `.truncated`; an OPT record outside the additional section, a second OPT
    /// record or one not owned by the root throws `.malformed` (RFC 6891 §6.1.1).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> DNSMessage {
        let header = try DNSHeader.parse(bytes)
        var pos = DNSHeader.length
        var first: DNSQuestion?
        for _ in 0..<header.questionCount {
            let (q, end) = try DNSQuestion.parse(bytes, at: pos)
            if first == nil { first = q }
            pos = end
        }
        let answerOffset = pos
        for _ in 0..<header.answerCount {
            pos = try skipRecord(bytes, at: pos)
        }
        let authorityOffset = pos
        for _ in 0..<header.authorityCount {
            pos = try skipRecord(bytes, at: pos)
        }
        let additionalOffset = pos
        var edns: DNSEDNS?
        var optRange: Range<Int>?
        for _ in 0..<header.additionalCount {
            let (r, end) = try DNSResourceRecord.parse(bytes, at: pos)
            if r.type == .opt {
                guard edns == nil else { throw WireError(.malformed, "dns") }
                edns = try DNSEDNS(r)
                optRange = pos..<end
            }
            pos = end
        }
        return DNSMessage(
            bytes: bytes, header: header, question: first, answerOffset: answerOffset, authorityOffset: authorityOffset,
            additionalOffset: additionalOffset, endOffset: pos, edns: edns, optRange: optRange
        )
    }

    /// Checks an answer or authority record, where OPT may not appear.
    private static func skipRecord(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(WireError) -> Int {
        let (r, end) = try DNSResourceRecord.parse(bytes, at: offset)
        guard r.type != .opt else { throw WireError(.malformed, "dns") }
        return end
    }

    /// The full 12-bit response code: the header's 4 bits and the OPT record's high 8.
    public var responseCode: DNSResponseCode {
        DNSResponseCode(rawValue: UInt16(edns?.extendedRcode ?? 0) << 4 | UInt16(header.rcode))
    }

    public var questions: Questions { Questions(message: bytes, position: DNSHeader.length, remaining: Int(header.questionCount)) }
    public var answers: Records { Records(message: bytes, position: answerOffset, remaining: Int(header.answerCount)) }
    public var authorities: Records { Records(message: bytes, position: authorityOffset, remaining: Int(header.authorityCount)) }
    public var additionals: Records { Records(message: bytes, position: additionalOffset, remaining: Int(header.additionalCount)) }

    public struct Questions: Sequence, IteratorProtocol {
        let message: UnsafeRawBufferPointer
        var position: Int
        var remaining: Int

        public mutating func next() -> DNSQuestion? {
            guard remaining > 0, let (q, end) = try? DNSQuestion.parse(message, at: position) else { return nil }
            remaining -= 1
            position = end
            return q
        }
    }

    public struct Records: Sequence, IteratorProtocol {
        let message: UnsafeRawBufferPointer
        var position: Int
        var remaining: Int

        public mutating func next() -> DNSResourceRecord? {
            guard remaining > 0, let (r, end) = try? DNSResourceRecord.parse(message, at: position) else { return nil }
            remaining -= 1
            position = end
            return r
        }
    }
}
