// Errors from reading policy text and naming profiles: each says where (line), what (the token)
// and what would have been accepted, so an operator can fix a config file without the source.

public struct PolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let raw: UInt8
        /// A profile name that is not one of `Policy.profileNames`.
        public static let unknownProfile = Code(raw: 1)
        /// A rule's text that does not follow the grammar.
        public static let badRule = Code(raw: 2)
    }

    public let code: Code
    /// The 1-based line of the rule, when the text came from a list of lines.
    public let line: Int?
    /// The offending token as written; nil when a token is missing.
    public let token: String?
    /// What went wrong and what was expected, without the line prefix.
    public let reason: String

    public init(_ code: Code, line: Int? = nil, token: String? = nil, _ reason: String) {
        self.code = code
        self.line = line
        self.token = token
        self.reason = reason
    }

    public var description: String {
        if let line { return "policy line \(line): \(reason)" }
        return reason
    }
}
