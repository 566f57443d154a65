// One entry of a DNS message's question section (RFC 1035 §4.1.2).

/// A question: the name asked about, QTYPE and QCLASS. Borrows the message it was parsed from.
public struct DNSQuestion: Hashable, CustomStringConvertible {
    public var name: DNSName
    public var type: DNSRecordType
    public var qclass: DNSClass

    public init(name: DNSName, type: DNSRecordType, qclass: DNSClass = .internet) {
        self.name = name
        self.type = type
        self.qclass = qclass
    }

    /// Parses the question at `offset` of a whole message; returns it and the offset after it.
    public static func parse(_ message: UnsafeRawBufferPointer, at offset: Int) throws(WireError) -> (question: DNSQuestion, end: Int) {
        let r = CheckedReader(message, layer: "dns")
        let (name, nameEnd) = try DNSName.parse(message, at: offset, namesStart: DNSHeader.length)
        guard nameEnd + 4 <= message.count else { throw WireError(.truncated, "dns") }
        let q = DNSQuestion(
            name: name,
            type: DNSRecordType(rawValue: try r.be16(nameEnd)),
            qclass: DNSClass(rawValue: try r.be16(nameEnd + 2))
        )
        return (q, nameEnd + 4)
    }

    /// Writes the question with its name uncompressed; returns the bytes written.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let n = try name.copyWire(into: buffer)
        guard buffer.count >= n + 4 else { throw WireError(.noSpace, "dns") }
        buffer.setBE16(type.rawValue, n)
        buffer.setBE16(qclass.rawValue, n + 2)
        return n + 4
    }

    public var description: String { "\(name.text) \(type)" }
}
