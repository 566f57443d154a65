// Identity and limits of one sandbox's stack: its gateway addresses, the guest's addresses, MTU, offloads.
import Wire

public struct StackConfiguration: Sendable {
    public var gatewayMAC: MACAddress
    public var gatewayIPv4: IPv4Address
    /// The guest's IPv4 subnet prefix length (the gateway and the guest share it).
    public var prefixLength: Int
    /// The address the guest is given (by DHCP, or configured statically by the gateway).
    public var guestIPv4: IPv4Address
    /// The gateway's global (ULA) IPv6 address, inside `ipv6Prefix`/64.
    public var gatewayIPv6: IPv6Address
    /// The /64 advertised to the guest for SLAAC.
    public var ipv6Prefix: IPv6Address
    public var mtu: Int
    /// 0 when the device has no virtio-net header, else 10 or 12.
    public var vnetHeaderSize: Int
    /// The device takes partial checksums and GSO frames from us (TUNSETOFFLOAD was set).
    public var offloads: Bool
    /// Resolvers announced by DHCP and router advertisements; by default the gateway itself.
    public var dnsServersIPv4: [IPv4Address]
    public var dnsServersIPv6: [IPv6Address]
    public var domainSearch: [String]
    public var leaseTime: Duration
    public var tcp: TCPConfiguration
    /// When set, frames from any other source MAC are dropped (anti-spoofing), and IP sources
    /// must lie in the sandbox's own subnet and prefix.
    public var guestMAC: MACAddress?
    /// Connections beyond this get RST on SYN.
    public var maxTCPConnections: Int
    /// Connections in TIME-WAIT beyond this are dropped oldest first.
    public var maxTimeWait: Int
    /// Bounds on the guest's fragments held for reassembly, per address family.
    public var reassembly = ReassemblyLimits()
    /// Faults to inject at the frame boundary (testing only); nil injects none.
    public var faults: FaultConfiguration? = nil

    public init(
        gatewayMAC: MACAddress = MACAddress(0x02, 0x47, 0x57, 0x00, 0x00, 0x01),
        gatewayIPv4: IPv4Address = IPv4Address(10, 0, 2, 2),
        prefixLength: Int = 24,
        guestIPv4: IPv4Address = IPv4Address(10, 0, 2, 15),
        gatewayIPv6: IPv6Address = IPv6Address("fd00:0:0:2::2")!,
        ipv6Prefix: IPv6Address = IPv6Address("fd00:0:0:2::")!,
        mtu: Int = 1500,
        vnetHeaderSize: Int = 10,
        offloads: Bool = true
    ) {
        self.gatewayMAC = gatewayMAC
        self.gatewayIPv4 = gatewayIPv4
        self.prefixLength = prefixLength
        self.guestIPv4 = guestIPv4
        self.gatewayIPv6 = gatewayIPv6
        self.ipv6Prefix = ipv6Prefix
        self.mtu = mtu
        self.vnetHeaderSize = vnetHeaderSize
        self.offloads = offloads && vnetHeaderSize > 0
        dnsServersIPv4 = [gatewayIPv4]
        dnsServersIPv6 = [gatewayIPv6]
        domainSearch = []
        leaseTime = .seconds(3600)
        tcp = TCPConfiguration()
        maxTCPConnections = 4096
        maxTimeWait = 1024
        tcp.localMSS = mtu - 40
        tcp.maxSegmentPayload = self.offloads ? 65_000 : mtu - 40
    }

    /// The gateway's link-local IPv6 address (EUI-64 from its MAC), the source of NDP traffic.
    public var gatewayLinkLocal: IPv6Address { IPv6Address(linkLocalFrom: gatewayMAC) }

    public var subnetMask: IPv4Address {
        IPv4Address(raw: prefixLength == 0 ? 0 : UInt32.max << UInt32(32 - prefixLength))
    }

    public var broadcastIPv4: IPv4Address { IPv4Address(raw: gatewayIPv4.raw | ~subnetMask.raw) }

    func isInSubnet(_ a: IPv4Address) -> Bool { a.raw & subnetMask.raw == gatewayIPv4.raw & subnetMask.raw }

    /// True for the gateway's own addresses, which stand for the host.
    public func isGatewayAddress(_ a: IPAddress) -> Bool {
        switch a {
        case .v4(let v): v == gatewayIPv4
        case .v6(let v): v == gatewayIPv6 || v == gatewayLinkLocal
        }
    }

    /// Addresses the guest may send from: its subnet (not the gateway's or broadcast), and
    /// 0.0.0.0 while it has none (DHCP).
    func isGuestSource(_ a: IPv4Address) -> Bool {
        a.isUnspecified || (isInSubnet(a) && a != gatewayIPv4 && a != broadcastIPv4)
    }

    /// IPv6 sources the guest may use: its /64, link-local, and :: for duplicate address detection.
    func isGuestSource(_ a: IPv6Address) -> Bool {
        a.isUnspecified || a.isLinkLocal || (a.high == ipv6Prefix.high && a != gatewayIPv6)
    }
}
