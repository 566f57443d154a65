// The ways link operations fail: each throws a LinkError with the right code, naming the device
// (or namespace) and the operation, and nothing crashes.
import GatewayTestSupport
import Foundation
import Testing
import Wire

@testable import Link

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct LinkErrorPathTests {
    /// Runs `body`, requires a LinkError, and returns it.
    func linkError(_ body: () throws -> Void) throws -> LinkError {
        do {
            try body()
        } catch let error as LinkError {
            return error
        }
        Issue.record("expected a LinkError")
        throw CancellationError()
    }

    @Test func mtuOnAMissingDeviceNamesIt() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let missing = scratch.deviceName("x", "gone")
        let error = try linkError { try scratch.host.setMTU(of: missing, to: 1400) }
        #expect(error.code == .noSuchDevice)
        #expect(error.subject == missing)
        #expect(error.operation == "set MTU")
        #expect(error.description.contains(missing))
        #expect(error.reason.lowercased().contains("no such device") || error.reason.lowercased().contains("not found"))

        for body in [
            { try scratch.host.setLink(named: missing, up: true) },
            { try scratch.host.deleteLink(named: missing) },
            { _ = try scratch.host.link(named: missing) },
            { try scratch.host.addAddress(.v4(IPv4Address(10, 196, 0, 1)), prefixLength: 24, toLink: missing) },
            { try scratch.host.addDefaultRoute(via: .v4(IPv4Address(10, 196, 0, 1)), device: missing) },
        ] as [() throws -> Void] {
            let e = try linkError(body)
            #expect(e.code == .noSuchDevice)
            #expect(e.subject == missing)
        }
    }

    @Test(arguments: ["gwt-0123456789ab", "gwb-a-name-far-too-long-for-ifnamsiz"])
    func namesOfIFNAMSIZOrMoreAreTooLong(name: String) throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        #expect(name.utf8.count >= 16)
        for body in [
            { _ = try TAPDevice(name: name) },
            { try scratch.host.createBridge(named: name) },
            { try scratch.host.setMTU(of: name, to: 1500) },
            { try scratch.host.createVethPair(named: scratch.deviceName("e", "a"), peer: name) },
        ] as [() throws -> Void] {
            let e = try linkError(body)
            #expect(e.code == .nameTooLong)
            #expect(e.subject == name)
        }
    }

    @Test func namesWithoutTheProjectPrefixOrInvalidAreRefused() throws {
        for name in ["eth9", "", "gw/slash", "gw colon:", "gw space"] {
            let e = try linkError { _ = try TAPDevice(name: name) }
            #expect(e.code == .invalidArgument, "\(name)")
        }
    }

    @Test func takenNamesAreReported() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let host = scratch.host

        // A bridge holds the name: neither a TAP nor another bridge can have it.
        let bridge = scratch.deviceName("b", "x")
        try host.createBridge(named: bridge)
        var e = try linkError { _ = try TAPDevice(name: bridge) }
        #expect(e.code == .nameTaken)
        #expect(e.subject == bridge)
        e = try linkError { try host.createBridge(named: bridge) }
        #expect(e.code == .nameTaken)

        // A TAP with an fd open holds its name too.
        let tapName = scratch.deviceName("t", "x")
        let tap = try TAPDevice(name: tapName)
        e = try linkError { _ = try TAPDevice(name: tapName) }
        #expect(e.code == .nameTaken)
        #expect(e.operation == "create TAP")
        e = try linkError { try host.createVethPair(named: tapName, peer: scratch.deviceName("e", "p")) }
        #expect(e.code == .nameTaken)

        // Moving into a namespace that already has the name.
        let ns = try scratch.namespace()
        let inside = try NetlinkSocket(in: ns)
        try inside.createBridge(named: tapName)
        e = try linkError { try host.moveLink(named: tapName, to: ns) }
        #expect(e.code == .nameTaken)
        #expect(e.subject == tapName)
        withExtendedLifetime(tap) {}

        // Bridges are pinned to their namespace (NETIF_F_NETNS_LOCAL): the kernel's refusal comes back.
        e = try linkError { try host.moveLink(named: bridge, to: ns) }
        #expect(e.code == .invalidArgument)
        #expect(e.subject == bridge)
        // libnl alone would say only "Invalid input data or parameter"; the kernel's errno and
        // extended ack say which.
        #expect(e.reason.contains("kernel: Invalid argument"))
    }

    @Test func missingNamespacesAreReported() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let missing = "gwtest-\(scratch.tag)-missing"
        var e = try linkError { _ = try NetworkNamespace(named: missing) }
        #expect(e.code == .noSuchNamespace)
        #expect(e.subject == missing)
        e = try linkError { _ = try NetlinkSocket(namespaceNamed: missing) }
        #expect(e.code == .noSuchNamespace)
        e = try linkError { try NetworkNamespace.delete(named: missing) }
        #expect(e.code == .noSuchNamespace)
        let bridge = scratch.deviceName("b", "m")
        try scratch.host.createBridge(named: bridge)
        e = try linkError { try scratch.host.moveLink(named: bridge, toNamespaceNamed: missing) }
        #expect(e.code == .noSuchNamespace)
        e = try linkError { _ = try NetworkNamespace(named: "../etc") }
        #expect(e.code == .invalidArgument)
        // A file that is there but no namespace is a mistake in the path, not a namespace gone.
        e = try linkError { _ = try NetworkNamespace(path: "/etc/hostname") }
        #expect(e.code == .invalidArgument)
        #expect(e.reason == "not a namespace file")
        e = try linkError { _ = try NetworkNamespace(path: "/proc/999999999/ns/net") }
        #expect(e.code == .noSuchNamespace)
        e = try linkError { _ = try NetworkNamespace(path: "relative/ns") }
        #expect(e.code == .invalidArgument)
    }

    @Test func badArgumentsAreRefusedBeforeTheKernelSeesThem() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let host = scratch.host
        let bridge = scratch.deviceName("b", "a")
        try host.createBridge(named: bridge)
        try host.setLink(named: bridge, up: true)

        var options = TAPDevice.Options()
        options.vnetHeaderSize = 11
        #expect(try linkError { _ = try TAPDevice(name: scratch.deviceName("t", "h"), options: options) }.code == .invalidArgument)
        #expect(try linkError { try host.setMTU(of: bridge, to: 0) }.code == .invalidArgument)
        // Outside the bridge's range (68…65535): the kernel's refusal.
        #expect(try linkError { try host.setMTU(of: bridge, to: 10_000_000) }.code == .invalidArgument)
        #expect(try linkError { try host.setMACAddress(of: bridge, to: .broadcast) }.code == .invalidArgument)
        #expect(try linkError { try host.addAddress(.v4(IPv4Address(10, 196, 0, 1)), prefixLength: 33, toLink: bridge) }.code == .invalidArgument)
        #expect(try linkError { try host.addRoute(to: .v4(IPv4Address(10, 196, 0, 1)), prefixLength: 24, device: bridge) }.code == .invalidArgument)
        #expect(
            try linkError { try host.addRoute(to: .v4(.any), prefixLength: 0, via: .v6(.loopback), device: bridge) }.code == .invalidArgument)
        #expect(try linkError { try host.sweepStaleDevices(prefix: "eth") }.code == .invalidArgument)
        #expect(try linkError { _ = try host.link(index: 0) }.code == .invalidArgument)
        #expect(try linkError { _ = try host.link(index: Int32.max) }.code == .noSuchDevice)

        // A TAP is not a bridge: deleteBridge refuses it.
        let tapName = scratch.deviceName("t", "b")
        let tap = try TAPDevice(name: tapName)
        #expect(try linkError { try host.deleteBridge(named: tapName) }.code == .invalidArgument)
        #expect(try linkError { _ = try tap.openQueue() }.code == .invalidArgument)
    }

    /// A TAP deleted under its open fd: reads say the device is gone, and nothing crashes.
    @Test func readingADeletedTAP() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let name = scratch.deviceName("t", "d")
        let tap = try TAPDevice(name: name)
        try scratch.host.deleteLink(named: name)
        var buffer = [UInt8](repeating: 0, count: tap.frameBufferSize)
        let e = try linkError { _ = try buffer.withUnsafeMutableBytes { try tap.read(into: $0) } }
        #expect(e.code == .noSuchDevice)
        #expect(e.subject == name)
        let w = try linkError { try tap.send(TestFrames.ethernet(destination: .broadcast, source: randomMAC(), type: 0x88B5, payload: [])) }
        #expect(w.code == .noSuchDevice)
    }
}
