// Named groups of destinations that policy rules can refer to (`group:private`), and the address
// classification behind them: which special-purpose ranges an address falls in.
import Wire

/// A named set of destinations.
///
/// Membership is decided per group, so groups overlap: 169.254.169.254 is in `metadata` and in
/// `linkLocal`, and a rule list resolves the overlap by order. Two exceptions:
/// - `hostAlias` is exclusive. A destination the caller marks as one of the sandbox's own
///   gateway addresses is relayed to the host's loopback, not to that address, so it belongs to
///   `hostAlias` alone and no other group claims it (10.0.2.2 as a host alias is not `private`).
/// - `public` is what no other group claims and no reserved range holds.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) and the NAT64 well-known prefix
/// (`64:ff9b::/96`, RFC 6052 §2.1) are classified by the IPv4 address they carry, so that
/// `::ffff:169.254.169.254` cannot slip past a rule about `metadata`.
public enum PolicyGroup: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    /// The sandbox's own gateway addresses, which stand for the host's loopback.
    case hostAlias = "host-alias"
    /// 127.0.0.0/8 and ::1 (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3).
    case loopback
    /// 10/8, 172.16/12, 192.168/16 (RFC 1918 §3), 100.64/10 shared CGNAT space (RFC 6598 §7)
    /// and fc00::/7 unique local addresses (RFC 4193 §3.1).
    case `private`
    /// 169.254/16 (RFC 3927 §2.1) and fe80::/10 (RFC 4291 §2.5.6).
    case linkLocal = "link-local"
    /// Cloud instance metadata services: 169.254.169.254 and fd00:ec2::254.
    case metadata
    /// 224/4 (RFC 5771), ff00::/8 (RFC 4291 §2.7) and the limited broadcast 255.255.255.255
    /// (RFC 919 §7).
    case multicast
    /// Everything else that is not reserved.
    case `public`

    public var description: String { rawValue }

    /// Looks a group up by its text name (`host-alias`, `link-local`, …); the Swift case names
    /// (`hostAlias`, `linkLocal`) are accepted too. Case-insensitive.
    public init?(name: some StringProtocol) {
        let lowered = name.lowercased()
        guard let group = PolicyGroup.allCases.first(where: {
            $0.rawValue == lowered || String($0.rawValue.filter { $0 != "-" }) == lowered
        }) else { return nil }
        self = group
    }

    /// Whether `address` is in this group. `isHostAlias` says whether the destination is one of
    /// the sandbox's gateway addresses.
    public func contains(_ address: IPAddress, isHostAlias: Bool) -> Bool {
        Membership(of: address, isHostAlias: isHostAlias).contains(Membership(self))
    }

    /// The groups an address is in, computed once per evaluation.
    struct Membership: OptionSet {
        let rawValue: UInt8

        init(rawValue: UInt8) { self.rawValue = rawValue }

        init(_ group: PolicyGroup) {
            switch group {
            case .hostAlias: rawValue = 1 << 0
            case .loopback: rawValue = 1 << 1
            case .private: rawValue = 1 << 2
            case .linkLocal: rawValue = 1 << 3
            case .metadata: rawValue = 1 << 4
            case .multicast: rawValue = 1 << 5
            case .public: rawValue = 1 << 6
            }
        }

        /// Marks an address that no group but `hostAlias` may claim and that is not public.
        static let reserved = Membership(rawValue: 1 << 7)

        init(of address: IPAddress, isHostAlias: Bool) {
            if isHostAlias {
                self = Membership(.hostAlias)
                return
            }
            var m: Membership
            switch PolicyGroup.embeddedIPv4(address) {
            case .v4(let a): m = Membership.classify(a)
            case .v6(let a): m = Membership.classify(a)
            }
            if m.isEmpty { m = Membership(.public) }
            m.remove(.reserved)
            self = m
        }

        static func classify(_ address: IPv4Address) -> Membership {
            let a = address.raw
            var m: Membership = []
            if a >> 24 == 127 { m.insert(Membership(.loopback)) }
            // 10/8, 172.16/12, 192.168/16, 100.64/10.
            if a >> 24 == 10 || a >> 20 == 0xAC1 || a >> 16 == 0xC0A8 || a >> 22 == 0x191 {
                m.insert(Membership(.private))
            }
            if a >> 16 == 0xA9FE { m.insert(Membership(.linkLocal)) }
            if a == 0xA9FE_A9FE { m.insert(Membership(.metadata)) }
            if a >> 28 == 0xE || a == 0xFFFF_FFFF { m.insert(Membership(.multicast)) }
            // "This network" 0/8 (RFC 791, RFC 1122 §3.2.1.3), the former class E 240/4
            // (RFC 1112 §4), and the documentation blocks TEST-NET-1/2/3 (RFC 5737 §3).
            if a >> 24 == 0 || a >> 28 == 0xF || a >> 8 == 0xC0_0002 || a >> 8 == 0xC6_3364 || a >> 8 == 0xCB_0071 {
                m.insert(.reserved)
            }
            return m
        }

        static func classify(_ address: IPv6Address) -> Membership {
            var m: Membership = []
            if address.isLoopback { m.insert(Membership(.loopback)) }
            if address.high >> 57 == 0x7E { m.insert(Membership(.private)) }
            if address.high >> 54 == 0x3FA { m.insert(Membership(.linkLocal)) }
            if address.high == 0xFD00_0EC2_0000_0000 && address.low == 0x254 { m.insert(Membership(.metadata)) }
            if address.high >> 56 == 0xFF { m.insert(Membership(.multicast)) }
            // ::/8 (unspecified, the deprecated IPv4-compatible form; RFC 4291 §2.5.2, §2.5.5.1)
            // and the documentation prefixes 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637).
            if address.high >> 56 == 0 || address.high >> 32 == 0x2001_0DB8 || address.high >> 44 == 0x3_FFF0 {
                m.insert(.reserved)
            }
            return m
        }
    }

    /// The IPv4 address an IPv6 address carries when it is IPv4-mapped (RFC 4291 §2.5.5.2) or in
    /// the NAT64 well-known prefix (RFC 6052 §2.1); otherwise the address itself.
    static func embeddedIPv4(_ address: IPAddress) -> IPAddress {
        guard case .v6(let a) = address else { return address }
        if let v4 = a.ipv4Mapped { return .v4(v4) }
        if a.high == 0x0064_FF9B_0000_0000 && a.low >> 32 == 0 {
            return .v4(IPv4Address(raw: UInt32(truncatingIfNeeded: a.low)))
        }
        return address
    }
}
