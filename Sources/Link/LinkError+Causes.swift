// Builds LinkError from the two ways the kernel says no: an errno from a system call or ioctl,
// and a libnl error number (which is libnl's own NLE_* code, not an errno).
import CNetlink
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension LinkError {
    /// An error from a failed system call or ioctl, kept as ``systemError``.
    init(_ error: Errno, operation: String, subject: String) {
        let code: Code =
            switch error {
            case .operationNotSupportedByDevice, .noSuchAddressOrDevice, Errno(rawValue: EBADFD): .noSuchDevice
            case .fileNameTooLong: .nameTooLong
            case .fileExists, .resourceBusy: .nameTaken
            case .notPermitted, .permissionDenied: .permissionDenied
            case .invalidArgument: .invalidArgument
            default: .system
            }
        self.init(code, operation: operation, subject: subject, reason: error.description, systemError: error)
    }

    /// The same from a raw value; `errno` is positive (the shims return -errno).
    init(errno value: Int32, operation: String, subject: String) {
        self.init(Errno(rawValue: value), operation: operation, subject: subject)
    }

    /// An error from a libnl call; `netlink` is the negative (or positive) NLE_* value it returned.
    /// `exists` is the code to use when the kernel said the object already exists: a taken name
    /// for a device, but only a plain netlink refusal for a duplicate address or route.
    /// `kernelErrno` and `kernelMessage` (the extended ack), when known, are added to the reason:
    /// libnl's text alone can be as vague as "Unspecific failure".
    init(
        netlink value: Int32, operation: String, subject: String, exists: Code = .nameTaken,
        kernelErrno: Int32 = 0, kernelMessage: String = ""
    ) {
        let nle = value < 0 ? -value : value
        let code: Code =
            switch nle {
            case NLE_NODEV, NLE_OBJ_NOTFOUND: .noSuchDevice
            case NLE_EXIST: exists
            case NLE_PERM, NLE_NOACCESS: .permissionDenied
            case NLE_INVAL, NLE_RANGE: .invalidArgument
            default: .netlink
            }
        var reason = String(cString: nl_geterror(nle))
        var details: [String] = []
        if kernelErrno != 0 {
            let system = LinkError.text(errno: kernelErrno)
            if system.lowercased() != reason.lowercased() { details.append(system) }
        }
        if !kernelMessage.isEmpty { details.append(kernelMessage) }
        if !details.isEmpty { reason += " (kernel: " + details.joined(separator: ": ") + ")" }
        self.init(code, operation: operation, subject: subject, reason: reason)
    }

    static func text(errno value: Int32) -> String {
        guard let s = strerror(value) else { return "error \(value)" }
        return String(cString: s)
    }
}
