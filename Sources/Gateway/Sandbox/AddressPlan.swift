// Gives each sandbox its own addresses from the gateway's pools: an IPv4 /28 and an IPv6 /64 per
// sandbox index, and gateway and VM guest MACs derived from the index, so no two sandboxes share any.
import Wire

public struct AddressPlan: Sendable {
    /// IPv4 pool; each sandbox takes a /28 (gateway .1, guest .2, DHCP pool up to .14).
    public var ipv4Pool: IPv4Address
    public var ipv4PoolPrefix: Int
    public var ipv4SandboxPrefix: Int
    /// IPv6 pool (a /48): each sandbox takes the /64 numbered by its index.
    public var ipv6Pool: IPv6Address

    public init(ipv4Pool: IPv4Address = IPv4Address(10, 88, 0, 0), ipv4PoolPrefix: Int = 16, ipv4SandboxPrefix: Int = 28,
                ipv6Pool: IPv6Address = IPv6Address("fd47:5700::")!) {
        self.ipv4Pool = ipv4Pool
        self.ipv4PoolPrefix = ipv4PoolPrefix
        self.ipv4SandboxPrefix = ipv4SandboxPrefix
        self.ipv6Pool = ipv6Pool
    }

    /// How many sandboxes the pools hold.
    public var capacity: Int { min(1 << (ipv4SandboxPrefix - ipv4PoolPrefix), 65_536) }

    public struct Assignment: Sendable, Hashable {
        public var gatewayMAC: MACAddress
        /// The MAC a VM guest is told to use (its monitor cannot tell us one it picked itself):
        /// locally administered and unicast (IEEE 802 bit 1 set, bit 0 clear), 02:47:58 + index.
        public var guestMAC: MACAddress
        public var gatewayIPv4: IPv4Address
        public var guestIPv4: IPv4Address
        public var prefixLength: Int
        public var ipv6Prefix: IPv6Address
        public var gatewayIPv6: IPv6Address
    }

    public func assignment(index: Int) -> Assignment {
        let block = UInt32(index) << UInt32(32 - ipv4SandboxPrefix)
        let network = IPv4Address(raw: ipv4Pool.raw | block)
        let prefix6 = IPv6Address(high: ipv6Pool.high | UInt64(index & 0xFFFF), low: 0)
        return Assignment(
            gatewayMAC: MACAddress(raw: 0x0247_5700_0000 | UInt64(index & 0xFF_FFFF)),
            guestMAC: MACAddress(raw: 0x0247_5800_0000 | UInt64(index & 0xFF_FFFF)),
            gatewayIPv4: IPv4Address(raw: network.raw + 1),
            guestIPv4: IPv4Address(raw: network.raw + 2),
            prefixLength: ipv4SandboxPrefix,
            ipv6Prefix: prefix6,
            gatewayIPv6: IPv6Address(high: prefix6.high, low: 1))
    }
}
