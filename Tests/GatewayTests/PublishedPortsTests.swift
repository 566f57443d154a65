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
        // (cap, sources, floor) → share: an even split, never below the floor nor above the cap.
        (256, 1, 4, 256), (256, 2, 4, 128), (256, 3, 4, 85), (256, 64, 4, 4), (256, 200, 4, 4),
        (8, 2, 4, 4), (8, 3, 1, 2), (8, 3, 4, 4), (2, 5, 1, 1), (1, 1, 4, 1), (100, 0, 4, 100),
    ])
    func share(cap: Int, sources: Int, floor: Int, expected: Int) {
        #expect(InboundShares.share(cap: cap, sources: sources, floor: floor) == expected)
    }

    @Test func aLoneClientUsesTheCapUntilAnotherComes() {
        var limits = IngressLimits()
        limits.maxInboundConnections = 12
        limits.inboundShareFloor = 1
        var shares = InboundShares()
        let flood = InboundSource(IPAddress("127.0.0.1")!)
        let other = InboundSource(IPAddress("192.0.2.7")!)
        let sandbox = InboundSource.sandbox("a")
        // Alone, the whole cap, then the limit.
        for _ in 0..<12 {
            #expect(shares.admit(flood, limits: limits) == .admit)
            shares.add(flood)
        }
        #expect(shares.admit(flood, limits: limits) == .overLimit)
        // A newcomer takes its share (12 / 2) from the client over it, one at a time.
        for _ in 0..<6 {
            #expect(shares.admit(other, limits: limits) == .admitInPlaceOf(flood))
            shares.remove(flood)
            shares.add(other)
        }
        #expect(shares.admit(other, limits: limits) == .overLimit)
        #expect(shares.admit(flood, limits: limits) == .overLimit)
        // A third comes: the share is 4, and both hold more.
        #expect(shares.admit(sandbox, limits: limits) == .admitInPlaceOf(flood) || shares.admit(sandbox, limits: limits) == .admitInPlaceOf(other))
        shares.remove(flood)
        shares.add(sandbox)
        #expect(shares.count(of: flood) == 5 && shares.sources == 3)
        // Below the cap, a client at its share is refused while others have room.
        shares.remove(other)
        shares.remove(other)
        shares.remove(other)
        #expect(shares.admit(flood, limits: limits) == .overShare)
        #expect(shares.admit(sandbox, limits: limits) == .admit)
        // IPv4-mapped is the same client; one with no connections left is forgotten.
        #expect(shares.count(of: InboundSource(IPAddress("::ffff:192.0.2.7")!)) == 3)
        for _ in 0..<3 { shares.remove(other) }
        shares.remove(other)
        #expect(shares.sources == 2 && shares.count(of: other) == 0)
    }
}
