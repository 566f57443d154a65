// Ports for host-side test servers, found by binding them: a random port in a band outside the
// kernel's ephemeral range (where another test's outgoing connection could hold it), checked free
// for TCP and UDP on both loopbacks before it is handed out.
import Foundation
import Gateway
import Wire

extension TestHost {
    /// A port in `band` that nothing holds now (TCP or UDP, IPv4 or IPv6 wildcard). Binding port 0
    /// would give one in the ephemeral range, which outgoing connections share.
    public static func freePort(in band: ClosedRange<UInt16> = 20000...32000) -> UInt16 {
        for _ in 0..<200 {
            let port = UInt16.random(in: band)
            if isFree(port) { return port }
        }
        // A band this full means something leaks ports; a taken port fails the test loudly.
        return UInt16.random(in: band)
    }

    static func isFree(_ port: UInt16) -> Bool {
        let wildcards: [IPAddress] = [.v4(IPv4Address(raw: 0)), .v6(IPv6Address(high: 0, low: 0))]
        for address in wildcards {
            for type in [SOCK_STREAM, SOCK_DGRAM] {
                let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(type.rawValue), 0)
                guard fd >= 0 else { return false }
                defer { close(fd) }
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                guard SocketAddress(address, port: port).withSockAddr({ bind(fd, $0, $1) }) == 0 else { return false }
            }
        }
        return true
    }
}
