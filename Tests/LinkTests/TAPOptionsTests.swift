// TAP options a VM monitor depends on: persistence, owner and group, multiple queues, and
// reattaching to a persistent TAP by name.
import GatewayTestSupport
import Foundation
import Testing

@testable import Link

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct TAPOptionsTests {
    @Test func persistentTAPOutlivesItsFdAndCanBeReopened() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let name = scratch.deviceName("v", "p")
        var options = TAPDevice.Options()
        options.persistent = true
        options.owner = 4321
        options.group = 8765
        do {
            let tap = try TAPDevice(name: name, options: options)
            #expect(tap.options.persistent)
        }
        // The fd is closed; the device stays, owned by the VM monitor's user and group.
        let details = try TestHost.run(["ip", "-d", "link", "show", name])
        #expect(details.contains("persist on"))
        #expect(details.contains("user 4321"))
        #expect(details.contains("group 8765"))
        #expect(details.contains("vnet_hdr on"))

        // Reattaching by name (what QEMU's ifname= does) works while no one holds it…
        let again = try TAPDevice(name: name, options: options)
        // …and a second holder is refused.
        #expect(throws: LinkError.self) { _ = try TAPDevice(name: name, options: options) }
        withExtendedLifetime(again) {}
    }

    @Test func nonPersistentTAPGoesWithItsFd() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let name = scratch.deviceName("t", "g")
        do {
            let tap = try TAPDevice(name: name)
            #expect(try scratch.host.link(named: name).index == tap.ifindex)
        }
        #expect(throws: LinkError.self) { try scratch.host.link(named: name) }
    }

    @Test func multiQueueTAPOpensMoreQueues() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let name = scratch.deviceName("t", "m")
        var options = TAPDevice.Options()
        options.multiQueue = true
        let first = try TAPDevice(name: name, options: options)
        let second = try first.openQueue()
        #expect(second.fileDescriptor != first.fileDescriptor)
        #expect(second.name == name)
        #expect(try second.currentVnetHeaderSize() == 10)
        let details = try TestHost.run(["ip", "-d", "link", "show", name])
        #expect(details.contains("multi_queue"))
        // A single-queue open of a multi-queue device is refused as a taken name.
        #expect(throws: LinkError.self) { _ = try TAPDevice(name: name) }
    }
}
