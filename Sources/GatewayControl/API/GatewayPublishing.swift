// Adapts the Gateway's publishing API to the control plane: SPECs in the control API's form,
// routes as RouteView, and unpublish by (protocol, host port[, host IP]) as DELETE names them.
import Gateway
import Wire

public struct GatewayPublishing: PortPublishing {
    let gateway: Gateway

    public init(gateway: Gateway) { self.gateway = gateway }

    public func publish(sandbox: String, spec: PublishRequest) throws(ControlError) -> RouteView {
        let gatewaySpec = try convert(spec)
        do {
            let info = try gateway.publish(sandboxID: sandbox, spec: gatewaySpec)
            return RouteView(hostIP: info.hostIP, hostPort: Int(info.hostPort), protocol: info.protocol,
                             sandbox: info.sandbox, guestPort: Int(info.guestPort))
        } catch {
            throw ControlError(error)
        }
    }

    public func unpublish(sandbox: String, spec: PublishRequest) throws(ControlError) {
        let matches = gateway.routes().filter { r in
            r.sandbox == sandbox && r.protocol == spec.protocol && r.hostPort == spec.hostPort
                && (spec.hostIP == nil || r.hostIP == spec.hostIP)
        }
        guard !matches.isEmpty else {
            throw ControlError(.unknownRoute, "sandbox '\(sandbox)' has no published \(spec.protocol) port \(spec.hostPort): gatewayctl routes lists them")
        }
        for r in matches {
            guard let guestPort = UInt16(exactly: r.guestPort), let hostPort = UInt16(exactly: r.hostPort),
                let proto = PortProtocol(rawValue: r.protocol)
            else { continue }
            do {
                try gateway.unpublish(sandboxID: sandbox, spec: PublishSpec(guestPort: guestPort, hostPort: hostPort, hostIP: IPAddress(r.hostIP), protocol: proto))
            } catch {
                throw ControlError(error)
            }
        }
    }

    public func routes() -> [RouteView] {
        gateway.routes()
            .sorted { ($0.hostPort, $0.hostIP) < ($1.hostPort, $1.hostIP) }
    }

    private func convert(_ r: PublishRequest) throws(ControlError) -> PublishSpec {
        guard let guestPort = UInt16(exactly: r.guestPort), guestPort > 0 else {
            throw ControlError(.badSpec, "guest port \(r.guestPort) is out of range (1-65535)")
        }
        guard let hostPort = UInt16(exactly: r.hostPort) else {
            throw ControlError(.badSpec, "host port \(r.hostPort) is out of range (0-65535)")
        }
        guard let proto = PortProtocol(rawValue: r.protocol) else {
            throw ControlError(.badSpec, "protocol '\(r.protocol)' is not tcp or udp")
        }
        var hostIP: IPAddress?
        if let text = r.hostIP {
            guard let ip = IPAddress(text) else { throw ControlError(.badSpec, "host IP '\(text)' is not an IPv4 or IPv6 address") }
            hostIP = ip
        }
        // Host port 0 asks the allocator to choose.
        return PublishSpec(guestPort: guestPort, hostPort: hostPort == 0 ? nil : hostPort, hostIP: hostIP, protocol: proto)
    }
}
