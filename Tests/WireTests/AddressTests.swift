// Text forms and derived addresses of MACAddress, IPv4Address and IPv6Address.
import Testing
@testable import Wire

@Suite struct AddressTests {
    @Test(arguments: ["::", "::1", "fe80::1", "fd00:0:0:1::2", "2001:db8::ff00:42:8329", "1:2:3:4:5:6:7:8"])
    func ipv6RoundTrip(_ text: String) throws {
        let a = try #require(IPv6Address(text))
        #expect(a.description == text)
    }

    @Test(arguments: [":::", "1:2:3:4:5:6:7:8:9", "g::1", "1::2::3", "12345::"])
    func ipv6Rejects(_ text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func ipv4() throws {
        #expect(IPv4Address("10.0.2.15")?.description == "10.0.2.15")
        #expect(IPv4Address("256.1.1.1") == nil)
        #expect(IPv4Address("1.2.3") == nil)
        #expect(IPv4Address("1..2.3") == nil)
        #expect(try #require(IPv4Address("192.168.1.1")).isPrivate)
        #expect(try #require(IPv4Address("169.254.169.254")).isLinkLocal)
    }

    @Test func macAndDerived() throws {
        let mac = try #require(MACAddress("52:54:00:12:34:56"))
        #expect(mac.description == "52:54:00:12:34:56")
        #expect(IPv6Address(linkLocalFrom: mac).description == "fe80::5054:ff:fe12:3456")
        let ip = try #require(IPv6Address("fd00::1:2:3"))
        #expect(ip.solicitedNodeMulticast.description == "ff02::1:ff02:3")
        #expect(MACAddress(ipv6Multicast: ip.solicitedNodeMulticast).description == "33:33:ff:02:00:03")
        #expect(MACAddress("zz:54:00:12:34:56") == nil)
    }
}
