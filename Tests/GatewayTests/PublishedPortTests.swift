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

        let sequential = try fx.python("""
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

        let concurrent = try fx.python("""
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

        let result = try fx.python("""
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
            print(answer.decode() == f"{\(mebibytes) << 20} {expected}", n == \(mebibytes) << 20 and h.hexdigest() == expected,
                  f"{t1 - t0:.1f}", f"{t2 - t1:.1f}", answer.decode())
            """, timeout: 300)
        let fields = result.split(separator: " ")
        #expect(fields.count >= 4 && fields[0] == "True", "host → guest: \(result)")
        #expect(fields.count >= 4 && fields[1] == "True", "guest → host: \(result)")
        print("published port bulk transfer, \(mebibytes) MiB: up \(fields.count > 2 ? fields[2] : "?") s, down \(fields.count > 3 ? fields[3] : "?") s")
    }

    static let bulkMebibytes = 1024
}
