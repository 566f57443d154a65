// Ethernet, ARP, IPv4 and ICMP frames for the integration tests, built as byte arrays with plain
// offsets (RFC 826, RFC 791, RFC 792) and checksummed with Wire's InternetChecksum.
import Wire

enum TestFrames {
    static let etherTypeIPv4: UInt16 = 0x0800
    static let etherTypeARP: UInt16 = 0x0806
    /// IEEE 802 "local experimental" EtherType 1: never means anything to a kernel.
    static let etherTypeExperimental: UInt16 = 0x88B5

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func bytes(_ m: MACAddress) -> [UInt8] { (0..<6).map { m.byte($0) } }
    static func bytes(_ a: IPv4Address) -> [UInt8] { (0..<4).map { a.byte($0) } }

    static func ethernet(destination: MACAddress, source: MACAddress, type: UInt16, payload: [UInt8]) -> [UInt8] {
        var frame = bytes(destination) + bytes(source) + be16(type) + payload
        // Pad to the 60-byte minimum (IEEE 802.3 §3.2.8, before the FCS the TAP never carries).
        if frame.count < 60 { frame += [UInt8](repeating: 0, count: 60 - frame.count) }
        return frame
    }

    /// An ARP packet for IPv4 over Ethernet (RFC 826): operation 1 request, 2 reply.
    static func arp(operation: UInt16, senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress, targetIP: IPv4Address) -> [UInt8] {
        be16(1) + be16(0x0800) + [6, 4] + be16(operation)
            + bytes(senderMAC) + bytes(senderIP) + bytes(targetMAC) + bytes(targetIP)
    }

    static func arpRequest(from mac: MACAddress, ip: IPv4Address, asking target: IPv4Address) -> [UInt8] {
        ethernet(
            destination: .broadcast, source: mac, type: etherTypeARP,
            payload: arp(operation: 1, senderMAC: mac, senderIP: ip, targetMAC: .zero, targetIP: target))
    }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        bytes.withUnsafeBytes { InternetChecksum.of($0) }
    }

    static func verifies(_ bytes: ArraySlice<UInt8>) -> Bool {
        var c = InternetChecksum()
        Array(bytes).withUnsafeBytes { c.add(bytes: $0) }
        return c.verifies
    }

    /// An IPv4 header (RFC 791 §3.1, no options) with its checksum, followed by `payload`.
    static func ipv4(source: IPv4Address, destination: IPv4Address, protocol proto: UInt8, identification: UInt16, payload: [UInt8]) -> [UInt8] {
        var header: [UInt8] = [0x45, 0] + be16(UInt16(20 + payload.count)) + be16(identification) + [0x40, 0]  // DF
        header += [64, proto, 0, 0] + bytes(source) + bytes(destination)
        let sum = checksum(header)
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xFF)
        return header + payload
    }

    /// An ICMP echo request (RFC 792: type 8, code 0) with its checksum.
    static func icmpEchoRequest(identifier: UInt16, sequence: UInt16, payload: [UInt8]) -> [UInt8] {
        var message: [UInt8] = [8, 0, 0, 0] + be16(identifier) + be16(sequence) + payload
        let sum = checksum(message)
        message[2] = UInt8(sum >> 8)
        message[3] = UInt8(sum & 0xFF)
        return message
    }

    // Reading replies with plain offsets; every caller checks the length first.

    static func read16(_ f: [UInt8], _ at: Int) -> UInt16 { UInt16(f[at]) << 8 | UInt16(f[at + 1]) }
    static func readMAC(_ f: [UInt8], _ at: Int) -> MACAddress { MACAddress(f[at], f[at + 1], f[at + 2], f[at + 3], f[at + 4], f[at + 5]) }
    static func readIPv4(_ f: [UInt8], _ at: Int) -> IPv4Address { IPv4Address(f[at], f[at + 1], f[at + 2], f[at + 3]) }
    static func etherType(_ f: [UInt8]) -> UInt16? { f.count >= 14 ? read16(f, 12) : nil }

    /// The ARP fields of an Ethernet frame carrying ARP, or nil.
    static func parseARP(_ f: [UInt8]) -> (operation: UInt16, senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress, targetIP: IPv4Address)? {
        guard etherType(f) == etherTypeARP, f.count >= 14 + 28, read16(f, 14) == 1, read16(f, 16) == 0x0800, f[18] == 6, f[19] == 4 else {
            return nil
        }
        return (read16(f, 20), readMAC(f, 22), readIPv4(f, 28), readMAC(f, 32), readIPv4(f, 38))
    }

    /// The IPv4 header fields and payload range of an Ethernet frame carrying IPv4, or nil.
    static func parseIPv4(_ f: [UInt8]) -> (source: IPv4Address, destination: IPv4Address, proto: UInt8, header: Range<Int>, payload: Range<Int>)? {
        guard etherType(f) == etherTypeIPv4, f.count >= 34, f[14] >> 4 == 4 else { return nil }
        let headerLength = Int(f[14] & 0xF) * 4
        let total = Int(read16(f, 16))
        guard headerLength >= 20, total >= headerLength, 14 + total <= f.count else { return nil }
        return (readIPv4(f, 26), readIPv4(f, 30), f[23], 14..<(14 + headerLength), (14 + headerLength)..<(14 + total))
    }
}
