// Packet capture through the Gateway API with real kernel guests: a capture holds its own
// sandbox's frames in both directions and none of a neighbour's on the same shard, and stops
// taking frames once stopped.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct GatewayCaptureTests {
    /// The Ethernet source and destination of a captured frame.
    private static func macs(_ frame: FrameCapture.Frame) -> (source: MACAddress, destination: MACAddress)? {
        let b = frame.bytes
        guard b.count >= 14 else { return nil }
        return (MACAddress(b[6], b[7], b[8], b[9], b[10], b[11]), MACAddress(b[0], b[1], b[2], b[3], b[4], b[5]))
    }

    @Test func aCaptureHoldsItsSandboxsFramesOnlyAndEndsWhenStopped() throws {
        let fx = try GatewayFixture(shards: 1)
        defer { fx.tearDown() }
        let (a, nsA) = try fx.attach()
        let (b, nsB) = try fx.attach()
        #expect(a.shard == b.shard, "both on the one shard, where only the sandbox tells them apart")
        let captureA = try fx.gateway.startCapture(sandbox: a.id)
        let captureB = try fx.gateway.startCapture(sandbox: b.id)
        #expect(captureA.sandbox == a.id)

        let out = try fx.run(in: nsA, "ping -c 3 -i 0.2 -W 2 \(a.gatewayIPv4)")
        #expect(out.contains("3 received"), "\(out)")
        let framesA = captureA.drain()
        let guestA = try #require(MACAddress(a.mac)), gatewayA = try #require(MACAddress(a.gatewayMAC))
        let fromGuest = framesA.filter(\.fromGuest), toGuest = framesA.filter { !$0.fromGuest }
        // Three echo requests out and three replies back, at least (ARP and IPv6 come along).
        #expect(fromGuest.count >= 3 && toGuest.count >= 3, "\(fromGuest.count) from, \(toGuest.count) to the guest")
        #expect(fromGuest.allSatisfy { Self.macs($0)?.source == guestA })
        #expect(toGuest.allSatisfy { Self.macs($0)?.source == gatewayA })
        #expect(framesA.allSatisfy { $0.bytes.count == $0.originalLength && $0.timestamp > 0 })

        let guestB = try #require(MACAddress(b.mac))
        let framesB = captureB.drain()
        #expect(!framesB.contains { Self.macs($0)?.source == guestA || Self.macs($0)?.destination == guestA })
        #expect(framesB.filter(\.fromGuest).allSatisfy { Self.macs($0)?.source == guestB })

        // Once stopped, the shard copies nothing more into it; B's capture runs on.
        fx.gateway.stopCapture(captureA)
        let recorded = captureA.recorded
        try fx.run(in: nsA, "ping -c 2 -i 0.2 -W 2 \(a.gatewayIPv4)")
        #expect(captureA.recorded == recorded)
        let before = captureB.recorded
        try fx.run(in: nsB, "ping -c 2 -i 0.2 -W 2 \(b.gatewayIPv4)")
        #expect(captureB.recorded >= before + 4)

        // Stopping a capture whose sandbox has gone is a no-op; an unknown sandbox is refused.
        try fx.gateway.detach(b.id)
        fx.gateway.stopCapture(captureB)
        #expect(throws: GatewayError.self) { try fx.gateway.startCapture(sandbox: b.id) }
    }
}
