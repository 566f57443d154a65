// TCP header and options: captured-style Linux segments, checksums over both pseudo-headers,
// round trips, every truncation, bad data offsets and hostile options.
import Testing
@testable import Wire

private enum Samples {
    // 10.0.2.15:42738 → 93.184.216.34:80, SYN, options MSS 1460, SACK-permitted, TS, NOP, WS 7.
    static let linuxSYN: [UInt8] = [
        0xA6, 0xF2, 0x00, 0x50, 0x3B, 0x2A, 0x1C, 0x4D, 0x00, 0x00, 0x00, 0x00, 0xA0, 0x02, 0xFA, 0xF0,
        0xF4, 0xF4, 0x00, 0x00, 0x02, 0x04, 0x05, 0xB4, 0x04, 0x02, 0x08, 0x0A, 0x7B, 0x3A, 0x9C, 0x3C,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ]
    // The answer: 93.184.216.34:80 → 10.0.2.15:42738, SYN-ACK echoing the SYN's timestamp.
    static let linuxSYNACK: [UInt8] = [
        0x00, 0x50, 0xA6, 0xF2, 0x9D, 0x8E, 0x7F, 0x60, 0x3B, 0x2A, 0x1C, 0x4E, 0xA0, 0x12, 0xFE, 0x88,
        0x7D, 0xE4, 0x00, 0x00, 0x02, 0x04, 0x05, 0xB4, 0x04, 0x02, 0x08, 0x0A, 0x1A, 0x2B, 0x3C, 0x4D,
        0x7B, 0x3A, 0x9C, 0x3C, 0x01, 0x03, 0x03, 0x07,
    ]
    // 10.0.2.15 → 93.184.216.34, PSH-ACK with NOP NOP TS, NOP NOP SACK (3 blocks): a 60-byte
    // header, then 16 bytes of payload.
    static let dataWithSACK: [UInt8] = [
        0xA6, 0xF2, 0x00, 0x50, 0x3B, 0x2A, 0x1C, 0x4E, 0x9D, 0x8E, 0x7F, 0x61, 0xF0, 0x18, 0x01, 0xF6,
        0x40, 0x4F, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0A, 0x7B, 0x3A, 0x9D, 0x00, 0x1A, 0x2B, 0x3D, 0x00,
        0x01, 0x01, 0x05, 0x1A, 0x9D, 0x8E, 0x9F, 0x60, 0x9D, 0x8E, 0xA4, 0xB4, 0x9D, 0x8E, 0x8F, 0x60,
        0x9D, 0x8E, 0x94, 0xB4, 0x9D, 0x8E, 0x80, 0x60, 0x9D, 0x8E, 0x85, 0xB4, 0x47, 0x45, 0x54, 0x20,
        0x2F, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2F, 0x31, 0x2E, 0x31, 0x0D, 0x0A,
    ]
    // [fd00::2]:50000 → [fd00::1]:443, SYN with MSS 1440.
    static let linuxSYNv6: [UInt8] = [
        0xC3, 0x50, 0x01, 0xBB, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xA0, 0x02, 0xFD, 0x20,
        0x43, 0x77, 0x00, 0x00, 0x02, 0x04, 0x05, 0xA0, 0x04, 0x02, 0x08, 0x0A, 0x11, 0x22, 0x33, 0x44,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ]

    static let guest = IPv4Address(10, 0, 2, 15)
    static let server = IPv4Address(93, 184, 216, 34)
    static let guest6 = IPv6Address("fd00::2")!
    static let gateway6 = IPv6Address("fd00::1")!

    static let all = [linuxSYN, linuxSYNACK, dataWithSACK, linuxSYNv6]
}

private func parse(_ bytes: [UInt8]) throws -> TCPHeader {
    try bytes.withUnsafeBytes { try TCPHeader.parse($0) }
}

private func options(_ bytes: [UInt8]) throws -> TCPOptions {
    try bytes.withUnsafeBytes { try TCPOptions.parse($0) }
}

private func emit(_ header: TCPHeader) throws -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: header.emittedLength)
    let n = try out.withUnsafeMutableBytes { try header.emit(into: $0) }
    #expect(n == header.emittedLength)
    return out
}

@Suite struct TCPHeaderTests {
    @Test func linuxSYN() throws {
        let h = try parse(Samples.linuxSYN)
        #expect(h.sourcePort == 42738)
        #expect(h.destinationPort == 80)
        #expect(h.sequenceNumber == 0x3B2A_1C4D)
        #expect(h.acknowledgmentNumber == 0)
        #expect(h.flags == .syn)
        #expect(h.window == 64240)
        #expect(h.checksum == 0xF4F4)
        #expect(h.urgentPointer == 0)
        #expect(h.headerLength == 40)
        #expect(h.options.mss == 1460)
        #expect(h.options.sackPermitted)
        #expect(h.options.timestamp == TCPTimestamp(value: 0x7B3A_9C3C, echo: 0))
        #expect(h.options.windowScale == 7)
        #expect(h.options.windowShift == 7)
        #expect(h.options.sackBlocks.isEmpty)
        #expect(h.sequenceLength(payloadLength: 0) == 1)
        let ok = Samples.linuxSYN.withUnsafeBytes {
            TCPHeader.verifyChecksum($0, source: Samples.guest, destination: Samples.server)
        }
        #expect(ok)
    }

    @Test func linuxSYNACK() throws {
        let h = try parse(Samples.linuxSYNACK)
        #expect(h.flags == [.syn, .ack])
        #expect(h.flags.description == "S.")
        #expect(h.acknowledgmentNumber == 0x3B2A_1C4E)
        #expect(h.options.timestamp == TCPTimestamp(value: 0x1A2B_3C4D, echo: 0x7B3A_9C3C))
        let ok = Samples.linuxSYNACK.withUnsafeBytes {
            TCPHeader.verifyChecksum($0, source: Samples.server, destination: Samples.guest)
        }
        #expect(ok)
    }

    @Test func dataSegmentWithSACK() throws {
        let h = try parse(Samples.dataWithSACK)
        #expect(h.flags == [.psh, .ack])
        #expect(h.headerLength == 60)
        #expect(h.options.mss == nil)
        #expect(h.options.windowScale == nil)
        #expect(!h.options.sackPermitted)
        #expect(Array(h.options.sackBlocks) == [
            SACKBlock(start: 0x9D8E_9F60, end: 0x9D8E_A4B4),
            SACKBlock(start: 0x9D8E_8F60, end: 0x9D8E_94B4),
            SACKBlock(start: 0x9D8E_8060, end: 0x9D8E_85B4),
        ])
        let payload = Array(Samples.dataWithSACK[h.headerLength...])
        #expect(String(decoding: payload, as: UTF8.self) == "GET / HTTP/1.1\r\n")
        #expect(h.sequenceLength(payloadLength: payload.count) == 16)
        let ok = Samples.dataWithSACK.withUnsafeBytes {
            TCPHeader.verifyChecksum($0, source: Samples.guest, destination: Samples.server)
        }
        #expect(ok)
    }

    @Test func ipv6Checksum() throws {
        let h = try parse(Samples.linuxSYNv6)
        #expect(h.options.mss == 1440)
        #expect(h.destinationPort == 443)
        let right = Samples.linuxSYNv6.withUnsafeBytes {
            TCPHeader.verifyChecksum($0, source: Samples.guest6, destination: Samples.gateway6)
        }
        let swapped = Samples.linuxSYNv6.withUnsafeBytes {
            TCPHeader.verifyChecksum($0, source: Samples.gateway6, destination: IPv6Address("fd00::3")!)
        }
        #expect(right)
        #expect(!swapped)
    }

    /// A checksum that must fail: a flipped bit anywhere, or the wrong pseudo-header.
    @Test func checksumDetectsDamage() {
        for i in Samples.dataWithSACK.indices {
            var damaged = Samples.dataWithSACK
            damaged[i] ^= 0x04
            let ok = damaged.withUnsafeBytes {
                TCPHeader.verifyChecksum($0, source: Samples.guest, destination: Samples.server)
            }
            #expect(!ok, "bit flip at \(i)")
        }
        let wrongSource = Samples.linuxSYN.withUnsafeBytes {
            TCPHeader.verifyChecksum($0, source: IPv4Address(10, 0, 2, 16), destination: Samples.server)
        }
        #expect(!wrongSource)
        let short = Samples.linuxSYN.withUnsafeBytes {
            TCPHeader.verifyChecksum(UnsafeRawBufferPointer(rebasing: $0[0..<10]), source: IPv4Address.any, destination: IPv4Address.any)
        }
        #expect(!short)
    }

    /// emit(parse(bytes)) == bytes, and fillChecksum puts back the captured checksum.
    @Test(arguments: Samples.all)
    func reemitMatchesCapture(_ bytes: [UInt8]) throws {
        let h = try parse(bytes)
        #expect(try emit(h) == Array(bytes[..<h.headerLength]))
        var zeroed = h
        zeroed.checksum = 0
        var rebuilt = try emit(zeroed) + bytes[h.headerLength...]
        if bytes == Samples.linuxSYNv6 {
            rebuilt.withUnsafeMutableBytes {
                TCPHeader.fillChecksum($0, source: Samples.guest6, destination: Samples.gateway6)
            }
        } else {
            let (s, d) = bytes == Samples.linuxSYNACK ? (Samples.server, Samples.guest) : (Samples.guest, Samples.server)
            rebuilt.withUnsafeMutableBytes { TCPHeader.fillChecksum($0, source: s, destination: d) }
        }
        #expect(rebuilt == bytes)
    }

    static let built: [TCPHeader] = {
        var rst = TCPHeader(
            sourcePort: 80, destinationPort: 1, sequenceNumber: 0, acknowledgmentNumber: 0xFFFF_FFFF,
            flags: [.rst, .ack], window: 0)
        rst.checksum = 0xBEEF
        var urgent = TCPHeader(
            sourcePort: 1, destinationPort: 2, sequenceNumber: 3, acknowledgmentNumber: 4,
            flags: [.urg, .ack, .ece, .cwr, .fin], window: 5)
        urgent.urgentPointer = 7
        return [
            rst, urgent,
            TCPHeader(
                sourcePort: 443, destinationPort: 50000, sequenceNumber: 1, acknowledgmentNumber: 2,
                flags: [.syn, .ack], window: 65535,
                options: TCPOptions(mss: 1460, windowScale: 14, sackPermitted: true)),
            TCPHeader(
                sourcePort: 443, destinationPort: 50000, sequenceNumber: 1, acknowledgmentNumber: 2,
                flags: .syn, window: 65535, options: TCPOptions(mss: 536, sackPermitted: true)),
            TCPHeader(
                sourcePort: 443, destinationPort: 50000, sequenceNumber: 1, acknowledgmentNumber: 2,
                flags: .ack, window: 100,
                options: TCPOptions(
                    timestamp: TCPTimestamp(value: 1, echo: 2),
                    sackBlocks: SACKBlocks([SACKBlock(start: 10, end: 20), SACKBlock(start: 30, end: 40)]))),
            TCPHeader(
                sourcePort: 9, destinationPort: 9, sequenceNumber: 9, acknowledgmentNumber: 9, flags: .ack,
                window: 9,
                options: TCPOptions(
                    sackBlocks: SACKBlocks((0..<4).map { SACKBlock(start: $0, end: $0 + 1) }))),
        ]
    }()

    /// parse(emit(x)) == x for built headers.
    @Test(arguments: built)
    func roundTrip(_ header: TCPHeader) throws {
        let bytes = try emit(header)
        #expect(bytes.count % 4 == 0)
        #expect(try parse(bytes) == header)
    }

    /// Every prefix shorter than the header throws; the header with any part of its payload parses.
    @Test(arguments: Samples.all)
    func everyTruncationThrows(_ bytes: [UInt8]) throws {
        let headerLength = try parse(bytes).headerLength
        for n in 0..<headerLength {
            #expect(throws: WireError.self, "length \(n)") { try parse(Array(bytes[..<n])) }
        }
        for n in headerLength...bytes.count {
            #expect(try parse(Array(bytes[..<n])).headerLength == headerLength)
        }
    }

    @Test(arguments: 0..<5)
    func dataOffsetBelowFive(_ words: Int) {
        var bytes = Samples.linuxSYN
        bytes[12] = UInt8(words << 4)
        expectError(.badLength) { _ = try parse(bytes) }
    }

    @Test func dataOffsetPastTheEnd() {
        var bytes = Samples.linuxSYN
        bytes[12] = 0xB0  // 44 bytes in a 40-byte segment
        expectError(.truncated) { _ = try parse(bytes) }
        bytes[12] = 0xF0
        expectError(.truncated) { _ = try parse(bytes) }
        expectError(.truncated) { _ = try parse(Array(Samples.linuxSYN[..<19])) }
    }

    /// Reserved bits (including the old NS bit) are ignored on parse and written as zero.
    @Test func reservedBitsIgnored() throws {
        var bytes = Samples.linuxSYN
        bytes[12] |= 0x0F
        let h = try parse(bytes)
        #expect(h.headerLength == 40)
        #expect(try emit(h) == Samples.linuxSYN)
    }

    @Test func emitNeedsRoom() throws {
        let h = try parse(Samples.linuxSYN)
        var small = [UInt8](repeating: 0, count: 39)
        let error = #expect(throws: WireError.self) {
            _ = try small.withUnsafeMutableBytes { try h.emit(into: $0) }
        }
        #expect(error?.code == .noSpace)
    }

    /// A segment too short for a header is left alone by fillChecksum.
    @Test func fillChecksumIgnoresShortBuffer() {
        var bytes: [UInt8] = [1, 2, 3]
        bytes.withUnsafeMutableBytes { TCPHeader.fillChecksum($0, source: IPv4Address.any, destination: IPv4Address.any) }
        #expect(bytes == [1, 2, 3])
    }

    /// Random input never traps: it parses or throws.
    @Test func randomInputNeverTraps() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let n = Int.random(in: 0...80, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if n > 12, Bool.random(using: &rng) { bytes[12] = UInt8(min(15, n / 4)) << 4 }
            if let h = try? parse(bytes) {
                #expect(h.headerLength <= n)
                #expect(h.options.encodedLength <= 40)
            }
        }
    }
}

@Suite struct TCPOptionsTests {
    static let hostile: [(String, [UInt8], WireError.Code)] = [
        ("length 0", [0x08, 0x00, 0x01, 0x01], .badOption),
        ("length 1", [0xFE, 0x01, 0x01, 0x01], .badOption),
        ("length past the end", [0x01, 0x01, 0xFE, 0x08, 0x00, 0x00], .badOption),
        ("kind with no length octet", [0x01, 0x01, 0x01, 0x02], .badOption),
        ("MSS length 3", [0x02, 0x03, 0x05, 0x01], .badOption),
        ("MSS length 5", [0x02, 0x05, 0x05, 0xB4, 0x00, 0x01, 0x01, 0x01], .badOption),
        ("window scale length 4", [0x03, 0x04, 0x07, 0x00], .badOption),
        ("SACK-permitted length 3", [0x04, 0x03, 0x00, 0x01], .badOption),
        ("timestamps length 8", [0x08, 0x08, 0, 0, 0, 1, 0, 0], .badOption),
        ("SACK length 2", [0x05, 0x02, 0x01, 0x01], .badOption),
        ("SACK length 9", [0x05, 0x09, 0, 0, 0, 1, 0, 0, 0, 0x01, 0x01, 0x01], .badOption),
        ("SACK length 11", [0x05, 0x0B, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0x01], .badOption),
        // 5 blocks: 42 bytes, more than a header can hold.
        ("5 SACK blocks", [0x05, 42] + [UInt8](repeating: 0, count: 40), .badLength),
        ("5 SACK blocks claimed in 40 bytes", [0x05, 42] + [UInt8](repeating: 0, count: 38), .badOption),
        ("area over 40 bytes", [UInt8](repeating: 0x01, count: 44), .badLength),
    ]

    @Test(arguments: hostile)
    func hostileOptionsThrow(_ name: String, _ area: [UInt8], _ code: WireError.Code) {
        expectError(code) { _ = try options(area) }
    }

    /// The same hostile areas inside a full header are rejected too.
    @Test(arguments: hostile.filter { $0.1.count <= 40 && $0.1.count % 4 == 0 })
    func hostileOptionsInHeader(_ name: String, _ area: [UInt8], _ code: WireError.Code) {
        var bytes = Array(Samples.linuxSYN[..<20]) + area
        bytes[12] = UInt8(bytes.count / 4) << 4
        expectError(code) { _ = try parse(bytes) }
    }

    @Test func unknownKindsSkipped() throws {
        // An MD5 signature (kind 19, 18 bytes) and a TFO cookie (kind 34) around an MSS.
        let area: [UInt8] = [19, 18] + [UInt8](repeating: 0xAB, count: 16) + [0x02, 0x04, 0x05, 0xB4]
            + [34, 6, 1, 2, 3, 4] + [0x01, 0x00]
        let o = try options(area)
        #expect(o == TCPOptions(mss: 1460))
    }

    /// End of list stops parsing; what follows it is padding, even if it looks malformed.
    @Test func endOfListStops() throws {
        let o = try options([0x03, 0x03, 0x02, 0x00, 0xFE, 0x00, 0x02, 0x03])
        #expect(o == TCPOptions(windowScale: 2))
        #expect(try options([]) == TCPOptions())
        #expect(try options([0x00, 0x00, 0x00, 0x00]) == TCPOptions())
    }

    @Test func repeatedKindsLastWins() throws {
        let area: [UInt8] = [0x02, 0x04, 0x05, 0xB4, 0x02, 0x04, 0x02, 0x18, 0x03, 0x03, 0x01, 0x03, 0x03, 0x09,
                             0x05, 0x0A, 0, 0, 0, 1, 0, 0, 0, 2, 0x05, 0x0A, 0, 0, 0, 3, 0, 0, 0, 4]
        let o = try options(area)
        #expect(o.mss == 536)
        #expect(o.windowScale == 9)
        #expect(Array(o.sackBlocks) == [SACKBlock(start: 3, end: 4)])
    }

    @Test func windowShiftClamped() throws {
        let o = try options([0x01, 0x03, 0x03, 0x1E])
        #expect(o.windowScale == 30)
        #expect(o.windowShift == 14)
    }

    /// Every combination emits a multiple of 4, at most 40 bytes, and parses back (with the SACK
    /// list cut to what fits).
    @Test func everyCombinationFits() throws {
        for mask in 0..<16 {
            for blocks in 0...4 {
                var o = TCPOptions()
                if mask & 1 != 0 { o.mss = 1460 }
                if mask & 2 != 0 { o.windowScale = 7 }
                if mask & 4 != 0 { o.sackPermitted = true }
                if mask & 8 != 0 { o.timestamp = TCPTimestamp(value: 0xDEAD_BEEF, echo: 0x0102_0304) }
                for b in 0..<blocks { o.sackBlocks.append(SACKBlock(start: UInt32(b) * 100, end: UInt32(b) * 100 + 50)) }
                let length = o.encodedLength
                #expect(length % 4 == 0 && length <= 40, "mask \(mask) blocks \(blocks)")
                var area = [UInt8](repeating: 0xEE, count: length)
                let written = try area.withUnsafeMutableBytes { try o.emit(into: $0) }
                #expect(written == length)
                var expected = o
                expected.sackBlocks = SACKBlocks(o.sackBlocks.prefix(o.emittedSACKBlockCount))
                #expect(try options(area) == expected, "mask \(mask) blocks \(blocks)")
            }
        }
    }

    /// RFC 2018 §3: with timestamps, three blocks fit; without, four; the first ones are kept.
    @Test func sackBlocksBoundedOnEmit() {
        let four = SACKBlocks((1...4).map { SACKBlock(start: $0, end: $0 + 1) })
        #expect(TCPOptions(sackBlocks: four).emittedSACKBlockCount == 4)
        #expect(TCPOptions(sackBlocks: four).encodedLength == 36)
        let withTS = TCPOptions(timestamp: TCPTimestamp(value: 1, echo: 2), sackBlocks: four)
        #expect(withTS.emittedSACKBlockCount == 3)
        #expect(withTS.encodedLength == 40)
        let everything = TCPOptions(
            mss: 1, windowScale: 1, sackPermitted: true, timestamp: TCPTimestamp(value: 1, echo: 2), sackBlocks: four)
        #expect(everything.emittedSACKBlockCount == 2)
        #expect(everything.encodedLength == 40)
    }

    @Test func emitNeedsRoom() {
        let o = TCPOptions(mss: 1460, sackPermitted: true)
        var small = [UInt8](repeating: 0, count: 7)
        expectError(.noSpace) { _ = try small.withUnsafeMutableBytes { try o.emit(into: $0) } }
    }

    @Test func sackBlocksCapacity() {
        var blocks = SACKBlocks()
        for i in 0..<4 {
            let added = blocks.append(SACKBlock(start: UInt32(i), end: UInt32(i) + 1))
            #expect(added)
        }
        #expect(blocks.isFull)
        let fifth = blocks.append(SACKBlock(start: 9, end: 10))
        #expect(!fifth)
        #expect(blocks.count == 4)
        #expect(blocks.last == SACKBlock(start: 3, end: 4))
        // Stale slots do not count towards equality.
        var shorter = blocks
        shorter.removeAll()
        shorter.append(SACKBlock(start: 0, end: 1))
        #expect(shorter == SACKBlocks([SACKBlock(start: 0, end: 1)]))
        #expect(shorter.hashValue == SACKBlocks([SACKBlock(start: 0, end: 1)]).hashValue)
        #expect(SACKBlocks((0..<9).map { SACKBlock(start: $0, end: $0) }).count == 4)
    }

    @Test func flagsDescription() {
        #expect(TCPFlags.syn.description == "S")
        #expect(TCPFlags([.fin, .ack]).description == "F.")
        #expect(TCPFlags([.rst]).description == "R")
        #expect(TCPFlags().description == "none")
        #expect(TCPFlags(rawValue: 0xFF).description == "FSRPUEW.")
    }
}
