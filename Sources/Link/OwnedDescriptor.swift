// A file descriptor with exactly one owner: closed once, by `close()` or when the owner goes away,
// and unusable afterwards because the value cannot be copied and closing consumes it.
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Owns one open file descriptor. Holders keep it as a stored property (an optional one when the
/// descriptor may close before its holder: `socket.take()?.close()` then leaves nil behind, so a
/// second close has nothing to act on). System calls take ``rawValue`` while the owner lives.
/// Sendable: moving the only owner to another thread leaves nothing behind to race with.
public struct OwnedDescriptor: ~Copyable, Sendable {
    /// The descriptor number; valid for as long as this value exists.
    public let rawValue: Int32

    /// Takes ownership of an open descriptor that nothing else will close.
    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "adopting an invalid descriptor \(rawValue)")
        self.rawValue = rawValue
    }

    /// Adopts what a call returning a descriptor or -1 (with errno set) returned.
    /// - Throws: the call's errno when it returned -1.
    public static func adopting(result: Int32) throws(Errno) -> OwnedDescriptor {
        guard result >= 0 else { throw Errno.last }
        return OwnedDescriptor(adopting: result)
    }

    /// Adopts what a shim returning a descriptor or -errno returned.
    /// - Throws: that errno when the shim returned a negative value.
    public static func adopting(negatedErrno result: Int32) throws(Errno) -> OwnedDescriptor {
        guard result >= 0 else { throw Errno(rawValue: -result) }
        return OwnedDescriptor(adopting: result)
    }

    /// close(2) now. Its error is not reported: on Linux the descriptor is released even when
    /// close fails (EINTR, EIO), so there is nothing the caller could retry.
    public consuming func close() {
        let fd = rawValue
        discard self
        _ = Glibc.close(fd)
    }

    /// Hands the descriptor to an owner outside this type (one that still keeps a bare number),
    /// without closing it.
    public consuming func release() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    deinit { _ = Glibc.close(rawValue) }
}
