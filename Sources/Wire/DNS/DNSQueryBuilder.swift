// Writing a DNS query (RFC 1035 §4.1), optionally with an EDNS OPT record (RFC 6891 §6.1.2):
// for tests and for the forwarder's own upstream queries.

/// Writes standard queries into a caller's buffer; allocates nothing.
public enum DNSQueryBuilder {
    /// Writes a one-question query for `name` and returns its length. With `ednsPayloadSize`
    /// an OPT record advertises that UDP payload size.
    public static func emit(
        id: UInt16, name: String, type: DNSRecordType, qclass: DNSClass = .internet,
        recursionDesired: Bool = true, ednsPayloadSize: UInt16? = nil, dnssecOK: Bool = false,
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        let header = DNSHeader(
            id: id, recursionDesired: recursionDesired, questionCount: 1, additionalCount: ednsPayloadSize == nil ? 0 : 1
        )
        var pos = try header.emit(into: buffer)
        pos = try DNSName.encode(name, into: buffer, at: pos)
        guard pos + 4 <= buffer.count else { throw WireError(.noSpace, "dns") }
        buffer.setBE16(type.rawValue, pos)
        buffer.setBE16(qclass.rawValue, pos + 2)
        pos += 4
        if let size = ednsPayloadSize {
            pos += try DNSEDNS(udpPayloadSize: size, dnssecOK: dnssecOK).emit(into: buffer.slice(pos, buffer.count - pos))
        }
        return pos
    }
}
