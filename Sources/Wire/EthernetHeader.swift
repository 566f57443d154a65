// The Ethernet II header (IEEE 802.3 §3.1.1) with at most one IEEE 802.1Q tag: the first thing
// parsed from every frame a sandbox's TAP delivers, and the first thing written on the way back.

/// EtherType values the gateway dispatches on (IANA "IEEE 802 Numbers").
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let ipv6: UInt16 = 0x86DD
    /// IEEE 802.1Q customer tag (C-TAG).
    public static let vlan: UInt16 = 0x8100
    /// IEEE 802.1ad service tag (S-TAG), the outer tag of a QinQ stack.
    public static let qinq: UInt16 = 0x88A8
    /// Type/length values below this are IEEE 802.3 length fields (an LLC frame follows), not
    /// EtherTypes (IEEE 802.3 §3.2.6).
    public static let minimumType: UInt16 = 0x0600
}

/// Destination, source, an optional 802.1Q tag and the EtherType of the payload.
public struct EthernetHeader: Hashable, Sendable {
    public var destination: MACAddress
    public var source: MACAddress
    /// The 802.1Q tag control information (PCP, DEI, VLAN ID) when one tag is present.
    public var vlanTag: UInt16?
    /// The EtherType of the payload: the inner one when the frame is tagged. Values below
    /// `EtherType.minimumType` are 802.3 length fields, passed through for the caller to drop.
    public var etherType: UInt16

    public static let minimumLength = 14
    /// An untagged header plus one 4-byte 802.1Q tag (IEEE 802.1Q §9.3).
    public static let taggedLength = 18

    /// Where the payload starts: 14, or 18 with a tag. Derived from `vlanTag` so the two never disagree.
    public var headerLength: Int { vlanTag == nil ? EthernetHeader.minimumLength : EthernetHeader.taggedLength }

    /// Priority code point of the tag (IEEE 802.1Q §6.9.3), nil when untagged.
    public var vlanPriority: UInt8? { vlanTag.map { UInt8(truncatingIfNeeded: $0 >> 13) } }
    /// The 12-bit VLAN identifier of the tag, nil when untagged.
    public var vlanID: UInt16? { vlanTag.map { $0 & 0x0FFF } }

    public init(destination: MACAddress, source: MACAddress, etherType: UInt16, vlanTag: UInt16? = nil) {
        self.destination = destination
        self.source = source
        self.etherType = etherType
        self.vlanTag = vlanTag
    }

    /// Reads the header at the start of a frame. A frame with more than one tag (QinQ, or an
    /// 802.1Q tag inside another) throws `.unsupported`: no sandbox link carries stacked tags.
    /// The frame check sequence is never present on a TAP and is not looked for.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> EthernetHeader {
        let r = CheckedReader(bytes, layer: "ethernet")
        guard bytes.count >= minimumLength else { throw WireError(.truncated, "ethernet") }
        let destination = try r.mac(0)
        let source = try r.mac(6)
        let outerType = try r.be16(12)
        if outerType == EtherType.qinq { throw WireError(.unsupported, "ethernet") }
        guard outerType == EtherType.vlan else {
            return EthernetHeader(destination: destination, source: source, etherType: outerType)
        }
        guard bytes.count >= taggedLength else { throw WireError(.truncated, "ethernet") }
        let tag = try r.be16(14)
        let innerType = try r.be16(16)
        if innerType == EtherType.vlan || innerType == EtherType.qinq { throw WireError(.unsupported, "ethernet") }
        return EthernetHeader(destination: destination, source: source, etherType: innerType, vlanTag: tag)
    }

    /// Writes 14 bytes, or 18 with the tag; returns the count written.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let length = headerLength
        guard buffer.count >= length else { throw WireError(.noSpace, "ethernet") }
        buffer.setMAC(destination, 0)
        buffer.setMAC(source, 6)
        if let vlanTag {
            buffer.setBE16(EtherType.vlan, 12)
            buffer.setBE16(vlanTag, 14)
            buffer.setBE16(etherType, 16)
        } else {
            buffer.setBE16(etherType, 12)
        }
        return length
    }
}
