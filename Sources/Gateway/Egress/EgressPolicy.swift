// The built-in egress profiles: host-only (only the gateway address, i.e. the host's loopback),
// public (public addresses and the host; private, link-local, metadata, loopback refused), open.
import NetStack
import Wire

struct EgressPolicy: Sendable {
    enum Profile: String, Sendable, CaseIterable {
        case hostOnly = "host-only"
        case `public` = "public"
        case open = "open"
    }

    let profile: Profile

    init(profile name: String) throws(GatewayError) {
        guard let p = Profile(rawValue: name) else {
            throw GatewayError(.invalidArgument, "unknown policy profile '\(name)': use one of \(Profile.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        profile = p
    }

    func verdict(for key: FlowKey, protocolNumber: UInt8, configuration c: StackConfiguration) -> EgressVerdict {
        let isHost: Bool
        switch key.remoteAddress {
        case .v4(let a): isHost = a == c.gatewayIPv4
        case .v6(let a): isHost = a == c.gatewayIPv6 || a == c.gatewayLinkLocal
        }
        switch profile {
        case .open:
            return .allow
        case .hostOnly:
            return isHost ? .allow : .deny
        case .public:
            if isHost { return .allow }
            return Self.isPublic(key.remoteAddress) ? .allow : .deny
        }
    }

    static func isPublic(_ a: IPAddress) -> Bool {
        switch a {
        case .v4(let v):
            let r = v.raw
            return !(v.isPrivate || v.isLoopback || v.isLinkLocal || v.isMulticast || v.isUnspecified || v.isBroadcast
                || r >> 24 == 0 || r >> 28 == 0xF || r >> 22 == 0x191 /* 100.64/10 */)
        case .v6(let v):
            return !(v.isLoopback || v.isLinkLocal || v.isMulticast || v.isUnspecified || v.isUniqueLocal || v.ipv4Mapped != nil)
        }
    }
}
