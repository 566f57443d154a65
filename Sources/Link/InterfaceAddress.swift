// One IP address assigned to a device, as RTM_NEWADDR reports it.
import Wire

/// An address on a device, with its prefix length (the on-link subnet).
public struct InterfaceAddress: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var prefixLength: Int
    /// The device's interface index.
    public var linkIndex: Int32
    /// IFA_F_* flags (include/uapi/linux/if_addr.h): 0x02 NODAD, 0x40 TENTATIVE, 0x80 PERMANENT.
    public var flags: UInt32

    public init(address: IPAddress, prefixLength: Int, linkIndex: Int32, flags: UInt32 = 0) {
        self.address = address
        self.prefixLength = prefixLength
        self.linkIndex = linkIndex
        self.flags = flags
    }

    /// IFA_F_TENTATIVE: duplicate address detection has not finished; the address is not usable yet.
    public var isTentative: Bool { flags & 0x40 != 0 }

    public var description: String { "\(address)/\(prefixLength)" }
}
