// Unwraps the captured-style Ethernet/IPv4/UDP frames that DHCP and DNS tests carry, checking
// both checksums first so that a mistyped sample byte fails loudly instead of testing nothing.
import Testing
@testable import Wire

enum SampleFrame {
    /// The UDP payload of an untagged Ethernet frame carrying IPv4 and UDP, after verifying the
    /// IPv4 header checksum and the UDP checksum over the pseudo-header.
    static func udpPayload(_ frame: [UInt8]) throws -> [UInt8] {
        try frame.withUnsafeBytes { f in
            try #require(f.count >= 42 && f.uncheckedBE16(12) == 0x0800, "not IPv4 over Ethernet")
            let ip = f.uncheckedSlice(14, f.count - 14)
            let ihl = Int(ip.uncheckedU8(0) & 0x0F) * 4
            try #require(ip.uncheckedU8(0) >> 4 == 4 && ihl >= 20 && ip.uncheckedU8(9) == 17, "not IPv4/UDP")
            var headerSum = InternetChecksum()
            headerSum.add(bytes: ip.uncheckedSlice(0, ihl))
            try #require(headerSum.verifies, "IPv4 header checksum")
            let total = Int(ip.uncheckedBE16(2))
            try #require(total <= ip.count)
            let udp = ip.uncheckedSlice(ihl, total - ihl)
            let udpLength = Int(udp.uncheckedBE16(4))
            try #require(udpLength == udp.count)
            var udpSum = InternetChecksum.pseudoHeader(source: ip.uncheckedIPv4(12), destination: ip.uncheckedIPv4(16), protocol: 17, length: udpLength)
            udpSum.add(bytes: udp)
            try #require(udpSum.verifies, "UDP checksum")
            return Array(udp[8...])
        }
    }
}
