// The ADD result (SPEC.md, Section 5 "ADD Success") made from gatewayd's answer, and read back
// as the `prevResult` of CHECK and DEL. Every field is optional on reading: another plugin may
// have written it.
import GatewayControl

public struct CNIResult: Codable, Sendable, Hashable {
    public var cniVersion: String?
    public var interfaces: [Interface]?
    public var ips: [IPConfig]?
    public var routes: [Route]?
    public var dns: DNS?

    public struct Interface: Codable, Sendable, Hashable {
        public var name: String
        public var mac: String?
        public var mtu: Int?
        /// The namespace's path, as CNI_NETNS gave it.
        public var sandbox: String?
    }

    public struct IPConfig: Codable, Sendable, Hashable {
        /// "4" or "6", in results before 1.0.0 only.
        public var version: String?
        /// CIDR notation: "10.88.0.2/28".
        public var address: String
        public var gateway: String?
        /// Index into `interfaces`.
        public var interface: Int?
    }

    public struct Route: Codable, Sendable, Hashable {
        public var dst: String
        public var gw: String?
    }

    public struct DNS: Codable, Sendable, Hashable {
        public var nameservers: [String]?
        public var domain: String?
        public var search: [String]?
        public var options: [String]?
    }

    /// The result for an attach gatewayd answered with `view`: the one interface it made, its
    /// IPv4 address (and the IPv6 one the guest forms by SLAAC, when gatewayd gives one), default
    /// routes through the gateway, and the gateway as resolver (gatewayd answers DNS there).
    public init(view: SandboxView, netns: String, version: CNIVersion) {
        cniVersion = version.description
        interfaces = [
            Interface(
                name: view.tap, mac: view.mac, mtu: version.reportsInterfaceMTU ? view.mtu : nil, sandbox: netns)
        ]
        var ips = [
            IPConfig(
                version: version.tagsAddressFamily ? "4" : nil, address: "\(view.guestIPv4)/\(view.prefixLength)",
                gateway: view.gatewayIPv4, interface: 0)
        ]
        var routes = [Route(dst: "0.0.0.0/0", gw: view.gatewayIPv4)]
        if !view.guestIPv6.isEmpty, !view.gatewayIPv6.isEmpty {
            let length = view.guestIPv6Prefix.split(separator: "/").last.flatMap { Int($0) } ?? 64
            ips.append(
                IPConfig(
                    version: version.tagsAddressFamily ? "6" : nil, address: "\(view.guestIPv6)/\(length)",
                    gateway: view.gatewayIPv6, interface: 0))
            routes.append(Route(dst: "::/0", gw: view.gatewayIPv6))
        }
        self.ips = ips
        self.routes = routes
        dns = DNS(nameservers: [view.gatewayIPv4])
    }

    /// How `view` differs from what this result says of the interface named `ifname`, in words;
    /// empty when it does not. Only what gatewayd made is compared: a later plugin of the chain
    /// may have added routes or addresses of its own.
    public func differences(from view: SandboxView, ifname: String) -> [String] {
        guard let interfaces, let index = interfaces.firstIndex(where: { $0.name == ifname }) else { return [] }
        var found: [String] = []
        if let mac = interfaces[index].mac, mac.lowercased() != view.mac.lowercased() {
            found.append("its MAC is \(view.mac), not \(mac)")
        }
        let ours = (ips ?? []).filter { $0.interface == index }.map(\.address)
        let v4 = "\(view.guestIPv4)/\(view.prefixLength)"
        if let address = ours.first(where: { !$0.contains(":") }), address != v4 {
            found.append("its address is \(v4), not \(address)")
        }
        return found
    }
}
