// Link and network addresses as small value types: no heap, cheap to hash and compare.

/// A 48-bit Ethernet MAC address held in the low bits of a UInt64.
public struct MACAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var raw: UInt64

    public init(raw: UInt64) { self.raw = raw & 0xFFFF_FFFF_FFFF }
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        raw = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24 | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }
    /// Parses "aa:bb:cc:dd:ee:ff" (or with dashes); nil when malformed.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var v: UInt64 = 0
        for p in parts {
            guard p.count == 2, let b = UInt8(p, radix: 16) else { return nil }
            v = v << 8 | UInt64(b)
        }
        raw = v
    }

    public static let broadcast = MACAddress(raw: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(raw: 0)

    public var isBroadcast: Bool { raw == 0xFFFF_FFFF_FFFF }
    /// Group bit: broadcast and multicast destinations.
    public var isMulticast: Bool { raw & 0x0100_0000_0000 != 0 }
    public var isLocallyAdministered: Bool { raw & 0x0200_0000_0000 != 0 }
    public var isUnicast: Bool { !isMulticast }

    /// The Ethernet multicast address an IPv6 multicast group maps to (RFC 2464 §7).
    public init(ipv6Multicast ip: IPv6Address) {
        raw = 0x3333_0000_0000 | (ip.low & 0xFFFF_FFFF)
    }

    public func byte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: raw >> (40 - 8 * UInt64(i))) }

    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.raw < b.raw }

    public var description: String {
        let hex: [Character] = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(17)
        for i in 0..<6 {
            if i > 0 { s.append(":") }
            let b = byte(i)
            s.append(hex[Int(b >> 4)])
            s.append(hex[Int(b & 0xF)])
        }
        return s
    }
}

/// An IPv4 address in host byte order.
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var raw: UInt32

    public init(raw: UInt32) { self.raw = raw }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        raw = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }
    /// Parses dotted-quad text; nil when malformed.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let b = UInt8(p) else {
                return nil
            }
            v = v << 8 | UInt32(b)
        }
        raw = v
    }

    public static let any = IPv4Address(raw: 0)
    public static let broadcast = IPv4Address(raw: 0xFFFF_FFFF)
    public static let loopback = IPv4Address(127, 0, 0, 1)

    public var isUnspecified: Bool { raw == 0 }
    public var isBroadcast: Bool { raw == 0xFFFF_FFFF }
    public var isLoopback: Bool { raw >> 24 == 127 }
    public var isMulticast: Bool { raw >> 28 == 0xE }
    public var isLinkLocal: Bool { raw >> 16 == 0xA9FE }
    public var isPrivate: Bool {
        raw >> 24 == 10 || raw >> 20 == 0xAC1 || raw >> 16 == 0xC0A8
    }

    public func byte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: raw >> (24 - 8 * UInt32(i))) }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.raw < b.raw }

    public var description: String { "\(byte(0)).\(byte(1)).\(byte(2)).\(byte(3))" }
}

/// An IPv6 address as two host-order 64-bit halves.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
    /// Eight 16-bit groups, as written.
    public init(_ g: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16)) {
        high = UInt64(g.0) << 48 | UInt64(g.1) << 32 | UInt64(g.2) << 16 | UInt64(g.3)
        low = UInt64(g.4) << 48 | UInt64(g.5) << 32 | UInt64(g.6) << 16 | UInt64(g.7)
    }
    /// Parses RFC 4291 text ("fd00::1", "::", "fe80::1:2"); an embedded dotted quad is accepted
    /// in the last 32 bits. nil when malformed.
    public init?(_ text: some StringProtocol) {
        // Split on "::" by hand: Wire stays free of Foundation.
        let chars = Array(String(text))
        var halves: [String] = []
        var current = ""
        var i = 0
        while i < chars.count {
            if chars[i] == ":" && i + 1 < chars.count && chars[i + 1] == ":" {
                halves.append(current)
                current = ""
                i += 2
            } else {
                current.append(chars[i])
                i += 1
            }
        }
        halves.append(current)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, f) in fields.enumerated() {
                if i == fields.count - 1, f.contains(".") {
                    guard let v4 = IPv4Address(f) else { return nil }
                    out.append(UInt16(v4.raw >> 16))
                    out.append(UInt16(v4.raw & 0xFFFF))
                } else {
                    guard !f.isEmpty, f.count <= 4, let v = UInt16(f, radix: 16) else { return nil }
                    out.append(v)
                }
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard head.count == 8 else { return nil }
            all = head
        }
        high = 0
        low = 0
        for i in 0..<4 { high = high << 16 | UInt64(all[i]) }
        for i in 4..<8 { low = low << 16 | UInt64(all[i]) }
    }

    public static let any = IPv6Address(high: 0, low: 0)
    public static let loopback = IPv6Address(high: 0, low: 1)
    /// ff02::1, all nodes.
    public static let allNodes = IPv6Address(high: 0xFF02_0000_0000_0000, low: 1)
    /// ff02::2, all routers.
    public static let allRouters = IPv6Address(high: 0xFF02_0000_0000_0000, low: 2)

    public var isUnspecified: Bool { high == 0 && low == 0 }
    public var isLoopback: Bool { high == 0 && low == 1 }
    public var isMulticast: Bool { high >> 56 == 0xFF }
    public var isLinkLocal: Bool { high >> 54 == 0x3FA }  // fe80::/10
    public var isUniqueLocal: Bool { high >> 57 == 0x7E }  // fc00::/7
    /// ::ffff:a.b.c.d
    public var ipv4Mapped: IPv4Address? {
        high == 0 && low >> 32 == 0xFFFF ? IPv4Address(raw: UInt32(truncatingIfNeeded: low)) : nil
    }

    /// The solicited-node multicast group of this address (RFC 4291 §2.7.1).
    public var solicitedNodeMulticast: IPv6Address {
        IPv6Address(high: 0xFF02_0000_0000_0000, low: 0x0000_0001_FF00_0000 | (low & 0xFF_FFFF))
    }

    /// A link-local address with an EUI-64 interface identifier built from a MAC (RFC 4291 App. A).
    public init(linkLocalFrom mac: MACAddress) {
        high = 0xFE80_0000_0000_0000
        low = IPv6Address.eui64(mac)
    }

    public static func eui64(_ mac: MACAddress) -> UInt64 {
        let m = mac.raw ^ 0x0200_0000_0000
        return (m >> 24) << 40 | 0xFF_FE00_0000 | (m & 0xFF_FFFF)
    }

    public func byte(_ i: Int) -> UInt8 {
        i < 8 ? UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
            : UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i - 8)))
    }

    public func group(_ i: Int) -> UInt16 {
        i < 4 ? UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64(i)))
            : UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64(i - 4)))
    }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// RFC 5952 text: lower case, the longest run of zero groups (two or more) compressed.
    public var description: String {
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if group(i) == 0 {
                var j = i
                while j < 8 && group(j) == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else {
                i += 1
            }
        }
        var s = ""
        i = 0
        while i < 8 {
            if i == bestStart {
                s += "::"
                i += bestLen
                continue
            }
            if !s.isEmpty && !s.hasSuffix(":") { s += ":" }
            s += String(group(i), radix: 16)
            i += 1
        }
        return s
    }
}

/// Either family, for code that handles both (flow keys, policy).
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    public init?(_ text: some StringProtocol) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text) { self = .v6(a) } else { return nil }
    }

    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .v4(let a): a.description
        case .v6(let a): a.description
        }
    }
}
