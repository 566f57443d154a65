// The gateway layer's error: a code and a message that names the sandbox, port or device involved.

public struct GatewayError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let raw: UInt8
        public static let system = Code(raw: 1)
        public static let unknownSandbox = Code(raw: 2)
        public static let sandboxExists = Code(raw: 3)
        public static let invalidArgument = Code(raw: 4)
        public static let portInUse = Code(raw: 5)
        public static let exhausted = Code(raw: 6)
        public static let link = Code(raw: 7)
        public static let policyDenied = Code(raw: 8)
        /// A device the sandbox needs has a name that something else already uses.
        public static let deviceExists = Code(raw: 9)
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The one wording for an ID that names no attached sandbox, so every operation and the
    /// control API say it alike.
    public static func unknownSandbox(_ id: String) -> GatewayError {
        GatewayError(.unknownSandbox, "no sandbox '\(id)' is attached (gatewayctl list shows those that are)")
    }
}
