// Domain names on the wire (RFC 1035 §3.1, §4.1.4): validation through compression pointers,
// comparison, and extraction to text or uncompressed wire form, without allocating to parse.

/// A domain name inside a DNS message (or any buffer whose offsets compression pointers count
/// from, such as an RFC 3397 domain search option), kept as the offset where it starts.
///
/// A `DNSName` borrows the buffer it was parsed from: it is valid only while that buffer is.
/// Equality and hashing are by name, ignoring ASCII case (RFC 4343 §3), not by position.
public struct DNSName: Hashable, CustomStringConvertible {
    /// The buffer pointers are relative to (the whole message).
    public let message: UnsafeRawBufferPointer
    /// Where the name starts in `message`.
    public let offset: Int
    /// Length of the name written out without compression, root byte included (at most 255).
    public let wireLength: Int
    /// Number of labels, the root not counted.
    public let labelCount: Int

    /// RFC 1035 §2.3.4: a label holds at most 63 octets.
    public static let maxLabelLength = 63
    /// RFC 1035 §2.3.4: a name holds at most 255 octets in wire form.
    public static let maxWireLength = 255
    /// A name of at most 255 octets has at most 127 labels, so a longer chain of pointers than
    /// this cannot be a real name. Targets must also strictly decrease (see `parse`), which
    /// alone rules out loops; the limit bounds the work a hostile message can cause.
    public static let maxPointerHops = 127

    init(message: UnsafeRawBufferPointer, offset: Int, wireLength: Int, labelCount: Int) {
        self.message = message
        self.offset = offset
        self.wireLength = wireLength
        self.labelCount = labelCount
    }

    /// Validates the name that starts at `offset` and returns it with the offset just past it
    /// where it was written (after its first compression pointer, or after its root byte).
    ///
    /// A compression pointer must point strictly before the start of the stretch of labels it
    /// ends (the name's own start, or the target of the previous pointer): targets then
    /// strictly decrease, so a loop is impossible, and a self-pointer, a forward pointer or
    /// two pointers pointing at each other throw `.compressionLoop`. Label types 01 and 10
    /// (RFC 6891 §5 retired the extended ones) and any label over 63 octets throw `.malformed`,
    /// as does a name longer than 255 octets.
    ///
    /// A pointer names a prior occurrence of a name (RFC 1035 §4.1.4), which was written out
    /// whole before the stretch that points to it: so the stretch a pointer leads to must end
    /// before that stretch begins, and it may not start before `namesStart` (a DNS message's
    /// names start after its header). Either throws `.malformed`. A name then reads no byte
    /// past its own end and none of the header: editing the header or a later record (as a
    /// relay does with the ID and the OPT record) cannot change it.
    public static func parse(
        _ message: UnsafeRawBufferPointer, at offset: Int, namesStart: Int = 0
    ) throws(WireError) -> (name: DNSName, end: Int) {
        guard offset >= 0 else { throw WireError(.badLength, "dns") }
        let r = CheckedReader(message, layer: "dns")
        var pos = offset
        var lowest = offset
        // Where the current stretch must end: the name's own labels run on to the message's
        // end, a pointed-to stretch only up to the start of the stretch that pointed to it.
        var limit = message.count
        func overrun(_ end: Int) -> WireError { WireError(end > message.count ? .truncated : .malformed, "dns") }
        var hops = 0
        var length = 0
        var labels = 0
        var end = -1
        while true {
            guard pos < limit else { throw overrun(pos + 1) }
            let b = try r.u8(pos)
            switch b & 0xC0 {
            case 0x00:
                if b == 0 {
                    length += 1
                    if end < 0 { end = pos + 1 }
                    return (DNSName(message: message, offset: offset, wireLength: length, labelCount: labels), end)
                }
                let n = Int(b)
                guard pos + 1 + n <= limit else { throw overrun(pos + 1 + n) }
                length += 1 + n
                // Leave room for the root byte.
                guard length < maxWireLength else { throw WireError(.malformed, "dns") }
                labels += 1
                pos += 1 + n
            case 0xC0:
                guard pos + 2 <= limit else { throw overrun(pos + 2) }
                if end < 0 { end = pos + 2 }
                let target = Int(try r.be16(pos) & 0x3FFF)
                hops += 1
                guard target < lowest, hops <= maxPointerHops else { throw WireError(.compressionLoop, "dns") }
                guard target >= namesStart else { throw WireError(.malformed, "dns") }
                pos = target
                limit = lowest
                lowest = target
            default:
                throw WireError(.malformed, "dns")
            }
        }
    }

    /// The root name (a single zero byte) is the empty name.
    public var isRoot: Bool { labelCount == 0 }

    /// The labels in order, each as a slice of the message. Trusts the validation `parse` did.
    public var labels: Labels { Labels(message: message, position: offset, remaining: labelCount) }

    public struct Labels: Sequence, IteratorProtocol {
        let message: UnsafeRawBufferPointer
        var position: Int
        var remaining: Int

        public mutating func next() -> UnsafeRawBufferPointer? {
            // `remaining` and the checked reads keep this safe even on a name that was not
            // produced by `parse`; on a validated one they never fail.
            let r = CheckedReader(message, layer: "dns")
            while remaining > 0, let b = try? r.u8(position) {
                if b & 0xC0 == 0xC0 {
                    guard let pointer = try? r.be16(position) else { return nil }
                    position = Int(pointer & 0x3FFF)
                    continue
                }
                let n = Int(b & 0x3F)
                guard n > 0, let label = try? r.bytes(position + 1, n) else { return nil }
                position += 1 + n
                remaining -= 1
                return label
            }
            return nil
        }
    }

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    /// Name equality ignoring ASCII case, across messages.
    public static func == (a: DNSName, b: DNSName) -> Bool {
        guard a.labelCount == b.labelCount, a.wireLength == b.wireLength else { return false }
        var ia = a.labels
        var ib = b.labels
        while let la = ia.next() {
            guard let lb = ib.next(), la.count == lb.count else { return false }
            for (x, y) in zip(la, lb) where lower(x) != lower(y) { return false }
        }
        return ib.next() == nil
    }

    public func hash(into hasher: inout Hasher) {
        for label in labels {
            hasher.combine(UInt8(label.count))
            for b in label { hasher.combine(DNSName.lower(b)) }
        }
    }

    /// True when this name equals `text` (presentation form: "www.example.com", a trailing dot
    /// optional, `\.` `\\` `\DDD` escapes as in RFC 1035 §5.1), ignoring ASCII case. Malformed
    /// text matches nothing. Encodes the text on the stack; no heap allocation.
    public func matches(_ text: String) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: DNSName.maxWireLength + 1, alignment: 1) { scratch in
            guard let n = try? DNSName.encode(text, into: scratch, at: 0) else { return false }
            let wire = UnsafeRawBufferPointer(rebasing: scratch[0..<n])
            guard let other = try? DNSName.parse(wire, at: 0) else { return false }
            return other.name == self
        }
    }

    /// Writes the name uncompressed (labels and root byte) at the start of `buffer`; returns the
    /// bytes written (`wireLength`).
    public func copyWire(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard buffer.count >= wireLength else { throw WireError(.noSpace, "dns") }
        var pos = 0
        for label in labels {
            buffer.setU8(UInt8(label.count), pos)
            for (i, b) in label.enumerated() { buffer.setU8(b, pos + 1 + i) }
            pos += 1 + label.count
        }
        buffer.setU8(0, pos)
        return pos + 1
    }

    /// Writes the presentation form ("www.example.com", no trailing dot; "." for the root) at
    /// the start of `buffer`, escaping dots, backslashes and non-printable bytes
    /// (RFC 1035 §5.1, RFC 4343 §2.1). Returns the bytes written.
    public func copyText(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        var pos = 0
        func put(_ b: UInt8) throws(WireError) {
            guard pos < buffer.count else { throw WireError(.noSpace, "dns") }
            buffer.setU8(b, pos)
            pos += 1
        }
        if isRoot {
            try put(0x2E)
            return pos
        }
        var first = true
        for label in labels {
            if !first { try put(0x2E) }
            first = false
            for b in label {
                if b == 0x2E || b == 0x5C {
                    try put(0x5C)
                    try put(b)
                } else if b < 0x21 || b > 0x7E {
                    try put(0x5C)
                    try put(0x30 + b / 100)
                    try put(0x30 + b / 10 % 10)
                    try put(0x30 + b % 10)
                } else {
                    try put(b)
                }
            }
        }
        return pos
    }

    /// The presentation form as a String. Allocates: for logs, tests and the slow path.
    public var text: String {
        // Four bytes per octet is the worst case (\DDD).
        let capacity = wireLength * 4 + 1
        return String(unsafeUninitializedCapacity: capacity) { out in
            (try? copyText(into: UnsafeMutableRawBufferPointer(out))) ?? 0
        }
    }

    public var description: String { text }

    /// Writes the text name uncompressed into `buffer` at `offset`; returns the offset past it.
    /// The text is presentation form as `matches` takes it; "" and "." are the root. An empty
    /// label, a label over 63 octets or a name over 255 octets throws `.malformed`; a buffer too
    /// small throws `.noSpace`.
    public static func encode(_ text: String, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(WireError) -> Int {
        var utf8 = text.utf8.makeIterator()
        var labelStart = offset
        var pos = offset + 1
        var labelLength = 0
        var pending: UInt8? = utf8.next()
        // "." alone is the root, as is "".
        if pending == 0x2E {
            let after = utf8.next()
            if after == nil { pending = nil } else { throw WireError(.malformed, "dns") }
        }
        func put(_ b: UInt8) throws(WireError) {
            guard labelLength < maxLabelLength else { throw WireError(.malformed, "dns") }
            guard pos < buffer.count else { throw WireError(.noSpace, "dns") }
            guard pos - offset < maxWireLength - 1 else { throw WireError(.malformed, "dns") }
            buffer.setU8(b, pos)
            pos += 1
            labelLength += 1
        }
        while let c = pending {
            pending = utf8.next()
            switch c {
            case 0x2E:
                guard labelLength > 0 else { throw WireError(.malformed, "dns") }
                buffer.setU8(UInt8(labelLength), labelStart)
                labelStart = pos
                labelLength = 0
                // A trailing dot ends the name; otherwise room for the next length byte.
                if pending != nil {
                    guard pos < buffer.count else { throw WireError(.noSpace, "dns") }
                    pos += 1
                }
            case 0x5C:
                guard let e = pending else { throw WireError(.malformed, "dns") }
                pending = utf8.next()
                if e >= 0x30 && e <= 0x39 {
                    guard let d2 = pending, d2 >= 0x30, d2 <= 0x39 else { throw WireError(.malformed, "dns") }
                    let d3 = utf8.next()
                    guard let d3, d3 >= 0x30, d3 <= 0x39 else { throw WireError(.malformed, "dns") }
                    let v = Int(e - 0x30) * 100 + Int(d2 - 0x30) * 10 + Int(d3 - 0x30)
                    guard v <= 255 else { throw WireError(.malformed, "dns") }
                    pending = utf8.next()
                    try put(UInt8(v))
                } else {
                    try put(e)
                }
            default:
                try put(c)
            }
        }
        if labelLength > 0 {
            buffer.setU8(UInt8(labelLength), labelStart)
            labelStart = pos
        }
        // labelStart is now where the root byte goes.
        guard labelStart < buffer.count else { throw WireError(.noSpace, "dns") }
        buffer.setU8(0, labelStart)
        return labelStart + 1
    }
}
