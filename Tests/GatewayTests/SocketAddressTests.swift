// SocketAddress against the kernel's sockaddr layouts: what it lends to a call reads back the
// same, the IPv6 scope survives, and storage of another family is an error, not a guess.
import CGatewayShims
import Testing
import Wire

@testable import Gateway

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SocketAddressTests {
    /// What `withSockAddr` lends, copied into storage as the kernel would hand it back.
    private func roundTrip(_ a: SocketAddress) throws -> SocketAddress {
        var storage = sockaddr_storage()
        let length = a.withSockAddr { p, n in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: p, count: Int(n))) }
            return n
        }
        return try SocketAddress(storage: storage, length: length)
    }

    @Test func ipv4RoundTrips() throws {
        let a = SocketAddress(.v4(IPv4Address(192, 0, 2, 7)), port: 5353)
        #expect(a.family == AF_INET)
        #expect(a.withSockAddr { _, n in n } == socklen_t(MemoryLayout<sockaddr_in>.size))
        // Network byte order as the kernel reads it.
        a.withSockAddr { p, _ in
            let sin = UnsafeRawPointer(p).load(as: sockaddr_in.self)
            #expect(sin.sin_port == UInt16(5353).bigEndian)
            #expect(sin.sin_addr.s_addr == UInt32(0xC000_0207).bigEndian)
        }
        #expect(try roundTrip(a) == a)
    }

    @Test func ipv6RoundTripsWithItsScope() throws {
        let link = SocketAddress(.v6(IPv6Address(high: 0xFE80_0000_0000_0000, low: 0x1)), port: 443, scopeID: 3)
        #expect(link.family == AF_INET6)
        #expect(link.withSockAddr { _, n in n } == socklen_t(MemoryLayout<sockaddr_in6>.size))
        let back = try roundTrip(link)
        #expect(back == link)
        #expect(back.scopeID == 3)
        #expect(back.description == "[\(link.ip)%3]:443")
        let global = SocketAddress(.v6(IPv6Address(high: 0x2001_0DB8_0000_0000, low: 0xABCD)), port: 53)
        #expect(try roundTrip(global) == global)
    }

    @Test func otherFamiliesAreRefused() {
        var storage = sockaddr_storage()
        storage.ss_family = sa_family_t(AF_UNIX)
        #expect(throws: SocketAddress.DecodeError.unsupportedFamily(AF_UNIX)) {
            _ = try SocketAddress(storage: storage)
        }
        storage.ss_family = sa_family_t(AF_INET6)
        #expect(throws: SocketAddress.DecodeError.truncated(family: AF_INET6, length: 16)) {
            _ = try SocketAddress(storage: storage, length: 16)
        }
    }

    /// The address getsockname(2) reports is the one bound, through `receiving`.
    @Test func receivingReadsWhatTheKernelWrote() throws {
        let socket = try HostSocket.open(family: AF_INET, type: Int32(SOCK_DGRAM.rawValue))
        let loopback = SocketAddress(.v4(IPv4Address(127, 0, 0, 1)), port: 0)
        #expect(loopback.withSockAddr { bind(socket.rawValue, $0, $1) } == 0)
        let (rc, bound) = SocketAddress.receiving { getsockname(socket.rawValue, $0, $1) }
        #expect(rc == 0)
        #expect(bound?.ip == loopback.ip)
        #expect((bound?.port ?? 0) != 0)
    }
}
