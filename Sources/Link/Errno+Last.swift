// The errno a failed system call left, as swift-system's typed `Errno` (whose own accessor is internal).
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension Errno {
    /// The calling thread's errno; read it right after the call that failed.
    @inline(__always)
    public static var last: Errno { Errno(rawValue: Glibc.errno) }
}
