// A non-blocking UDP socket the DNS forwarder talks to upstream resolvers through, one per
// address family per shard.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import SystemPackage
import Wire

final class DNSUpstreamSocket {
    private let socket: OwnedDescriptor
    let family: Int32

    /// The descriptor number, for the loop's registration; closed with this object.
    var fd: Int32 { socket.rawValue }

    /// socket(2) with SOCK_NONBLOCK | SOCK_CLOEXEC; bound to an ephemeral port on first send.
    init(family: Int32) throws(GatewayError) {
        do {
            socket = try HostSocket.open(family: family, type: Int32(SOCK_DGRAM.rawValue))
        } catch {
            throw GatewayError(
                .system, "DNS upstream socket (\(family == AF_INET6 ? "IPv6" : "IPv4")): \(error)", cause: .system(error))
        }
        self.family = family
    }

    static func family(of address: IPAddress) -> Int32 {
        if case .v4 = address { return AF_INET }
        return AF_INET6
    }

    /// sendto(2) of one datagram.
    /// - Throws: the errno of a failed send; `.messageTooLong` when the kernel took only part.
    func send(_ bytes: UnsafeRawBufferPointer, to address: SocketAddress) throws(Errno) {
        let fd = socket.rawValue
        let n = address.withSockAddr { sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, $1) }
        if n < 0 { throw Errno.last }
        if n != bytes.count { throw .messageTooLong }
    }

    /// recvfrom(2) of one datagram into `buffer`, with its sender (nil for a sender that is not
    /// an IP endpoint). A datagram larger than the buffer is cut to it.
    /// - Throws: `.resourceTemporarilyUnavailable` when none is waiting; other errno.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> (count: Int, sender: SocketAddress?) {
        let fd = socket.rawValue
        let (n, sender) = SocketAddress.receiving { recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, $1) }
        if n < 0 { throw Errno.last }
        return (n, sender)
    }
}
