// Reserves a host port against the OS for the allocator: a non-blocking socket bound to the
// address and port (and listening, for TCP). That socket is the published port's listener.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import SystemPackage
import Wire

enum PortBinder {
    /// socket(2), setsockopt(2), bind(2) and, for TCP, listen(2). A socket that fails a step
    /// closes as it goes out of scope; a bound one is handed to the allocator by number.
    static func bind(_ binding: HostBinding, backlog: Int32 = 1024) -> PortAllocator.BindOutcome {
        do {
            return .bound(try listener(binding, backlog: backlog).release())
        } catch let failure {
            switch failure.error {
            case .addressInUse:
                return .inUse
            case .addressNotAvailable:
                return .notLocal(
                    "cannot publish on \(binding.address): it is not an address of this host "
                        + "(publish on one that 'ip address' lists, or on 127.0.0.1)")
            case let e where failure.step == "socket":
                return .failed("socket for \(binding): \(e)")
            case let e:
                return .failed("cannot \(failure.step) \(binding): \(e)")
            }
        }
    }

    /// Which call failed, and how.
    struct Failure: Error {
        var step: String
        var error: Errno
    }

    private static func listener(_ binding: HostBinding, backlog: Int32) throws(Failure) -> OwnedDescriptor {
        let address = SocketAddress(binding.address, port: binding.port)
        let type = binding.protocol == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        let socket: OwnedDescriptor
        do {
            socket = try HostSocket.open(family: address.family, type: type)
        } catch {
            throw Failure(step: "socket", error: error)
        }
        let fd = socket.rawValue
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
        if address.withSockAddr({ Glibc.bind(fd, $0, $1) }) != 0 {
            throw Failure(step: "bind", error: .last)
        }
        // listen(2) checks the port again against other listeners bound with SO_REUSEADDR.
        if binding.protocol == .tcp && listen(fd, backlog) != 0 {
            throw Failure(step: "listen on", error: .last)
        }
        return socket
    }
}
