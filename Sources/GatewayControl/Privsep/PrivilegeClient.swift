// The worker's side of privilege separation: each privileged operation is one request to the
// supervisor, answered with a result and, for devices and sockets, their descriptor.
#if canImport(Glibc)
    import Glibc
#endif
import Gateway
import Link
import Synchronization
import Wire

/// `HostPrivileges` asked of the supervisor. Requests from the control threads, the shards and
/// the flow log's writer take turns on the one socket (each is a short round trip; the slow one,
/// making a device, is an attach's, which waited as long for the same work in-process).
public final class PrivilegeClient: HostPrivileges {
    private let channel: Mutex<PrivilegeChannel>

    /// Takes over `fd`, the worker's end of the supervisor's socket.
    public init(descriptor fd: Int32) {
        channel = Mutex(PrivilegeChannel(fd: fd))
    }

    /// One round trip. The reply's descriptor, if any, goes to `descriptor`.
    private func ask(_ request: PrivilegeRequest, descriptor: inout Int32) throws(GatewayError) -> PrivilegeReply {
        let result = channel.withLock { c -> Result<(PrivilegeReply, Int32), PrivilegeChannel.Failure> in
            do throws(PrivilegeChannel.Failure) {
                try c.send(request)
                return .success(try c.receive(PrivilegeReply.self))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let (reply, fd)):
            if let failure = reply.error {
                if fd >= 0 { close(fd) }
                throw failure.gatewayError
            }
            descriptor = fd
            return reply
        case .failure(let failure):
            throw GatewayError(.system, "privileged supervisor: \(request.name): \(failure)")
        }
    }

    private func ask(_ request: PrivilegeRequest) throws(GatewayError) -> PrivilegeReply {
        var fd: Int32 = -1
        let reply = try ask(request, descriptor: &fd)
        if fd >= 0 { close(fd) }
        return reply
    }

    /// A request whose reply must carry a descriptor; the caller adopts it.
    private func askForDescriptor(_ request: PrivilegeRequest) throws(GatewayError) -> (PrivilegeReply, Int32) {
        var fd: Int32 = -1
        let reply = try ask(request, descriptor: &fd)
        guard fd >= 0 else {
            throw GatewayError(.system, "privileged supervisor: \(request.name): no descriptor in the reply")
        }
        return (reply, fd)
    }

    private func link(_ request: PrivilegeRequest) throws(GatewayError) -> PrivilegedLink {
        let (reply, descriptor) = try askForDescriptor(request)
        guard let l = reply.link else {
            close(descriptor)
            throw GatewayError(.system, "privileged supervisor: \(request.name): no device in the reply")
        }
        var options = TAPDevice.Options()
        options.vnetHeaderSize = l.vnetHeaderSize
        options.offloads = TAPDevice.Offloads(rawValue: l.offloads)
        let tap = TAPDevice(adopting: descriptor, name: l.device, ifindex: l.ifindex, options: options)
        return PrivilegedLink(
            tap: tap, guestMAC: l.guestMAC.flatMap { MACAddress($0) }, warning: l.warning,
            namespaceIdentity: l.namespaceIdentity.flatMap { NamespaceIdentity($0) })
    }

    public func openNamespaceLink(_ request: NamespaceLinkRequest) throws(GatewayError) -> PrivilegedLink {
        try link(.openNamespaceLink(.init(request)))
    }

    public func createVMLink(_ r: VMLinkRequest) throws(GatewayError) -> PrivilegedLink {
        try link(
            .createVMLink(
                .init(
                    sandbox: r.sandbox, addressBlock: r.addressBlock, mtu: r.mtu, owner: r.owner, group: r.group,
                    reuse: r.reuse)))
    }

    public func removeVMLink(addressBlock: Int) {
        _ = try? ask(.removeVMLink(addressBlock: addressBlock))
    }

    public func vmLinkSurvives(addressBlock: Int) -> Bool {
        (try? ask(.vmLinkSurvives(addressBlock: addressBlock)))?.flag ?? false
    }

    public func bindPrivilegedPort(_ binding: HostBinding) -> PortAllocator.BindOutcome {
        var fd: Int32 = -1
        let request = PrivilegeRequest.bindPort(
            address: binding.address.description, port: binding.port, protocol: binding.protocol.rawValue)
        let reply: PrivilegeReply
        do {
            reply = try ask(request, descriptor: &fd)
        } catch {
            return .failed("cannot bind \(binding): \(error.message)")
        }
        switch reply.bind?.outcome {
        case "bound" where fd >= 0: return .bound(fd)
        case "in-use": return .inUse
        case "not-local": return .notLocal(reply.bind?.message ?? "\(binding.address) is not local")
        default:
            if fd >= 0 { close(fd) }
            return .failed(reply.bind?.message ?? "cannot bind \(binding)")
        }
    }

    public func openEchoSocket(family: Int32) throws(GatewayError) -> OwnedDescriptor {
        OwnedDescriptor(adopting: try askForDescriptor(.openEchoSocket(ipv6: family == AF_INET6)).1)
    }

    public func openFlowLog(path: String) throws(GatewayError) -> OwnedDescriptor {
        OwnedDescriptor(adopting: try askForDescriptor(.openFlowLog(path: path)).1)
    }

    public func sweepStaleDevices(keeping kept: Set<String>) throws(GatewayError) -> [String] {
        try ask(.sweepStaleDevices(keeping: kept.sorted())).names ?? []
    }

    public func setThreadNice(thread: Int32, nice: Int32) throws(GatewayError) {
        _ = try ask(.setThreadNice(thread: thread, nice: nice))
    }

    /// The config file's text, read again by the supervisor (nil: it runs without one).
    public func readConfig() throws(GatewayError) -> String? {
        try ask(.readConfig).text
    }

    /// Tells the supervisor this worker is serving.
    public func ready() throws(GatewayError) {
        _ = try ask(.ready)
    }
}
