// DNS over TCP from a real kernel guest, answered by the gateway itself: the host alias, denied
// names, forwarding, pipelining, large answers fetched upstream over TCP, bad framing, idle close.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

/// A small DNS-over-TCP client run with python3 inside the guest's namespace.
enum DNSTCPClient {
    static let script = #"""
import socket, struct, sys, time

def query(qid, name, qtype=1):
    labels = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", qtype, 1)

def framed(m):
    return struct.pack(">H", len(m)) + m

def recvn(s, n):
    d = b""
    while len(d) < n:
        c = s.recv(n - len(d))
        if not c:
            return None
        d += c
    return d

def skipname(m, p):
    while True:
        if m[p] & 0xC0 == 0xC0:
            return p + 2
        if m[p] == 0:
            return p + 1
        p += m[p] + 1

def describe(m):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", m[:12])
    p = 12
    for _ in range(qd):
        p = skipname(m, p) + 4
    addrs = []
    for _ in range(an):
        p = skipname(m, p)
        t, c, ttl, rdl = struct.unpack(">HHIH", m[p:p + 10])
        p += 10
        if t == 1:
            addrs.append(socket.inet_ntoa(m[p:p + 4]))
        p += rdl
    return "id=%d rcode=%d tc=%d an=%d size=%d first=%s last=%s" % (
        qid, flags & 15, (flags >> 9) & 1, an, len(m), addrs[0] if addrs else "-", addrs[-1] if addrs else "-")

def answer(s):
    h = recvn(s, 2)
    if h is None:
        return None
    return recvn(s, struct.unpack(">H", h)[0])

def ending(s):
    try:
        return "eof" if s.recv(1) == b"" else "data"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "open"

mode, server = sys.argv[1], sys.argv[2]
if mode == "ask":
    # ask SERVER [--half-close] NAME...: all queries in one write (pipelined), then the answers.
    names = sys.argv[3:]
    half = names and names[0] == "--half-close"
    if half:
        names = names[1:]
    s = socket.create_connection((server, 53), timeout=10)
    s.sendall(b"".join(framed(query(i + 1, n)) for i, n in enumerate(names)))
    if half:
        s.shutdown(socket.SHUT_WR)
    for _ in names:
        m = answer(s)
        print(describe(m) if m else "closed")
    if half:
        print("after:", ending(s))
elif mode in ("raw", "rawfin"):
    # raw[fin] SERVER HEX: bytes the server may not take (then FIN); what comes back and how the
    # connection ends.
    s = socket.create_connection((server, 53), timeout=2)
    s.sendall(bytes.fromhex(sys.argv[3]))
    if mode == "rawfin":
        s.shutdown(socket.SHUT_WR)
    got = 0
    while True:
        try:
            c = s.recv(65536)
        except ConnectionResetError:
            print(got, "reset")
            break
        except socket.timeout:
            print(got, "open")
            break
        if not c:
            print(got, "eof")
            break
        got += len(c)
elif mode == "idle":
    # idle SERVER NAME: one answer, then how long until the server closes.
    s = socket.create_connection((server, 53), timeout=20)
    s.sendall(framed(query(1, sys.argv[3])))
    print(describe(answer(s)))
    start = time.monotonic()
    print(ending(s), "after %.2f" % (time.monotonic() - start))
elif mode == "reset":
    # reset SERVER NAME: ask, then abort the connection (RST) before the answer can come.
    s = socket.create_connection((server, 53), timeout=5)
    s.sendall(framed(query(1, sys.argv[3])))
    time.sleep(0.1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print("reset")
elif mode == "many":
    # many SERVER N: N connections at once; how each fares.
    held = []
    for i in range(int(sys.argv[3])):
        try:
            s = socket.create_connection((server, 53), timeout=5)
            s.sendall(framed(query(i + 1, "host.gateway.internal")))
            m = answer(s)
            print("ok" if m else "closed")
            held.append(s)
        except (ConnectionRefusedError, ConnectionResetError):
            print("refused")
"""#

    /// Writes the script once per process; returns its path.
    static let path: String = {
        let p = NSTemporaryDirectory() + "gw-dnstcp-\(getpid()).py"
        try? script.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }()
}

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct GatewayDNSTCPTests {
    static let bigCount = 400

    func fixture(_ resolver: FakeResolver, configure: (inout GatewayConfiguration) -> Void = { _ in }) throws -> GatewayFixture {
        try GatewayFixture { cfg in
            cfg.dns = DNSConfiguration(upstreams: [resolver.upstream], attemptTimeout: .seconds(2))
            cfg.deniedNames = ["blocked.test"]
            configure(&cfg)
        }
    }

    static func table() -> [String: [IPv4Address]] {
        ["svc.example.test": [IPv4Address(192, 0, 2, 7)], "big.test": (0..<bigCount).map(FakeResolver.largeAddress)]
    }

    static func framedHex(_ message: [UInt8]) -> String {
        ([UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message).map { String(format: "%02x", $0) }.joined()
    }

    func client(_ fx: GatewayFixture, _ ns: String, _ arguments: String, timeout: Int = 30) throws -> [String] {
        let out = try fx.run(in: ns, "python3 \(DNSTCPClient.path) \(arguments) 2>&1", timeout: timeout)
        return out.split(separator: "\n").map(String.init)
    }

    /// The alias, a denied name, a forwarded name, pipelining, a large answer, the guest's FIN,
    /// and a destination other than the gateway: all answered by the gateway over TCP.
    @Test func queriesOverTCPAreAnsweredByTheGateway() throws {
        let resolver = try FakeResolver(.table(Self.table()), tcp: true)
        defer { resolver.stop() }
        let fx = try fixture(resolver)
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let gw = info.gatewayIPv4

        let alias = try client(fx, ns, "ask \(gw) host.gateway.internal")
        #expect(alias == ["id=1 rcode=0 tc=0 an=1 size=\(12 + 27 + 16) first=\(gw) last=\(gw)"], "\(alias)")
        let denied = try client(fx, ns, "ask \(gw) x.blocked.test")
        #expect(denied.count == 1 && denied[0].hasPrefix("id=1 rcode=3 tc=0 an=0"), "\(denied)")
        let forwarded = try client(fx, ns, "ask \(gw) svc.example.test")
        #expect(forwarded.count == 1 && forwarded[0].hasPrefix("id=1 rcode=0 tc=0 an=1") && forwarded[0].hasSuffix("first=192.0.2.7 last=192.0.2.7"), "\(forwarded)")
        // The denied name never went upstream, over either transport.
        let asked = (resolver.queries + resolver.tcpQueries).compactMap { q in
            q.withUnsafeBytes { (try? DNSMessage.parse($0))?.question?.name.text }
        }
        #expect(!asked.contains("x.blocked.test") && asked.contains("svc.example.test"))

        // Pipelined on one connection: the forwarded one is asked first but the local one is
        // answered at once, so the answers may come in either order; both must come.
        let pipelined = try client(fx, ns, "ask \(gw) svc.example.test host.gateway.internal").sorted()
        #expect(pipelined.count == 2, "\(pipelined)")
        #expect(pipelined.first?.hasPrefix("id=1 rcode=0 tc=0 an=1") == true && pipelined.first?.hasSuffix("192.0.2.7") == true)
        #expect(pipelined.last?.hasPrefix("id=2 rcode=0 tc=0 an=1") == true && pipelined.last?.hasSuffix("last=\(gw)") == true)

        // Larger than UDP carries: the upstream's UDP answer is truncated, the gateway asks again
        // over TCP and the guest gets every record.
        let tcpBefore = resolver.tcpQueries.count
        let big = try client(fx, ns, "ask \(gw) big.test")
        let last = FakeResolver.largeAddress(Self.bigCount - 1)
        #expect(big.count == 1 && big[0].hasPrefix("id=1 rcode=0 tc=0 an=\(Self.bigCount) ") && big[0].hasSuffix("first=198.18.0.0 last=\(last)"), "\(big)")
        #expect(resolver.tcpQueries.count == tcpBefore + 1)

        // The guest's FIN right after its queries: what is outstanding is answered, then closed.
        let half = try client(fx, ns, "ask \(gw) --half-close svc.example.test big.test").sorted()
        #expect(half.count == 3 && half[0] == "after: eof", "\(half)")
        #expect(half.dropFirst().allSatisfy { $0.contains("rcode=0 tc=0") })

        // Port 53 of any address is the gateway's DNS (the address is the test's own veth).
        let elsewhere = try fx.ownHostAddress("d")
        let other = try client(fx, ns, "ask \(elsewhere) svc.example.test")
        #expect(other.count == 1 && other[0].hasSuffix("first=192.0.2.7 last=192.0.2.7"), "\(other)")
        let stats = try fx.gateway.stats(info.id)
        #expect(stats.drops["tcpDenied"] == 0)
    }

    /// A zero length cannot be framed past, and a message the forwarder drops (a response, not a
    /// query) gets no answer: the gateway closes the connection either way.
    @Test func badMessagesCloseTheConnection() throws {
        let resolver = try FakeResolver(.table(Self.table()), tcp: true)
        defer { resolver.stop() }
        let fx = try fixture(resolver)
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let gw = info.gatewayIPv4
        #expect(try client(fx, ns, "raw \(gw) 0000") == ["0 eof"])
        var response = makeQuery(id: 0xABCD, "example.test")
        response[2] |= 0x80
        #expect(try client(fx, ns, "raw \(gw) \(Self.framedHex(response))") == ["0 eof"])
        // A good query then a zero length: the first is still answered (55 bytes and the
        // prefix), then the end; so is one before a response.
        let good = Self.framedHex(makeQuery(id: 1, "host.gateway.internal"))
        #expect(try client(fx, ns, "raw \(gw) \(good)0000") == ["57 eof"])
        #expect(try client(fx, ns, "raw \(gw) \(good)\(Self.framedHex(response))") == ["57 eof"])
        // A length promising more than has come: the gateway waits for the rest...
        #expect(try client(fx, ns, "raw \(gw) 0100ab") == ["0 open"])
        // ...until the guest's FIN says it never comes: then it closes too.
        #expect(try client(fx, ns, "rawfin \(gw) 0100ab") == ["0 eof"])
        #expect(try client(fx, ns, "rawfin \(gw) \(good)01") == ["57 eof"])
    }

    /// No query for the idle timeout: the gateway closes with FIN; a connection still busy is not.
    @Test func idleConnectionIsClosed() throws {
        let resolver = try FakeResolver(.table(Self.table()), tcp: true)
        defer { resolver.stop() }
        let fx = try fixture(resolver) { $0.limits.dnsTCPIdleTimeout = .seconds(1) }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let out = try client(fx, ns, "idle \(info.gatewayIPv4) svc.example.test")
        #expect(out.count == 2 && out[0].hasSuffix("first=192.0.2.7 last=192.0.2.7"), "\(out)")
        let parts = out.last?.split(separator: " ") ?? []
        #expect(parts.first == "eof", "\(out)")
        let elapsed = Double(parts.last ?? "") ?? -1
        #expect(elapsed >= 0.8 && elapsed < 4, "\(out)")
    }

    /// A guest that resets its connection while its query is upstream: the late answer finds
    /// no connection and is dropped, and the gateway goes on serving.
    @Test func answerAfterGuestResetIsDropped() throws {
        let silent = try FakeResolver(.silent)
        defer { silent.stop() }
        let fx = try GatewayFixture { cfg in
            cfg.dns = DNSConfiguration(upstreams: [silent.upstream], attemptTimeout: .milliseconds(300))
            cfg.limits.maxDNSTCPSessions = 1
        }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let gw = info.gatewayIPv4
        #expect(try client(fx, ns, "reset \(gw) slow.test") == ["reset"])
        #expect(eventually { !silent.queries.isEmpty })
        // The SERVFAIL for it is made after 300 ms, with the connection long gone.
        usleep(600_000)
        // The one session slot is free again, and a query over TCP still gets its SERVFAIL.
        let out = try client(fx, ns, "ask \(gw) slow.test host.gateway.internal").sorted()
        #expect(out.count == 2 && out[0].hasPrefix("id=1 rcode=2 tc=0 an=0") && out[1].hasPrefix("id=2 rcode=0 tc=0 an=1"), "\(out)")
    }

    /// Beyond the per-sandbox cap, new connections are reset; those open keep working.
    @Test func sessionCapResetsExtraConnections() throws {
        let resolver = try FakeResolver(.table(Self.table()), tcp: true)
        defer { resolver.stop() }
        let fx = try fixture(resolver) { $0.limits.maxDNSTCPSessions = 2 }
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        #expect(try client(fx, ns, "many \(info.gatewayIPv4) 3") == ["ok", "ok", "refused"])
        // Once those are gone, connections are taken again.
        #expect(eventually(seconds: 10) { (try? client(fx, ns, "ask \(info.gatewayIPv4) host.gateway.internal"))?.first?.hasPrefix("id=1 rcode=0") == true })
    }
}
