// Which publication a sandbox's flow to the host would land on (both loopback families, wildcard
// and specific host addresses, the copy egress keeps), and how the inbound cap is shared.
@testable import Gateway
import Testing
import Wire

struct PublishedPortsTests {
    static func b(_ ip: String, _ port: UInt16, _ proto: PortProtocol = .tcp) -> HostBinding {
        HostBinding(address: IPAddress(ip)!, port: port, protocol: proto)
    }

    static func reached(_ ports: PublishedPorts, _ ip: String, _ port: UInt16, _ proto: PortProtocol = .tcp) -> String? {
        ports.target(reachedBy: IPAddress(ip)!, port: port, protocol: proto)?.sandbox
    }

    @Test func loopbackFlowsReachLoopbackAndWildcardPortsOfEitherFamily() {
        let t = RoutingTable()
        t.insert(Self.b("127.0.0.1", 8001), .init(sandbox: "v4", guestPort: 80))
        t.insert(Self.b("0.0.0.0", 8002), .init(sandbox: "any4", guestPort: 80))
        t.insert(Self.b("::1", 8003), .init(sandbox: "v6", guestPort: 80))
        t.insert(Self.b("::", 8004), .init(sandbox: "any6", guestPort: 80))
        t.insert(Self.b("192.0.2.10", 8005), .init(sandbox: "host", guestPort: 80))
        t.insert(Self.b("127.0.0.5", 8006), .init(sandbox: "other-loopback", guestPort: 80))
        t.insert(Self.b("127.0.0.1", 8007, .udp), .init(sandbox: "udp", guestPort: 53))
        let p = t.publishedPorts().ports

        // A gateway address becomes 127.0.0.1 or ::1, and egress falls back to the other family.
        for loopback in ["127.0.0.1", "::1"] {
            #expect(Self.reached(p, loopback, 8001) == "v4")
            #expect(Self.reached(p, loopback, 8002) == "any4")
            #expect(Self.reached(p, loopback, 8003) == "v6")
            #expect(Self.reached(p, loopback, 8004) == "any6")
            // The kernel takes 127.0.0.1 to a socket on 127.0.0.5 no more than to one on 192.0.2.10.
            #expect(Self.reached(p, loopback, 8005) == nil)
            #expect(Self.reached(p, loopback, 8006) == nil)
            #expect(Self.reached(p, loopback, 8007, .udp) == "udp")
            #expect(Self.reached(p, loopback, 8007, .tcp) == nil)
            #expect(Self.reached(p, loopback, 8008) == nil)
        }
        // Other loopback addresses have no fallback: only their own and their family's wildcard.
        #expect(Self.reached(p, "127.0.0.5", 8006) == "other-loopback")
        #expect(Self.reached(p, "127.0.0.5", 8002) == "any4")
        #expect(Self.reached(p, "127.0.0.5", 8004) == nil)
        #expect(Self.reached(p, "127.0.0.5", 8001) == nil)
        // A specific host address is reached by flows to it (IPv4-mapped too), a wildcard is not
        // assumed to cover an address that may not be the host's.
        #expect(Self.reached(p, "192.0.2.10", 8005) == "host")
        #expect(Self.reached(p, "::ffff:192.0.2.10", 8005) == "host")
        #expect(Self.reached(p, "192.0.2.10", 8002) == nil)
        #expect(Self.reached(p, "198.51.100.1", 8001) == nil)
    }

    @Test func sharedPortNumbersAndRemoval() {
        let t = RoutingTable()
        t.insert(Self.b("192.0.2.10", 9000), .init(sandbox: "a", guestPort: 80))
        t.insert(Self.b("127.0.0.1", 9000), .init(sandbox: "b", guestPort: 81))
        var p = t.publishedPorts().ports
        #expect(Self.reached(p, "127.0.0.1", 9000) == "b")
        #expect(p.target(reachedBy: IPAddress("127.0.0.1")!, port: 9000, protocol: .tcp)?.guestPort == 81)
        #expect(Self.reached(p, "192.0.2.10", 9000) == "a")
        t.remove(Self.b("127.0.0.1", 9000))
        p = t.publishedPorts().ports
        #expect(Self.reached(p, "127.0.0.1", 9000) == nil)
        #expect(Self.reached(p, "192.0.2.10", 9000) == "a")
        t.remove(Self.b("192.0.2.10", 9000))
        #expect(t.publishedPorts().ports.isEmpty)
    }

    @Test func viewRefreshesOnlyAfterAChange() {
        let t = RoutingTable()
        let view = PublishedPortsView(routes: t)
        #expect(view.current.isEmpty)
        let before = t.generation
        t.insert(Self.b("127.0.0.1", 7000), .init(sandbox: "a", guestPort: 80))
        #expect(t.generation != before)
        #expect(Self.reached(view.current, "127.0.0.1", 7000) == "a")
        // A failed insert and the removal of an absent binding change nothing.
        let settled = t.generation
        t.insert(Self.b("127.0.0.1", 7000), .init(sandbox: "z", guestPort: 1))
        t.remove(Self.b("127.0.0.1", 7001))
        #expect(t.generation == settled)
        t.remove(Self.b("127.0.0.1", 7000))
        #expect(Self.reached(view.current, "127.0.0.1", 7000) == nil)
    }

    // MARK: - Fair shares of the inbound cap

    @Test(arguments: [
        // (cap, sources, floor) → share: room for one source more than hold connections.
        (256, 1, 8, 128), (256, 2, 8, 85), (256, 3, 8, 64), (256, 31, 8, 8), (256, 200, 8, 8),
        (8, 1, 8, 4), (8, 2, 8, 4), (8, 2, 2, 2), (2, 1, 8, 1), (1, 1, 8, 1), (1, 5, 8, 1), (100, 0, 8, 50),
    ])
    func share(cap: Int, sources: Int, floor: Int, expected: Int) {
        #expect(InboundShares.share(cap: cap, sources: sources, floor: floor) == expected)
    }

    @Test func oneSourceCannotTakeTheWholeCap() {
        var limits = IngressLimits()
        limits.maxInboundConnections = 12
        limits.inboundShareFloor = 1
        var shares = InboundShares()
        let flood = IPAddress("127.0.0.1")!, other = IPAddress("192.0.2.7")!
        var admitted = 0
        while shares.admits(flood, limits: limits) {
            shares.add(flood)
            admitted += 1
        }
        #expect(admitted == 6)
        // A second source gets its share (12 / 3); the first now holds more than its new share.
        for _ in 0..<4 {
            #expect(shares.admits(other, limits: limits))
            shares.add(other)
        }
        #expect(!shares.admits(other, limits: limits))
        #expect(!shares.admits(flood, limits: limits))
        // IPv4-mapped is the same source.
        #expect(shares.count(of: IPAddress("::ffff:192.0.2.7")!) == 4)
        // Freed connections give the share back; an address with none is forgotten.
        for _ in 0..<4 { shares.remove(other) }
        #expect(shares.sources == 1)
        shares.remove(other)
        #expect(shares.count(of: flood) == 6)
        #expect(!shares.admits(flood, limits: limits))
        shares.remove(flood)
        #expect(shares.admits(flood, limits: limits))
    }
}
