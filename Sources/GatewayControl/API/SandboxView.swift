// One sandbox as `GET /v1/sandboxes` and `gatewayctl list --json` show it: the Gateway's
// SandboxInfo plus what the control plane knows (DHCP, the guest's IPv6 address, its ports).
import Gateway
import Wire

public struct SandboxView: Codable, Sendable, Hashable {
    public var id: String
    /// "netns" or "vm".
    public var mode: String
    public var shard: Int
    /// The sandbox's interface: a TAP inside its namespace, or the TAP a VM monitor opens.
    public var tap: String
    public var namespace: String?
    /// For a VM, the bridge joining its TAP to the gateway's.
    public var bridge: String?
    /// The guest interface's MAC.
    public var mac: String
    public var gatewayMAC: String
    public var guestIPv4: String
    public var gatewayIPv4: String
    public var prefixLength: Int
    /// The guest's SLAAC address (its /64 and an EUI-64 interface ID from `mac`).
    public var guestIPv6: String
    public var guestIPv6Prefix: String
    public var gatewayIPv6: String
    public var mtu: Int
    public var policy: String
    public var dhcp: Bool
    /// Published ports leading to this sandbox.
    public var ports: [RouteView]
    /// What the operator should know about the attach (a host setting in the way, say).
    public var warning: String?
    /// What a restart could not bring back as it was (a host port another process took
    /// meanwhile, say); absent when everything was restored or the sandbox was not restored.
    public var restoreWarnings: [String]?

    public init(info: SandboxInfo, dhcp: Bool, ports: [RouteView], restoreWarnings: [String]? = nil) {
        id = info.id
        mode = info.mode
        shard = info.shard
        tap = info.tap
        namespace = info.namespace
        bridge = info.bridge
        mac = info.mac
        gatewayMAC = info.gatewayMAC
        guestIPv4 = info.guestIPv4
        gatewayIPv4 = info.gatewayIPv4
        prefixLength = info.prefixLength
        guestIPv6 = Self.slaacAddress(prefix: info.guestIPv6Prefix, mac: info.mac) ?? ""
        guestIPv6Prefix = info.guestIPv6Prefix
        gatewayIPv6 = info.gatewayIPv6
        mtu = info.mtu
        policy = info.policy
        self.dhcp = dhcp
        self.ports = ports
        warning = info.warning
        self.restoreWarnings = restoreWarnings
    }

    /// The address a guest forms from a /64 by SLAAC with an EUI-64 interface ID (RFC 4862 §5.5.3,
    /// RFC 4291 appendix A), which is what a Linux guest does by default.
    static func slaacAddress(prefix: String, mac: String) -> String? {
        let network = prefix.split(separator: "/").first.flatMap { IPv6Address($0) }
        guard let network, let mac = MACAddress(mac) else { return nil }
        let interfaceID = IPv6Address(linkLocalFrom: mac).low
        return IPv6Address(high: network.high, low: interfaceID).description
    }
}
