// The first look at a guest's frame: bulk flow traffic passes as `.flow`, and each kind of frame
// a flooding guest sends is told apart without parsing, whatever its length.
import Testing

@testable import Wire

struct FrameTriageTests {
    static let gateway = L3Frames.peerMAC
    static let guest = L3Frames.guestMAC

    /// Ethernet + a 20-byte IPv4 header (no checksum: the triage does not look) + `l4`.
    static func ipv4(proto: UInt8, flagsAndOffset: UInt16 = 0x4000, l4: [UInt8], from source: MACAddress = guest,
                     to destination: MACAddress = gateway) -> [UInt8] {
        var f = ethernet(destination, source, 0x0800)
        let total = 20 + l4.count
        f += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, UInt8(flagsAndOffset >> 8), UInt8(flagsAndOffset & 0xFF),
              64, proto, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2]
        return f + l4
    }

    static func ipv6(next: UInt8, l4: [UInt8]) -> [UInt8] {
        var f = ethernet(gateway, guest, 0x86DD)
        f += [0x60, 0, 0, 0, UInt8(l4.count >> 8), UInt8(l4.count & 0xFF), next, 64]
        f += [UInt8](repeating: 0xFD, count: 16) + [UInt8](repeating: 0xFD, count: 16)
        return f + l4
    }

    static func ethernet(_ destination: MACAddress, _ source: MACAddress, _ type: UInt16) -> [UInt8] {
        var f: [UInt8] = []
        for m in [destination, source] { for i in (0..<6).reversed() { f.append(UInt8(truncatingIfNeeded: m.raw >> (8 * i))) } }
        return f + [UInt8(type >> 8), UInt8(type & 0xFF)]
    }

    static func tcp(flags: UInt8) -> [UInt8] {
        var t = [UInt8](repeating: 0, count: 20)
        t[0] = 0xC3; t[1] = 0x50; t[2] = 0x14; t[3] = 0x51
        t[12] = 0x50
        t[13] = flags
        return t
    }

    static func udp(port: UInt16) -> [UInt8] { [0xC3, 0x50, UInt8(port >> 8), UInt8(port & 0xFF), 0, 12, 0, 0, 1, 2, 3, 4] }

    static func classify(_ f: [UInt8], guestMAC: MACAddress? = guest) -> FrameTriage.Kind {
        f.withUnsafeBytes { FrameTriage.classify($0, gatewayMAC: gateway, guestMAC: guestMAC) }
    }

    @Test func flowTrafficPasses() {
        #expect(Self.classify(Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x10))) == .flow)
        #expect(Self.classify(Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x12))) == .flow, "SYN-ACK answers a published port's dial")
        #expect(Self.classify(Self.ipv4(proto: 17, l4: Self.udp(port: 443))) == .flow)
        #expect(Self.classify(Self.ipv6(next: 6, l4: Self.tcp(flags: 0x18))) == .flow)
        #expect(Self.classify(Self.ipv6(next: 17, l4: Self.udp(port: 4433))) == .flow)
    }

    @Test func eachKindOfFloodIsToldApart() {
        #expect(Self.classify(Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x02))) == .connectionRequest)
        #expect(Self.classify(Self.ipv6(next: 6, l4: Self.tcp(flags: 0x02))) == .connectionRequest)
        #expect(Self.classify(Self.ipv4(proto: 17, l4: Self.udp(port: 53))) == .service)
        #expect(Self.classify(Self.ipv4(proto: 17, l4: Self.udp(port: 67))) == .service)
        #expect(Self.classify(Self.ipv6(next: 17, l4: Self.udp(port: 53))) == .service)
        #expect(Self.classify(Self.ipv4(proto: 17, flagsAndOffset: 0x2000, l4: Self.udp(port: 443))) == .fragment)
        #expect(Self.classify(Self.ipv4(proto: 17, flagsAndOffset: 0x0010, l4: [1, 2, 3])) == .fragment)
        #expect(Self.classify(Self.ipv6(next: 44, l4: [17, 0, 0, 1, 0, 0, 0, 9])) == .fragment)
        #expect(Self.classify(Self.ipv4(proto: 1, l4: [8, 0, 0, 0])) == .control)
        #expect(Self.classify(Self.ipv6(next: 58, l4: [135, 0, 0, 0])) == .control)
        #expect(Self.classify(L3Frames.arpRequest, guestMAC: L3Frames.guestMAC) == .control)
        #expect(Self.classify(Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x10), from: L3Frames.peerMAC)) == .spoofedSource)
        #expect(Self.classify(Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x10), to: MACAddress(2, 0, 0, 0, 0, 9))) == .notForUs)
        #expect(Self.classify(Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x10), to: .broadcast)) == .flow)
        #expect(Self.classify(Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x10), from: L3Frames.peerMAC), guestMAC: nil) == .flow)
    }

    @Test func everyTruncationIsARuntOrSomethingElseButNeverATrap() {
        let frames = [
            Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x10)), Self.ipv6(next: 17, l4: Self.udp(port: 80)),
            Self.ipv4(proto: 17, l4: Self.udp(port: 53)),
        ]
        for f in frames {
            for n in 0..<f.count {
                let kind = Self.classify(Array(f[..<n]))
                #expect(kind != .flow, "a \(n)-byte cut of a \(f.count)-byte frame passed as flow traffic")
            }
        }
        #expect(Self.classify([UInt8](repeating: 0, count: 13)) == .runt)
        // An IHL that points past the frame.
        var bad = Self.ipv4(proto: 6, l4: Self.tcp(flags: 0x10))
        bad[14] = 0x4F
        #expect(Self.classify(Array(bad[..<40])) == .runt)
        bad[14] = 0x44
        #expect(Self.classify(bad) == .runt)
        // A total length past the frame, or shorter than the header; padding after it is fine.
        var long = Self.ipv4(proto: 17, l4: Self.udp(port: 443))
        long[17] &+= 1
        #expect(Self.classify(long) == .runt)
        long[16] = 0; long[17] = 12
        #expect(Self.classify(long) == .runt)
        #expect(Self.classify(Self.ipv4(proto: 17, l4: Self.udp(port: 443)) + [0, 0, 0, 0]) == .flow)
        var v6 = Self.ipv6(next: 6, l4: Self.tcp(flags: 0x10))
        v6[19] &+= 1
        #expect(Self.classify(v6) == .runt)
    }
}
