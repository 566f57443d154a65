// A real Linux kernel as the guest: a fresh namespace holding a TAP whose other end is a Stack
// driven on its own event loop thread. Everything is removed when the fixture is torn down.
import Foundation
import Gateway
import GatewayTestSupport
import Link
import NetStack
import Wire

final class GuestFixture: @unchecked Sendable {
    let scratch: Scratch
    let namespace: NetworkNamespace
    let tap: TAPDevice
    let loop: EventLoop
    let driver: LoopBound<StackDriver>
    let configuration: StackConfiguration
    var nsName: String { namespace.name! }
    var tapName: String { tap.name }

    /// - Parameter staticAddress: configure 10.0.2.15/24 and a default route in the guest
    ///   (false leaves addressing to DHCP/SLAAC).
    init(mtu: Int = 1500, staticAddress: Bool = true, configure: (inout StackConfiguration) -> Void = { _ in }) throws {
        scratch = try Scratch()
        namespace = try scratch.namespace()
        var options = TAPDevice.Options()
        options.namespace = namespace
        tap = try TAPDevice(name: scratch.deviceName("t", "g"), options: options)
        var cfg = StackConfiguration(mtu: mtu)
        configure(&cfg)
        configuration = cfg
        loop = try EventLoop(name: "test-shard")
        driver = LoopBound(StackDriver(loop: loop, fd: tap.fileDescriptor, stack: Stack(configuration: cfg)), loop: loop)
        loop.startThread()
        let d = driver
        try loop.submitAndWait { try d.value.start() }

        let nl = try NetlinkSocket(in: namespace)
        try nl.setMTU(of: tap.name, to: mtu)
        try nl.setLink(named: "lo", up: true)
        try nl.setLink(named: tap.name, up: true)
        if staticAddress {
            try nl.addAddress(.v4(cfg.guestIPv4), prefixLength: cfg.prefixLength, toLink: tap.name)
            try nl.addDefaultRoute(via: .v4(cfg.gatewayIPv4), device: tap.name)
        }
    }

    /// Runs `body` on the shard's thread (where the stack lives) and returns its result.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        try! loop.submitAndWait(body)
    }

    /// Runs a shell command inside the guest namespace.
    @discardableResult
    func guest(_ command: String, timeout: Int = 120) throws -> String {
        try TestHost.run(["timeout", String(timeout), "ip", "netns", "exec", nsName, "sh", "-c", command])
    }

    func tearDown() {
        let d = driver
        try? loop.submitAndWait {
            d.value.stop()
            d.value.onEvent = { _ in }  // drops the services, which hold the driver
        }
        loop.stop()
        scratch.cleanUp()
    }
}
