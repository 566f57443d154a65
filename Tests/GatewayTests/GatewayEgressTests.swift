// The gateway end to end with real kernel guests: HTTP and iperf3 to servers on the host's
// loopback through the gateway address, UDP, refusals that fail fast, and sandbox isolation.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct GatewayEgressTests {
    @Test func curlReachesHostLoopbackThroughTheGatewayAddress() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let body = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let port = try fx.httpServer(files: ["blob": body, "hello.txt": Data("hello from the host\n".utf8)])
        let (info, ns) = try fx.attach()
        let text = try fx.run(in: ns, "curl -sS --max-time 10 http://\(info.gatewayIPv4):\(port)/hello.txt")
        #expect(text == "hello from the host\n")
        let sum = try fx.run(in: ns, "curl -sS --max-time 20 http://\(info.gatewayIPv4):\(port)/blob | sha256sum | cut -d' ' -f1")
        let expected = try TestHost.run(["sh", "-c", "python3 -c \"import hashlib,sys; print(hashlib.sha256(bytes((i*31)&255 for i in range(3000000))).hexdigest())\""])
        #expect(sum.trimmingCharacters(in: .whitespacesAndNewlines) == expected.trimmingCharacters(in: .whitespacesAndNewlines))
        let stats = try fx.gateway.stats(info.id)
        #expect(stats.bytesFromHost >= UInt64(body.count))
    }

    @Test func refusedUpstreamFailsFastInTheGuest() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let start = Date()
        // Nothing listens on this loopback port: the guest must see "connection refused" at once.
        let out = try fx.run(in: ns, "curl -sS --max-time 5 http://\(info.gatewayIPv4):1/ 2>&1; echo rc=$?")
        #expect(out.contains("rc=7"), "curl should fail to connect: \(out)")
        #expect(Date().timeIntervalSince(start) < 2)
    }

    @Test func aServerOnlyOnIPv6LoopbackIsReachedThroughTheGatewayIPv4Address() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        // 127.0.0.1 refuses inside the gateway's connect(2); the dial to ::1 then connects there too.
        let port = FreePort.next()
        _ = try fx.background(["python3", "-c", """
            import socket
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::1", \(port)))
            s.listen(8)
            while True:
                c, _ = s.accept()
                c.sendall(c.recv(100).upper())
                c.close()
            """])
        try fx.waitForListener(port: port)
        let (info, ns) = try fx.attach()
        for _ in 0..<3 {
            let out = try fx.run(in: ns, "printf 'over v6' | nc -w 3 \(info.gatewayIPv4) \(port)")
            #expect(out == "OVER V6")
        }
        let counters = try fx.gateway.stats(info.id).counters
        #expect(counters["egress_tcp_connected_total"] == 3)
        #expect(counters["egress_tcp_connect_failed_total"] == 0)
    }

    @Test func deniedDestinationIsRefusedAtOnce() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        // A destination that would be safe even if it leaked: an address on a veth this test made.
        let host = try fx.ownHostAddress("d")
        let port = FreePort.next()
        _ = try fx.background(["python3", "-m", "http.server", String(port), "--bind", host])
        let (_, ns) = try fx.attach()  // host-only policy
        let start = Date()
        let out = try fx.run(in: ns, "curl -sS --max-time 5 http://\(host):\(port)/ 2>&1; echo rc=$?")
        #expect(out.contains("rc=7"), "a denied destination must be refused: \(out)")
        #expect(Date().timeIntervalSince(start) < 2)
    }

    @Test func udpEchoThroughTheGateway() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let port = FreePort.next()
        _ = try fx.background(["python3", "-c", """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", \(port)))
            while True:
                d, a = s.recvfrom(65535)
                s.sendto(d.upper(), a)
            """])
        try fx.waitForListener(port: port, udp: true)
        let (info, ns) = try fx.attach()
        let out = try fx.run(in: ns, "printf 'ping over udp' | nc -u -w 2 \(info.gatewayIPv4) \(port)")
        #expect(out == "PING OVER UDP")
    }

    @Test func iperf3BothDirections() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let port = FreePort.next()
        _ = try fx.background(["iperf3", "-s", "-B", "127.0.0.1", "-p", String(port)])
        try fx.waitForListener(port: port)
        let (info, ns) = try fx.attach()
        let up = try fx.run(in: ns, "iperf3 -c \(info.gatewayIPv4) -p \(port) -t 2 -J", timeout: 30)
        #expect(up.contains("\"sum_received\""))
        let down = try fx.run(in: ns, "iperf3 -c \(info.gatewayIPv4) -p \(port) -t 2 -R -J", timeout: 30)
        #expect(down.contains("\"sum_received\""))
    }

    /// An upload goes to the host socket straight from the guest's frames while the socket keeps
    /// up, through the receive ring while it does not (the server starts reading late), and back:
    /// the host receives every byte, in order.
    @Test func anUploadPassesTheRingWhileTheSocketKeepsUpAndKeepsItsOrderWhenItDoesNot() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let dir = try fx.temporaryDirectory("upload")
        let port = GatewayFixture.freePort()
        _ = try fx.background(["python3", "-c", """
            import hashlib, socket, time
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port)))
            s.listen(1)
            c, _ = s.accept()
            time.sleep(1)  # the socket fills meanwhile: the guest's bytes wait in the ring
            h, n = hashlib.sha256(), 0
            while True:
                b = c.recv(1 << 16)
                if not b:
                    break
                h.update(b)
                n += len(b)
            open("\(dir)/got.tmp", "w").write(f"{n} {h.hexdigest()}")
            __import__("os").rename("\(dir)/got.tmp", "\(dir)/got")
            """])
        try fx.waitForListener(port: port)
        let (info, ns) = try fx.attach()
        let size = 24 << 20
        let sent = try fx.run(
            in: ns,
            "head -c \(size) /dev/urandom > \(dir)/up && sha256sum \(dir)/up | cut -d' ' -f1 && nc -N -w 30 \(info.gatewayIPv4) \(port) < \(dir)/up",
            timeout: 90
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(eventually(seconds: 30, every: 0.1) { FileManager.default.fileExists(atPath: dir + "/got") })
        let got = try String(contentsOfFile: dir + "/got", encoding: .utf8)
        #expect(got == "\(size) \(sent)")
        let counters = try fx.gateway.stats(info.id).counters
        let direct = try #require(counters["tcp_bytes_direct_total"])
        #expect(direct > 0, "\(direct) of \(size) bytes went straight to the socket")
        #expect(direct < size, "the late reader left bytes in the ring: \(direct) of \(size) went straight")
    }

    @Test func sandboxesAreIsolatedAndSpreadOverShards() throws {
        let fx = try GatewayFixture(shards: 2)
        defer { fx.tearDown() }
        let port = try fx.httpServer(files: ["x": Data("ok".utf8)])
        let (a, nsA) = try fx.attach()
        let (b, nsB) = try fx.attach()
        #expect(a.shard != b.shard)
        #expect(a.guestIPv4 != b.guestIPv4 && a.gatewayMAC != b.gatewayMAC)
        // Each reaches the host; neither reaches the other.
        #expect(try fx.run(in: nsA, "curl -sS --max-time 5 http://\(a.gatewayIPv4):\(port)/x") == "ok")
        #expect(try fx.run(in: nsB, "curl -sS --max-time 5 http://\(b.gatewayIPv4):\(port)/x") == "ok")
        let cross = try fx.run(in: nsA, "ping -c 1 -W 1 \(b.guestIPv4) >/dev/null 2>&1; echo $?")
        #expect(cross.trimmingCharacters(in: .whitespacesAndNewlines) != "0")
        // Hostile frames from A (garbage, spoofed sources) while B works.
        let flood = """
            python3 -c "
            import socket, os, random
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind(('\(a.tap)', 0))
            r = random.Random(7)
            for i in range(3000):
                n = r.randint(1, 1514)
                s.send(bytes(r.getrandbits(8) for _ in range(n)) if n > 14 else b'x' * 14)
            "
            """
        try fx.run(in: nsA, flood)
        #expect(try fx.run(in: nsB, "curl -sS --max-time 5 http://\(b.gatewayIPv4):\(port)/x") == "ok")
        let sb = try fx.gateway.stats(b.id)
        #expect(sb.drops["malformed", default: 0] == 0 && sb.drops["spoofed", default: 0] == 0)
        let sa = try fx.gateway.stats(a.id)
        #expect(sa.drops["spoofed", default: 0] + sa.drops["malformed", default: 0] + sa.drops["notForUs", default: 0] > 1000)
        #expect(try fx.run(in: nsA, "curl -sS --max-time 5 http://\(a.gatewayIPv4):\(port)/x") == "ok")
    }

    @Test func detachRemovesTheDevice() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        #expect(try fx.run(in: ns, "ip -o link show \(info.tap)").contains(info.tap))
        try fx.gateway.detach(info.id)
        let out = try fx.run(in: ns, "ip -o link show \(info.tap) 2>&1; true")
        #expect(out.contains("does not exist"))
        #expect(throws: GatewayError.self) { try fx.gateway.detach(info.id) }
        #expect(fx.gateway.list().isEmpty)
    }
}

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct GatewayDNSTests {
    /// The guest's resolver is the gateway: the host alias is answered locally, a denied name
    /// gets NXDOMAIN, anything else is forwarded to the (test's own, loopback) upstream.
    @Test func guestResolvesThroughTheGateway() throws {
        let resolver = try FakeResolver(.table(["svc.example.test": [IPv4Address(192, 0, 2, 7)]]))
        defer { resolver.stop() }
        let fx = try GatewayFixture { cfg in
            cfg.dns = DNSConfiguration(upstreams: [(resolver.address, resolver.port)], attemptTimeout: .milliseconds(500))
            cfg.deniedNames = ["blocked.test"]
        }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.resolveThroughGateway(ns, info)

        let alias = try fx.run(in: ns, "getent ahostsv4 host.gateway.internal | head -1")
        #expect(alias.hasPrefix(info.gatewayIPv4 + " "))
        let forwarded = try fx.run(in: ns, "getent ahostsv4 svc.example.test | head -1")
        #expect(forwarded.hasPrefix("192.0.2.7 "))
        let denied = try fx.run(in: ns, "getent ahostsv4 x.blocked.test; echo rc=$?")
        #expect(denied.contains("rc=2"), "denied name must not resolve: \(denied)")
        #expect(!resolver.queries.isEmpty)
        // And the alias is usable: HTTP to the host by name.
        let port = try fx.httpServer(files: ["n": Data("by name".utf8)])
        #expect(try fx.run(in: ns, "curl -sS --max-time 5 http://host.gateway.internal:\(port)/n") == "by name")
    }
}

enum FreePort {
    static func next() -> UInt16 { GatewayFixture.freePort() }
}

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct GatewayEchoAndIdleTests {
    /// Ping beyond the gateway goes out through a host ping socket when policy allows, and is
    /// refused (no reply) under host-only.
    @Test func pingBeyondTheGatewayFollowsPolicy() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        // The target is an address on a veth this test made: safe whatever happens.
        let host = try fx.ownHostAddress("p")
        let (open, nsOpen) = try fx.attach { $0.policy = "open" }
        let out = try fx.run(in: nsOpen, "ping -c 2 -i 0.2 -W 2 \(host)")
        #expect(out.contains("2 received"), "\(out)")
        let (_, nsClosed) = try fx.attach()
        let refused = try fx.run(in: nsClosed, "ping -c 1 -W 1 \(host) >/dev/null 2>&1; echo $?")
        #expect(refused.trimmingCharacters(in: .whitespacesAndNewlines) != "0")
        _ = open
    }

    /// A relayed flow idle past the timeout is reset on both sides: an RST, not a FIN, so
    /// neither end mistakes the cut for the other's orderly end of data.
    @Test func idleTCPFlowIsReset() throws {
        let fx = try GatewayFixture { $0.limits.tcpIdleTimeout = .seconds(1) }
        defer { fx.tearDown() }
        let port = FreePort.next()
        // The server, like the client, waits for data that never comes, and writes how its
        // wait ended: bytes, b'' for a FIN, or the error's name.
        let upstreamEnd = NSTemporaryDirectory() + "gw-idle-\(fx.scratch.tag)"
        defer { try? FileManager.default.removeItem(atPath: upstreamEnd) }
        _ = try fx.background(["python3", "-c", """
            import socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port))); s.listen()
            c, _ = s.accept(); c.settimeout(30)
            try: end = repr(c.recv(10))
            except Exception as e: end = type(e).__name__
            open("\(upstreamEnd)", "w").write(end)
            """])
        try fx.waitForListener(port: port)
        let (info, ns) = try fx.attach()
        let start = Date()
        // The client waits for data that never comes: the gateway resets it after ~1 s idle.
        let out = try fx.run(in: ns, "python3 -c \"import socket; s=socket.create_connection(('\(info.gatewayIPv4)', \(port))); print(repr(s.recv(10)))\" 2>&1; true", timeout: 20)
        #expect(out.contains("ConnectionResetError"), "the guest saw \(out)")
        #expect(Date().timeIntervalSince(start) < 8)
        var upstream = ""
        _ = eventually {
            upstream = (try? String(contentsOfFile: upstreamEnd, encoding: .utf8)) ?? ""
            return !upstream.isEmpty
        }
        #expect(upstream == "ConnectionResetError", "the upstream saw \(upstream)")
    }

    /// Both directions have finished on the host socket but the guest has not acknowledged the
    /// gateway's FIN (its link went down): the shard must not spin on the socket's hang-up,
    /// which epoll reports whatever the interest, for as long as the guest takes.
    @Test func finishedUpstreamDoesNotSpinWhileTheGuestLingers() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let port = FreePort.next()
        _ = try fx.background(["python3", "-c", """
            import socket, time
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port))); s.listen()
            c, _ = s.accept()
            while c.recv(100): pass
            time.sleep(1.5)
            c.sendall(b"bye"); c.close(); time.sleep(60)
            """])
        try fx.waitForListener(port: port)
        let (info, ns) = try fx.attach()
        // The guest sends and half-closes, then stays; its link goes down before the answer.
        _ = try fx.background(["ip", "netns", "exec", ns, "python3", "-c", """
            import socket, time
            s = socket.create_connection(("\(info.gatewayIPv4)", \(port)))
            s.sendall(b"hi"); s.shutdown(socket.SHUT_WR); time.sleep(60)
            """])
        Thread.sleep(forTimeInterval: 0.8)
        try fx.run(in: ns, "ip link set \(info.tap) down")
        // The answer and the upstream's FIN come at ~1.5 s; the gateway's FIN to the guest then
        // waits for an acknowledgement that cannot come.
        Thread.sleep(forTimeInterval: 1.5)
        let before = fx.gateway.shardActivity().map(\.wakeups).reduce(0, +)
        Thread.sleep(forTimeInterval: 1)
        let after = fx.gateway.shardActivity().map(\.wakeups).reduce(0, +)
        #expect(after - before < 200, "the shards handled I/O \(after - before) times in a quiet second")
        #expect(try fx.gateway.stats(info.id).tcpFlowsActive == 1, "the flow waits for the guest")
    }
}

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct GatewayICMPErrorTests {
    /// UDP to a closed host port: the guest gets "port unreachable" (its socket sees ECONNREFUSED)
    /// instead of waiting; traceroute's first hop is the gateway (TTL 1 → time exceeded).
    @Test func unreachableAndTimeExceededReachTheGuest() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let port = FreePort.next()
        let out = try fx.run(in: ns, """
            python3 -c "
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
            s.connect(('\(info.gatewayIPv4)', \(port)))
            s.send(b'x')
            try:
                s.recv(10); print('answer')
            except ConnectionRefusedError: print('refused')
            except socket.timeout: print('timeout')
            "
            """)
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "refused")
        // TTL 1 toward an address beyond the gateway (the test's own veth address): the gateway
        // answers with time exceeded; the echo never leaves the stack.
        let beyond = try fx.ownHostAddress("t")
        let ping = try fx.run(in: ns, "ping -c 1 -t 1 -W 2 \(beyond) 2>&1; true")
        #expect(ping.contains("Time to live exceeded") && ping.contains(info.gatewayIPv4), "\(ping)")
    }
}
