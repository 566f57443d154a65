// DHCP option codes the gateway reads or writes (RFC 2132; domain search RFC 3397).

/// An option code. A struct so that codes the gateway does not know pass through unchanged.
public struct DHCPOptionCode: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Filler with no length byte (RFC 2132 §3.1).
    public static let pad = DHCPOptionCode(rawValue: 0)
    public static let subnetMask = DHCPOptionCode(rawValue: 1)
    public static let router = DHCPOptionCode(rawValue: 3)
    public static let domainNameServer = DHCPOptionCode(rawValue: 6)
    public static let hostName = DHCPOptionCode(rawValue: 12)
    public static let domainName = DHCPOptionCode(rawValue: 15)
    public static let interfaceMTU = DHCPOptionCode(rawValue: 26)
    public static let broadcastAddress = DHCPOptionCode(rawValue: 28)
    public static let requestedIPAddress = DHCPOptionCode(rawValue: 50)
    public static let leaseTime = DHCPOptionCode(rawValue: 51)
    /// Option overload: 'file' and/or 'sname' carry options too (RFC 2132 §9.3).
    public static let overload = DHCPOptionCode(rawValue: 52)
    public static let messageType = DHCPOptionCode(rawValue: 53)
    public static let serverIdentifier = DHCPOptionCode(rawValue: 54)
    public static let parameterRequestList = DHCPOptionCode(rawValue: 55)
    public static let message = DHCPOptionCode(rawValue: 56)
    public static let maxMessageSize = DHCPOptionCode(rawValue: 57)
    /// T1 (RFC 2132 §9.11).
    public static let renewalTime = DHCPOptionCode(rawValue: 58)
    /// T2 (RFC 2132 §9.12).
    public static let rebindingTime = DHCPOptionCode(rawValue: 59)
    public static let vendorClassIdentifier = DHCPOptionCode(rawValue: 60)
    public static let clientIdentifier = DHCPOptionCode(rawValue: 61)
    public static let domainSearch = DHCPOptionCode(rawValue: 119)
    /// The last option of an area (RFC 2132 §3.2).
    public static let end = DHCPOptionCode(rawValue: 255)
}
