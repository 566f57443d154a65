// Reserves a host port against the OS for the allocator: a non-blocking socket bound to the
// address and port (and listening, for TCP). That socket is the published port's listener.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Wire

enum PortBinder {
    /// socket(2), setsockopt(2), bind(2) and, for TCP, listen(2).
    static func bind(_ binding: HostBinding, backlog: Int32 = 1024) -> PortAllocator.BindOutcome {
        let address = HostSocket.Address(binding.address, port: binding.port)
        let type = binding.protocol == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        let fd = HostSocket.make(family: address.family, type: type)
        guard fd >= 0 else { return .failed("socket for \(binding): \(errnoText(-fd))") }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        if binding.protocol == .tcp {
            // Connections of an earlier listener in TIME-WAIT must not hold the port.
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size)
        }
        if address.family == AF_INET6 {
            // Keep the families apart, as the allocator does: [::]:P does not take 0.0.0.0:P.
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size)
        }
        if address.withSockaddr({ Glibc.bind(fd, $0, $1) }) != 0 {
            return failure(fd, errno, "bind", binding)
        }
        // listen(2) checks the port again against other listeners bound with SO_REUSEADDR.
        if binding.protocol == .tcp && listen(fd, backlog) != 0 {
            return failure(fd, errno, "listen on", binding)
        }
        return .bound(fd)
    }

    private static func failure(_ fd: Int32, _ err: Int32, _ what: String, _ binding: HostBinding)
        -> PortAllocator.BindOutcome
    {
        close(fd)
        if err == EADDRINUSE { return .inUse }
        if err == EADDRNOTAVAIL {
            return .notLocal(
                "cannot publish on \(binding.address): it is not an address of this host "
                    + "(publish on one that 'ip address' lists, or on 127.0.0.1)")
        }
        return .failed("cannot \(what) \(binding): \(errnoText(err))")
    }
}
