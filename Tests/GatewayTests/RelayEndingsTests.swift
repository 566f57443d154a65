// How relayed flows end and fill, end to end with kernel guests: clients that half-close after
// their request (both relays), a guest FIN passed on, slow readers at either end, and UDP
// datagrams larger than the link's MTU through a published port and through the gateway.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

/// Request/answer servers and clients shared by the published-port and egress tests.
enum HalfClose {
    /// A UDP client that sends datagrams of 1,400 to 60,000 bytes (fragments at MTU 1500) to
    /// `host`:`port`, each expecting "echo " and the datagram back; prints True or timeout for each.
    static func largeDatagrams(to host: String, port: Int) -> String {
        """
        import random, socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        results = []
        for size in (1400, 1473, 4000, 9000, 30000, 60000):
            payload = random.Random(size).randbytes(size)
            s.sendto(payload, ("\(host)", \(port)))
            try:
                results.append(str(s.recv(65535) == b"echo " + payload))
            except socket.timeout:
                results.append("timeout")
        print(" ".join(results))
        """
    }

    /// Python lines that import `socket` and leave `s` listening on `host`:`port` (address reuse
    /// on, so a test may bind again at once), for the servers these tests run.
    static func listener(host: String = "0.0.0.0", port: UInt16, backlog: Int) -> String {
        """
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("\(host)", \(port)))
        s.listen(\(backlog))
        """
    }

    /// A server on `host`:`port` that, per connection, reads up to the blank line ending the
    /// request, waits `delay` seconds, sends `size` bytes of a seeded pattern and closes.
    static func server(host: String, port: UInt16, size: Int, delay: Double) -> String {
        """
        import random, threading, time
        \(listener(host: host, port: port, backlog: 64))
        answer = random.Random(11).randbytes(\(size))
        def serve(c):
            got = b""
            while b"\\r\\n\\r\\n" not in got:
                d = c.recv(4096)
                if not d: break
                got += d
            time.sleep(\(delay))
            c.sendall(answer)
            c.close()
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
        """
    }

    /// `rounds` clients in turn: each sends a request, shuts its write side at once and reads
    /// to EOF. Prints "<complete answers>/<rounds>" and the first failure, if any.
    static func client(host: String, port: Int, size: Int, rounds: Int) -> String {
        """
        import random, socket
        answer = random.Random(11).randbytes(\(size))
        ok, first = 0, ""
        for i in range(\(rounds)):
            try:
                c = socket.create_connection(("\(host)", \(port)), timeout=10)
                c.sendall(b"GET /%d HTTP/1.0\\r\\n\\r\\n" % i)
                c.shutdown(socket.SHUT_WR)
                got = bytearray()
                while True:
                    d = c.recv(65536)
                    if not d: break
                    got += d
                c.close()
                if bytes(got) == answer: ok += 1
                elif not first: first = f"round {i}: {len(got)} of {len(answer)} bytes"
            except Exception as e:
                if not first: first = f"round {i}: {e!r}"
        print(f"{ok}/\(rounds)", first)
        """
    }
}

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct PublishedPortEndingsTests {
    /// A client that shuts its write side right after its request (`nc -N`, some HTTP clients)
    /// still gets the whole answer and then EOF: small and large answers, sent at once or after
    /// the client's FIN has reached the guest.
    @Test(arguments: [(64, 0.0), (64, 0.3), (3 << 20, 0.0), (3 << 20, 0.3)])
    func clientThatHalfClosesAfterItsRequestGetsTheAnswer(size: Int, delay: Double) throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.guestServer(in: ns, HalfClose.server(host: "0.0.0.0", port: 7100, size: size, delay: delay))
        try fx.waitForListener(port: 7100, in: ns)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::7100").hostPort
        let out = try fx.python(HalfClose.client(host: "127.0.0.1", port: port, size: size, rounds: 20))
        #expect(out.hasPrefix("20/20"), "\(out)")
        try waitFor(seconds: 5) { (try? fx.gateway.ingressCounters(sandboxID: info.id).tcpActive) == 0 }
    }

    /// The same with `nc -N`, which shuts its write side at the end of its input.
    @Test func ncWithShutdownOnEOFGetsTheAnswer() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.guestServer(
            in: ns,
            """
            \(HalfClose.listener(port: 7101, backlog: 8))
            while True:
                c, _ = s.accept()
                got = b""
                while b"\\n" not in got:
                    d = c.recv(100)
                    if not d: break
                    got += d
                c.sendall(b"answer to " + got)
                c.close()
            """)
        try fx.waitForListener(port: 7101, in: ns)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::7101").hostPort
        let out = try fx.host("printf 'question\\n' | nc -N -w 5 127.0.0.1 \(port)")
        #expect(out == "answer to question\n")
    }

    /// The guest answers and shuts its write side but keeps reading (microsandbox #1181 passed
    /// no guest FIN on): the client sees the answer then EOF while the guest still listens,
    /// what it sends then still reaches the guest, and the connection is gone afterwards.
    @Test func guestFINReachesTheClientWhileItsReadSideStaysOpen() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let received = NSTemporaryDirectory() + "gw-fin-\(fx.scratch.tag)"
        defer { try? FileManager.default.removeItem(atPath: received) }
        try fx.guestServer(
            in: ns,
            """
            \(HalfClose.listener(port: 7102, backlog: 8))
            c, _ = s.accept()
            c.sendall(b"greeting")
            c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = c.recv(4096)
                if not d: break
                got += d
            open("\(received)", "wb").write(got)
            c.close()
            """)
        try fx.waitForListener(port: 7102, in: ns)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::7102").hostPort
        let out = try fx.python(
            """
            import socket, time
            c = socket.create_connection(("127.0.0.1", \(port)), timeout=5)
            got = b""
            try:
                while True:
                    d = c.recv(100)
                    if not d: break
                    got += d
                state = "eof"
            except socket.timeout:
                state = "no-eof"
            # Sent after the guest's FIN: the guest is still reading.
            c.sendall(b"late words")
            time.sleep(0.3)
            c.close()
            print(got.decode(), state)
            """)
        #expect(out == "greeting eof")
        try waitFor(seconds: 5) { (try? String(contentsOfFile: received, encoding: .utf8)) == "late words" }
        #expect((try? String(contentsOfFile: received, encoding: .utf8)) == "late words")
        try waitFor(seconds: 5) { (try? fx.gateway.ingressCounters(sandboxID: info.id).tcpActive) == 0 }
        #expect(try fx.gateway.ingressCounters(sandboxID: info.id).tcpActive == 0)
    }

    /// The guest sends and closes first; the client half-closes only later, so the guest
    /// acknowledges the gateway's FIN and the stack's connection ends (LAST-ACK, then closed)
    /// while bytes are still unread, past what the kernel's socket buffers hold: they must all
    /// arrive, then a clean EOF, not a reset. (Sizes around those buffers, so that some of
    /// the answer is still in the stack when its connection ends.)
    @Test(arguments: [4_000_000, 4_500_000, 5_000_000, 5_500_000])
    func guestBytesUnreadWhenTheGuestAcknowledgesTheLastFINStillArrive(size: Int) throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.guestServer(
            in: ns,
            """
            \(HalfClose.listener(port: 9001, backlog: 4))
            while True:
                c, _ = s.accept()
                c.sendall(bytes(range(256)) * (\(size) // 256))
                c.close()
            """)
        try fx.waitForListener(port: 9001, in: ns)
        let down = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::9001").hostPort
        let result = try fx.python(
            """
            import socket, time
            c = socket.create_connection(("127.0.0.1", \(down)))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            time.sleep(1)
            c.shutdown(socket.SHUT_WR)
            time.sleep(1)
            got = bytearray()
            try:
                while True:
                    d = c.recv(65536)
                    if not d: break
                    got += d
                end = "eof"
            except ConnectionResetError:
                end = "reset"
            print(bytes(got) == bytes(range(256)) * (\(size) // 256), len(got), end)
            """)
        #expect(result == "True \(size / 256 * 256) eof")
        try waitFor(seconds: 5) { (try? fx.gateway.ingressCounters(sandboxID: info.id).tcpActive) == 0 }
    }

    /// The guest answers and shuts its write side before it has read the client's upload, then
    /// reads slowly; the client sends, shuts its write side and reads the answer to EOF: the
    /// whole upload must still reach the guest.
    @Test(arguments: [4_000_000, 5_000_000])
    func clientUploadStillReachesAGuestThatAnsweredFirst(size: Int) throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let received = NSTemporaryDirectory() + "gw-upload-\(fx.scratch.tag)"
        defer { try? FileManager.default.removeItem(atPath: received) }
        try fx.guestServer(
            in: ns,
            """
            import socket, time
            \(HalfClose.listener(port: 7103, backlog: 4))
            c, _ = s.accept()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.sendall(b"ok")
            c.shutdown(socket.SHUT_WR)
            time.sleep(2)
            n = 0
            while True:
                d = c.recv(65536)
                if not d: break
                n += len(d)
            open("\(received)", "w").write(str(n))
            time.sleep(30)
            """)
        try fx.waitForListener(port: 7103, in: ns)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::7103").hostPort
        let out = try fx.python(
            """
            import socket
            c = socket.create_connection(("127.0.0.1", \(port)), timeout=20)
            c.sendall(b"u" * \(size))
            c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = c.recv(100)
                if not d: break
                got += d
            print(got.decode())
            """)
        #expect(out == "ok")
        try waitFor(seconds: 20) { FileManager.default.fileExists(atPath: received) }
        Thread.sleep(forTimeInterval: 0.2)
        #expect((try? String(contentsOfFile: received, encoding: .utf8)) == String(size))
    }

    /// Readers slower than the senders at both ends (microsandbox #1307 dropped the bytes that
    /// did not fit when its relay channel filled): every byte arrives, in order, both ways.
    @Test func slowReadersAtEitherEndLoseNoBytes() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let mebibytes = 8
        // 9200 drains slowly what the client sends and answers its size and hash; 9201 sends
        // `mebibytes` MiB as fast as it can.
        try fx.guestServer(
            in: ns,
            """
            import hashlib, random, socket, threading, time
            block = random.Random(5).randbytes(1 << 20)
            def listener(port):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
                s.listen(4)
                return s
            def slow_sink():
                s = listener(9200)
                c, _ = s.accept()
                time.sleep(1)
                h, n = hashlib.sha256(), 0
                while True:
                    d = c.recv(8192)
                    if not d: break
                    h.update(d)
                    n += len(d)
                    if n % (1 << 20) < 8192: time.sleep(0.05)
                c.sendall(f"{n} {h.hexdigest()}".encode())
                c.close()
            def source():
                s = listener(9201)
                c, _ = s.accept()
                for _ in range(\(mebibytes)): c.sendall(block)
                c.close()
            threading.Thread(target=slow_sink, daemon=True).start()
            source()
            """)
        try fx.waitForListener(port: 9200, in: ns)
        try fx.waitForListener(port: 9201, in: ns)
        let up = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::9200").hostPort
        let down = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::9201").hostPort
        let out = try fx.python(
            """
            import hashlib, random, socket, time
            block = random.Random(5).randbytes(1 << 20)
            expected = hashlib.sha256(block * \(mebibytes)).hexdigest()
            c = socket.create_connection(("127.0.0.1", \(up)), timeout=60)
            for _ in range(\(mebibytes)): c.sendall(block)
            c.shutdown(socket.SHUT_WR)
            answer = b""
            while True:
                d = c.recv(4096)
                if not d: break
                answer += d
            up_ok = answer.decode() == f"{\(mebibytes) << 20} {expected}"
            c = socket.create_connection(("127.0.0.1", \(down)), timeout=60)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
            time.sleep(1)
            h, n = hashlib.sha256(), 0
            while True:
                d = c.recv(8192)
                if not d: break
                h.update(d)
                n += len(d)
                if n % (1 << 20) < 8192: time.sleep(0.05)
            down_ok = n == \(mebibytes) << 20 and h.hexdigest() == expected
            print(up_ok, down_ok, answer.decode(), n)
            """, timeout: 120)
        #expect(out.hasPrefix("True True"), "\(out)")
    }

    /// Datagrams larger than the MTU (1500) both ways through a published UDP port: the
    /// client's reach the guest in fragments and the guest's fragmented answers are put back
    /// together (microsandbox #1086 dropped them).
    @Test func udpDatagramsLargerThanTheMTUCrossAPublishedPort() throws {
        let fx = try PublishedPortFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        try fx.guestServer(in: ns, PublishedPortTests.udpEcho)
        try fx.waitForListener(port: 7000, in: ns, udp: true)
        let port = try fx.gateway.publish(sandboxID: info.id, spec: "127.0.0.1::7000/udp").hostPort
        let out = try fx.python(HalfClose.largeDatagrams(to: "127.0.0.1", port: Int(port)))
        #expect(out == "True True True True True True")
    }
}

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct EgressEndingsTests {
    /// A guest client that shuts its write side right after its request to a server on the
    /// host's loopback still gets the whole answer and then EOF.
    @Test(arguments: [(64, 0.0), (64, 0.3), (3 << 20, 0.0), (3 << 20, 0.3)])
    func guestClientThatHalfClosesAfterItsRequestGetsTheAnswer(size: Int, delay: Double) throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let port = FreePort.next()
        _ = try fx.background(["python3", "-c", HalfClose.server(host: "127.0.0.1", port: port, size: size, delay: delay)])
        try fx.waitForListener(port: port)
        let (info, ns) = try fx.attach()
        let script = HalfClose.client(host: info.gatewayIPv4, port: Int(port), size: size, rounds: 20)
        let out = try TestHost.run(["timeout", "120", "ip", "netns", "exec", ns, "python3", "-c", script])
        #expect(out.hasPrefix("20/20"), "\(out)")
        try waitFor(seconds: 5) { (try? fx.gateway.stats(info.id).tcpFlowsActive) == 0 }
    }

    /// The upstream answers and shuts its write side before it has read the guest's upload,
    /// then reads slowly; the guest sends its upload, shuts its write side and reads the answer
    /// to EOF, so the guest's connection ends (both FINs acknowledged) with bytes the upstream
    /// has not taken yet: they must all still reach the upstream.
    @Test(arguments: [4_000_000, 4_500_000, 5_000_000, 5_500_000])
    func guestUploadStillReachesAnUpstreamThatAnsweredFirst(size: Int) throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let port = FreePort.next()
        let received = NSTemporaryDirectory() + "gw-upload-\(fx.scratch.tag)"
        defer { try? FileManager.default.removeItem(atPath: received) }
        _ = try fx.background(["python3", "-c", """
            import socket, time
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port))); s.listen()
            c, _ = s.accept()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.sendall(b"ok"); c.shutdown(socket.SHUT_WR)
            time.sleep(2)
            n = 0
            while True:
                d = c.recv(65536)
                if not d: break
                n += len(d)
            open("\(received)", "w").write(str(n))
            time.sleep(30)
            """])
        try fx.waitForListener(port: port)
        let (info, ns) = try fx.attach()
        let script = """
            import socket
            c = socket.create_connection(("\(info.gatewayIPv4)", \(port)), timeout=20)
            c.sendall(b"u" * \(size))
            c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = c.recv(100)
                if not d: break
                got += d
            print(got.decode())
            """
        let out = try TestHost.run(["timeout", "60", "ip", "netns", "exec", ns, "python3", "-c", script])
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "ok")
        try waitFor(seconds: 20) { FileManager.default.fileExists(atPath: received) }
        Thread.sleep(forTimeInterval: 0.2)
        #expect((try? String(contentsOfFile: received, encoding: .utf8)) == String(size))
    }

    /// Datagrams larger than the MTU from the guest to a host UDP server and back.
    @Test func udpDatagramsLargerThanTheMTUCrossTheGateway() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let port = FreePort.next()
        _ = try fx.background(["python3", "-c", """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", \(port)))
            while True:
                d, a = s.recvfrom(65535)
                s.sendto(b"echo " + d, a)
            """])
        try fx.waitForListener(port: port, udp: true)
        let (info, ns) = try fx.attach()
        let script = HalfClose.largeDatagrams(to: info.gatewayIPv4, port: Int(port))
        let out = try TestHost.run(["timeout", "60", "ip", "netns", "exec", ns, "python3", "-c", script])
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "True True True True True True")
    }
}
