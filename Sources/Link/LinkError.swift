// The link layer's error: which operation on which device failed, and the system's or libnl's reason.
import SystemPackage

public struct LinkError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let raw: UInt8
        public static let noSuchDevice = Code(raw: 1)
        public static let nameTooLong = Code(raw: 2)
        public static let nameTaken = Code(raw: 3)
        public static let noSuchNamespace = Code(raw: 4)
        public static let permissionDenied = Code(raw: 5)
        public static let invalidArgument = Code(raw: 6)
        public static let system = Code(raw: 7)
        public static let netlink = Code(raw: 8)
    }

    public let code: Code
    /// What was attempted, e.g. "create TAP", "move to namespace".
    public let operation: String
    /// The device (or namespace) it was attempted on.
    public let subject: String
    /// errno text or libnl's nl_geterror message.
    public let reason: String
    /// The failed system call's errno, when a system call (not libnl) said no.
    public let systemError: Errno?

    public init(_ code: Code, operation: String, subject: String, reason: String, systemError: Errno? = nil) {
        self.code = code
        self.operation = operation
        self.subject = subject
        self.reason = reason
        self.systemError = systemError
    }

    public var description: String { "\(operation) '\(subject)': \(reason)" }
}
