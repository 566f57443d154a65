// Publishing host ports into sandboxes: `publish`, `unpublish`, `routes`, the ingress policy
// hook and counters. The shared allocator and routing table are changed here, under their own
// locks; the listeners and connections live on each sandbox's shard.
#if canImport(Glibc)
import Glibc
#endif
import Wire

extension Gateway {
    /// Publishes a host port into a sandbox. The host port is reserved and bound before this
    /// returns; a port on a wildcard or non-loopback address works but logs who can now reach it.
    /// - Throws: `.unknownSandbox`, `.invalidArgument` (spec), `.portInUse` (naming the sandbox
    ///   or process that holds the port), `.exhausted` (no automatic port left), `.system`.
    public func publish(sandboxID: String, spec: PublishSpec) throws(GatewayError) -> PublishedPortInfo {
        guard let sandbox = attachedSandbox(sandboxID) else {
            throw GatewayError.unknownSandbox(sandboxID)
        }
        guard spec.guestPort != 0 else {
            throw GatewayError(.invalidArgument, "publish spec '\(spec)': the guest port must be 1-65535")
        }
        let address = spec.hostIP ?? configuration.publishing.defaultHostIP
        let proto = spec.protocol
        let privileges = privileges
        let (port, socket) = try publishing.allocator.reserve(
            address: address, protocol: proto, port: spec.hostPort, owner: sandboxID
        ) { p in
            let binding = HostBinding(address: address, port: p, protocol: proto)
            // Below 1024 binding takes CAP_NET_BIND_SERVICE, which only the supervisor may hold.
            return p < 1024 ? privileges.bindPrivilegedPort(binding) : PortBinder.bind(binding)
        }
        let binding = HostBinding(address: address, port: port, protocol: proto)
        publishing.routes.insert(
            binding,
            RoutingTable.Target(sandbox: sandboxID, guestPort: spec.guestPort, preserveSource: spec.preserveSource))

        let box = sandbox.sandbox
        let limits = publishing.configuration.limits
        let guestPort = spec.guestPort, preserve = spec.preserveSource
        do {
            try shards[sandbox.shard].submitAndWaitTyped { () throws(GatewayError) in
                let ingress = box.value.ingress
                ingress.configure(limits: limits)
                try ingress.open(binding, guestPort: guestPort, preserveSource: preserve, socket: socket)
            }
        } catch {
            publishing.routes.remove(binding)
            publishing.allocator.release(binding, owner: sandboxID)
            throw error
        }

        let warning = Self.exposureWarning(binding, sandboxID: sandboxID, guestPort: guestPort)
        if let warning { Self.logWarning(warning) }
        return PublishedPortInfo(
            sandbox: sandboxID, binding: binding, guestPort: guestPort, preserveSource: preserve, warning: warning)
    }

    /// `publish` with a Docker-style spec such as `127.0.0.1:8080:80/tcp`.
    public func publish(sandboxID: String, spec: String) throws(GatewayError) -> PublishedPortInfo {
        try publish(sandboxID: sandboxID, spec: PublishSpec(parsing: spec))
    }

    /// Unpublishes every port of the sandbox the spec names (protocol and guest port, and the
    /// host address and port where given): listeners close, their clients are reset, the host
    /// ports are free again when this returns.
    public func unpublish(sandboxID: String, spec: PublishSpec) throws(GatewayError) {
        guard let sandbox = attachedSandbox(sandboxID) else {
            throw GatewayError.unknownSandbox(sandboxID)
        }
        let bindings = publishing.routes.entries(sandbox: sandboxID)
            .filter { spec.matches($0.binding, guestPort: $0.target.guestPort) }
            .map(\.binding)
        guard !bindings.isEmpty else {
            throw GatewayError(
                .invalidArgument,
                "sandbox '\(sandboxID)' has no published port matching '\(spec)' (gatewayctl routes lists them)")
        }
        let box = sandbox.sandbox
        try? shards[sandbox.shard].submitAndWaitTyped { () throws(GatewayError) in box.value.ingress.close(bindings) }
        for b in bindings {
            publishing.routes.remove(b)
            publishing.allocator.release(b, owner: sandboxID)
        }
    }

    public func unpublish(sandboxID: String, spec: String) throws(GatewayError) {
        try unpublish(sandboxID: sandboxID, spec: PublishSpec(parsing: spec))
    }

    /// Every published port, for `gatewayctl routes`.
    public func routes() -> [Route] { publishing.routes.routes() }

    /// Replaces a sandbox's ingress policy; it applies to clients accepted from now on.
    public func setIngressPolicy(sandboxID: String, _ allowed: @escaping IngressHook) throws(GatewayError) {
        guard let sandbox = attachedSandbox(sandboxID) else {
            throw GatewayError.unknownSandbox(sandboxID)
        }
        let box = sandbox.sandbox
        try shards[sandbox.shard].submitAndWaitTyped { () throws(GatewayError) in
            box.value.ingress.ingressAllowed = allowed
        }
    }

    /// The inbound counters of a sandbox.
    public func ingressCounters(sandboxID: String) throws(GatewayError) -> IngressCounters {
        guard let sandbox = attachedSandbox(sandboxID) else {
            throw GatewayError.unknownSandbox(sandboxID)
        }
        let box = sandbox.sandbox
        return try shards[sandbox.shard].submitAndWaitTyped { () throws(GatewayError) -> IngressCounters in
            box.value.ingress.counters
        }
    }

    /// Detach: frees the host ports and routes of a sandbox whose listeners its shard closed.
    func releasePublishedPorts(of sandboxID: String) {
        for e in publishing.routes.entries(sandbox: sandboxID) {
            publishing.routes.remove(e.binding)
            publishing.allocator.release(e.binding, owner: sandboxID)
        }
    }

    /// stderr for now; the control plane will route logs.
    static func logWarning(_ text: String) {
        let line = Array("gatewayd: warning: \(text)\n".utf8)
        _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    static func exposureWarning(_ b: HostBinding, sandboxID: String, guestPort: UInt16) -> String? {
        let what = "sandbox '\(sandboxID)' port \(guestPort)/\(b.protocol) is published on \(b.endpoint)"
        if b.address.isLoopbackAddress { return nil }
        if b.address.isWildcard {
            return "\(what): every network this host is on can reach it (publish on 127.0.0.1 to keep it local)"
        }
        return "\(what): the networks that reach \(b.address) can reach it"
    }
}
