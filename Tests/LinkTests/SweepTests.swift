// The sweep of a crashed run's leftovers: every device with the prefix goes, nothing else does.
import GatewayTestSupport
import Foundation
import Testing

@testable import Link

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct SweepTests {
    @Test func sweepRemovesEveryPrefixedDeviceAndNothingElse() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let host = scratch.host
        // Each test sweeps only its own tag, so parallel tests never lose devices to it.
        let prefix = "gwz\(scratch.tag)-"
        let bridgeOne = prefix + "b1"
        let bridgeTwo = prefix + "b2"
        let vethEnd = prefix + "v1"
        let vethPeer = prefix + "v2"
        try host.createBridge(named: bridgeOne)
        try host.createBridge(named: bridgeTwo)
        // One veth end's deletion takes the other along; the sweep must not stumble on it.
        try host.createVethPair(named: vethEnd, peer: vethPeer)
        // A persistent TAP (no fd open) is a typical leftover of a crashed VM run.
        var options = TAPDevice.Options()
        options.persistent = true
        _ = try TAPDevice(name: prefix + "t1", options: options)
        // A neighbour with a different tag stays.
        let bystander = scratch.deviceName("b", "keep")
        try host.createBridge(named: bystander)

        let before = Set(try host.links().map(\.name))
        #expect(before.isSuperset(of: [bridgeOne, bridgeTwo, vethEnd, vethPeer, prefix + "t1"]))

        let removed = try host.sweepStaleDevices(prefix: prefix)
        #expect(Set(removed) == [bridgeOne, bridgeTwo, vethEnd, vethPeer, prefix + "t1"])
        let after = Set(try host.links().map(\.name))
        #expect(after.allSatisfy { !$0.hasPrefix(prefix) })
        #expect(after.contains(bystander))
        #expect(after.contains("lo"))

        // Sweeping again finds nothing.
        #expect(try host.sweepStaleDevices(prefix: prefix).isEmpty)
    }

    /// Inside a namespace the sweep sees that namespace's devices only.
    @Test func sweepStaysInItsNamespace() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let prefix = "gwz\(scratch.tag)-"
        let ns = try NetworkNamespace.createUnnamed()
        let inside = try NetlinkSocket(in: ns)
        try inside.createBridge(named: prefix + "in")
        try scratch.host.createBridge(named: prefix + "out")
        #expect(try inside.sweepStaleDevices(prefix: prefix) == [prefix + "in"])
        #expect(try scratch.host.link(named: prefix + "out").kind == "bridge")
    }
}
