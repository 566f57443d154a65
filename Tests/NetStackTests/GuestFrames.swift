// Builds the frames a guest would send, and parses what the stack sends back, for Stack tests.
import Wire
@testable import NetStack

enum Guest {
    static let mac = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
    static let ipv4 = IPv4Address(10, 0, 2, 15)
    static let ipv6 = IPv6Address("fd00:0:0:2::15")!

    /// vnet header (zero) + Ethernet + IPv4 + `l4` with its checksum filled by `checksumAt`.
    static func ipv4Frame(to dst: IPv4Address, protocolNumber: UInt8, l4: [UInt8], checksumAt: Int?, vnet: Int = 10, ethDst: MACAddress = StackConfiguration().gatewayMAC) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: vnet + 14 + 20 + l4.count)
        f.withUnsafeMutableBytes { b in
            _ = try! EthernetHeader(destination: ethDst, source: mac, etherType: EtherType.ipv4).emit(into: b.slice(vnet, 14))
            _ = try! IPv4Header(source: ipv4, destination: dst, protocolNumber: protocolNumber, payloadLength: l4.count).emit(into: b.slice(vnet + 14, 20))
            let l4b = b.slice(vnet + 34, l4.count)
            l4.withUnsafeBytes { l4b.copyMemory(from: $0) }
            if let at = checksumAt {
                l4b.setBE16(0, at)
                var c = protocolNumber == IPProtocol.icmp ? InternetChecksum() : InternetChecksum.pseudoHeader(source: ipv4, destination: dst, protocol: protocolNumber, length: l4.count)
                c.add(bytes: UnsafeRawBufferPointer(l4b))
                l4b.setBE16(c.value, at)
            }
        }
        return f
    }

    static func tcp(to dst: IPv4Address, srcPort: UInt16 = 40000, dstPort: UInt16, seq: UInt32, ack: UInt32 = 0, flags: TCPFlags, options: TCPOptions = TCPOptions(), payload: [UInt8] = []) -> [UInt8] {
        let h = TCPHeader(sourcePort: srcPort, destinationPort: dstPort, sequenceNumber: seq, acknowledgmentNumber: ack, flags: flags, window: 65535, options: options)
        var l4 = [UInt8](repeating: 0, count: h.emittedLength + payload.count)
        l4.withUnsafeMutableBytes { b in
            _ = try! h.emit(into: b)
            payload.withUnsafeBytes { if !payload.isEmpty { b.slice(h.emittedLength, payload.count).copyMemory(from: $0) } }
        }
        return ipv4Frame(to: dst, protocolNumber: IPProtocol.tcp, l4: l4, checksumAt: 16)
    }

    /// vnet header (zero) + Ethernet + IPv6 + a TCP segment with its checksum filled.
    static func tcpV6(to dst: IPv6Address, srcPort: UInt16 = 40000, dstPort: UInt16, seq: UInt32, ack: UInt32 = 0, flags: TCPFlags, options: TCPOptions = TCPOptions(), payload: [UInt8] = []) -> [UInt8] {
        let h = TCPHeader(sourcePort: srcPort, destinationPort: dstPort, sequenceNumber: seq, acknowledgmentNumber: ack, flags: flags, window: 65535, options: options)
        let l4Length = h.emittedLength + payload.count
        var f = [UInt8](repeating: 0, count: 10 + 14 + 40 + l4Length)
        f.withUnsafeMutableBytes { b in
            _ = try! EthernetHeader(destination: StackConfiguration().gatewayMAC, source: mac, etherType: EtherType.ipv6).emit(into: b.slice(10, 14))
            _ = try! IPv6Header(source: ipv6, destination: dst, nextHeader: IPProtocol.tcp, payloadLength: UInt16(l4Length)).emit(into: b.slice(24, 40))
            let l4 = b.slice(64, l4Length)
            _ = try! h.emit(into: l4)
            payload.withUnsafeBytes { if !payload.isEmpty { l4.slice(h.emittedLength, payload.count).copyMemory(from: $0) } }
            TCPHeader.fillChecksum(l4, source: ipv6, destination: dst)
        }
        return f
    }

    static func arpRequest(for target: IPv4Address) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 10 + 14 + 28)
        f.withUnsafeMutableBytes { b in
            _ = try! EthernetHeader(destination: .broadcast, source: mac, etherType: EtherType.arp).emit(into: b.slice(10, 14))
            _ = try! ARPPacket(operation: .request, senderMAC: mac, senderIP: ipv4, targetMAC: .zero, targetIP: target).emit(into: b.slice(24, 28))
        }
        return f
    }
}

extension Stack {
    /// The guest opens a TCP connection to 127.0.0.1:`port` (MSS 1460, `options` besides), the
    /// layer above accepts it, and the guest's ACK completes the handshake. Returns the flow and
    /// the sequence number of the stack's first byte; the SYN-ACK has been taken off the output.
    func establishedEgressFlow(port: UInt16 = 8080, guestISN: UInt32 = 100, options: TCPOptions = TCPOptions()) throws -> (TCPFlowID, UInt32) {
        let dst = IPv4Address(127, 0, 0, 1)
        var o = options
        o.mss = 1460
        receive(Guest.tcp(to: dst, dstPort: port, seq: guestISN, flags: [.syn], options: o))
        guard case .tcpConnectionRequest(let id, _)? = events().first else { throw FrameError("no connection request") }
        tcpAccept(id, now: 1)
        guard let synAck = try sentFrames().first?.tcp().0 else { throw FrameError("no SYN-ACK") }
        receive(Guest.tcp(to: dst, dstPort: port, seq: guestISN &+ 1, ack: synAck.sequenceNumber &+ 1, flags: [.ack]))
        return (id, synAck.sequenceNumber &+ 1)
    }
}

struct FrameError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A frame the stack sent, split into its layers.
struct SentFrame {
    var vnet: VirtioNetHeader
    var eth: EthernetHeader
    var bytes: [UInt8]
    var l3Offset: Int

    init(_ buffer: FrameBuffer, vnetSize: Int = 10) throws {
        bytes = Array(buffer.bytes)
        vnet = try bytes.withUnsafeBytes { try VirtioNetHeader.parse($0, size: vnetSize) }
        eth = try bytes.withUnsafeBytes { try EthernetHeader.parse($0.uncheckedSlice(vnetSize, $0.count - vnetSize)) }
        l3Offset = vnetSize + eth.headerLength
    }

    func withL3<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { try body($0.uncheckedSlice(l3Offset, $0.count - l3Offset)) }
    }

    var ipv4: IPv4Header? { withL3 { try? IPv4Header.parse($0) } }

    /// The TCP header and payload of an IPv4 frame, with the checksum checked in full.
    func tcp() throws -> (TCPHeader, [UInt8], checksumOK: Bool) {
        try withL3 { l3 in
            let ip = try IPv4Header.parse(l3)
            let l4 = l3.uncheckedSlice(ip.headerLength, ip.payloadLength)
            let h = try TCPHeader.parse(l4)
            var ok = TCPHeader.verifyChecksum(l4, source: ip.source, destination: ip.destination)
            if vnet.flags.contains(.needsChecksum) {
                // Complete it as the device would, then verify.
                var copy = Array(l4)
                copy.withUnsafeMutableBytes { try? InternetChecksum.completePartial($0, start: 0, offset: Int(vnet.checksumOffset)) }
                ok = copy.withUnsafeBytes { TCPHeader.verifyChecksum($0, source: ip.source, destination: ip.destination) }
            }
            return (h, Array(l4[h.headerLength...]), ok)
        }
    }
}

extension Stack {
    func sentFrames() throws -> [SentFrame] {
        var out: [SentFrame] = []
        var err: (any Error)?
        output.drain { f in
            do { out.append(try SentFrame(f, vnetSize: configuration.vnetHeaderSize)) } catch { err = error }
        }
        if let err { throw err }
        return out
    }

    func receive(_ frame: [UInt8], now: UInt64 = 1_000_000_000) {
        frame.withUnsafeBytes { receive(frame: $0, now: now) }
    }

    func events() -> [StackEvent] {
        var all: [StackEvent] = []
        drainEvents { all.append($0) }
        return all
    }
}
