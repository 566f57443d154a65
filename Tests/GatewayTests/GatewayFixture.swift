// A running Gateway with namespace sandboxes made by the test, and host-side servers the test
// starts on loopback; all of it removed at the end, also when the test fails.
import Foundation
import Gateway
import GatewayTestSupport
import Link
import Wire

final class GatewayFixture: @unchecked Sendable {
    let scratch: Scratch
    let gateway: Gateway
    private let processes = BackgroundProcesses()
    private var tempDirs: [String] = []

    init(shards: Int = 2, configure: (inout GatewayConfiguration) -> Void = { _ in }) throws {
        scratch = try Scratch()
        var cfg = GatewayConfiguration(shards: shards)
        // Never a real resolver: tests that need DNS configure one of their own on loopback.
        cfg.dns = DNSConfiguration(upstreams: [(.v4(.loopback), 9)], attemptTimeout: .milliseconds(300))
        // A pool of our own so parallel suites never share addresses.
        let block = UInt8.random(in: 100...199)
        cfg.addresses = AddressPlan(ipv4Pool: IPv4Address(10, block, 0, 0), ipv4PoolPrefix: 16, ipv4SandboxPrefix: 28,
                                    ipv6Pool: IPv6Address(high: 0xFD47_5700_0000_0000 | UInt64(block) << 16, low: 0))
        configure(&cfg)
        gateway = try Gateway(configuration: cfg)
    }

    /// A fresh namespace attached as a sandbox.
    func attach(_ id: String? = nil, configure: (inout SandboxSpec) -> Void = { _ in }) throws -> (SandboxInfo, String) {
        let ns = try scratch.namespace()
        var spec = SandboxSpec(id: id ?? "sb-\(scratch.tag)-\(UInt16.random(in: 0...9999))", mode: .netns(ns.name!))
        configure(&spec)
        return (try gateway.attach(spec), ns.name!)
    }

    /// An address on a veth this test creates in the host namespace: a destination beyond the
    /// gateway that is safe to address even if a bug let traffic out, since it is the test's own.
    func ownHostAddress(_ suffix: String) throws -> String {
        let host = "10.\(UInt8.random(in: 201...250)).\(UInt8.random(in: 0...255)).1"
        let veth = scratch.deviceName("e", suffix)
        try TestHost.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p"])
        try TestHost.run(["ip", "addr", "add", host + "/30", "dev", veth])
        try TestHost.run(["ip", "link", "set", veth, "up"])
        return host
    }

    @discardableResult
    func run(in ns: String, _ command: String, timeout: Int = 60) throws -> String {
        try TestHost.run(["timeout", String(timeout), "ip", "netns", "exec", ns, "sh", "-c", command])
    }

    /// A free TCP port on the host's loopback.
    /// A port for a host-side server, below the kernel's ephemeral range (32768-60999 by
    /// default): there, another test's outgoing connection may hold it.
    static func freePort() -> UInt16 { TestHost.freePort() }

    /// Starts a background process; it is killed at teardown.
    func background(_ arguments: [String]) throws -> Process { try processes.start(arguments) }

    /// Makes the gateway the resolver of processes run in `ns` (`ip netns exec` gives the
    /// namespace /etc/netns/NAME/resolv.conf as its /etc/resolv.conf); removed at teardown.
    func resolveThroughGateway(_ ns: String, _ info: SandboxInfo) throws {
        let dir = "/etc/netns/\(ns)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        tempDirs.append(dir)
        try "nameserver \(info.gatewayIPv4)\n".write(toFile: dir + "/resolv.conf", atomically: true, encoding: .utf8)
    }

    /// A directory removed at teardown.
    func temporaryDirectory(_ label: String) throws -> String {
        let dir = NSTemporaryDirectory() + "gw-\(label)-\(scratch.tag)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        tempDirs.append(dir)
        return dir
    }

    /// python's http.server on 127.0.0.1 serving a directory with `files`; returns the port.
    func httpServer(files: [String: Data]) throws -> UInt16 {
        let dir = try temporaryDirectory("http")
        for (name, data) in files { try data.write(to: URL(fileURLWithPath: dir + "/" + name)) }
        let port = Self.freePort()
        _ = try background(["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dir])
        try waitForListener(port: port)
        return port
    }

    /// Waits until something listens on the port (TCP), or has bound it (UDP).
    func waitForListener(port: UInt16, udp: Bool = false, seconds: Double = 10) throws {
        try TestHost.waitForListener(port: port, udp: udp, seconds: seconds)
    }

    func tearDown() {
        processes.killAll()
        gateway.shutdown()
        for d in tempDirs { try? FileManager.default.removeItem(atPath: d) }
        scratch.cleanUp()
    }
}
