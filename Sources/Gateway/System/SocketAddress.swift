// An IP endpoint as socket calls take and give it: built into a sockaddr_in or sockaddr_in6 on
// the stack for each call, and read back from the sockaddr_storage the kernel filled.
#if canImport(Glibc)
import Glibc
#endif
import Wire

/// An address and port (and, for IPv6, a scope), the one place sockaddr bytes are made and read.
/// Holding the endpoint rather than the 128-byte storage keeps it small and Hashable; the sockaddr
/// is laid out on the stack in ``withSockAddr(_:)``, which costs no allocation.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// Why a sockaddr the kernel filled could not be read.
    enum DecodeError: Error, Equatable {
        /// Neither AF_INET nor AF_INET6 (a Unix socket's peer, say).
        case unsupportedFamily(Int32)
        /// Shorter than the family's sockaddr.
        case truncated(family: Int32, length: socklen_t)
    }

    public var ip: IPAddress
    public var port: UInt16
    /// sin6_scope_id: the interface a link-local IPv6 address belongs to (0 for none, and for IPv4).
    public var scopeID: UInt32

    public init(_ ip: IPAddress, port: UInt16, scopeID: UInt32 = 0) {
        self.ip = ip
        self.port = port
        self.scopeID = scopeID
    }

    /// Reads an endpoint out of a sockaddr the kernel filled; `length` is what it reported.
    /// - Throws: `.unsupportedFamily` for a family other than IPv4 and IPv6; `.truncated` when
    ///   `length` is shorter than that family's sockaddr.
    init(storage: sockaddr_storage, length: socklen_t = socklen_t(MemoryLayout<sockaddr_storage>.size))
        throws(DecodeError)
    {
        var storage = storage
        let family = Int32(storage.ss_family)
        switch family {
        case AF_INET:
            guard length >= MemoryLayout<sockaddr_in>.size else { throw .truncated(family: family, length: length) }
            let sin = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            self.init(
                .v4(IPv4Address(raw: UInt32(bigEndian: sin.sin_addr.s_addr))), port: UInt16(bigEndian: sin.sin_port))
        case AF_INET6:
            guard length >= MemoryLayout<sockaddr_in6>.size else { throw .truncated(family: family, length: length) }
            let sin6 = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            // bound: in6_addr is 16 bytes, the size of an IPv6 address.
            let address = withUnsafeBytes(of: sin6.sin6_addr) { $0.uncheckedIPv6(0) }
            self.init(.v6(address), port: UInt16(bigEndian: sin6.sin6_port), scopeID: sin6.sin6_scope_id)
        default:
            throw .unsupportedFamily(family)
        }
    }

    /// AF_INET or AF_INET6, for socket(2).
    public var family: Int32 { ip.isIPv6 ? AF_INET6 : AF_INET }

    /// Lends the sockaddr (and its length) to a call such as connect, bind or sendto.
    public func withSockAddr<R, E: Error>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R) throws(E) -> R {
        switch ip {
        case .v4(let a):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr.s_addr = a.raw.bigEndian
            return try withUnsafePointer(to: &sin) { p throws(E) -> R in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { s throws(E) -> R in
                    try body(s, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .v6(let a):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_scope_id = scopeID
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.setIPv6(a, 0) }
            return try withUnsafePointer(to: &sin6) { p throws(E) -> R in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { s throws(E) -> R in
                    try body(s, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
    }

    /// Runs a call that writes a peer's sockaddr (accept, recvfrom, getsockname) into storage on
    /// the stack, and returns its result with the address it wrote (nil when it wrote none this
    /// type can read: the call failed, or the family is not IP).
    static func receiving<R>(
        _ call: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> R
    ) -> (result: R, address: SocketAddress?) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, &length) }
        }
        return (result, try? SocketAddress(storage: storage, length: length))
    }

    public var description: String {
        switch ip {
        case .v4: "\(ip):\(port)"
        case .v6: scopeID == 0 ? "[\(ip)]:\(port)" : "[\(ip)%\(scopeID)]:\(port)"
        }
    }
}
