// The gateway layer's error: a code and a message that names the sandbox, port or device involved,
// and the link layer's or the system's own error when one of them said no.
import Link
import SystemPackage

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
        /// The network namespace a sandbox is to be attached to is not there (or, on a restart,
        /// is no longer the one it was attached to).
        public static let namespaceNotFound = Code(raw: 10)

        /// The code as a number, to carry it between processes.
        public var rawValue: UInt8 { raw }
        public init(rawValue: UInt8) { raw = rawValue }
        init(raw: UInt8) { self.raw = raw }
    }

    /// The error beneath this one, for callers that act on what exactly failed; the message
    /// already says it in words.
    public enum Cause: Sendable {
        /// The link layer's: a device, namespace or netlink operation.
        case link(LinkError)
        /// A system call's.
        case system(Errno)
    }

    public let code: Code
    public let message: String
    public let cause: Cause?

    public init(_ code: Code, _ message: String, cause: Cause? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// A failure in setting up a sandbox's link, from the link layer (or from a step of ours
    /// that already wrapped one): the message is `context: error` (or the error alone), and a
    /// `LinkError` stays reachable as the cause.
    public static func link(_ context: String?, _ error: any Error) -> GatewayError {
        let cause: Cause? =
            switch error {
            case let e as LinkError: .link(e)
            case let e as GatewayError: e.cause
            case let e as Errno: .system(e)
            default: nil
            }
        let message = context.map { "\($0): \(error)" } ?? "\(error)"
        return GatewayError(.link, message, cause: cause)
    }

    public var description: String { message }

    /// The one wording for an ID that names no attached sandbox, so every operation and the
    /// control API say it alike.
    public static func unknownSandbox(_ id: String) -> GatewayError {
        GatewayError(.unknownSandbox, "no sandbox '\(id)' is attached (gatewayctl list shows those that are)")
    }
}
