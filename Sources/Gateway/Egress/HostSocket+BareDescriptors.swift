// The socket calls for the relays that still keep a bare descriptor number (the TCP egress relay
// and the published ports' inbound connections): errno as a negative count or a raw value.
#if canImport(Glibc)
import Glibc
#endif
import Link
import NetStack
import SystemPackage
import Wire

extension HostSocket {
    typealias Address = SocketAddress

    /// A non-blocking, close-on-exec socket; -errno on failure.
    static func make(family: Int32, type: Int32, protocol proto: Int32 = 0) -> Int32 {
        do {
            return try open(family: family, type: type, protocol: proto).release()
        } catch {
            return -error.rawValue
        }
    }

    /// Starts a connect: 0 when done at once, EINPROGRESS when pending, else the errno.
    static func connect(_ fd: Int32, to address: SocketAddress) -> Int32 {
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        return rc == 0 ? 0 : errno
    }

    /// SO_ERROR: the outcome of a pending connect (0 = connected).
    static func pendingError(_ fd: Int32) -> Int32 {
        socketError(fd)?.rawValue ?? 0
    }

    /// Stops watching `fd` and closes it (so that the peer sees RST when `reset`), leaving -1;
    /// nothing when it is -1 already.
    static func unwatchAndClose(_ fd: inout Int32, on loop: EventLoop, reset: Bool = false) {
        guard fd >= 0 else { return }
        var socket: OwnedDescriptor? = OwnedDescriptor(adopting: fd)
        fd = -1
        unwatchAndClose(&socket, on: loop, reset: reset)
    }

    /// readv into a buffer's regions: bytes read, 0 at EOF, -errno on error (-EAGAIN: nothing now).
    static func read(_ fd: Int32, _ regions: BufferRegions) -> Int {
        let n = readRegions(fd, regions)
        return n >= 0 ? n : -Int(errno)
    }

    /// Gathers a buffer's regions into one send: bytes written or -errno.
    static func write(_ fd: Int32, _ regions: BufferRegions) -> Int {
        let n = sendRegions(fd, regions)
        return n >= 0 ? n : -Int(errno)
    }
}
