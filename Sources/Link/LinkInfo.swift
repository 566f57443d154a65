// What the kernel reports about one network device, read from an RTM_NEWLINK message.
import CNetlink
import Wire

/// One network device as its namespace sees it.
public struct LinkInfo: Hashable, Sendable, CustomStringConvertible {
    /// The interface index (unique within the namespace).
    public var index: Int32
    public var name: String
    public var mtu: Int
    /// nil for devices without an Ethernet address (loopback has all zeros; tun has none).
    public var macAddress: MACAddress?
    /// The raw `IFF_*` flags (include/uapi/linux/if.h).
    public var flags: UInt32
    /// IFLA_INFO_KIND: "bridge", "veth", "tun", …; nil for physical devices.
    public var kind: String?
    /// The bridge (or other master) this device is enslaved to.
    public var masterIndex: Int32?

    /// IFF_UP: administratively up.
    public var isUp: Bool { flags & 0x1 != 0 }
    /// IFF_RUNNING: operationally up (RFC 2863 "up"), e.g. a TAP with an fd attached.
    public var isRunning: Bool { flags & 0x40 != 0 }
    /// IFF_LOWER_UP: the device has carrier.
    public var hasCarrier: Bool { flags & 0x1_0000 != 0 }

    public init(
        index: Int32, name: String, mtu: Int, macAddress: MACAddress?, flags: UInt32, kind: String?,
        masterIndex: Int32?
    ) {
        self.index = index
        self.name = name
        self.mtu = mtu
        self.macAddress = macAddress
        self.flags = flags
        self.kind = kind
        self.masterIndex = masterIndex
    }

    /// Reads a libnl `rtnl_link` (not owned).
    init(netlink link: OpaquePointer) {
        let master = rtnl_link_get_master(link)
        self.init(
            index: rtnl_link_get_ifindex(link),
            name: rtnl_link_get_name(link).map { String(cString: $0) } ?? "",
            mtu: Int(rtnl_link_get_mtu(link)),
            macAddress: NetlinkObject.macAddress(rtnl_link_get_addr(link)),
            flags: rtnl_link_get_flags(link),
            kind: rtnl_link_get_type(link).map { String(cString: $0) },
            masterIndex: master > 0 ? master : nil
        )
    }

    public var description: String {
        var s = "\(index): \(name) mtu \(mtu)"
        if let kind { s += " \(kind)" }
        if let macAddress { s += " \(macAddress)" }
        s += isUp ? " up" : " down"
        if isRunning { s += " running" }
        if let masterIndex { s += " master \(masterIndex)" }
        return s
    }
}
