// One published port as `GET /v1/routes` and `gatewayctl routes --json` show it: which host
// address and port lead to which sandbox and guest port.

public struct RouteView: Codable, Sendable, Hashable {
    public var hostIP: String
    public var hostPort: Int
    /// "tcp" or "udp".
    public var `protocol`: String
    /// The sandbox's ID.
    public var sandbox: String
    public var guestPort: Int

    public init(hostIP: String, hostPort: Int, protocol: String, sandbox: String, guestPort: Int) {
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.protocol = `protocol`
        self.sandbox = sandbox
        self.guestPort = guestPort
    }
}
