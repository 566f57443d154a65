// The supervisor's side of privilege separation: checks each request from the worker against the
// configuration, carries it out and hands back descriptors. It keeps no state between requests:
// a worker that has been taken over can ask only for what a healthy one could.
#if canImport(Glibc)
    import Glibc
#endif
import Gateway
import Link
import Logging
import SystemPackage
import Wire

struct PrivilegeServer: Sendable {
    /// The pools, names and paths requests are checked against.
    let rules: Rules
    let direct: DirectPrivileges

    struct Rules: Sendable {
        var addresses: AddressPlan
        var hostDeviceTag: String
        var flowLogPath: String?
        var configPath: String?
        /// `shard-nice`: the one nice value a worker's thread may be given.
        var shardNice: Int32
        /// Where named namespaces live (`ip netns`).
        var namespaceDirectory = NetworkNamespace.runDirectory
    }

    init(configuration: DaemonConfiguration, configPath: String?) {
        rules = Rules(
            addresses: configuration.gatewayConfiguration.addresses, hostDeviceTag: configuration.hostDeviceTag,
            flowLogPath: configuration.flowLogPath, configPath: configPath, shardNice: Int32(configuration.shardNice))
        direct = DirectPrivileges(
            hostDeviceTag: configuration.hostDeviceTag, sweepPrefixes: configuration.sweepPrefixes,
            makesDevice: { configuration.makesDevice(named: $0) })
    }

    /// The reply and the descriptor that goes beside it (-1: none), which the caller closes once
    /// it is sent.
    struct Answer {
        var reply: PrivilegeReply
        var descriptor: Int32 = -1
    }

    /// Carries out one request of worker `worker`, or refuses it with the reason.
    func handle(_ request: PrivilegeRequest, worker: pid_t = 0) -> Answer {
        do throws(GatewayError) {
            return try perform(request, worker: worker)
        } catch {
            return Answer(reply: .failure(error))
        }
    }

    /// Reads one request from `channel`, answers it and closes what it handed over. Returns the
    /// request (nil when it was malformed) and whether the worker's end is still open.
    func serveOne(
        _ channel: PrivilegeChannel, worker: pid_t = 0, log: (Logger.Level, String, PrivilegeRequest?) -> Void
    ) -> (open: Bool, request: PrivilegeRequest?) {
        let request: PrivilegeRequest
        do {
            let (message, stray) = try channel.receive(PrivilegeRequest.self)
            // A request carries no descriptor: one sent anyway is not kept.
            if stray >= 0 { close(stray) }
            request = message
        } catch .closed {
            return (false, nil)
        } catch {
            log(.warning, "refused a request from the worker: \(error)", nil)
            let refusal = PrivilegeReply.failure(GatewayError(.invalidArgument, "privileged request refused: \(error)"))
            return ((try? channel.send(refusal)) != nil, nil)
        }
        let answer = handle(request, worker: worker)
        defer { if answer.descriptor >= 0 { close(answer.descriptor) } }
        if let failure = answer.reply.error, failure.code == GatewayError.Code.invalidArgument.rawValue {
            log(.warning, "refused: \(failure.message)", request)
        } else {
            log(.debug, "privileged request", request)
        }
        do {
            try channel.send(answer.reply, descriptor: answer.descriptor)
        } catch .closed {
            return (false, request)
        } catch {
            log(.warning, "cannot answer the worker: \(error)", request)
        }
        return (true, request)
    }

    private func refuse(_ request: PrivilegeRequest, _ why: String) -> GatewayError {
        GatewayError(.invalidArgument, "privileged request \(request.name) refused: \(why)")
    }

    private func perform(_ request: PrivilegeRequest, worker: pid_t) throws(GatewayError) -> Answer {
        switch request {
        case .setThreadNice(let thread, let nice):
            // Only the configured value, and only for a thread of the worker that asks.
            guard nice == rules.shardNice, (-20...19).contains(nice) else {
                throw refuse(request, "nice \(nice) is not the configured shard-nice (\(rules.shardNice))")
            }
            var status = stat()
            guard worker > 0, thread > 0, stat("/proc/\(worker)/task/\(thread)", &status) == 0 else {
                throw refuse(request, "thread \(thread) is not one of the worker's")
            }
            try direct.setThreadNice(thread: thread, nice: nice)
            return Answer(reply: PrivilegeReply())
        case .openNamespaceLink(let m):
            let link = try direct.openNamespaceLink(try check(m, request))
            return answer(link)
        case .createVMLink(let m):
            try checkBlock(m.addressBlock, request)
            try checkMTU(m.mtu, request)
            let link = try direct.createVMLink(
                VMLinkRequest(
                    sandbox: m.sandbox, addressBlock: m.addressBlock, mtu: m.mtu, owner: m.owner, group: m.group,
                    reuse: m.reuse))
            return answer(link)
        case .removeVMLink(let block):
            try checkBlock(block, request)
            direct.removeVMLink(addressBlock: block)
            return Answer(reply: PrivilegeReply())
        case .vmLinkSurvives(let block):
            try checkBlock(block, request)
            return Answer(reply: PrivilegeReply(flag: direct.vmLinkSurvives(addressBlock: block)))
        case .bindPort(let text, let port, let proto):
            guard let address = IPAddress(text) else { throw refuse(request, "'\(text)' is not an IP address") }
            guard let p = PortProtocol(rawValue: proto) else { throw refuse(request, "protocol '\(proto)'") }
            // Ports from 1024 up need no privilege: the worker binds those itself.
            guard (1..<1024).contains(port) else { throw refuse(request, "port \(port) is not below 1024") }
            switch direct.bindPrivilegedPort(HostBinding(address: address, port: port, protocol: p)) {
            case .bound(let fd):
                return Answer(reply: PrivilegeReply(bind: .init(outcome: "bound")), descriptor: fd)
            case .inUse: return Answer(reply: PrivilegeReply(bind: .init(outcome: "in-use")))
            case .notLocal(let m): return Answer(reply: PrivilegeReply(bind: .init(outcome: "not-local", message: m)))
            case .failed(let m): return Answer(reply: PrivilegeReply(bind: .init(outcome: "failed", message: m)))
            }
        case .openEchoSocket(let v6):
            return Answer(reply: PrivilegeReply(), descriptor: try direct.openEchoSocket(family: v6 ? AF_INET6 : AF_INET).release())
        case .openFlowLog(let path):
            // Only the file the configuration names: the worker cannot pick what root opens.
            guard let configured = rules.flowLogPath, path == configured else {
                throw refuse(request, "'\(path)' is not the configured flow log")
            }
            return Answer(reply: PrivilegeReply(), descriptor: try direct.openFlowLog(path: configured).release())
        case .sweepStaleDevices(let kept):
            return Answer(reply: PrivilegeReply(names: try direct.sweepStaleDevices(keeping: Set(kept))))
        case .readConfig:
            guard let path = rules.configPath else { return Answer(reply: PrivilegeReply()) }
            do {
                return Answer(reply: PrivilegeReply(text: try String(contentsOfFile: path, encoding: .utf8)))
            } catch {
                throw GatewayError(.invalidArgument, "cannot read config \(path): \(error)")
            }
        case .ready:
            return Answer(reply: PrivilegeReply())
        }
    }

    private func answer(_ link: PrivilegedLink) -> Answer {
        let tap = link.tap
        let reply = PrivilegeReply(
            link: .init(
                device: tap.name, ifindex: tap.ifindex, vnetHeaderSize: tap.vnetHeaderSize,
                offloads: tap.options.offloads.rawValue, guestMAC: link.guestMAC?.description, warning: link.warning,
                namespaceIdentity: link.namespaceIdentity?.description))
        // The queue leaves with the reply; the worker's copy keeps the device.
        guard let queue = tap.relinquish() else {
            return Answer(reply: .failure(GatewayError(.system, "device \(tap.name) closed before it was handed over")))
        }
        return Answer(reply: reply, descriptor: queue.release())
    }

    private func checkBlock(_ block: Int, _ request: PrivilegeRequest) throws(GatewayError) {
        guard (0..<rules.addresses.capacity).contains(block) else {
            throw refuse(request, "address block \(block) is outside the pool (0-\(rules.addresses.capacity - 1))")
        }
    }

    private func checkMTU(_ mtu: Int, _ request: PrivilegeRequest) throws(GatewayError) {
        guard (576...65_520).contains(mtu) else { throw refuse(request, "MTU \(mtu) is out of range (576-65520)") }
    }

    /// A namespace link may only be the block's own TAP (or a name the attach chose: it lives in
    /// the guest's namespace, never the host's, which the open refuses), in a namespace `ip netns`
    /// made or one a path names, with the block's own addresses.
    private func check(_ m: PrivilegeRequest.NamespaceLink, _ request: PrivilegeRequest) throws(GatewayError)
        -> NamespaceLinkRequest
    {
        try checkBlock(m.addressBlock, request)
        try checkMTU(m.mtu, request)
        let expected = InterfaceName.make(.gatewayTAP, id: String(m.addressBlock))
        // Our own names belong to their blocks; any other is the guest's to choose.
        if m.device.hasPrefix(InterfaceName.projectPrefix) {
            guard m.device == expected else {
                throw refuse(request, "device '\(m.device)' is not block \(m.addressBlock)'s (\(expected))")
            }
        } else {
            guard (try? InterfaceName.validate(m.device, operation: "check")) != nil else {
                throw refuse(request, "device '\(m.device)' is not a valid interface name")
            }
        }
        let ns = m.namespace
        let isPath = ns.hasPrefix("/")
        guard isPath ? AttachRequest.isValidNamespacePath(ns) : AttachRequest.isValidNamespaceName(ns) else {
            throw refuse(request, "'\(ns)' is not a namespace name under \(rules.namespaceDirectory) nor a path")
        }
        var identity: NamespaceIdentity?
        if let text = m.expectedIdentity {
            guard let parsed = NamespaceIdentity(text) else { throw refuse(request, "'\(text)' is not a namespace identity") }
            identity = parsed
        }
        var mac: MACAddress?
        if let text = m.guestMAC {
            guard let parsed = MACAddress(text) else { throw refuse(request, "'\(text)' is not a MAC address") }
            mac = parsed
        }
        var address: NamespaceLinkRequest.StaticAddress?
        if m.guestIPv4 != nil || m.gatewayIPv4 != nil || m.prefixLength != nil {
            let plan = rules.addresses.assignment(index: m.addressBlock)
            guard let guest = m.guestIPv4.flatMap({ IPv4Address($0) }), let gateway = m.gatewayIPv4.flatMap({ IPv4Address($0) }),
                let prefix = m.prefixLength
            else { throw refuse(request, "malformed or incomplete address") }
            guard guest == plan.guestIPv4, gateway == plan.gatewayIPv4, prefix == plan.prefixLength else {
                throw refuse(
                    request,
                    "address \(guest)/\(prefix) via \(gateway) is not block \(m.addressBlock)'s of the pool "
                        + "(\(plan.guestIPv4)/\(plan.prefixLength) via \(plan.gatewayIPv4))")
            }
            address = .init(guest: guest, prefixLength: prefix, gateway: gateway)
        }
        // A path is opened and checked (a regular nsfs file, a network namespace, not the host's)
        // by the open itself.
        var status = stat()
        guard isPath || stat(rules.namespaceDirectory + "/" + ns, &status) == 0 else {
            throw GatewayError(
                .namespaceNotFound,
                "namespace '\(ns)' for sandbox '\(m.sandbox)' does not exist: create it first (ip netns add \(ns))",
                cause: .system(Errno(rawValue: errno)))
        }
        return NamespaceLinkRequest(
            sandbox: m.sandbox, namespace: ns, device: m.device, addressBlock: m.addressBlock, mtu: m.mtu, guestMAC: mac,
            staticAddress: address, expectedIdentity: identity)
    }
}
