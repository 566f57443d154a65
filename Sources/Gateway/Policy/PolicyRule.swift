// One line of a sandbox's traffic policy: which flows it covers (direction, destination,
// protocol, ports) and whether they are allowed. The text form is in PolicyRule+Text.swift.
import Wire

/// Which way a flow was opened. For `egress` the destination is what the guest dialled; for
/// `ingress` (a published port) it is the remote peer that connected in.
public enum PolicyDirection: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case egress
    case ingress

    public var description: String { rawValue }
}

public enum PolicyAction: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case allow
    case deny

    public var description: String { rawValue }
}

/// The transport of a flow. ICMP covers ICMPv6 too. As a rule's protocol, `any` matches every
/// flow; as a flow's protocol it is matched only by rules for `any`.
public enum PolicyProtocol: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case tcp
    case udp
    case icmp
    case any

    /// The protocol for an IP protocol / next-header number (IANA); nil for others.
    public init?(ipProtocol: UInt8) {
        switch ipProtocol {
        case IPProtocol.tcp: self = .tcp
        case IPProtocol.udp: self = .udp
        case IPProtocol.icmp, IPProtocol.icmpv6: self = .icmp
        default: return nil
        }
    }

    public var description: String { rawValue }
}

/// What a rule's destination covers.
public enum PolicyDestination: Hashable, Sendable, CustomStringConvertible {
    case any
    /// An address block. Matches the address as the guest wrote it (a host alias included),
    /// with IPv4-mapped IPv6 destinations compared as the IPv4 address they carry.
    case cidr(IPAddress, prefixLength: Int)
    case group(PolicyGroup)
    /// Addresses this sandbox's own DNS answers gave for a name the pattern covers, while the
    /// answer lives (see `DNSPinTable`). Egress only.
    case domain(DomainPattern)
    /// The ports the named sandbox publishes on the host, reached through the gateway address
    /// (or the host address a port is bound to); a rule's ports are the sandbox's guest ports.
    /// Egress only. Such flows are denied unless a rule of this kind allows them: no other
    /// destination covers them (see `Policy.evaluate(reaching:guestPort:protocol:)`).
    case sandbox(String)

    public var description: String {
        switch self {
        case .any: "any"
        case .cidr(let address, let length):
            // A single host prints as its bare address, which the parser reads back as /32 or /128.
            switch (address, length) {
            case (.v4, 32), (.v6, 128): "\(address)"
            default: "\(address)/\(length)"
            }
        case .group(let group): "group:\(group)"
        case .domain(let pattern): "domain:\(pattern)"
        case .sandbox(let id): "sandbox:\(id)"
        }
    }

    /// The pattern of a domain destination.
    public var domainPattern: DomainPattern? {
        if case .domain(let pattern) = self { return pattern }
        return nil
    }

    /// `destination` has had IPv4-mapped addresses unwrapped; `groups` is its membership.
    @inline(__always)
    func matches(_ destination: IPAddress, groups: PolicyGroup.Membership) -> Bool {
        switch self {
        case .any:
            return true
        case .group(let group):
            return groups.contains(PolicyGroup.Membership(group))
        case .domain:
            // Needs the sandbox's pins, which `Policy.evaluate` consults itself.
            return false
        case .sandbox:
            // Matched against the publication a flow reaches, not its address.
            return false
        case .cidr(.v4(let network), let length):
            guard case .v4(let a) = destination else { return false }
            let bits = min(max(length, 0), 32)
            if bits == 0 { return true }
            let mask = UInt32.max << (32 - bits)
            return a.raw & mask == network.raw & mask
        case .cidr(.v6(let network), let length):
            guard case .v6(let a) = destination else { return false }
            let bits = min(max(length, 0), 128)
            let highMask: UInt64 = bits >= 64 ? .max : (bits == 0 ? 0 : UInt64.max << (64 - bits))
            let lowMask: UInt64 = bits <= 64 ? 0 : (bits == 128 ? .max : UInt64.max << (128 - bits))
            return a.high & highMask == network.high & highMask && a.low & lowMask == network.low & lowMask
        }
    }
}

/// A policy rule: flows it covers and what to do with them. A list of rules is read in order and
/// the first that matches decides (see `Policy`).
public struct PolicyRule: Hashable, Sendable, CustomStringConvertible {
    public var action: PolicyAction
    public var direction: PolicyDirection
    public var `protocol`: PolicyProtocol
    public var destination: PolicyDestination
    /// Destination port ranges (for ingress, the published port); nil covers every port and
    /// flows without ports (ICMP). With ranges, only TCP and UDP flows can match.
    public var ports: [ClosedRange<UInt16>]?

    public init(
        _ action: PolicyAction, _ direction: PolicyDirection, protocol: PolicyProtocol = .any,
        destination: PolicyDestination = .any, ports: [ClosedRange<UInt16>]? = nil
    ) {
        self.action = action
        self.direction = direction
        self.protocol = `protocol`
        self.destination = destination
        self.ports = ports
    }

    /// A rule for a single port range.
    public init(
        _ action: PolicyAction, _ direction: PolicyDirection, protocol: PolicyProtocol = .any,
        destination: PolicyDestination = .any, portRange: ClosedRange<UInt16>
    ) {
        self.init(action, direction, protocol: `protocol`, destination: destination, ports: [portRange])
    }

    /// Whether the rule covers a flow's direction, protocol and port, whatever its destination.
    @inline(__always)
    func matches(direction: PolicyDirection, protocol flowProtocol: PolicyProtocol, port: UInt16?) -> Bool {
        guard direction == self.direction else { return false }
        guard self.protocol == .any || self.protocol == flowProtocol else { return false }
        if let ports {
            guard let port, ports.contains(where: { $0.contains(port) }) else { return false }
        }
        return true
    }

    /// The rule in its text form, which `PolicyRule(parsing:)` reads back to an equal rule.
    public var description: String {
        var text = "\(action) \(direction) \(self.protocol) \(destination)"
        if let ports {
            text += " ports "
            for (i, range) in ports.enumerated() {
                if i > 0 { text += "," }
                text += "\(range.lowerBound)"
                if range.upperBound != range.lowerBound { text += "-\(range.upperBound)" }
            }
        }
        return text
    }
}
