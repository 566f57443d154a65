// What `attach` takes: the sandbox's ID, how it is attached, and its link and policy settings.
import Link
import Wire

public struct SandboxSpec: Sendable {
    public enum Mode: Sendable, Equatable {
        /// The TAP's netdev lives in a network namespace: one `ip netns` named (/run/netns/NAME),
        /// or the one at an absolute path (/proc/PID/ns/net, a bind mount), as CNI runtimes give it.
        case netns(String)
        /// A VM: gatewayd makes a persistent TAP (`gwv-N`) in the host namespace for the VM
        /// monitor to open by name, bridged to the stack's own TAP. `owner` and `group` may open
        /// it without CAP_NET_ADMIN (TUNSETOWNER, TUNSETGROUP). The guest configures itself by
        /// DHCP and SLAAC and must use the MAC the gateway reports.
        case vm(owner: UInt32?, group: UInt32?)

        /// The namespace's name, for a namespace sandbox.
        public var namespace: String? {
            if case .netns(let name) = self { return name }
            return nil
        }

        /// "netns" or "vm", as the control plane shows it.
        public var name: String {
            switch self {
            case .netns: "netns"
            case .vm: "vm"
            }
        }
    }

    public var id: String
    public var mode: Mode
    /// Leave addressing to the guest's DHCP client (and SLAAC) instead of configuring it.
    public var dhcp = false
    public var mtu = 1500
    /// Egress policy profile: host-only, public or open.
    public var policy = "host-only"
    /// The guest interface's MAC. nil: in a namespace, the kernel's random one; for a VM, one
    /// derived from the sandbox's index (``AddressPlan/Assignment/guestMAC``).
    public var guestMAC: MACAddress?
    /// Bytes of TCP buffers the sandbox may hold and promise; nil: its policy's, else the
    /// gateway's default (`GatewayConfiguration.memoryBudget`).
    public var memoryBudget: Int?
    /// Rate limits over its policy's: each one set here takes the place of the policy's.
    public var rateLimits = RateLimits()
    /// The address block (``AddressPlan/assignment(index:)``) to take; nil takes the first free
    /// one. A restart asks for the block a sandbox had, so its guest keeps its addresses.
    public var addressBlock: Int?
    /// For a VM restored after a gatewayd crash: take over the VM TAP and bridge that outlived
    /// the process (its monitor may still hold the TAP) instead of refusing them as taken.
    public var reuseVMDevices = false
    /// A namespace sandbox's device name inside the namespace (`eth0`, as CNI asks); nil: `gwt-N`.
    public var interfaceName: String?
    /// On a restart: the namespace the sandbox was attached to, which a path must still name.
    public var namespaceIdentity: NamespaceIdentity?

    public init(id: String, mode: Mode) {
        self.id = id
        self.mode = mode
    }

    /// IDs appear in device names, paths and URLs: letters, digits, '-', '_' and '.', 1–64 long.
    public static func validate(id: String) throws(GatewayError) {
        guard !id.isEmpty, id.count <= 64,
            id.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) })
        else {
            throw GatewayError(.invalidArgument, "sandbox ID '\(id)' is not valid: use 1-64 letters, digits, '-', '_' or '.'")
        }
    }
}

/// What the control plane shows about a sandbox.
public struct SandboxInfo: Sendable, Codable, Hashable {
    public var id: String
    public var mode: String
    public var shard: Int
    /// The sandbox's own interface: the TAP inside the namespace, or the TAP a VM monitor opens.
    public var tap: String
    public var namespace: String?
    /// Which namespace that is (nsfs "DEVICE:INODE"), kept so a restart can tell it is the same.
    public var namespaceIdentity: String? = nil
    /// For a VM, the bridge joining its TAP to the gateway's (`gwb-N`).
    public var bridge: String? = nil
    public var mac: String
    public var gatewayMAC: String
    public var guestIPv4: String
    public var gatewayIPv4: String
    public var prefixLength: Int
    public var guestIPv6Prefix: String
    public var gatewayIPv6: String
    public var mtu: Int
    public var policy: String
    /// The index of the sandbox's address block (see ``SandboxSpec/addressBlock``); attach always
    /// sets it, and it is optional only so that an info encoded without it still decodes.
    public var addressBlock: Int? = nil
    /// Something the operator should know that did not stop the attach (a host setting in the
    /// way, say), and what to do about it.
    public var warning: String? = nil
}

/// Per-sandbox counters for `stats`.
public struct SandboxStats: Sendable, Codable, Hashable {
    public var id: String
    /// The shard that serves it (optional only so that stats encoded without it still decode).
    public var shard: Int? = nil
    public var framesIn: Int
    public var framesOut: Int
    public var bytesIn: Int
    public var bytesOut: Int
    public var tcpFlowsActive: Int
    public var tcpFlowsTotal: Int
    public var udpSessions: Int
    public var bytesToHost: UInt64
    public var bytesFromHost: UInt64
    public var drops: [String: Int]
    public var memory = SandboxMemory()
    public var dns = SandboxDNS()
    public var flows = SandboxFlows()
    public var rateLimits = SandboxRateLimits()
    /// Every counter of `CounterDescription.sandbox`, by name.
    public var counters: [String: Int] = [:]
}

/// What a sandbox's rate limits are and what they did.
public struct SandboxRateLimits: Sendable, Codable, Hashable {
    /// The byte rates in force (nil: none).
    public var toHostBytesPerSecond: UInt64?
    public var fromHostBytesPerSecond: UInt64?
    /// Time some flow waited for byte tokens, and how often a relay stopped for them, each way.
    public var secondsLimitedToHost = 0.0
    public var secondsLimitedFromHost = 0.0
    public var throttlesToHost = 0
    public var throttlesFromHost = 0
    /// Guest bytes held back in the stack when a write stopped for tokens.
    public var bytesDelayed: UInt64 = 0
    /// UDP datagrams dropped over the packet or byte rate.
    public var udpDropped = 0
    /// New flows refused over the connection rate, and over `max-flows`.
    public var connectionsRefused = 0
    public var flowsRefused = 0
    /// Flows reset because the guest left its handshake half-open past the timeout.
    public var halfOpenResets = 0

    public init() {}
}

/// A sandbox's flow verdicts, as the flow log records them.
public struct SandboxFlows: Sendable, Codable, Hashable {
    public var allowed = 0
    /// Denied flows by reason ("rule" when a deny rule decided; see `FlowEvent.Reason`).
    public var denied: [String: Int] = [:]
    public var dnsAnswered = 0
    public var dnsDenied = 0

    public init() {}
}

/// A sandbox's DNS as its domain rules see it.
public struct SandboxDNS: Sendable, Codable, Hashable {
    /// Addresses pinned for its domain rules now, and in all.
    public var pins = 0
    public var pinsRecorded = 0
    /// Pins dropped before their time to stay within the table's capacity.
    public var pinEvictions = 0
    /// Queries answered NXDOMAIN because no allowing rule names them (`dns = "allowed-names"`).
    public var namesNotAllowed = 0
    /// Queries refused past the query rate.
    public var rateLimited = 0

    public init() {}
}

/// A sandbox's TCP buffer memory against its budget.
public struct SandboxMemory: Sendable, Codable, Hashable {
    /// Bytes of buffer chunks its connections hold now, and the most they have held.
    public var heldBytes = 0
    public var peakHeldBytes = 0
    /// Bytes promised (receive windows) or buffered, against `budgetBytes`.
    public var reservedBytes = 0
    public var budgetBytes = 0
    /// Times the budget cut a window or a host read short, and the time spent so.
    public var budgetShortfalls = 0
    public var secondsAtBudget = 0.0

    public init() {}
}
