// One Neighbor Discovery option (RFC 4861 §4.6) as a view into the message bytes, with the
// option type numbers this stack reads or writes.

/// A type-length-value option of an NDP message. `bytes` covers the whole option, type and
/// length octets included (length × 8 bytes); it is valid as long as the message buffer is.
public struct NDPOption {
    // Types (RFC 4861 §4.6, RFC 8106 §5).
    public static let sourceLinkLayerAddress: UInt8 = 1
    public static let targetLinkLayerAddress: UInt8 = 2
    public static let prefixInformation: UInt8 = 3
    public static let redirectedHeader: UInt8 = 4
    public static let mtu: UInt8 = 5
    public static let recursiveDNSServer: UInt8 = 25
    public static let dnsSearchList: UInt8 = 31

    /// Options are counted in units of 8 octets (RFC 4861 §4.6).
    public static let unit = 8
    /// An Ethernet link-layer address option: type, length 1, six bytes (RFC 2464 §8).
    public static let linkLayerAddressLength = 8

    public let type: UInt8
    public let bytes: UnsafeRawBufferPointer

    @inline(__always)
    init(type: UInt8, bytes: UnsafeRawBufferPointer) {
        self.type = type
        self.bytes = bytes
    }

    /// The Ethernet address of a link-layer address option; nil for any other size (a link
    /// type this gateway does not speak).
    public var linkLayerAddress: MACAddress? {
        bytes.count == Self.linkLayerAddressLength ? try? CheckedReader(bytes, layer: "ndp").mac(2) : nil
    }

    /// Writes a source or target link-layer address option at `offset`; the caller has checked room.
    static func writeLinkLayerAddress(
        _ mac: MACAddress, type: UInt8, into buffer: UnsafeMutableRawBufferPointer, at offset: Int
    ) {
        buffer.setU8(type, offset)
        buffer.setU8(1, offset + 1)
        buffer.setMAC(mac, offset + 2)
    }
}
