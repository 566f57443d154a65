// The fixed 12-byte DNS message header (RFC 1035 §4.1.1; AD and CD bits RFC 4035 §3.2).

/// The header of a DNS message: identifier, flags and the four section counts.
public struct DNSHeader: Hashable, Sendable {
    public static let length = 12

    public var id: UInt16
    /// QR: set in responses.
    public var isResponse: Bool
    public var opcode: DNSOpcode
    /// AA: authoritative answer.
    public var authoritative: Bool
    /// TC: the message was truncated to fit the transport.
    public var truncated: Bool
    /// RD: recursion desired (copied from query to response).
    public var recursionDesired: Bool
    /// RA: recursion available.
    public var recursionAvailable: Bool
    /// Z: reserved, must be zero (RFC 1035); kept so that a message re-emits unchanged.
    public var reservedBit: Bool
    /// AD: authentic data (RFC 4035 §3.2.3).
    public var authenticData: Bool
    /// CD: checking disabled (RFC 4035 §3.2.2).
    public var checkingDisabled: Bool
    /// The low 4 bits of the response code; see `DNSMessage.responseCode` for the full code.
    public var rcode: UInt8
    public var questionCount: UInt16
    public var answerCount: UInt16
    public var authorityCount: UInt16
    public var additionalCount: UInt16

    public init(
        id: UInt16, isResponse: Bool = false, opcode: DNSOpcode = .query, authoritative: Bool = false,
        truncated: Bool = false, recursionDesired: Bool = false, recursionAvailable: Bool = false,
        reservedBit: Bool = false, authenticData: Bool = false, checkingDisabled: Bool = false, rcode: UInt8 = 0,
        questionCount: UInt16 = 0, answerCount: UInt16 = 0, authorityCount: UInt16 = 0, additionalCount: UInt16 = 0
    ) {
        self.id = id
        self.isResponse = isResponse
        self.opcode = opcode
        self.authoritative = authoritative
        self.truncated = truncated
        self.recursionDesired = recursionDesired
        self.recursionAvailable = recursionAvailable
        self.reservedBit = reservedBit
        self.authenticData = authenticData
        self.checkingDisabled = checkingDisabled
        self.rcode = rcode & 0x0F
        self.questionCount = questionCount
        self.answerCount = answerCount
        self.authorityCount = authorityCount
        self.additionalCount = additionalCount
    }

    /// The two flag bytes as they sit on the wire.
    public var flags: UInt16 {
        var f = UInt16(opcode.rawValue & 0x0F) << 11 | UInt16(rcode & 0x0F)
        if isResponse { f |= 0x8000 }
        if authoritative { f |= 0x0400 }
        if truncated { f |= 0x0200 }
        if recursionDesired { f |= 0x0100 }
        if recursionAvailable { f |= 0x0080 }
        if reservedBit { f |= 0x0040 }
        if authenticData { f |= 0x0020 }
        if checkingDisabled { f |= 0x0010 }
        return f
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> DNSHeader {
        let r = CheckedReader(bytes, layer: "dns")
        guard bytes.count >= length else { throw WireError(.truncated, "dns") }
        let f = try r.be16(2)
        return DNSHeader(
            id: try r.be16(0),
            isResponse: f & 0x8000 != 0,
            opcode: DNSOpcode(rawValue: UInt8(truncatingIfNeeded: f >> 11)),
            authoritative: f & 0x0400 != 0,
            truncated: f & 0x0200 != 0,
            recursionDesired: f & 0x0100 != 0,
            recursionAvailable: f & 0x0080 != 0,
            reservedBit: f & 0x0040 != 0,
            authenticData: f & 0x0020 != 0,
            checkingDisabled: f & 0x0010 != 0,
            rcode: UInt8(truncatingIfNeeded: f & 0x0F),
            questionCount: try r.be16(4),
            answerCount: try r.be16(6),
            authorityCount: try r.be16(8),
            additionalCount: try r.be16(10)
        )
    }

    /// Rewrites the header at the start of `message` (a relay's new ID, a changed RCODE, a count
    /// that follows a removed record) as `change` says; the rest of the message is left alone.
    /// Throws `.truncated` when `message` is shorter than a header.
    public static func edit(_ message: UnsafeMutableRawBufferPointer, _ change: (inout DNSHeader) -> Void) throws(WireError) {
        var header = try parse(UnsafeRawBufferPointer(message))
        change(&header)
        _ = try header.emit(into: message)
    }

    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard buffer.count >= DNSHeader.length else { throw WireError(.noSpace, "dns") }
        buffer.setBE16(id, 0)
        buffer.setBE16(flags, 2)
        buffer.setBE16(questionCount, 4)
        buffer.setBE16(answerCount, 6)
        buffer.setBE16(authorityCount, 8)
        buffer.setBE16(additionalCount, 10)
        return DNSHeader.length
    }
}
