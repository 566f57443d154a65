// Random and mutated input for the Ethernet, ARP, IPv4, IPv6, UDP and virtio-net parsers: each
// must either parse or throw, never trap or read outside its buffer (run under ASan to be sure).
import Testing

@testable import Wire

@Suite struct L3HostileInputTests {
    typealias F = L3Frames

    /// xorshift64*: reproducible, so a failure names a seed that finds it again.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
    }

    /// Runs every parser over `bytes`; with a well-formed result, checks what the parser promised.
    static func exercise(_ bytes: UnsafeRawBufferPointer) {
        if let eth = try? EthernetHeader.parse(bytes) {
            #expect(eth.headerLength <= bytes.count)
        }
        _ = try? ARPPacket.parse(bytes)
        if let ip = try? IPv4Header.parse(bytes, verifyChecksum: false) {
            #expect(ip.headerLength >= 20 && ip.headerLength <= Int(ip.totalLength))
            #expect(Int(ip.totalLength) <= bytes.count)
        }
        try? IPv4Header.forEachOption(bytes) { _, data in
            // Options lie inside the buffer: touching every byte is safe.
            var x: UInt8 = 0
            for b in data { x ^= b }
            _ = x
        }
        if let ip = try? IPv6Header.parse(bytes) {
            #expect(ip.upperOffset >= 40 && ip.upperLength >= 0)
            #expect(ip.upperOffset + ip.upperLength <= bytes.count)
        }
        if let udp = try? UDPHeader.parse(bytes) {
            #expect(Int(udp.length) <= bytes.count)
        }
        _ = UDPHeader.verifyChecksum(bytes, source: F.guest4, destination: F.peer4)
        _ = UDPHeader.verifyChecksum(bytes, source: F.guest6, destination: F.peer6)
        for size in [VirtioNetHeader.legacySize, VirtioNetHeader.v1Size] {
            if let v = try? VirtioNetHeader.parse(bytes, size: size) {
                try? v.validate(frameLength: bytes.count)
            }
        }
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomBytes(_ seed: UInt64) {
        var rng = Generator(state: 0x9E37_79B9_7F4A_7C15 &* seed)
        for _ in 0..<5_000 {
            let count = Int.random(in: 0...120, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Steer half the inputs past the version checks so the deeper paths run.
            if count > 0 && Bool.random(using: &rng) {
                bytes[0] = Bool.random(using: &rng) ? 0x60 : 0x40 | (bytes[0] & 0x0F)
            }
            F.withExactBuffer(bytes) { Self.exercise($0) }
        }
    }

    /// Captured packets with a few bytes changed, cut at a random point, or both.
    @Test(arguments: [1, 2] as [UInt64])
    func mutatedCaptures(_ seed: UInt64) {
        var rng = Generator(state: 0xD1B5_4A32_D192_ED03 &* seed)
        let samples: [[UInt8]] = [
            F.arpRequestPadded, F.icmpEcho, F.igmpRouterAlert, F.fragmentLast, F.udp4, F.udp6, F.udp4Tagged,
            F.v6Fragment2,
        ]
        for sample in samples {
            for _ in 0..<1_500 {
                var bytes = sample
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                let cut = Bool.random(using: &rng) ? Int.random(in: 0...bytes.count, using: &rng) : bytes.count
                let frame = Array(bytes[0..<cut])
                F.withExactBuffer(frame) { Self.exercise($0) }
                // And the same from where the network header starts.
                if frame.count > 14 { F.withExactBuffer(frame[14...]) { Self.exercise($0) } }
            }
        }
    }
}
