// The body of `POST /v1/sandboxes` and the file kept per sandbox in the state directory: what
// the sandbox was attached with, so a restarted gatewayd can attach it again.
import Gateway
import Link
import Wire

public struct AttachRequest: Codable, Sendable, Hashable {
    public var id: String
    /// The network namespace the sandbox's interface goes into: a name `ip netns` knows
    /// (/run/netns/NAME), or the absolute path of a namespace file (/proc/PID/ns/net, a bind mount
    /// of one), as container runtimes give it. Exactly one of `netns` and `vm` is given.
    public var netns: String?
    /// The interface's name inside the namespace (`eth0`); nil: `gwt-N`.
    public var ifname: String?
    /// Attach a VM: gatewayd makes the TAP its monitor opens by name.
    public var vm: VM?
    public var dhcp: Bool?
    public var mtu: Int?
    public var policy: String?
    /// The guest interface's MAC ("02:00:00:00:00:01"); nil keeps the kernel's random one in a
    /// namespace, and picks one from the sandbox's index for a VM.
    public var mac: String?
    /// TCP buffer memory the sandbox may hold, in MiB; nil: its policy's, else the daemon's.
    public var memoryBudgetMiB: Int?
    /// Rate limits over the policy's: bytes per second each way as a bit rate ("100mbit"), or
    /// one way each (`rateLimitUp`: to the host, `rateLimitDown`: from it); UDP datagrams per
    /// second each way; new flows per second; flows open at once.
    public var rateLimit: String?
    public var rateLimitUp: String?
    public var rateLimitDown: String?
    public var packetRate: Int?
    public var connectionRate: Int?
    public var maxFlows: Int?
    /// Ports to publish with the attach, as `POST /v1/sandboxes/ID/ports` takes them; if one
    /// cannot be published the attach is undone. In a state file: the ports as bound.
    public var ports: [PublishRequest]?

    /// `"vm": {"owner": 1000, "group": 1000}`: who may open the VM's TAP without CAP_NET_ADMIN
    /// (both optional; `"vm": {}` leaves it to root).
    public struct VM: Codable, Sendable, Hashable {
        public var owner: UInt32?
        public var group: UInt32?

        public init(owner: UInt32? = nil, group: UInt32? = nil) {
            self.owner = owner
            self.group = group
        }
    }

    public init(
        id: String, netns: String? = nil, vm: VM? = nil, dhcp: Bool? = nil, mtu: Int? = nil, policy: String? = nil,
        mac: String? = nil, ports: [PublishRequest]? = nil, ifname: String? = nil
    ) {
        self.id = id
        self.netns = netns
        self.ifname = ifname
        self.vm = vm
        self.dhcp = dhcp
        self.mtu = mtu
        self.policy = policy
        self.mac = mac
        self.ports = ports
    }

    /// The rate limits this request sets; the error names the field and the value.
    func rateLimits() throws(ControlError) -> RateLimits {
        var r = RateLimits()
        func rate(_ text: String?, _ field: String) throws(ControlError) -> UInt64? {
            guard let text else { return nil }
            guard let bytes = RateLimits.bytesPerSecond(parsing: text) else {
                throw ControlError(
                    .invalidArgument, "\(field) '\(text)' is not a rate: write a number and a unit, e.g. 100mbit (kbit, mbit, gbit)")
            }
            return bytes
        }
        func count(_ n: Int?, _ field: String, max: Int) throws(ControlError) -> Int? {
            guard let n else { return nil }
            guard (1...max).contains(n) else {
                throw ControlError(.invalidArgument, "\(field) \(n) is out of range: use 1-\(max)")
            }
            return n
        }
        let both = try rate(rateLimit, "rateLimit")
        r.toHostBytesPerSecond = try rate(rateLimitUp, "rateLimitUp") ?? both
        r.fromHostBytesPerSecond = try rate(rateLimitDown, "rateLimitDown") ?? both
        r.packetsPerSecond = try count(packetRate, "packetRate", max: 100_000_000)
        r.connectionsPerSecond = try count(connectionRate, "connectionRate", max: 1_000_000)
        r.maxFlows = try count(maxFlows, "maxFlows", max: 1_000_000)
        return r
    }

    /// Where a named namespace lives (iproute2's convention).
    public static let namespaceDirectory = "/run/netns"

    /// Checks every field and builds the Gateway's spec; the error names the field and the value.
    public func spec(defaultPolicy: String = "host-only") throws(ControlError) -> SandboxSpec {
        do {
            try SandboxSpec.validate(id: id)
        } catch {
            throw ControlError(error)
        }
        var spec: SandboxSpec
        switch (netns, vm) {
        case (let netns?, nil):
            guard Self.isValidNamespaceName(netns) || Self.isValidNamespacePath(netns) else {
                throw ControlError(
                    .invalidArgument,
                    "namespace '\(netns)' is not valid: use the name 'ip netns list' shows, or the absolute path of a "
                        + "namespace file (/proc/PID/ns/net)")
            }
            spec = SandboxSpec(id: id, mode: .netns(netns))
            spec.dhcp = dhcp ?? false
            if let ifname {
                do {
                    try InterfaceName.validate(ifname, operation: "attach")
                } catch {
                    throw ControlError(
                        .invalidArgument, "interface name '\(ifname)' is not valid: use 1-15 bytes without '/', ':' or spaces")
                }
                spec.interfaceName = ifname
            }
        case (nil, let vm?):
            guard ifname == nil else {
                throw ControlError(
                    .invalidArgument, "a VM's TAP is named by gatewayd (gwv-N) for its monitor to open: leave out ifname")
            }
            guard dhcp != false else {
                throw ControlError(
                    .invalidArgument,
                    "a VM configures itself by DHCP and SLAAC (gatewayd cannot reach inside it): leave out dhcp")
            }
            spec = SandboxSpec(id: id, mode: .vm(owner: vm.owner, group: vm.group))
            spec.dhcp = true
        case (nil, nil):
            throw ControlError(
                .invalidArgument, "say what to attach: a namespace (\"netns\": NAME) or a VM (\"vm\": {})")
        case (_?, _?):
            throw ControlError(
                .invalidArgument, "attach a namespace (\"netns\") or a VM (\"vm\"), not both")
        }
        if let mtu {
            guard (576...65_520).contains(mtu) else {
                throw ControlError(.invalidArgument, "MTU \(mtu) is out of range: use 576-65520 (1500 is Ethernet's)")
            }
            spec.mtu = mtu
        }
        spec.policy = policy ?? defaultPolicy
        if let memoryBudgetMiB {
            guard (1...1_048_576).contains(memoryBudgetMiB) else {
                throw ControlError(
                    .invalidArgument, "memory budget \(memoryBudgetMiB) MiB is out of range: use 1-1048576")
            }
            spec.memoryBudget = memoryBudgetMiB << 20
        }
        spec.rateLimits = try rateLimits()
        if let mac {
            guard let address = MACAddress(mac), address.raw & 0x0100_0000_0000 == 0, address.raw != 0 else {
                throw ControlError(
                    .invalidArgument,
                    "MAC '\(mac)' is not a unicast MAC address: write six hex bytes, e.g. 02:00:00:00:00:01")
            }
            spec.guestMAC = address
        }
        return spec
    }

    /// An absolute path, for the privileged side to open and check (a regular nsfs file of a
    /// network namespace that is not the host's).
    public static func isValidNamespacePath(_ path: String) -> Bool {
        path.hasPrefix("/") && path.utf8.count <= 4096 && !path.utf8.contains(0)
    }

    /// Whether `netns` names a namespace by path rather than by `ip netns` name.
    public var namespaceIsPath: Bool { netns?.hasPrefix("/") ?? false }

    /// A name that is a single path component under /run/netns.
    public static func isValidNamespaceName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255 && name != "." && name != ".." && !name.contains("/")
            && !name.utf8.contains(0)
    }
}
