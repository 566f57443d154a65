// ARP for IPv4 over Ethernet (RFC 826): the requests a guest sends for its gateway and the
// replies the stack answers with. Other hardware or protocol types are refused.

/// An Ethernet/IPv4 ARP packet: hardware type 1, protocol type 0x0800, lengths 6 and 4.
public struct ARPPacket: Hashable, Sendable {
    /// The opcodes a host uses (RFC 826; RARP and InARP codes are refused as unsupported).
    public enum Operation: UInt16, Sendable {
        case request = 1
        case reply = 2
    }

    public var operation: Operation
    public var senderMAC: MACAddress
    public var senderIP: IPv4Address
    public var targetMAC: MACAddress
    public var targetIP: IPv4Address

    /// 8 bytes of fixed fields, then two (MAC, IPv4) pairs. A frame carrying it is usually padded
    /// to the 60-byte Ethernet minimum; the padding is ignored.
    public static let length = 28

    /// Hardware type for Ethernet (IANA "Hardware Types").
    static let hardwareEthernet: UInt16 = 1

    public init(
        operation: Operation, senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress,
        targetIP: IPv4Address
    ) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderIP = senderIP
        self.targetMAC = targetMAC
        self.targetIP = targetIP
    }

    /// An announcement (gratuitous ARP, RFC 5227 §2.3) names the sender's own address as the target.
    public var isAnnouncement: Bool { senderIP == targetIP }
    /// A probe (RFC 5227 §2.1.1) has an all-zero sender address; it must not update a cache.
    public var isProbe: Bool { operation == .request && senderIP.isUnspecified }

    /// Reads an ARP packet from the start of an Ethernet payload.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> ARPPacket {
        let r = CheckedReader(bytes, layer: "arp")
        guard bytes.count >= length else { throw WireError(.truncated, "arp") }
        guard try r.be16(0) == hardwareEthernet, try r.be16(2) == EtherType.ipv4, try r.u8(4) == 6, try r.u8(5) == 4
        else { throw WireError(.unsupported, "arp") }
        guard let operation = Operation(rawValue: try r.be16(6)) else { throw WireError(.unsupported, "arp") }
        return ARPPacket(
            operation: operation, senderMAC: try r.mac(8), senderIP: try r.ipv4(14), targetMAC: try r.mac(18),
            targetIP: try r.ipv4(24))
    }

    /// Writes the 28-byte packet (no Ethernet padding; the link adds it if it must).
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard buffer.count >= ARPPacket.length else { throw WireError(.noSpace, "arp") }
        buffer.setBE16(ARPPacket.hardwareEthernet, 0)
        buffer.setBE16(EtherType.ipv4, 2)
        buffer.setU8(6, 4)
        buffer.setU8(4, 5)
        buffer.setBE16(operation.rawValue, 6)
        buffer.setMAC(senderMAC, 8)
        buffer.setIPv4(senderIP, 14)
        buffer.setMAC(targetMAC, 18)
        buffer.setIPv4(targetIP, 24)
        return ARPPacket.length
    }

    /// The reply this host sends to a request for one of its addresses (RFC 826, "Packet
    /// Reception": swap sender and target, fill in our hardware address).
    public func reply(with mac: MACAddress) -> ARPPacket {
        ARPPacket(operation: .reply, senderMAC: mac, senderIP: targetIP, targetMAC: senderMAC, targetIP: senderIP)
    }
}
