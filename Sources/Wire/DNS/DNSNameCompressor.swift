// Writing names with compression pointers (RFC 1035 §4.1.4): the DNS response builder and the
// DHCP domain search option (RFC 3397 §2) both point new names at suffixes already written.

/// Remembers where labels of names already in a buffer start, and writes new names with a
/// pointer to the longest suffix it finds among them. Fixed storage: once full, names are
/// still written correctly, only less compressed.
struct DNSNameCompressor {
    static let capacity = 32
    /// Offsets of label starts, relative to the buffer start; all below 0x4000 (pointer range).
    private var offsets: (
        UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16,
        UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16,
        UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16,
        UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16
    ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    private(set) var count = 0

    init() {}

    func offset(_ i: Int) -> Int {
        withUnsafeBytes(of: offsets) { Int($0.load(fromByteOffset: i * 2, as: UInt16.self)) }
    }

    private mutating func add(_ offset: Int) {
        guard count < DNSNameCompressor.capacity, offset < 0x4000 else { return }
        let i = count
        withUnsafeMutableBytes(of: &offsets) { $0.storeBytes(of: UInt16(offset), toByteOffset: i * 2, as: UInt16.self) }
        count += 1
    }

    /// Forgets names at or after `position` (the builder dropped them).
    mutating func rewind(to position: Int) {
        while count > 0 && offset(count - 1) >= position { count -= 1 }
    }

    /// Records every label start of the name at `offset` that is written out in place (up to
    /// its first pointer: what follows a pointer is already recorded or out of reach).
    mutating func register(nameAt offset: Int, in buffer: UnsafeRawBufferPointer) {
        var pos = offset
        while pos < buffer.count {
            let b = buffer.uncheckedU8(pos)  // bound: the loop condition
            guard b != 0, b & 0xC0 == 0 else { return }
            add(pos)
            pos += 1 + Int(b)
        }
    }

    /// Writes `text` at `position`, ending in a pointer to the longest suffix already written,
    /// and records its new labels. Writes nothing at or past `limit` and nothing past the
    /// returned offset (the name is first encoded on the stack).
    mutating func write(_ text: String, at position: Int, in buffer: UnsafeMutableRawBufferPointer, limit: Int) throws(WireError) -> Int {
        let bound = min(limit, buffer.count)
        guard position >= 0 && position <= bound else { throw WireError(.noSpace, "dns") }
        return try withUnsafeTemporaryAllocation(byteCount: DNSName.maxWireLength + 1, alignment: 1) { (scratch) throws(WireError) -> Int in
            let length = try DNSName.encode(text, into: scratch, at: 0)
            let wire = UnsafeRawBufferPointer(rebasing: scratch[0..<length])
            let written = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<bound])
            // The longest suffix found wins: try from the first label on.
            var keep = length
            var target: Int?
            var labelStart = 0
            // bound: `wire` is the name encode just wrote, a chain of labels ending in a zero byte.
            while wire[labelStart] != 0 {
                if let t = match(suffix: wire, at: labelStart, in: written) {
                    keep = labelStart
                    target = t
                    break
                }
                labelStart += 1 + Int(wire[labelStart])
            }
            let total = keep + (target == nil ? 0 : 2)
            guard position + total <= bound else { throw WireError(.noSpace, "dns") }
            for i in 0..<keep { buffer.setU8(wire[i], position + i) }
            if let target { buffer.setBE16(0xC000 | UInt16(target), position + keep) }
            register(nameAt: position, in: UnsafeRawBufferPointer(buffer))
            return position + total
        }
    }

    /// The recorded offset whose name equals the suffix of `wire` that starts at `start`.
    private func match(suffix wire: UnsafeRawBufferPointer, at start: Int, in buffer: UnsafeRawBufferPointer) -> Int? {
        guard let suffix = try? DNSName.parse(wire, at: start).name else { return nil }
        for i in 0..<count {
            guard let name = try? DNSName.parse(buffer, at: offset(i)).name else { continue }
            if name == suffix { return offset(i) }
        }
        return nil
    }
}
