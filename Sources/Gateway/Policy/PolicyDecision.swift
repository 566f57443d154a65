// The outcome of evaluating a flow against a policy: the action and what decided it, so that
// denials can be logged and counted per rule.

public struct PolicyDecision: Hashable, Sendable, CustomStringConvertible {
    /// What decided: a rule (its 0-based index in `Policy.rules`) or the policy's default.
    public enum Source: Hashable, Sendable {
        case rule(Int)
        case defaultAction
    }

    public let action: PolicyAction
    public let source: Source
    /// The name a domain rule matched through the sandbox's DNS pins.
    public let name: String?
    /// When the default decided: the first allowing domain rule that would have covered the flow had
    /// the sandbox resolved its address through the gateway ("no pin" in the flow log).
    public let unpinnedDomainRule: Int?

    public init(action: PolicyAction, source: Source, name: String? = nil, unpinnedDomainRule: Int? = nil) {
        self.action = action
        self.source = source
        self.name = name
        self.unpinnedDomainRule = unpinnedDomainRule
    }

    public var isAllowed: Bool { action == .allow }

    /// The 0-based index of the matching rule; nil when the default decided.
    public var ruleIndex: Int? {
        if case .rule(let i) = source { return i }
        return nil
    }

    /// "deny by rule 3" (1-based, as an operator counts lines of rules) or "allow by default".
    public var description: String {
        switch source {
        case .rule(let i): "\(action) by rule \(i + 1)"
        case .defaultAction: "\(action) by default"
        }
    }
}
