// The body and answer of `PUT /v1/sandboxes/ID/policy`: switch a running sandbox to another
// policy, keeping or resetting the open flows the new one denies.

public struct PolicyChange: Codable, Sendable, Hashable {
    /// A profile or a policy the config defines.
    public var policy: String
    /// Keep open flows the new policy would deny (default: they are reset).
    public var keepFlows: Bool?

    public init(policy: String, keepFlows: Bool? = nil) {
        self.policy = policy
        self.keepFlows = keepFlows
    }
}

public struct PolicyChanged: Codable, Sendable, Hashable {
    public var id: String
    public var policy: String
    /// Open flows reset because the new policy denies them.
    public var flowsReset: Int
}
