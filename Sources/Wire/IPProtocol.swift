// IP protocol numbers and IPv6 next-header values (IANA "Assigned Internet Protocol Numbers"):
// one space for both, since IPv6 next-header values are IPv4 protocol numbers (RFC 8200 §3).

public enum IPProtocol {
    /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
    public static let hopByHop: UInt8 = 0
    public static let icmp: UInt8 = 1
    public static let igmp: UInt8 = 2
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    /// IPv6 Routing header (RFC 8200 §4.4).
    public static let routing: UInt8 = 43
    /// IPv6 Fragment header (RFC 8200 §4.5).
    public static let fragment: UInt8 = 44
    /// Encapsulating Security Payload (RFC 4303): opaque, so header walks stop here.
    public static let esp: UInt8 = 50
    /// Authentication Header (RFC 4302), whose length counts 4-octet units.
    public static let ah: UInt8 = 51
    public static let icmpv6: UInt8 = 58
    /// No next header (RFC 8200 §4.7): nothing follows.
    public static let noNextHeader: UInt8 = 59
    /// IPv6 Destination Options (RFC 8200 §4.6).
    public static let destinationOptions: UInt8 = 60
}
