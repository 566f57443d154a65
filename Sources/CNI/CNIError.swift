// The CNI error result (SPEC.md, Section 5 "Error"): a numeric code a runtime switches on, and
// gatewayd's own message, printed on standard output with a non-zero exit status.
import GatewayControl

public struct CNIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The spec's well-known codes (0-99) and this plugin's own (100 and up).
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let incompatibleVersion = Code(rawValue: 1)
        /// The message names the key and the value.
        public static let unsupportedField = Code(rawValue: 2)
        /// Nothing to clean up: the runtime need not call DEL.
        public static let unknownContainer = Code(rawValue: 3)
        /// The message names the variable.
        public static let invalidEnvironment = Code(rawValue: 4)
        public static let ioFailure = Code(rawValue: 5)
        public static let decodeFailure = Code(rawValue: 6)
        public static let invalidConfiguration = Code(rawValue: 7)
        public static let tryAgainLater = Code(rawValue: 11)
        /// STATUS: gatewayd cannot take an ADD now.
        public static let notAvailable = Code(rawValue: 50)
        /// gatewayd refused for a reason none of the spec's codes names; `details` has its code.
        public static let gatewaydRefused = Code(rawValue: 100)
        /// CHECK: the sandbox exists but is not what the runtime's previous result says.
        public static let attachmentChanged = Code(rawValue: 101)
    }

    public var code: Code
    public var msg: String
    public var details: String?

    public init(_ code: Code, _ msg: String, details: String? = nil) {
        self.code = code
        self.msg = msg
        self.details = details
    }

    /// gatewayd's refusal of `request` ("POST /v1/sandboxes"), its message kept as it is.
    public init(_ error: ControlError, during request: String) {
        let code: Code =
            switch error.code {
            case .unreachable, .busy, .exhausted: .tryAgainLater
            case .invalidArgument, .badSpec, .policyDenied: .invalidConfiguration
            case .namespaceNotFound: .invalidEnvironment
            case .unknownSandbox: .unknownContainer
            default: .gatewaydRefused
            }
        var details = "gatewayd answered \(request) with \(error.code)"
        if error.code == .namespaceNotFound { details += " (the namespace CNI_NETNS names)" }
        self.init(code, error.message, details: details)
    }

    public var description: String { details.map { "\(msg) (\($0))" } ?? msg }

    /// The wire form, in the protocol version the runtime asked for.
    public struct Body: Encodable, Sendable {
        public var cniVersion: String
        public var code: Int
        public var msg: String
        public var details: String?
    }

    public func body(version: String) -> Body {
        Body(cniVersion: version, code: code.rawValue, msg: msg, details: details)
    }
}
