// The host-socket calls report the kernel's refusals as typed Errno values, on loopback only:
// a closed port refuses a connect, an empty socket has nothing to read.
import CGatewayShims
import Link
import NetStack
import SystemPackage
import Testing
import Wire

@testable import Gateway

#if canImport(Glibc)
import Glibc
#endif

@Suite struct HostSocketTests {
    private let loopback = IPAddress.v4(IPv4Address(127, 0, 0, 1))

    @Test func connectToAClosedLoopbackPortIsConnectionRefused() throws {
        // A loopback TCP port that is bound but not listening: nothing else can take it while
        // the test runs, and a connect to it is refused (RST).
        let holder = try HostSocket.open(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        #expect(SocketAddress(loopback, port: 0).withSockAddr { bind(holder.rawValue, $0, $1) } == 0)
        let (_, bound) = SocketAddress.receiving { getsockname(holder.rawValue, $0, $1) }
        let port = try #require(bound?.port)
        let socket = try HostSocket.open(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        var refusal: Errno?
        do throws(Errno) {
            try HostSocket.connect(socket, to: SocketAddress(loopback, port: port))
        } catch .nowInProgress {
            // Non-blocking: the outcome arrives with writability, through SO_ERROR.
            var p = pollfd(fd: socket.rawValue, events: Int16(POLLOUT), revents: 0)
            #expect(poll(&p, 1, 5_000) == 1)
            refusal = HostSocket.pendingError(socket)
        } catch {
            refusal = error
        }
        #expect(refusal == .connectionRefused)
        #expect(HostSocket.pendingError(holder) == nil, "the port stayed held throughout")
    }

    @Test func readingAnEmptySocketWouldBlock() throws {
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0)
        let a = OwnedDescriptor(adopting: pair[0])
        let b = OwnedDescriptor(adopting: pair[1])
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        #expect(throws: Errno.resourceTemporarilyUnavailable) {
            _ = try HostSocket.read(a, BufferRegions(buffer))
        }
        let sent = try [UInt8]("hi".utf8).withUnsafeBytes { bytes in
            Result { () throws(Errno) in try HostSocket.write(b, bytes) }
        }.get()
        #expect(sent == 2)
        #expect(try HostSocket.read(a, BufferRegions(buffer)) == 2)
        b.close()
        #expect(try HostSocket.read(a, BufferRegions(buffer)) == 0, "EOF once the peer closed")
    }

    /// The bytes a direct write from the stack may take: a segment that ends one of the guest's
    /// writes whatever its size, any other only from `StreamPump.directMinimum` on; a full socket
    /// says EAGAIN, which leaves the bytes to the ring.
    @Test func directWritesTakeLargeOrFinalSegmentsAndAFullSocketSaysSo() throws {
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0)
        let a = OwnedDescriptor(adopting: pair[0])
        let b = OwnedDescriptor(adopting: pair[1])
        var moved = 0
        let small = [UInt8](repeating: 7, count: 1448)
        let large = [UInt8](repeating: 9, count: StreamPump.directMinimum)
        func push(_ bytes: [UInt8], pushed: Bool) -> Result<Int, Errno> {
            bytes.withUnsafeBytes { p in
                Result { () throws(Errno) in try StreamPump.pushDirectly(p, pushed: pushed, to: a, now: 1) { moved += $0 } }
            }
        }
        #expect(try push(small, pushed: false).get() == 0, "a piece of a larger write waits in the ring")
        #expect(try push(small, pushed: true).get() == small.count)
        #expect(try push(large, pushed: false).get() == large.count)
        #expect(moved == small.count + large.count)
        // Fill the socket: the kernel's EAGAIN reaches the caller.
        let before = moved
        var full: Errno?
        while full == nil {
            if case .failure(let error) = push(large, pushed: true) { full = error }
        }
        #expect(full == .resourceTemporarilyUnavailable)
        #expect(moved > before)
        _ = b
    }
}
