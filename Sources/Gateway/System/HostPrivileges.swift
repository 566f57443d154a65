// What gatewayd does that needs privilege on the host, behind one interface: done in-process
// (`DirectPrivileges`, for --no-privsep and in-process tests) or asked of the privileged
// supervisor over a Unix socket, which hands back file descriptors.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import Wire

/// The privileged operations: every device, namespace and sysctl change, host ports below 1024,
/// raw ICMP sockets, the flow log's file, and sweeping a crashed run's devices. Everything else
/// (stacks, relays, host sockets, the control API) needs no privilege.
public protocol HostPrivileges: Sendable {
    /// Creates sandbox TAP `request.device` inside the namespace and configures it there.
    func openNamespaceLink(_ request: NamespaceLinkRequest) throws(GatewayError) -> PrivilegedLink
    /// Creates (or, on a restore, takes over) a VM sandbox's TAPs and bridge in the host namespace.
    func createVMLink(_ request: VMLinkRequest) throws(GatewayError) -> PrivilegedLink
    /// Deletes a VM sandbox's devices; best effort.
    func removeVMLink(addressBlock: Int)
    /// Whether a VM sandbox's persistent TAP and bridge outlived a crashed run.
    func vmLinkSurvives(addressBlock: Int) -> Bool
    /// Binds a host port below 1024 (CAP_NET_BIND_SERVICE) for a published port.
    func bindPrivilegedPort(_ binding: HostBinding) -> PortAllocator.BindOutcome
    /// A raw ICMP (or ICMPv6) socket, for echo where ping sockets are not allowed to our group.
    func openEchoSocket(family: Int32) throws(GatewayError) -> OwnedDescriptor
    /// The flow log's file, opened for appending (created 0640 if missing).
    func openFlowLog(path: String) throws(GatewayError) -> OwnedDescriptor
    /// Sets a shard thread's nice value below 0 (`shard-nice`), which takes CAP_SYS_NICE.
    func setThreadNice(thread: Int32, nice: Int32) throws(GatewayError)
    /// Deletes devices a crashed run of this gatewayd left, but those in `kept` (a VM's, for the
    /// restore); returns the names removed.
    func sweepStaleDevices(keeping kept: Set<String>) throws(GatewayError) -> [String]
}

/// A namespace sandbox's TAP as the attach wants it.
public struct NamespaceLinkRequest: Sendable, Hashable {
    /// For messages only.
    public var sandbox: String
    /// A name under /run/netns, or the absolute path of a namespace file (/proc/PID/ns/net).
    public var namespace: String
    /// The device's name inside the namespace: the block's `gwt-N`, or one the attach chose (`eth0`).
    public var device: String
    public var addressBlock: Int
    public var mtu: Int
    /// The guest's MAC when the attach chose one; else the kernel's.
    public var guestMAC: MACAddress?
    /// The guest's address and default route, configured in the namespace; nil under DHCP.
    public var staticAddress: StaticAddress?
    /// On a restart: the namespace the sandbox was attached to. A path that now names another
    /// namespace (its process is gone) is refused as not found.
    public var expectedIdentity: NamespaceIdentity?

    public struct StaticAddress: Sendable, Hashable {
        public var guest: IPv4Address
        public var prefixLength: Int
        public var gateway: IPv4Address

        public init(guest: IPv4Address, prefixLength: Int, gateway: IPv4Address) {
            self.guest = guest
            self.prefixLength = prefixLength
            self.gateway = gateway
        }
    }

    public init(
        sandbox: String, namespace: String, device: String, addressBlock: Int, mtu: Int, guestMAC: MACAddress?,
        staticAddress: StaticAddress?, expectedIdentity: NamespaceIdentity? = nil
    ) {
        self.sandbox = sandbox
        self.namespace = namespace
        self.device = device
        self.addressBlock = addressBlock
        self.mtu = mtu
        self.guestMAC = guestMAC
        self.staticAddress = staticAddress
        self.expectedIdentity = expectedIdentity
    }

    /// Whether `namespace` is a path rather than a name under /run/netns.
    public var namespaceIsPath: Bool { namespace.hasPrefix("/") }

    /// How to reach the device by hand, for messages.
    var linkCommand: String {
        namespaceIsPath ? "nsenter --net=\(namespace) ip link" : "ip -n \(namespace) link"
    }
}

/// A VM sandbox's devices as the attach wants them (their names follow from the block).
public struct VMLinkRequest: Sendable, Hashable {
    public var sandbox: String
    public var addressBlock: Int
    public var mtu: Int
    public var owner: UInt32?
    public var group: UInt32?
    /// A restore: take over the VM TAP and bridge a killed run left.
    public var reuse: Bool

    public init(sandbox: String, addressBlock: Int, mtu: Int, owner: UInt32?, group: UInt32?, reuse: Bool) {
        self.sandbox = sandbox
        self.addressBlock = addressBlock
        self.mtu = mtu
        self.owner = owner
        self.group = group
        self.reuse = reuse
    }
}

/// An opened TAP queue and what the caller needs to know of it.
public struct PrivilegedLink: Sendable {
    public var tap: TAPDevice
    /// The guest's MAC: the namespace device's, or the one a VM is told to use.
    public var guestMAC: MACAddress?
    /// A host setting that may get in the way, for the operator.
    public var warning: String?
    /// For a namespace link: which namespace the device went into.
    public var namespaceIdentity: NamespaceIdentity?

    public init(tap: TAPDevice, guestMAC: MACAddress?, warning: String?, namespaceIdentity: NamespaceIdentity? = nil) {
        self.tap = tap
        self.guestMAC = guestMAC
        self.warning = warning
        self.namespaceIdentity = namespaceIdentity
    }
}

/// The privileged operations done by this process, which must hold the privileges.
public struct DirectPrivileges: HostPrivileges {
    /// ``GatewayConfiguration/hostDeviceTag``: VM devices' names follow from it.
    public var hostDeviceTag: String
    /// Prefixes the sweep looks under, and which names there are this gatewayd's.
    public var sweepPrefixes: [String]
    public var makesDevice: @Sendable (String) -> Bool

    public init(
        hostDeviceTag: String = "", sweepPrefixes: [String] = [], makesDevice: @escaping @Sendable (String) -> Bool = { _ in false }
    ) {
        self.hostDeviceTag = hostDeviceTag
        self.sweepPrefixes = sweepPrefixes
        self.makesDevice = makesDevice
    }

    public func openNamespaceLink(_ r: NamespaceLinkRequest) throws(GatewayError) -> PrivilegedLink {
        let namespace: NetworkNamespace
        do {
            namespace = r.namespaceIsPath ? try NetworkNamespace(path: r.namespace) : try NetworkNamespace(named: r.namespace)
        } catch {
            guard error.code == .noSuchNamespace else {
                throw GatewayError(
                    .invalidArgument, "namespace '\(r.namespace)' for sandbox '\(r.sandbox)': \(error.reason)", cause: .link(error))
            }
            let hint = r.namespaceIsPath ? "is its process still running?" : "create it first (ip netns add \(r.namespace))"
            throw GatewayError(
                .namespaceNotFound, "namespace '\(r.namespace)' for sandbox '\(r.sandbox)' does not exist: \(hint)",
                cause: .link(error))
        }
        let identity = namespace.identity
        // The sandbox's device, address and default route would land on the host itself.
        if let host = try? NetworkNamespace.current(), host.identity == identity {
            throw GatewayError(
                .invalidArgument,
                "namespace '\(r.namespace)' for sandbox '\(r.sandbox)' is the host's own network namespace: attach a sandbox's")
        }
        if let expected = r.expectedIdentity, expected != identity {
            throw GatewayError(
                .namespaceNotFound,
                "namespace '\(r.namespace)' for sandbox '\(r.sandbox)' is not the one it was attached to (\(expected), "
                    + "now \(identity)): the sandbox's process is gone")
        }
        var options = TAPDevice.Options()
        options.namespace = namespace
        do {
            let tap = try TAPDevice(name: r.device, options: options)
            let nl = try NetlinkSocket(in: namespace)
            try nl.setMTU(of: r.device, to: r.mtu)
            if let mac = r.guestMAC { try nl.setMACAddress(of: r.device, to: mac) }
            try nl.setLink(named: "lo", up: true)
            try nl.setLink(named: r.device, up: true)
            if let a = r.staticAddress {
                try nl.addAddress(.v4(a.guest), prefixLength: a.prefixLength, toLink: r.device)
                try nl.addDefaultRoute(via: .v4(a.gateway), device: r.device)
            }
            guard let mac = try nl.link(named: r.device).macAddress else {
                throw LinkError(.system, operation: "read MAC", subject: r.device, reason: "device has no MAC address")
            }
            return PrivilegedLink(tap: tap, guestMAC: mac, warning: nil, namespaceIdentity: identity)
        } catch {
            if let e = error as? LinkError, e.code == .nameTaken, e.subject == r.device {
                throw GatewayError(
                    .deviceExists,
                    "attach sandbox '\(r.sandbox)': namespace '\(r.namespace)' already has a device \(r.device) (another "
                        + "gateway's, or left by a crashed run): remove it (\(r.linkCommand) del \(r.device))")
            }
            throw GatewayError.link("attach sandbox '\(r.sandbox)'", error)
        }
    }

    public func createVMLink(_ r: VMLinkRequest) throws(GatewayError) -> PrivilegedLink {
        let (tap, warning) = try VMLink(index: r.addressBlock, tag: hostDeviceTag).create(
            sandbox: r.sandbox, mtu: r.mtu, owner: r.owner, group: r.group, reuse: r.reuse)
        return PrivilegedLink(tap: tap, guestMAC: nil, warning: warning)
    }

    public func removeVMLink(addressBlock: Int) {
        VMLink(index: addressBlock, tag: hostDeviceTag).remove()
    }

    public func vmLinkSurvives(addressBlock: Int) -> Bool {
        guard let nl = try? NetlinkSocket() else { return false }
        return VMLink(index: addressBlock, tag: hostDeviceTag).survives(nl)
    }

    public func bindPrivilegedPort(_ binding: HostBinding) -> PortAllocator.BindOutcome {
        PortBinder.bind(binding)
    }

    public func openEchoSocket(family: Int32) throws(GatewayError) -> OwnedDescriptor {
        let proto = family == AF_INET6 ? Int32(IPPROTO_ICMPV6) : Int32(IPPROTO_ICMP)
        do {
            return try HostSocket.open(family: family, type: Int32(SOCK_RAW.rawValue), protocol: proto)
        } catch {
            throw GatewayError(.system, "raw ICMP socket: \(error)", cause: .system(error))
        }
    }

    public func openFlowLog(path: String) throws(GatewayError) -> OwnedDescriptor {
        do {
            return try OwnedDescriptor.adopting(result: open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640))
        } catch {
            throw GatewayError(.invalidArgument, "flow log \(path): \(error)", cause: .system(error))
        }
    }

    public func setThreadNice(thread: Int32, nice: Int32) throws(GatewayError) {
        guard setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread), nice) == 0 else {
            throw GatewayError(.system, "nice \(nice) for thread \(thread): \(String(cString: strerror(errno)))")
        }
    }

    public func sweepStaleDevices(keeping kept: Set<String>) throws(GatewayError) -> [String] {
        var removed: [String] = []
        do {
            let host = try NetlinkSocket()
            for prefix in sweepPrefixes {
                let own = { [makesDevice] (rest: Substring) in makesDevice(prefix + rest) && !kept.contains(prefix + rest) }
                removed += try host.sweepStaleDevices(prefix: prefix, where: own)
            }
        } catch {
            throw GatewayError.link("sweep stale devices", error)
        }
        return removed
    }
}
