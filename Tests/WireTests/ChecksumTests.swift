// Checksum vectors: RFC 1071's worked example, odd lengths, pseudo-headers, incremental updates.
import Testing
@testable import Wire

@Suite struct ChecksumTests {
    @Test func rfc1071Example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2 (folded).
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        var c = InternetChecksum()
        bytes.withUnsafeBytes { c.add(bytes: $0) }
        #expect(c.folded == 0xDDF2)
        #expect(c.value == 0x220D)
    }

    /// A known IPv4 header (from a capture): its stored checksum 0xb861 verifies.
    @Test func ipv4HeaderVector() {
        let h: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xB8, 0x61,
                          0xC0, 0xA8, 0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7]
        var c = InternetChecksum()
        h.withUnsafeBytes { c.add(bytes: $0) }
        #expect(c.verifies)
        var zeroed = h
        zeroed[10] = 0; zeroed[11] = 0
        #expect(zeroed.withUnsafeBytes { InternetChecksum.of($0) } == 0xB861)
    }

    /// The word-at-a-time path agrees with a byte-pair reference for every length and alignment.
    @Test func matchesReference() {
        var rng = SystemRandomNumberGenerator()
        for length in 0..<200 {
            let bytes = (0..<(length + 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            for skew in 0..<3 {
                let slice = Array(bytes[skew..<(skew + length)])
                var ref: UInt32 = 0
                var i = 0
                while i + 1 < slice.count { ref += UInt32(slice[i]) << 8 | UInt32(slice[i + 1]); i += 2 }
                if i < slice.count { ref += UInt32(slice[i]) << 8 }
                while ref >> 16 != 0 { ref = (ref & 0xFFFF) + (ref >> 16) }
                let got = bytes.withUnsafeBytes { InternetChecksum.of(UnsafeRawBufferPointer(rebasing: $0[skew..<(skew + length)])) }
                #expect(got == ~UInt16(ref), "length \(length) skew \(skew)")
            }
        }
    }

    @Test func incrementalMatchesFull() {
        var h: [UInt8] = [0x45, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00,
                          10, 0, 2, 15, 10, 0, 2, 2]
        let c0 = h.withUnsafeBytes { InternetChecksum.of($0) }
        // Decrement TTL: the word at offset 8 changes from 0x4001 to 0x3f01.
        h[8] = 0x3F
        let full = h.withUnsafeBytes { InternetChecksum.of($0) }
        #expect(InternetChecksum.update(checksum: c0, old: 0x4001, new: 0x3F01) == full)
        // Rewrite the destination address.
        let c1 = full
        h[16] = 127; h[17] = 0; h[18] = 0; h[19] = 1
        let full2 = h.withUnsafeBytes { InternetChecksum.of($0) }
        #expect(InternetChecksum.update32(checksum: c1, old: IPv4Address(10, 0, 2, 2).raw, new: IPv4Address.loopback.raw) == full2)
    }

    @Test func partialCompletion() throws {
        // A UDP datagram 10.0.0.1:1000 -> 10.0.0.2:2000 with 4 payload bytes; the field holds
        // the pseudo-header sum as virtio-net's NEEDS_CSUM describes.
        var udp: [UInt8] = [0x03, 0xE8, 0x07, 0xD0, 0x00, 0x0C, 0x00, 0x00, 1, 2, 3, 4]
        let pseudo = InternetChecksum.pseudoHeader(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2), protocol: 17, length: 12)
        udp[6] = UInt8(pseudo.folded >> 8); udp[7] = UInt8(pseudo.folded & 0xFF)
        try udp.withUnsafeMutableBytes { try InternetChecksum.completePartial($0, start: 0, offset: 6) }
        var verify = pseudo
        udp.withUnsafeBytes { verify.add(bytes: $0) }
        #expect(verify.verifies)
        #expect(throws: WireError.self) {
            try udp.withUnsafeMutableBytes { try InternetChecksum.completePartial($0, start: 8, offset: 6) }
        }
    }
}
