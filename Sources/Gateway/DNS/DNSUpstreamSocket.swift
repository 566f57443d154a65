// A non-blocking UDP socket the DNS forwarder talks to upstream resolvers through, one per
// address family, with the sockaddr conversions Swift cannot do for it.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Wire

final class DNSUpstreamSocket {
    let fd: Int32
    let family: Int32

    /// socket(2) with SOCK_NONBLOCK | SOCK_CLOEXEC; bound to an ephemeral port on first send.
    init(family: Int32) throws(GatewayError) {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        fd = socket(family, type, 0)
        guard fd >= 0 else {
            throw GatewayError(.system, "DNS upstream socket (\(family == AF_INET6 ? "IPv6" : "IPv4")): \(errnoText())")
        }
        self.family = family
    }

    deinit { close(fd) }

    static func family(of address: IPAddress) -> Int32 {
        if case .v4 = address { return AF_INET }
        return AF_INET6
    }

    /// sendto(2) of one datagram; 0 on success, else the errno.
    func send(_ bytes: UnsafeRawBufferPointer, to address: IPAddress, port: UInt16) -> Int32 {
        let n = DNSUpstreamSocket.withSocketAddress(address, port) { sa, length in
            sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), sa, length)
        }
        return n == bytes.count ? 0 : (n < 0 ? errno : EMSGSIZE)
    }

    /// recvfrom(2) of one datagram into `buffer`; nil when none is waiting (or on error).
    /// A datagram larger than the buffer is cut to it.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> (count: Int, address: IPAddress, port: UInt16)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &length)
            }
        }
        guard n >= 0, let (address, port) = DNSUpstreamSocket.address(of: storage) else { return nil }
        return (n, address, port)
    }

    static func withSocketAddress<T>(
        _ address: IPAddress, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T
    ) -> T {
        switch address {
        case .v4(let a):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr.s_addr = a.raw.bigEndian
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .v6(let a):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.setIPv6(a, 0) }
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
    }

    static func address(of storage: sockaddr_storage) -> (IPAddress, UInt16)? {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &storage) { raw in
                let sa = raw.load(as: sockaddr_in.self)
                return (.v4(IPv4Address(raw: UInt32(bigEndian: sa.sin_addr.s_addr))), UInt16(bigEndian: sa.sin_port))
            }
        case AF_INET6:
            return withUnsafeBytes(of: &storage) { raw in
                let sa = raw.load(as: sockaddr_in6.self)
                let address = withUnsafeBytes(of: sa.sin6_addr) { $0.ipv6(0) }
                return (.v6(address), UInt16(bigEndian: sa.sin6_port))
            }
        default:
            return nil
        }
    }
}
