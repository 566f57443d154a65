// DNS RCODE values (RFC 1035 §4.1.1; 12-bit extended codes with EDNS, RFC 6891 §6.1.3).

/// A response code. Values above 15 exist only with EDNS: the header holds the low 4 bits and
/// the OPT record the high 8.
public struct DNSResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    /// NXDOMAIN: the name does not exist.
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)
    /// BADVERS: the query's EDNS version is not supported (RFC 6891 §9).
    public static let badVersion = DNSResponseCode(rawValue: 16)

    public var description: String {
        switch rawValue {
        case 0: "NOERROR"
        case 1: "FORMERR"
        case 2: "SERVFAIL"
        case 3: "NXDOMAIN"
        case 4: "NOTIMP"
        case 5: "REFUSED"
        case 16: "BADVERS"
        default: "RCODE\(rawValue)"
        }
    }
}

/// The header's OPCODE (RFC 1035 §4.1.1, NOTIFY RFC 1996, UPDATE RFC 2136).
public struct DNSOpcode: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    public static let query = DNSOpcode(rawValue: 0)
    public static let status = DNSOpcode(rawValue: 2)
    public static let notify = DNSOpcode(rawValue: 4)
    public static let update = DNSOpcode(rawValue: 5)
}
