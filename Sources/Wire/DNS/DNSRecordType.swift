// DNS TYPE and CLASS values (RFC 1035 §3.2.2–§3.2.4, AAAA RFC 3596 §2.1, OPT RFC 6891 §6.1.1).

/// A resource record TYPE (or QTYPE). A struct so that unknown types pass through unchanged.
public struct DNSRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = DNSRecordType(rawValue: 1)
    public static let ns = DNSRecordType(rawValue: 2)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let ptr = DNSRecordType(rawValue: 12)
    public static let mx = DNSRecordType(rawValue: 15)
    public static let txt = DNSRecordType(rawValue: 16)
    public static let aaaa = DNSRecordType(rawValue: 28)
    public static let srv = DNSRecordType(rawValue: 33)
    public static let opt = DNSRecordType(rawValue: 41)
    public static let svcb = DNSRecordType(rawValue: 64)
    public static let https = DNSRecordType(rawValue: 65)
    /// QTYPE "*" (RFC 1035 §3.2.3).
    public static let any = DNSRecordType(rawValue: 255)

    public var description: String {
        switch rawValue {
        case 1: "A"
        case 2: "NS"
        case 5: "CNAME"
        case 6: "SOA"
        case 12: "PTR"
        case 15: "MX"
        case 16: "TXT"
        case 28: "AAAA"
        case 33: "SRV"
        case 41: "OPT"
        case 64: "SVCB"
        case 65: "HTTPS"
        case 255: "ANY"
        default: "TYPE\(rawValue)"
        }
    }
}

/// A resource record CLASS (or QCLASS); in practice always IN. For OPT the field is the
/// sender's UDP payload size instead (RFC 6891 §6.1.2).
public struct DNSClass: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let internet = DNSClass(rawValue: 1)
    public static let chaos = DNSClass(rawValue: 3)
    /// QCLASS "*" (RFC 1035 §3.2.5).
    public static let any = DNSClass(rawValue: 255)
}
