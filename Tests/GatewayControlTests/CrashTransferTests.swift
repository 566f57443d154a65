// kill -9 of gatewayd in the middle of transfers: a download through a published port, an upload
// and a download over egress. No client may see a short body ended by a clean close: the host
// side gets a reset (the flow sockets carry zero linger), the guest side an error.
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"), .serialized)
struct CrashTransferTests {
    /// Bytes each transfer would carry; paced so that it is far from done at the kill.
    static let total = 64 << 20

    /// A reader: connects, reads at ~8 MB/s, writes its progress to a file, and at the end
    /// "eof N" (a clean close after N bytes) or "error NAME N".
    static let reader = """
        import socket, sys, time
        host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        n = 0
        try:
            c = socket.create_connection((host, port), timeout=5)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            last = 0
            while True:
                b = c.recv(65536)
                if not b:
                    open(out, "w").write(f"eof {n}"); break
                n += len(b)
                if n - last >= 1 << 20:
                    open(out + ".progress", "w").write(str(n)); last = n
                time.sleep(0.008)
        except Exception as e:
            open(out, "w").write(f"error {type(e).__name__} {n}")
        """

    /// A writer: sends `total` bytes at ~8 MB/s to whoever connects (server) or where it
    /// connects (client), then closes.
    static let writer = """
        import socket, sys, time
        mode, host, port, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        if mode == "serve":
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port)); s.listen(8)
            if len(sys.argv) > 5: open(sys.argv[5], "w").write(str(s.getsockname()[1]))
            c, _ = s.accept()
        else:
            c = socket.create_connection((host, port), timeout=5)
        chunk = b"x" * 65536
        try:
            for _ in range(total // len(chunk)):
                c.sendall(chunk); time.sleep(0.008)
            c.close()
        except Exception:
            pass
        time.sleep(600)
        """

    /// A server that reads what one client sends: "eof N" or "error NAME N" in a file (and
    /// the port it got in another).
    static let sink = """
        import socket, sys
        host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        s = socket.socket(); s.bind((host, port)); s.listen(8)
        open(out + ".port", "w").write(str(s.getsockname()[1]))
        c, _ = s.accept()
        n, last = 0, 0
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    open(out, "w").write(f"eof {n}"); break
                n += len(b)
                if n - last >= 1 << 20:
                    open(out + ".progress", "w").write(str(n)); last = n
        except Exception as e:
            open(out, "w").write(f"error {type(e).__name__} {n}")
        """

    @Test func killDuringTransfersNeverLooksLikeACompleteOne() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let processes = TestProcesses()
        defer { processes.killAll() }
        let ns = try h.scratch.namespace().name!
        #expect(try h.ctl("attach", "crash", "--netns", ns).status == 0)
        let gateway = try h.addresses(of: "crash").gateway
        let files = "/tmp/gw-crash-\(h.scratch.tag)"
        defer {
            for f in ["published", "upload", "download"] {
                for suffix in ["", ".progress", ".port"] {
                    try? FileManager.default.removeItem(atPath: "\(files)-\(f)\(suffix)")
                }
            }
        }

        // 1. Published port: a server in the guest, a reader on the host's loopback.
        let guestPort = Int.random(in: 8000...8999)
        _ = try startPython(
            Self.writer, ["serve", "0.0.0.0", String(guestPort), String(Self.total)], in: ns, processes: processes)
        try TestHost.waitForListener(port: UInt16(guestPort), in: ns)
        let publish = try h.ctl("publish", "crash", String(guestPort))
        #expect(publish.status == 0, "\(publish.stderr)")
        let routes = try JSONDecoder().decode([RouteView].self, from: Data(h.ctl("routes", "--json").stdout.utf8))
        let hostPort = try #require(routes.first).hostPort
        _ = try startPython(Self.reader, ["127.0.0.1", String(hostPort), "\(files)-published"], processes: processes)

        // 2. Egress upload: the guest writes to a sink on the host's loopback (via the gateway).
        _ = try startPython(Self.sink, ["127.0.0.1", "0", "\(files)-upload"], processes: processes)
        let sinkPort = try #require(waitForFile("\(files)-upload.port").flatMap { Int($0) }, "no sink")
        _ = try startPython(
            Self.writer, ["connect", gateway, String(sinkPort), String(Self.total)], in: ns, processes: processes)

        // 3. Egress download: a host server writes, the guest reads.
        _ = try startPython(
            Self.writer, ["serve", "127.0.0.1", "0", String(Self.total), "\(files)-download.port"],
            processes: processes)
        let sourcePort = try #require(waitForFile("\(files)-download.port").flatMap { Int($0) }, "no source")
        _ = try startPython(Self.reader, [gateway, String(sourcePort), "\(files)-download"], in: ns, processes: processes)

        // All three under way (a few MiB each), then the crash.
        for f in ["published", "upload", "download"] {
            let progress = waitForFile("\(files)-\(f).progress", seconds: 20) { (Int($0) ?? 0) >= 2 << 20 }
            try #require(progress != nil, "\(f) transfer did not get going")
        }
        let pid = h.pid
        kill(pid, SIGKILL)
        h.stop(SIGKILL)

        for f in ["published", "upload", "download"] {
            // The guest's reader hears nothing once its device is gone: its own timeout (5 s)
            // ends it with an error.
            let outcome = try #require(waitForFile("\(files)-\(f)", seconds: 30), "\(f): no outcome")
            let words = outcome.split(separator: " ")
            let bytes = Int(words.last ?? "") ?? -1
            #expect(bytes < Self.total, "\(f): the transfer finished before the kill")
            #expect(words.first == "error", "\(f) ended with a clean close after \(bytes) of \(Self.total) bytes")
            if f != "download" {
                // The host side is reset by the kernel as the process dies.
                #expect(outcome.contains("ConnectionResetError"), "\(f): \(outcome)")
            }
        }
    }
}
