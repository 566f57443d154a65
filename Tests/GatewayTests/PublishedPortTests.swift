// Published ports end to end with real kernel guests: host clients on loopback reach servers in
// the guest namespace through the gateway (HTTP, bulk transfers both ways, UDP peers), refusals
// reach the client as resets, and the allocator's conflicts, exhaustion and releases hold.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct PublishedPortTests {
    static let helloServer = """
        import http.server, os, sys
        os.chdir(sys.argv[1])
        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args): pass
        Server(("0.0.0.0", 8000), Quiet).serve_forever()
        """

    /// A guest serving `hello.txt` over HTTP on port 8000; returns the sandbox and its namespace.
    static func helloGuest(_ fx: PublishedPortFixture) throws -> (SandboxInfo, String) {
        let (info, ns) = try fx.attach()
        let dir = NSTemporaryDirectory() + "gw-pp-\(fx.scratch.tag)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("hello from the guest\n".utf8).write(to: URL(fileURLWithPath: dir + "/hello.txt"))
        _ = try fx.background(["ip", "netns", "exec", ns, "python3", "-c", helloServer, dir])
        try fx.waitForListener(port: 8000, in: ns)
        return (info, ns)
    }

    @Test func httpSequentialAndConcurrentThroughAPublishedPort() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, _) = try Self.helloGuest(fx)
        let published = try fx.gateway.publish(sandboxID: info.id, spec: "8000")
        #expect(published.hostIP == "127.0.0.1" && published.warning == nil)
        let port = published.hostPort

        let sequential = try fx.python(
            """
            import http.client
            ok = 0
            for i in range(1000):
                c = http.client.HTTPConnection("127.0.0.1", \(port), timeout=10)
                c.request("GET", "/hello.txt")
                r = c.getresponse()
                if r.status == 200 and r.read() == b"hello from the guest\\n":
                    ok += 1
                c.close()
            print(ok)
            """)
        #expect(sequential == "1000")

        let concurrent = try fx.python(
            """
            import http.client, sys, threading
            N = 200
            ok = []
            barrier = threading.Barrier(N)
            def run():
                try:
                    c = http.client.HTTPConnection("127.0.0.1", \(port), timeout=30)
                    c.connect()
                    barrier.wait(timeout=30)
                    c.request("GET", "/hello.txt")
                    r = c.getresponse()
                    if r.status == 200 and r.read() == b"hello from the guest\\n":
                        ok.append(1)
                    c.close()
                except Exception as e:
                    print(repr(e), file=sys.stderr)
            threads = [threading.Thread(target=run) for _ in range(N)]
            for t in threads: t.start()
            for t in threads: t.join()
            print(len(ok))
            """)
        #expect(concurrent == "200")

        // The same guest port over IPv6 loopback.
        let v6 = try fx.gateway.publish(sandboxID: info.id, spec: "[::1]::8000")
        let body = try fx.host("curl -sS -g --max-time 10 http://[::1]:\(v6.hostPort)/hello.txt")
        #expect(body == "hello from the guest\n")

        let counters = try fx.gateway.ingressCounters(sandboxID: info.id)
        #expect(counters.tcpAccepted == 1201)
        #expect(counters.tcpDenied + counters.tcpOverLimit + counters.tcpGuestRefused + counters.tcpGuestTimedOut == 0)
        // Every client is gone, and so are its relays.
        try waitFor(seconds: 10) { (try? fx.gateway.ingressCounters(sandboxID: info.id).tcpActive) == 0 }
    }

    /// Guest servers: 9000 hashes what it receives until EOF and answers "<bytes> <sha256>";
    /// 9001 sends `count` MiB of a seeded pattern and closes.
    static func bulkServer(count: Int) -> String {
        """
        import hashlib, random, socket, threading
        block = random.Random(7).randbytes(1 << 20)
        def listener(port):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            s.listen(16)
            return s
        def sink():
            s = listener(9000)
            while True:
                c, _ = s.accept()
                h, n = hashlib.sha256(), 0
                while True:
                    d = c.recv(1 << 20)
                    if not d: break
                    h.update(d)
                    n += len(d)
                c.sendall(f"{n} {h.hexdigest()}".encode())
                c.close()
        def source():
            s = listener(9001)
            while True:
                c, _ = s.accept()
                for _ in range(\(count)):
                    c.sendall(block)
                c.close()
        threading.Thread(target=sink, daemon=True).start()
        source()
        """
    }

    @Test func bulkTransferEachWayKeepsEveryByte() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let mebibytes = Self.bulkMebibytes
        let (info, ns) = try fx.attach()
        try fx.guestServer(in: ns, Self.bulkServer(count: mebibytes))
        try fx.waitForListener(port: 9000, in: ns)
        try fx.waitForListener(port: 9001, in: ns)
        let up = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::9000").hostPort
        let down = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::9001").hostPort

        let result = try fx.python(
            """
            import hashlib, random, socket, time
            block = random.Random(7).randbytes(1 << 20)
            h = hashlib.sha256()
            for _ in range(\(mebibytes)): h.update(block)
            expected = h.hexdigest()
            t0 = time.time()
            c = socket.create_connection(("127.0.0.1", \(up)))
            for _ in range(\(mebibytes)): c.sendall(block)
            c.shutdown(socket.SHUT_WR)
            answer = b""
            while True:
                d = c.recv(4096)
                if not d: break
                answer += d
            t1 = time.time()
            c = socket.create_connection(("127.0.0.1", \(down)))
            h, n = hashlib.sha256(), 0
            while True:
                d = c.recv(1 << 20)
                if not d: break
                h.update(d)
                n += len(d)
            t2 = time.time()
            up_ok = answer.decode() == f"{\(mebibytes) << 20} {expected}"
            down_ok = n == \(mebibytes) << 20 and h.hexdigest() == expected
            print(up_ok, down_ok, f"{t1 - t0:.1f}", f"{t2 - t1:.1f}", answer.decode())
            """, timeout: 300)
        let fields = result.split(separator: " ")
        #expect(fields.count >= 4 && fields[0] == "True", "host → guest: \(result)")
        #expect(fields.count >= 4 && fields[1] == "True", "guest → host: \(result)")
        let upSeconds = fields.count > 2 ? fields[2] : "?", downSeconds = fields.count > 3 ? fields[3] : "?"
        print("published port, \(mebibytes) MiB each way: host → guest \(upSeconds) s, guest → host \(downSeconds) s")
        // The guest's stream went to the client's socket as it arrived while the client kept up.
        let direct = try fx.gateway.stats(info.id).counters["tcp_bytes_direct_total"] ?? 0
        // (The guest's answer on the upload port, 75 bytes, goes the same way.)
        #expect(direct > (mebibytes << 20) / 4 && direct <= (mebibytes << 20) + 128, "\(direct) bytes straight to the client's socket")
    }

    static let bulkMebibytes = 1024

    /// The guest sends and closes while the client, having half-closed at once, has not read
    /// yet: the guest's connection ends with bytes still queued, which must all arrive.
    @Test func guestBytesQueuedAtCloseStillReachASlowClient() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.guestServer(in: ns, Self.bulkServer(count: 4))
        try fx.waitForListener(port: 9001, in: ns)
        let down = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::9001").hostPort
        let result = try fx.python(
            """
            import hashlib, random, socket, time
            block = random.Random(7).randbytes(1 << 20)
            c = socket.create_connection(("127.0.0.1", \(down)))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.shutdown(socket.SHUT_WR)
            time.sleep(1.5)
            h, n = hashlib.sha256(), 0
            while True:
                d = c.recv(65536)
                if not d: break
                h.update(d)
                n += len(d)
            print(n == 4 << 20 and h.hexdigest() == hashlib.sha256(block * 4).hexdigest(), n)
            """)
        #expect(result == "True \(4 << 20)")
        try waitFor(seconds: 5) { (try? fx.gateway.ingressCounters(sandboxID: info.id).tcpActive) == 0 }
    }

    // MARK: - Resets

    /// Connects, reads, and reports "reset <seconds>", "data <text>", "eof" or "timeout".
    static func probe(_ port: Int, host: String = "127.0.0.1", timeout: Int = 10) -> String {
        """
        import socket, time
        t0 = time.time()
        try:
            # The reset may come before connect(2) even returns.
            c = socket.create_connection(("\(host)", \(port)), timeout=\(timeout))
            d = c.recv(100)
            print(f"data {d.decode()}" if d else "eof")
        except ConnectionResetError:
            print(f"reset {time.time() - t0:.2f}")
        except socket.timeout:
            print("timeout")
        """
    }

    @Test func deniedClientIsReset() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, _) = try Self.helloGuest(fx)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::8000").hostPort
        let seen = Seen()
        try fx.gateway.setIngressPolicy(sandboxID: info.id) { peer, guestPort, proto in
            seen.add("\(peer.address) \(guestPort) \(proto)")
            return false
        }
        let out = try fx.python(Self.probe(port))
        #expect(out.hasPrefix("reset"), "a denied client must see ECONNRESET: \(out)")
        #expect(seen.all == ["127.0.0.1 8000 tcp"])
        #expect(try fx.gateway.ingressCounters(sandboxID: info.id).tcpDenied == 1)

        try fx.gateway.setIngressPolicy(sandboxID: info.id) { _, _, _ in true }
        #expect(try fx.host("curl -sS --max-time 10 http://127.0.0.1:\(port)/hello.txt") == "hello from the guest\n")
    }

    @Test func clientsBeyondTheSandboxLimitAreReset() throws {
        let fx = try PublishedPortFixture { $0.publishing.limits.maxInboundConnections = 2 }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        // Greets each client and keeps its connection open.
        try fx.guestServer(
            in: ns,
            """
            import socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 7000))
            s.listen(16)
            held = []
            while True:
                c, _ = s.accept()
                c.sendall(b"hi")
                held.append(c)
            """)
        try fx.waitForListener(port: 7000, in: ns)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::7000").hostPort
        let out = try fx.python(
            """
            import socket, struct, time
            def open_one():
                c = None
                try:
                    c = socket.create_connection(("127.0.0.1", \(port)), timeout=5)
                    return c, c.recv(2).decode()
                except ConnectionResetError:
                    return c, "reset"
            a, ra = open_one()
            b, rb = open_one()
            c, rc = open_one()
            # A client that leaves frees its place.
            a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            a.close()
            time.sleep(0.5)
            d, rd = open_one()
            print(ra, rb, rc, rd)
            """)
        #expect(out == "hi hi reset hi")
        #expect(try fx.gateway.ingressCounters(sandboxID: info.id).tcpOverLimit == 1)
    }

    @Test func closedGuestPortResetsTheClientWithinASecond() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, _) = try fx.attach()
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::4321").hostPort
        let out = try fx.python(Self.probe(port))
        let seconds = Double(out.split(separator: " ").last ?? "") ?? 99
        #expect(out.hasPrefix("reset") && seconds < 1, "\(out)")
        #expect(try fx.gateway.ingressCounters(sandboxID: info.id).tcpGuestRefused == 1)
    }

    @Test func silentGuestResetsTheClientAfterTheTimeout() throws {
        let fx = try PublishedPortFixture { $0.publishing.limits.guestConnectTimeout = .seconds(1) }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        // The guest's link goes down: the SYN is never answered.
        try TestHost.run(["ip", "netns", "exec", ns, "ip", "link", "set", info.tap, "down"])
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::80").hostPort
        let out = try fx.python(Self.probe(port))
        let seconds = Double(out.split(separator: " ").last ?? "") ?? 99
        #expect(out.hasPrefix("reset") && seconds >= 0.8 && seconds < 2.5, "\(out)")
        #expect(try fx.gateway.ingressCounters(sandboxID: info.id).tcpGuestTimedOut == 1)
    }

    // MARK: - UDP

    /// Echoes each datagram; "late" is answered only after 4 s.
    static let udpEcho = """
        import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 7000))
        while True:
            d, a = s.recvfrom(65535)
            if d == b"late": time.sleep(4)
            s.sendto(b"echo " + d, a)
        """

    /// Peers on host loopback each send `rounds` datagrams, interleaved; prints, per peer, the
    /// replies it got ("-" for one that did not come).
    static func udpPeers(_ count: Int, port: Int, rounds: Int = 5, host: String = "127.0.0.1", wait: Double = 2)
        -> String
    {
        """
        import socket
        family = socket.AF_INET6 if ":" in "\(host)" else socket.AF_INET
        peers = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(\(count))]
        for p in peers: p.settimeout(\(wait))
        got = [[] for _ in peers]
        for r in range(\(rounds)):
            for i, p in enumerate(peers): p.sendto(f"p{i}-{r}".encode(), ("\(host)", \(port)))
            for i, p in enumerate(peers):
                try: got[i].append(p.recv(100).decode())
                except socket.timeout: got[i].append("-")
        print(";".join(",".join(g) for g in got))
        """
    }

    @Test func udpPeersEachGetTheirOwnReplies() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.guestServer(in: ns, Self.udpEcho)
        try fx.waitForListener(port: 7000, in: ns, udp: true)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "7000/udp").hostPort
        let out = try fx.python(Self.udpPeers(3, port: port))
        let expected = (0..<3).map { i in (0..<5).map { "echo p\(i)-\($0)" }.joined(separator: ",") }.joined(
            separator: ";")
        #expect(out == expected)
        let c = try fx.gateway.ingressCounters(sandboxID: info.id)
        #expect(c.udpPeers == 3 && c.udpDatagramsIn == 15 && c.udpDatagramsOut == 15)

        let v6 = try fx.gateway.publish(sandboxID: info.id, spec: "[::1]::7000/udp").hostPort
        #expect(try fx.python(Self.udpPeers(1, port: v6, rounds: 2, host: "::1")) == "echo p0-0,echo p0-1")
    }

    @Test func udpPeersBeyondTheGatewayPortsAreDroppedUntilOneExpires() throws {
        let fx = try PublishedPortFixture {
            $0.publishing.limits.gatewayPorts = 61000...61001
            $0.publishing.limits.udpIdleTimeout = .seconds(3)
        }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.guestServer(in: ns, Self.udpEcho)
        try fx.waitForListener(port: 7000, in: ns, udp: true)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "7000/udp").hostPort
        // Two peers fit; the third is dropped (and counted) while the first two keep working.
        let out = try fx.python(Self.udpPeers(3, port: port, rounds: 2, wait: 0.5))
        #expect(out == "echo p0-0,echo p0-1;echo p1-0,echo p1-1;-,-")
        let c = try fx.gateway.ingressCounters(sandboxID: info.id)
        #expect(c.udpPeers == 2 && c.udpPeerLimitDrops == 2)
        // Idle peers give their ports back; a new peer then gets through.
        Thread.sleep(forTimeInterval: 3.5)
        #expect(try fx.python(Self.udpPeers(1, port: port, rounds: 1)) == "echo p0-0")
        // A reply that comes after its peer expired goes nowhere (not to the host's loopback).
        _ = try fx.python(
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"late", ("127.0.0.1", \(port)))
            """)
        try waitFor(seconds: 10) { (try? fx.gateway.ingressCounters(sandboxID: info.id).udpLateReplies) == 1 }
        #expect(try fx.gateway.stats(info.id).udpSessions == 0, "no egress session was opened for it")
    }

    // MARK: - The source address the guest sees

    @Test func preserveSourceShowsTheClientAddressInTheGuest() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.guestServer(
            in: ns,
            """
            import socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 8000))
            s.listen(16)
            while True:
                c, a = s.accept()
                c.sendall(f"{a[0]}:{a[1]}".encode())
                c.close()
            """)
        try fx.waitForListener(port: 8000, in: ns)
        // A host address of a device this test made: a loopback client cannot be shown to the
        // guest (its kernel drops 127/8 sources from a device), so the client comes from here.
        let address = "10.\(UInt8.random(in: 201...250)).\(UInt8.random(in: 0...255)).1"
        let veth = fx.scratch.deviceName("e", "p")
        try TestHost.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "q"])
        try TestHost.run(["ip", "addr", "add", address + "/32", "dev", veth])
        try TestHost.run(["ip", "link", "set", veth, "up"])

        var spec = try PublishSpec(parsing: "\(address)::8000")
        spec.preserveSource = true
        let preserved = try fx.gateway.publish(sandboxID: info.id, spec: spec)
        #expect(preserved.preserveSource && preserved.warning?.contains(address) == true)
        let plain = try fx.gateway.publish(sandboxID: info.id, spec: "\(address)::8000")
        let client = """
            import socket, sys
            c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
            print(f"{c.getsockname()[0]}:{c.getsockname()[1]}", c.recv(100).decode())
            """
        /// [the client's own endpoint, the endpoint the guest saw].
        func ask(_ host: String, _ port: Int) throws -> [Substring] {
            try TestHost.run(["python3", "-c", client, host, String(port)]).trimmingCharacters(
                in: .whitespacesAndNewlines
            ).split(separator: " ")
        }
        let seen = try ask(address, preserved.hostPort)
        #expect(seen.count == 2 && seen[0] == seen[1], "the guest must see the client's address and port: \(seen)")
        let viaGateway = try ask(address, plain.hostPort)
        #expect(viaGateway.count == 2 && viaGateway[1].hasPrefix(info.gatewayIPv4 + ":"))

        // From loopback the guest sees the gateway even when sources are preserved.
        spec = try PublishSpec(parsing: "127.0.0.1::8000")
        spec.preserveSource = true
        let loopback = try fx.gateway.publish(sandboxID: info.id, spec: spec)
        let fromLoopback = try ask("127.0.0.1", loopback.hostPort)
        #expect(fromLoopback.count == 2 && fromLoopback[1].hasPrefix(info.gatewayIPv4 + ":"))
    }

    // MARK: - Allocation

    @Test func automaticPortsSkipBusyOnesUntilTheRangeIsExhausted() throws {
        let base = UInt16.random(in: 10000...19000)
        let fx = try PublishedPortFixture { $0.publishing.autoPorts = AutoPortRange(ports: base...base + 3) }
        defer { fx.tearDown() }
        let (info, _) = try fx.attach()
        // Another process holds the second port of the range.
        _ = try fx.background([
            "python3", "-c",
            "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', \(base + 1))); s.listen(); time.sleep(600)",
        ])
        try fx.waitForListener(port: base + 1)
        let ports = try (0..<3).map { _ in try fx.gateway.publish(sandboxID: info.id, spec: "80").hostPort }
        #expect(ports == [Int(base), Int(base) + 2, Int(base) + 3])
        let error = #expect(throws: GatewayError.self) { try fx.gateway.publish(sandboxID: info.id, spec: "80") }
        #expect(error?.code == .exhausted)
        #expect(error?.message.contains("\(base)-\(base + 3)") == true, "\(error?.message ?? "")")
        // UDP ports are counted apart from TCP ones.
        #expect(try fx.gateway.publish(sandboxID: info.id, spec: "80/udp").hostPort == Int(base))
        #expect(fx.gateway.routes().filter { $0.sandbox == info.id }.count == 4)
    }

    @Test func specsWithoutAHostAddressBindTheConfiguredDefault() throws {
        let fx = try PublishedPortFixture { $0.publishing.defaultHostIP = .v6(.loopback) }
        defer { fx.tearDown() }
        let (info, _) = try fx.attach()
        let route = try fx.gateway.publish(sandboxID: info.id, spec: "80")
        #expect(route.hostIP == "::1")
        #expect(try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::81").hostIP == "127.0.0.1")
        // The port really is held on ::1: binding it there again fails.
        let rebind = try fx.python(
            "import socket\ns = socket.socket(socket.AF_INET6)\ntry:\n s.bind(('::1', \(route.hostPort))); print('free')\n"
                + "except OSError as e:\n print(e.errno)")
        #expect(rebind == "\(EADDRINUSE)")
    }

    @Test func conflictsNameWhoHoldsThePort() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (a, _) = try fx.attach()
        let (b, _) = try fx.attach()
        let port = PublishedPortFixture.freePort()
        _ = try fx.gateway.publish(sandboxID: a.id, spec: "127.0.0.1:\(port):80")
        let clash = #expect(throws: GatewayError.self) {
            try fx.gateway.publish(sandboxID: b.id, spec: "127.0.0.1:\(port):80")
        }
        #expect(clash?.code == .portInUse)
        #expect(clash?.message.contains("sandbox '\(a.id)'") == true, "\(clash?.message ?? "")")
        #expect(clash?.message.contains("127.0.0.1:\(port)/tcp") == true)
        // The other family, and the other protocol, are free.
        _ = try fx.gateway.publish(sandboxID: b.id, spec: "[::1]:\(port):80")
        _ = try fx.gateway.publish(sandboxID: b.id, spec: "127.0.0.1:\(port):80/udp")

        let taken = PublishedPortFixture.freePort()
        _ = try fx.background([
            "python3", "-c",
            "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', \(taken))); s.listen(); time.sleep(600)",
        ])
        try fx.waitForListener(port: taken)
        let other = #expect(throws: GatewayError.self) { try fx.gateway.publish(sandboxID: b.id, spec: "\(taken):80") }
        #expect(other?.code == .portInUse)
        #expect(other?.message.contains("another process on this host") == true, "\(other?.message ?? "")")

        let unknown = #expect(throws: GatewayError.self) {
            try fx.gateway.publish(sandboxID: "no-such-sandbox", spec: "80")
        }
        #expect(unknown?.code == .unknownSandbox)
        let bad = #expect(throws: GatewayError.self) { try fx.gateway.publish(sandboxID: a.id, spec: "80:http") }
        #expect(bad?.code == .invalidArgument)
    }

    /// True when a server can listen on 127.0.0.1:port right now (with SO_REUSEADDR, as servers
    /// do: the port's earlier connections may linger in TIME-WAIT).
    static func canBind(_ port: Int) -> Bool {
        let code = """
            import socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port)))
            s.listen()
            """
        return (try? TestHost.run(["python3", "-c", code])) != nil
    }

    @Test func unpublishAndDetachFreeThePorts() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, _) = try Self.helloGuest(fx)
        let http = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::8000").hostPort
        let udp = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::8000/udp").hostPort
        let spare = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::9999").hostPort
        #expect(!Self.canBind(http))
        #expect(
            fx.gateway.routes().contains(
                Route(hostIP: "127.0.0.1", hostPort: http, protocol: "tcp", sandbox: info.id, guestPort: 8000)))

        // A client in the middle of a connection is reset when its port goes.
        let client = try fx.background([
            "python3", "-c",
            """
            import socket, time
            c = socket.create_connection(("127.0.0.1", \(http)))
            time.sleep(600)
            """,
        ])
        try waitFor(seconds: 5) { (try? fx.gateway.ingressCounters(sandboxID: info.id).tcpActive) == 1 }
        try fx.gateway.unpublish(sandboxID: info.id, spec: "127.0.0.1:\(http):8000")
        #expect(Self.canBind(http))
        #expect(try fx.gateway.ingressCounters(sandboxID: info.id).tcpActive == 0)
        #expect(!fx.gateway.routes().contains { $0.hostPort == http && $0.protocol == "tcp" })
        let gone = try fx.host("curl -sS --max-time 5 http://127.0.0.1:\(http)/ 2>&1; echo rc=$?")
        #expect(gone.contains("rc=7"))
        _ = client
        let missing = #expect(throws: GatewayError.self) { try fx.gateway.unpublish(sandboxID: info.id, spec: "8000") }
        #expect(missing?.code == .invalidArgument)

        // The same host port can be published again at once.
        _ = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1:\(http):8000")
        #expect(try fx.host("curl -sS --max-time 10 http://127.0.0.1:\(http)/hello.txt") == "hello from the guest\n")

        try fx.gateway.detach(info.id)
        #expect(fx.gateway.routes().isEmpty)
        #expect(Self.canBind(http) && Self.canBind(spare))
        #expect(
            (try? TestHost.run([
                "python3", "-c",
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', \(udp)))",
            ])) != nil)
    }
}

/// What a hook saw, from the shard's thread.
final class Seen: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}
