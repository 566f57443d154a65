// What the control plane needs of published ports. The Gateway's publishing API is written in
// parallel; a conformance adapts it, and without one the port endpoints answer 501.

public protocol PortPublishing: Sendable {
    /// Publishes a host port into sandbox `sandbox`; returns the route as bound (with the host
    /// port chosen, when the spec asked for 0).
    func publish(sandbox: String, spec: PublishRequest) throws(ControlError) -> RouteView
    /// Removes the published port that `spec` names (protocol, host port, and host IP if given).
    func unpublish(sandbox: String, spec: PublishRequest) throws(ControlError)
    /// Every published port, ordered by host port.
    func routes() -> [RouteView]
}
