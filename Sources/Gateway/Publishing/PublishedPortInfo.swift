// What `publish` reports back: where the port was published and, for exposed addresses, the
// warning that was logged.

public struct PublishedPortInfo: Sendable, Hashable, Codable {
    public var sandbox: String
    public var hostIP: String
    public var hostPort: Int
    public var guestPort: Int
    public var `protocol`: String
    public var preserveSource: Bool
    /// Set when the port listens beyond loopback: who can now reach the sandbox.
    public var warning: String?

    public init(sandbox: String, binding: HostBinding, guestPort: UInt16, preserveSource: Bool, warning: String?) {
        self.sandbox = sandbox
        hostIP = binding.address.description
        hostPort = Int(binding.port)
        self.guestPort = Int(guestPort)
        self.protocol = binding.protocol.rawValue
        self.preserveSource = preserveSource
        self.warning = warning
    }
}
