// A Gateway configured for published-port tests, its namespace sandboxes, and processes (host
// clients, guest servers) that are killed at the end; all removed when the test ends, pass or fail.
import Foundation
import Gateway
import GatewayTestSupport
import Link
import Wire

final class PublishedPortFixture: @unchecked Sendable {
    let scratch: Scratch
    let gateway: Gateway
    private let processes = BackgroundProcesses()

    init(shards: Int = 2, configure: (inout GatewayConfiguration) -> Void = { _ in }) throws {
        scratch = try Scratch()
        var cfg = GatewayConfiguration(shards: shards)
        let block = UInt8.random(in: 100...199)
        cfg.addresses = AddressPlan(
            ipv4Pool: IPv4Address(10, block, 0, 0), ipv4PoolPrefix: 16, ipv4SandboxPrefix: 28,
            ipv6Pool: IPv6Address(high: 0xFD47_5700_0000_0000 | UInt64(block) << 16, low: 0))
        // Ports published without a number come from a block of its own below the kernel's
        // ephemeral range (the default is that range): a port a test frees and binds again must
        // not go to another test's outgoing connection meanwhile.
        let ports = UInt16(12_000 + 64 * Int.random(in: 0..<100))
        cfg.publishing.autoPorts = AutoPortRange(ports: ports...(ports + 63))
        configure(&cfg)
        gateway = try Gateway(configuration: cfg)
    }

    /// A fresh namespace attached as a sandbox.
    func attach(_ id: String? = nil) throws -> (SandboxInfo, String) {
        let ns = try scratch.namespace()
        let spec = SandboxSpec(id: id ?? "pp-\(scratch.tag)-\(UInt16.random(in: 0...9999))", mode: .netns(ns.name!))
        return (try gateway.attach(spec), ns.name!)
    }

    /// Runs a command on the host and returns its output.
    @discardableResult
    func host(_ command: String, timeout: Int = 120) throws -> String {
        try TestHost.run(["timeout", String(timeout), "sh", "-c", command])
    }

    /// Runs python code on the host; its stdout, trimmed.
    func python(_ code: String, timeout: Int = 120) throws -> String {
        try TestHost.run(["timeout", String(timeout), "python3", "-c", code]).trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    /// Starts python code inside a namespace in the background (a guest server).
    func guestServer(in ns: String, _ code: String) throws {
        _ = try background(["ip", "netns", "exec", ns, "python3", "-u", "-c", code])
    }

    func background(_ arguments: [String]) throws -> Process { try processes.start(arguments) }

    /// Waits until something listens on `port` (TCP, or bound for UDP) in a namespace, or on the host.
    func waitForListener(port: UInt16, in ns: String? = nil, udp: Bool = false, seconds: Double = 10) throws {
        try TestHost.waitForListener(port: port, in: ns, udp: udp, seconds: seconds)
    }

    /// A host port in a band of its own, unlikely to be taken.
    /// A port above the kernel's ephemeral range (32768-60999 by default), so that no outgoing
    /// connection of a test running at the same time can be holding it.
    static func freePort() -> UInt16 { TestHost.freePort(in: 61000...65000) }

    func tearDown() {
        processes.killAll()
        gateway.shutdown()
        scratch.cleanUp()
    }
}
