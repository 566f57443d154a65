// An "internet" for egress tests: a namespace joined to the host by a veth this test creates,
// holding addresses from 198.18.0.0/15 (the benchmarking range) with an HTTP server on each,
// and a resolver on host loopback answering the test's names with those addresses.
import Foundation
import GatewayTestSupport
import Wire

final class InternetFixture {
    /// The namespace's addresses, by role; each serves `/f` (its role's name), `/big` (4 MiB)
    /// and `/huge` (256 MiB).
    let allowed: IPv4Address
    let other: IPv4Address
    let wildcard: IPv4Address
    /// Answers allowed.test, other.test, a.wild.test and wild.test; every other name NXDOMAIN.
    let resolver: FakeResolver
    private(set) var namespace = ""
    /// Each connection to port 443 of `allowed` appends the number of bytes it received; its UDP
    /// port 5353 echoes datagrams.
    private(set) var receivedLog = ""

    /// The resolver starts here (a gateway's configuration names it); the namespace and its
    /// servers with `start(in:)`.
    init(ttl: UInt32 = 300) throws {
        let block = UInt8.random(in: 0...255)
        let net = UInt8.random(in: 18...19)
        func address(_ last: UInt8) -> IPv4Address { IPv4Address(198, net, block, last) }
        allowed = address(10)
        other = address(11)
        wildcard = address(12)
        resolver = try FakeResolver(.table([
            "allowed.test": [allowed], "other.test": [other], "a.wild.test": [wildcard], "wild.test": [wildcard],
        ]), ttl: ttl)
    }

    /// The host side's address on the veth.
    var hostSide: IPv4Address { IPv4Address(raw: allowed.raw & 0xFFFF_FF00 | 1) }

    func start(in fx: GatewayFixture) throws {
        let ns = try fx.scratch.namespace()
        namespace = ns.name!
        let outer = fx.scratch.deviceName("i", "h")
        let inner = fx.scratch.deviceName("i", "n")
        try TestHost.run(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", namespace])
        try TestHost.run(["ip", "addr", "add", "\(hostSide)/24", "dev", outer])
        try TestHost.run(["ip", "link", "set", outer, "up"])
        let exec = ["ip", "netns", "exec", namespace]
        try TestHost.run(exec + ["ip", "link", "set", "lo", "up"])
        try TestHost.run(exec + ["ip", "link", "set", inner, "up"])
        for a in [allowed, other, wildcard] {
            try TestHost.run(exec + ["ip", "addr", "add", "\(a)/24", "dev", inner])
        }
        // One server per address, so a test can tell which one answered.
        for (name, a) in [("allowed", allowed), ("other", other), ("wildcard", wildcard)] {
            let dir = try fx.temporaryDirectory("inet-\(name)")
            try Data("\(name)\n".utf8).write(to: URL(fileURLWithPath: dir + "/f"))
            try Data(repeating: 0x61, count: 4 << 20).write(to: URL(fileURLWithPath: dir + "/big"))
            // 256 MiB that take no disk (sparse): more than every buffer on the way can hold.
            try TestHost.run(["truncate", "-s", "256M", dir + "/huge"])
            _ = try fx.background(exec + ["python3", "-m", "http.server", "80", "--bind", "\(a)", "--directory", dir])
        }
        // Port 443 of `allowed`: records how many bytes each connection brought, nothing else.
        receivedLog = try fx.temporaryDirectory("inet-443") + "/received"
        let script = """
            import socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("\(allowed)", 443))
            s.listen(16)
            while True:
                c, _ = s.accept()
                c.settimeout(2)
                n = 0
                try:
                    while True:
                        d = c.recv(65536)
                        if not d:
                            break
                        n += len(d)
                except Exception:
                    pass
                with open("\(receivedLog)", "a") as f:
                    f.write("%d\\n" % n)
                c.close()
            """
        _ = try fx.background(exec + ["python3", "-c", script])
        // UDP port 5353 of `allowed` echoes each datagram.
        let echo = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("\(allowed)", 5353))
            while True:
                d, peer = s.recvfrom(65536)
                s.sendto(d, peer)
            """
        _ = try fx.background(exec + ["python3", "-c", echo])
        try waitFor(seconds: 10, every: 0.05) {
            let out = (try? TestHost.run(exec + ["ss", "-tlnH", "sport = :80 or sport = :443"])) ?? ""
            return out.split(separator: "\n").count == 4
        }
    }

    /// Bytes each connection to port 443 brought, in order.
    var received: [Int] {
        ((try? String(contentsOfFile: receivedLog, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
    }

    func stop() { resolver.stop() }
}
