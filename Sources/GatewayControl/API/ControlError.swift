// The control API's error: a code a script can switch on, the HTTP status it travels with, and a
// message that says what went wrong and what to do. The same type reaches gatewayctl's user.
import Gateway

public struct ControlError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    /// Stable, documented codes (docs/control-api.md); new ones may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let unknownSandbox = Code(rawValue: "unknownSandbox")
        public static let sandboxExists = Code(rawValue: "sandboxExists")
        public static let deviceExists = Code(rawValue: "deviceExists")
        public static let namespaceNotFound = Code(rawValue: "namespaceNotFound")
        public static let invalidArgument = Code(rawValue: "invalidArgument")
        public static let badSpec = Code(rawValue: "badSpec")
        public static let portInUse = Code(rawValue: "portInUse")
        public static let unknownRoute = Code(rawValue: "unknownRoute")
        public static let exhausted = Code(rawValue: "exhausted")
        public static let policyDenied = Code(rawValue: "policyDenied")
        public static let notImplemented = Code(rawValue: "notImplemented")
        public static let notFound = Code(rawValue: "notFound")
        public static let methodNotAllowed = Code(rawValue: "methodNotAllowed")
        public static let busy = Code(rawValue: "busy")
        /// gatewayd's start: another gatewayd already answers on the control socket.
        public static let daemonRunning = Code(rawValue: "daemonRunning")
        public static let system = Code(rawValue: "system")
        /// Client side only: the daemon could not be reached.
        public static let unreachable = Code(rawValue: "unreachable")
        /// Client side only: the daemon's answer was not what the API promises.
        public static let badResponse = Code(rawValue: "badResponse")

        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public init(_ error: GatewayError) {
        let code: Code =
            switch error.code {
            case .unknownSandbox: .unknownSandbox
            case .sandboxExists: .sandboxExists
            case .deviceExists: .deviceExists
            case .namespaceNotFound: .namespaceNotFound
            case .invalidArgument: .invalidArgument
            case .portInUse: .portInUse
            case .exhausted: .exhausted
            case .policyDenied: .policyDenied
            default: .system
            }
        self.init(code, error.message)
    }

    /// The HTTP status the API answers this error with.
    public var httpStatus: Int {
        switch code {
        case .unknownSandbox, .namespaceNotFound, .notFound, .unknownRoute: 404
        case .sandboxExists, .deviceExists, .portInUse, .daemonRunning: 409
        case .invalidArgument, .badSpec, .policyDenied: 400
        case .methodNotAllowed: 405
        case .exhausted, .busy: 503
        case .notImplemented: 501
        default: 500
        }
    }

    public var description: String { message }

    /// A second gatewayd must not take the socket (nor sweep the first one's devices).
    public static func daemonRunning(at path: String) -> ControlError {
        ControlError(.daemonRunning, "another gatewayd already answers on \(path): stop it first or pass another --control")
    }

    /// The wire form: `{"error": {"code": "...", "message": "..."}}`.
    public struct Body: Codable, Sendable {
        public var error: ControlError
        public init(error: ControlError) { self.error = error }
    }
}
