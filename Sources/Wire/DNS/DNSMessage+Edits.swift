// Rewriting a parsed DNS message for relaying: its OPT record swapped, added or taken out (RFC
// 6891 §6.1.1: at most one, in the additional section), the counts kept in step.

extension DNSMessage {
    /// Writes the message (its first `endOffset` bytes) into `buffer` with its OPT record
    /// replaced by `edns`, or `edns` appended to the additional section when it has none, or
    /// the OPT record left out when `edns` is nil; ARCOUNT follows. Every other byte is copied
    /// as it is. Records after the OPT record keep their offsets (and so the compression
    /// pointers into them stay right) only if the new record is as long as the old one; when it
    /// is not, the OPT record must be the message's last. `buffer` must not overlap the
    /// message. Returns the new length. Throws `.noSpace` when the result does not fit
    /// `buffer`, `.badLength` when ARCOUNT cannot count one more record, and `.unsupported`
    /// when records after the OPT record would have to move.
    public func emit(into buffer: UnsafeMutableRawBufferPointer, replacingOPTWith edns: DNSEDNS?) throws(WireError) -> Int {
        var header = self.header
        let newLength = edns?.encodedLength ?? 0
        let old: Range<Int>
        if let range = optRange {
            guard range.upperBound == endOffset || range.count == newLength else { throw WireError(.unsupported, "dns") }
            old = range
            if edns == nil { header.additionalCount -= 1 }
        } else {
            old = endOffset..<endOffset
            if edns != nil {
                guard header.additionalCount < UInt16.max else { throw WireError(.badLength, "dns") }
                header.additionalCount += 1
            }
        }
        let after = endOffset - old.upperBound
        let length = old.lowerBound + newLength + after
        guard buffer.count >= length else { throw WireError(.noSpace, "dns") }
        let r = CheckedReader(bytes, layer: "dns")
        buffer.slice(0, old.lowerBound).copyMemory(from: try r.bytes(0, old.lowerBound))
        _ = try header.emit(into: buffer)
        if let edns { _ = try edns.emit(into: buffer.slice(old.lowerBound, newLength)) }
        if after > 0 { buffer.slice(old.lowerBound + newLength, after).copyMemory(from: try r.bytes(old.upperBound, after)) }
        return length
    }
}
