// The per-sandbox table of UDP peers of published ports: a gateway-side port per peer, the way
// back from the guest's reply, exhaustion that spares existing peers, and idle expiry.
import NetStack
import Testing
import Wire

@testable import Gateway

struct UDPPeerTableTests {
    static let guest = IPAddress.v4(IPv4Address(10, 88, 0, 2))
    static let gateway = IPAddress.v4(IPv4Address(10, 88, 0, 1))
    static let port = HostBinding(address: .v4(.loopback), port: 5353, protocol: .udp)
    static let port6 = HostBinding(address: .v6(.loopback), port: 5353, protocol: .udp)
    static func peer(_ p: UInt16) -> IPEndpoint { IPEndpoint(address: .v4(.loopback), port: p) }
    static func key(_ gw: UInt16) -> FlowKey {
        FlowKey(guestAddress: guest, guestPort: 53, remoteAddress: gateway, remotePort: gw)
    }
    static let second: UInt64 = 1_000_000_000

    /// The gateway-side port a new peer got, or nil when it was dropped.
    static func add(_ t: inout UDPPeerTable, _ p: UInt16, on binding: HostBinding = port, at now: UInt64 = 0) -> UInt16?
    {
        t.addMapped(binding, peer: peer(p), now: now, key: key)?.remotePort
    }

    /// The gateway-side port of a known peer (marking it active), or nil.
    static func known(_ t: inout UDPPeerTable, _ p: UInt16, on binding: HostBinding = port, at now: UInt64) -> UInt16? {
        t.touch(binding, peer: peer(p), now: now)?.remotePort
    }

    @Test func eachPeerGetsItsOwnGatewayPortAndTheWayBack() throws {
        var t = UDPPeerTable(gatewayPorts: 60000...60009)
        let ports = [Self.add(&t, 1111), Self.add(&t, 2222), Self.add(&t, 1111, on: Self.port6)]
        // The same peer on another published port is another peer.
        #expect(ports == [60000, 60001, 60002])
        let again = Self.known(&t, 1111, at: 5)
        #expect(again == 60000)
        let stranger = Self.known(&t, 3333, at: 5)
        #expect(stranger == nil)
        let touched = t.touch(stackKey: Self.key(60001), now: 6)
        let back = try #require(touched)
        #expect(back.peer == Self.peer(2222) && back.binding == Self.port && back.gatewayPort == 60001)
        let unknown = t.touch(stackKey: Self.key(60005), now: 6)
        #expect(unknown == nil)
        // A datagram from another guest port is not a reply to the peer.
        var stray = Self.key(60000)
        stray.guestPort = 54
        #expect(!t.contains(stackKey: stray))
        #expect(t.contains(stackKey: Self.key(60000)))
    }

    @Test func exhaustionDropsNewPeersOnly() {
        var t = UDPPeerTable(gatewayPorts: 60000...60001)
        let first = [Self.add(&t, 1), Self.add(&t, 2)]
        #expect(first == [60000, 60001])
        #expect(t.isFull)
        let third = Self.add(&t, 3)
        #expect(third == nil)
        let old = Self.known(&t, 1, at: 1)
        #expect(old == 60000)
        #expect(t.count == 2)
    }

    @Test func idlePeersExpireAndTheirPortsComeBackLast() {
        var t = UDPPeerTable(gatewayPorts: 60000...60002)
        let idle = 60 * Self.second
        _ = Self.add(&t, 1, at: 0)
        _ = Self.add(&t, 2, at: 10 * Self.second)
        #expect(t.nextExpiry(idle: idle) == idle)
        let none = t.expire(now: idle - 1, idle: idle)
        #expect(none == 0)
        // Activity keeps a peer.
        _ = t.touch(stackKey: Self.key(60000), now: 30 * Self.second)
        let expired = t.expire(now: 70 * Self.second, idle: idle)
        #expect(expired == 1)
        let gone = Self.known(&t, 2, at: 70 * Self.second)
        #expect(gone == nil)
        let kept = Self.known(&t, 1, at: 70 * Self.second)
        #expect(kept == 60000)
        // 60001 was freed, but the search resumes after the last port given.
        let next = [Self.add(&t, 3), Self.add(&t, 4)]
        #expect(next == [60002, 60001])
    }

    @Test func portsTakenByPreservedPeersAreSkipped() {
        var t = UDPPeerTable(gatewayPorts: 60000...60002)
        let direct = t.addDirect(Self.port, peer: Self.peer(1), stackKey: Self.key(60000), now: 0)
        #expect(direct)
        let clash = t.addDirect(Self.port6, peer: Self.peer(9), stackKey: Self.key(60000), now: 0)
        #expect(!clash)
        let mapped = Self.add(&t, 2)
        #expect(mapped == 60001)
    }

    @Test func unpublishForgetsThatPortsPeers() {
        var t = UDPPeerTable(gatewayPorts: 60000...60009)
        _ = Self.add(&t, 1)
        _ = Self.add(&t, 1, on: Self.port6)
        t.removeAll(of: Self.port)
        #expect(t.count == 1)
        let a = Self.known(&t, 1, at: 1)
        let b = Self.known(&t, 1, on: Self.port6, at: 1)
        #expect(a == nil && b == 60001)
    }
}
