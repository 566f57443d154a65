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
            let b = buffer.u8(pos)
            guard b != 0, b & 0xC0 == 0 else { return }
            add(pos)
            pos += 1 + Int(b)
        }
    }

    /// Writes `text` at `position`, ending in a pointer to the longest suffix already written,
    /// and records its new labels. Writes no further than `limit`. Returns the offset past it.
    mutating func write(_ text: String, at position: Int, in buffer: UnsafeMutableRawBufferPointer, limit: Int) throws(WireError) -> Int {
        let bounded = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(limit, buffer.count)])
        let end = try DNSName.encode(text, into: bounded, at: position)
        let view = UnsafeRawBufferPointer(bounded)
        var labelStart = position
        while labelStart < end, view.u8(labelStart) != 0 {
            if let target = match(suffixAt: labelStart, in: view) {
                bounded.setBE16(0xC000 | UInt16(target), labelStart)
                register(nameAt: position, in: view)
                return labelStart + 2
            }
            labelStart += 1 + Int(view.u8(labelStart))
        }
        register(nameAt: position, in: view)
        return end
    }

    /// The recorded offset whose name equals the uncompressed suffix at `start`.
    private func match(suffixAt start: Int, in buffer: UnsafeRawBufferPointer) -> Int? {
        guard let suffix = try? DNSName.parse(buffer, at: start).name else { return nil }
        for i in 0..<count {
            let candidate = offset(i)
            guard candidate < start, let name = try? DNSName.parse(buffer, at: candidate).name else { continue }
            if name == suffix { return candidate }
        }
        return nil
    }
}
