// A veth pair with one end born inside a namespace, configured there with addresses, a default
// route per family and an on-link route, checked through lookups and through `ip -n NS route`.
import GatewayTestSupport
import Foundation
import Testing
import Wire

@testable import Link

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct VethRouteTests {
    @Test func vethIntoANamespaceWithAddressesAndRoutes() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try scratch.namespace()
        let nsName = try #require(ns.name)
        let hostEnd = scratch.deviceName("e", "h")
        let guestEnd = scratch.deviceName("e", "g")

        try scratch.host.createVethPair(named: hostEnd, peer: guestEnd, peerNamespace: ns)
        #expect(try scratch.host.link(named: hostEnd).kind == "veth")
        #expect(throws: LinkError.self) { try scratch.host.link(named: guestEnd) }
        try scratch.host.setLink(named: hostEnd, up: true)

        let inside = try NetlinkSocket(namespaceNamed: nsName)
        let guest = try inside.link(named: guestEnd)
        #expect(guest.kind == "veth")
        #expect(try inside.link(index: guest.index).name == guestEnd)
        #expect(try inside.links().map(\.name).contains(guestEnd))

        try inside.setMTU(of: guestEnd, to: 1400)
        let mac = randomMAC()
        try inside.setMACAddress(of: guestEnd, to: mac)
        try inside.setLink(named: guestEnd, up: true)
        let configured = try inside.link(named: guestEnd)
        #expect(configured.mtu == 1400)
        #expect(configured.macAddress == mac)
        #expect(configured.isUp)

        let x = UInt8.random(in: 1...254)
        let address4 = IPv4Address(10, 198, x, 2)
        let gateway4 = IPv4Address(10, 198, x, 1)
        let group = UInt16(x)
        let address6 = IPv6Address((0xFD00, 0x198, group, 0, 0, 0, 0, 2))
        let gateway6 = IPv6Address((0xFD00, 0x198, group, 0, 0, 0, 0, 1))
        let onLink = IPv4Address(10, 197, x, 0)

        try inside.addAddress(.v4(address4), prefixLength: 24, toLink: guestEnd)
        try inside.addAddress(.v6(address6), prefixLength: 64, toLink: guestEnd)
        try inside.addDefaultRoute(via: .v4(gateway4), device: guestEnd)
        try inside.addDefaultRoute(via: .v6(gateway6), device: guestEnd)
        try inside.addOnLinkRoute(to: .v4(onLink), prefixLength: 24, device: guestEnd)

        // NODAD: the IPv6 address is usable at once, not tentative.
        let addresses = try inside.addresses(ofLink: guestEnd)
        let v6 = try #require(addresses.first { $0.address == .v6(address6) })
        #expect(v6.prefixLength == 64)
        #expect(!v6.isTentative)
        #expect(addresses.contains { $0.address == .v4(address4) && $0.prefixLength == 24 })

        let routes4 = try inside.routes(family: .ipv4)
        let default4 = try #require(routes4.first { $0.isDefault })
        #expect(default4.gateway == .v4(gateway4))
        #expect(default4.outputIndex == guest.index)
        #expect(default4.destination == .v4(.any))
        let onLinkRoute = try #require(routes4.first { $0.destination == .v4(onLink) && $0.prefixLength == 24 })
        #expect(onLinkRoute.gateway == nil)
        #expect(onLinkRoute.scope == 253)
        #expect(onLinkRoute.outputIndex == guest.index)
        // The connected route the address brought.
        #expect(routes4.contains { $0.destination == .v4(IPv4Address(10, 198, x, 0)) && $0.prefixLength == 24 })

        let routes6 = try inside.routes(family: .ipv6)
        let default6 = try #require(routes6.first { $0.isDefault })
        #expect(default6.gateway == .v6(gateway6))
        #expect(default6.outputIndex == guest.index)

        // The host's table has none of it.
        #expect(!(try scratch.host.routes(family: .ipv4)).contains { $0.gateway == .v4(gateway4) })

        // iproute2 sees the same table.
        let ip4 = try TestHost.run(["ip", "-n", nsName, "route", "show"])
        #expect(ip4.contains("default via \(gateway4) dev \(guestEnd)"))
        #expect(ip4.contains("\(onLink)/24 dev \(guestEnd)"))
        #expect(ip4.contains("scope link"))
        let ip6 = try TestHost.run(["ip", "-n", nsName, "-6", "route", "show"])
        #expect(ip6.contains("default via \(gateway6) dev \(guestEnd)"))

        // The same route twice is refused, not duplicated.
        #expect(throws: LinkError.self) { try inside.addDefaultRoute(via: .v4(gateway4), device: guestEnd) }
        // A gateway outside every connected subnet is unreachable unless declared on-link.
        let far = IPv4Address(10, 195, x, 1)
        do {
            try inside.addRoute(to: .v4(IPv4Address(10, 194, x, 0)), prefixLength: 24, via: .v4(far), device: guestEnd)
            Issue.record("an unreachable gateway was accepted")
        } catch {
            #expect(error.subject == guestEnd)
            #expect(error.operation == "add route 10.194.\(x).0/24 via \(far)")
            // libnl's own text is "Unspecific failure"; the kernel's errno says what went wrong.
            #expect(error.reason.contains("Network is unreachable"))
        }
        try inside.addRoute(to: .v4(IPv4Address(10, 194, x, 0)), prefixLength: 24, via: .v4(far), device: guestEnd, gatewayOnLink: true)
        #expect(try inside.routes(family: .ipv4).contains { $0.gateway == .v4(far) })
    }

    /// A namespace held only by fd (no name) works the same way: the veth peer is born in it.
    @Test func vethIntoAnUnnamedNamespace() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try NetworkNamespace.createUnnamed()
        let copy = try NetworkNamespace(duplicating: ns.fileDescriptor)
        #expect(copy.isSame(as: ns))
        #expect(!(try NetworkNamespace.current()).isSame(as: ns))
        let hostEnd = scratch.deviceName("e", "h")
        let guestEnd = scratch.deviceName("e", "g")
        try scratch.host.createVethPair(named: hostEnd, peer: guestEnd, peerNamespace: copy)
        let inside = try NetlinkSocket(in: ns)
        #expect(try inside.link(named: guestEnd).kind == "veth")
        // Moving back by fd.
        try inside.moveLink(named: guestEnd, to: try NetworkNamespace.current())
        #expect(try scratch.host.link(named: guestEnd).kind == "veth")
        #expect(throws: LinkError.self) { try inside.link(named: guestEnd) }
    }
}
