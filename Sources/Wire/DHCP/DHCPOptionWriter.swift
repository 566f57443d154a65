// Appending DHCP options to a message being built (RFC 2132 §2 encoding), splitting any longer
// than 255 bytes into consecutive instances as RFC 3396 §7 says.

/// Writes options into a buffer from a position up to a limit; allocates nothing.
public struct DHCPOptionWriter {
    public let buffer: UnsafeMutableRawBufferPointer
    /// Nothing is written at or past this offset.
    public let limit: Int
    /// Where the next option goes.
    public private(set) var position: Int

    public init(buffer: UnsafeMutableRawBufferPointer, at position: Int, limit: Int? = nil) {
        self.buffer = buffer
        self.limit = min(limit ?? buffer.count, buffer.count)
        self.position = position
    }

    /// Room for `length` bytes of data written at `position + 2`.
    private func reserve(_ length: Int) throws(WireError) -> Int {
        guard position + 2 + length <= limit else { throw WireError(.noSpace, "dhcp") }
        return position + 2
    }

    /// Lays out `length` bytes of data already written at `position + 2` as one option, or as
    /// several of at most 255 bytes each: the data moves up to make room for the extra headers.
    private mutating func finish(_ code: DHCPOptionCode, length: Int) throws(WireError) {
        let pieces = max(1, (length + 254) / 255)
        let extra = 2 * (pieces - 1)
        let start = position + 2
        guard start + length + extra <= limit else { throw WireError(.noSpace, "dhcp") }
        if extra > 0 {
            var i = length
            while i > 0 {
                i -= 1
                buffer.setU8(buffer.load(fromByteOffset: start + i, as: UInt8.self), start + extra + i)
            }
        }
        // Piece k's data lands at or before where it now sits, so copying forward is safe.
        for k in 0..<pieces {
            let header = position + k * 257
            let count = min(255, length - k * 255)
            let source = start + extra + k * 255
            buffer.setU8(code.rawValue, header)
            buffer.setU8(UInt8(count), header + 1)
            if source != header + 2 {
                for i in 0..<count { buffer.setU8(buffer.load(fromByteOffset: source + i, as: UInt8.self), header + 2 + i) }
            }
        }
        position += length + 2 * pieces
    }

    public mutating func append(_ code: DHCPOptionCode, bytes: UnsafeRawBufferPointer) throws(WireError) {
        let start = try reserve(bytes.count)
        for i in 0..<bytes.count { buffer.setU8(bytes[i], start + i) }
        try finish(code, length: bytes.count)
    }

    public mutating func append(_ code: DHCPOptionCode, byte: UInt8) throws(WireError) {
        buffer.setU8(byte, try reserve(1))
        try finish(code, length: 1)
    }

    public mutating func append(_ code: DHCPOptionCode, u16: UInt16) throws(WireError) {
        buffer.setBE16(u16, try reserve(2))
        try finish(code, length: 2)
    }

    public mutating func append(_ code: DHCPOptionCode, u32: UInt32) throws(WireError) {
        buffer.setBE32(u32, try reserve(4))
        try finish(code, length: 4)
    }

    public mutating func append(_ code: DHCPOptionCode, address: IPv4Address) throws(WireError) {
        try append(code, u32: address.raw)
    }

    public mutating func append(_ code: DHCPOptionCode, addresses: [IPv4Address]) throws(WireError) {
        let start = try reserve(addresses.count * 4)
        for (i, a) in addresses.enumerated() { buffer.setIPv4(a, start + i * 4) }
        try finish(code, length: addresses.count * 4)
    }

    /// Text as its UTF-8 bytes (host name, domain name, message).
    public mutating func append(_ code: DHCPOptionCode, text: String) throws(WireError) {
        let length = text.utf8.count
        let start = try reserve(length)
        var i = start
        for b in text.utf8 {
            buffer.setU8(b, i)
            i += 1
        }
        try finish(code, length: length)
    }

    /// Option 119, RFC 3397 encoded with compression; nothing for an empty list.
    public mutating func appendDomainSearch(_ names: [String]) throws(WireError) {
        guard !names.isEmpty else { return }
        let start = try reserve(0)
        let length = try DHCPDomainSearchList.emit(names, into: UnsafeMutableRawBufferPointer(rebasing: buffer[start..<limit]))
        try finish(.domainSearch, length: length)
    }

    /// The end option (255).
    public mutating func appendEnd() throws(WireError) {
        guard position < limit else { throw WireError(.noSpace, "dhcp") }
        buffer.setU8(DHCPOptionCode.end.rawValue, position)
        position += 1
    }

    /// Pad bytes (0) up to `length` (as far as the limit allows).
    public mutating func pad(to length: Int) {
        while position < min(length, limit) {
            buffer.setU8(0, position)
            position += 1
        }
    }
}
