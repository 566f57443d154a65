// Builds fragmented datagrams as a guest's kernel would send them (IPv4 fragments, IPv6 packets
// with a Fragment header), and the UDP/ICMP datagrams inside, for reassembly and stack tests.
import Wire
@testable import NetStack

/// Where one fragment's data lies in the datagram's fragmentable part.
struct Piece: Hashable, CustomStringConvertible {
    var offset: Int
    var length: Int
    var more: Bool

    var description: String { "\(offset)+\(length)\(more ? "…" : ".")" }

    /// The cuts a sender makes: `size`-byte pieces (a multiple of 8), the last one shorter.
    static func split(_ total: Int, size: Int) -> [Piece] {
        var out: [Piece] = []
        var at = 0
        while at < total {
            let n = min(size, total - at)
            out.append(Piece(offset: at, length: n, more: at + n < total))
            at += n
        }
        return out
    }
}

enum Datagram {
    static let gatewayV6 = StackConfiguration().gatewayIPv6

    /// A UDP datagram (header and payload) with its checksum filled over the IPv4 pseudo-header.
    static func udp(from src: IPv4Address, to dst: IPv4Address, srcPort: UInt16 = 5353, dstPort: UInt16, payload: [UInt8]) -> [UInt8] {
        var d = [UInt8](repeating: 0, count: 8 + payload.count)
        d.withUnsafeMutableBytes { b in
            _ = try! UDPHeader(sourcePort: srcPort, destinationPort: dstPort, payloadLength: payload.count).emit(into: b)
            payload.withUnsafeBytes { if !payload.isEmpty { b.slice(8, payload.count).copyMemory(from: $0) } }
            UDPHeader.fillChecksum(b, source: src, destination: dst)
        }
        return d
    }

    static func udp(from src: IPv6Address, to dst: IPv6Address, srcPort: UInt16 = 5353, dstPort: UInt16, payload: [UInt8]) -> [UInt8] {
        var d = [UInt8](repeating: 0, count: 8 + payload.count)
        d.withUnsafeMutableBytes { b in
            _ = try! UDPHeader(sourcePort: srcPort, destinationPort: dstPort, payloadLength: payload.count).emit(into: b)
            payload.withUnsafeBytes { if !payload.isEmpty { b.slice(8, payload.count).copyMemory(from: $0) } }
            UDPHeader.fillChecksum(b, source: src, destination: dst)
        }
        return d
    }

    static func echoRequestV4(identifier: UInt16, sequence: UInt16, payload: [UInt8]) -> [UInt8] {
        var d = [UInt8](repeating: 0, count: 8 + payload.count)
        _ = d.withUnsafeMutableBytes { b in
            payload.withUnsafeBytes {
                try! ICMPv4Message.build(into: b, type: ICMPv4Message.echoRequest, code: 0,
                                         restOfHeader: UInt32(identifier) << 16 | UInt32(sequence), payload: $0)
            }
        }
        return d
    }

    static func echoRequestV6(from src: IPv6Address, to dst: IPv6Address, identifier: UInt16, sequence: UInt16, payload: [UInt8]) -> [UInt8] {
        var d = [UInt8](repeating: 0, count: 8 + payload.count)
        _ = d.withUnsafeMutableBytes { b in
            payload.withUnsafeBytes {
                try! ICMPv6Message.build(into: b, source: src, destination: dst, type: ICMPv6Message.echoRequest, code: 0,
                                         restOfHeader: UInt32(identifier) << 16 | UInt32(sequence), payload: $0)
            }
        }
        return d
    }

    /// IPv4 fragment packets (header with correct checksum, then data) of `datagram`.
    static func ipv4Fragments(
        _ datagram: [UInt8], pieces: [Piece], from src: IPv4Address = Guest.ipv4, to dst: IPv4Address,
        protocolNumber: UInt8, identification: UInt16 = 0x4242
    ) -> [[UInt8]] {
        pieces.map { p in
            var ip = IPv4Header(source: src, destination: dst, protocolNumber: protocolNumber, payloadLength: p.length,
                                identification: identification, dontFragment: false)
            ip.moreFragments = p.more
            ip.fragmentOffset = p.offset
            var packet = [UInt8](repeating: 0, count: 20 + p.length)
            packet.withUnsafeMutableBytes { b in
                _ = try! ip.emit(into: b)
                datagram.withUnsafeBytes { b.slice(20, p.length).copyMemory(from: $0.uncheckedSlice(p.offset, p.length)) }
            }
            return packet
        }
    }

    /// IPv6 packets carrying `fragmentable` in Fragment headers. `before` are whole extension
    /// headers placed ahead of the Fragment header (their next-header chain ends in 44), and
    /// `firstNextHeader` is the fixed header's next header when `before` is not empty.
    static func ipv6Fragments(
        _ fragmentable: [UInt8], pieces: [Piece], from src: IPv6Address = Guest.ipv6, to dst: IPv6Address,
        nextHeader: UInt8, identification: UInt32 = 0xC0FF_EE01, before: [UInt8] = [], firstNextHeader: UInt8 = IPProtocol.fragment
    ) -> [[UInt8]] {
        pieces.map { p in
            let payloadLength = before.count + 8 + p.length
            var packet = [UInt8](repeating: 0, count: 40 + payloadLength)
            packet.withUnsafeMutableBytes { b in
                let fixedNext = before.isEmpty ? IPProtocol.fragment : firstNextHeader
                _ = try! IPv6Header(source: src, destination: dst, nextHeader: fixedNext, payloadLength: UInt16(payloadLength)).emit(into: b)
                before.withUnsafeBytes { if !before.isEmpty { b.slice(40, before.count).copyMemory(from: $0) } }
                let at = 40 + before.count
                b.setU8(nextHeader, at)
                b.setU8(0, at + 1)
                b.setBE16(UInt16(p.offset) | (p.more ? 1 : 0), at + 2)
                b.setBE32(identification, at + 4)
                fragmentable.withUnsafeBytes { b.slice(at + 8, p.length).copyMemory(from: $0.uncheckedSlice(p.offset, p.length)) }
            }
            return packet
        }
    }

    /// A frame for the stack: zero virtio-net header, Ethernet to the gateway, then `packet`.
    static func frame(_ packet: [UInt8], etherType: UInt16, vnet: Int = 10) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: vnet + 14 + packet.count)
        f.withUnsafeMutableBytes { b in
            _ = try! EthernetHeader(destination: StackConfiguration().gatewayMAC, source: Guest.mac, etherType: etherType).emit(into: b.slice(vnet, 14))
            packet.withUnsafeBytes { b.slice(vnet + 14, packet.count).copyMemory(from: $0) }
        }
        return f
    }
}

extension IPv4Reassembler {
    /// Parses `packet` as the stack would (checksum verified) and adds it.
    mutating func add(packet: [UInt8], now: UInt64) throws -> Reassembled? {
        try packet.withUnsafeBytes { b in
            let h = try IPv4Header.parse(b)
            return add(header: h, fragment: b.uncheckedSlice(h.headerLength, h.payloadLength), now: now)
        }
    }
}

extension IPv6Reassembler {
    mutating func add(packet: [UInt8], now: UInt64) throws -> Reassembled? {
        try packet.withUnsafeBytes { b in add(header: try IPv6Header.parse(b), packet: b, now: now) }
    }
}

/// A deterministic shuffle, so a failing order can be replayed.
func shuffled<T>(_ a: [T], seed: UInt64) -> [T] {
    var g = SplitMix64(seed: seed)
    return a.shuffled(using: &g)
}

func pattern(_ n: Int, seed: UInt8 = 0) -> [UInt8] {
    (0..<n).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ ($0 >> 8) &+ Int(seed)) }
}
