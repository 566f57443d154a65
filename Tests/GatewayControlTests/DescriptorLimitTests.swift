// gatewayd under open files limits: it raises its soft limit and attaches hundreds of sandboxes,
// an attach without descriptors left says so, one sandbox opening connections without end is held
// to its budget while a neighbour's downloads and the control API keep working, and idle or
// trickling control connections are closed.
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"), .serialized)
struct DescriptorLimitTests {
    /// systemd's default soft limit (1,024) with a higher hard one: gatewayd lifts the soft
    /// limit itself, says so, and 600 sandboxes (600 TAPs alone) attach.
    @Test func raisesItsSoftLimitAndAttaches600() throws {
        // Root may set any hard limit for the child, whatever the test runner's own.
        let hard = 4096
        let h = try DaemonHarness()
        defer { h.tearDown() }
        let spaces = try NamespaceBatch(tag: h.scratch.tag, count: 600)
        defer { spaces.remove() }
        h.launcher = ["prlimit", "--nofile=1024:\(hard)"]
        try h.start()
        #expect(h.log().contains("open files limit raised from 1024 to \(hard)"), "\(h.log())")
        let limits = try String(contentsOfFile: "/proc/\(h.workerPID)/limits", encoding: .utf8)
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") } ?? ""
        #expect(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).prefix(2) == ["\(hard)", "\(hard)"])

        for (i, ns) in spaces.names.enumerated() {
            let (status, text) = try h.attachOverAPI("s\(i)", namespace: ns)
            try #require(status == 201, "attach #\(i + 1): \(status) \(text)")
        }
        // The budgets follow the raised limit: a sandbox may hold more than the old soft limit's
        // share (an eighth of what the data path may use, reserve and start-up files aside).
        let perSandbox = h.log().split(separator: " ").first { $0.hasPrefix("per-sandbox=") }
            .flatMap { Int($0.dropFirst("per-sandbox=".count)) }
        #expect((perSandbox ?? 0) > (hard - 64 - 100) / 8 && (perSandbox ?? 0) <= hard / 8, "\(h.log())")
        // A graceful stop removes 600 devices in parallel; a kill would leave them to the exit.
        #expect(h.stop(SIGTERM, timeout: 60) == 0)
        #expect(spaces.withGatewayDevices().isEmpty)
    }

    /// With a hard limit of 256 the attaches run out of descriptors: the error is `exhausted`
    /// (503) and names descriptors and the limit; the control API still answers.
    @Test func attachBeyondTheLimitSaysDescriptors() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        let spaces = try NamespaceBatch(tag: h.scratch.tag, count: 256)
        defer { spaces.remove() }
        h.launcher = ["prlimit", "--nofile=256:256"]
        try h.start()
        var refusal: (Int, String)?
        var attached = 0
        for (i, ns) in spaces.names.enumerated() {
            let (status, text) = try h.attachOverAPI("s\(i)", namespace: ns)
            if status != 201 {
                refusal = (status, text)
                break
            }
            attached += 1
        }
        let (status, text) = try #require(refusal, "256 attaches under a limit of 256 all succeeded")
        #expect(status == 503, "\(text)")
        #expect(text.contains("exhausted") && text.contains("descriptor") && text.contains("256"), "\(text)")
        // The reserve: most of the limit went to devices, and the API still works.
        #expect(attached >= 100, "only \(attached) attached before the refusal")
        let list = try h.ctl("list", timeout: 10)
        #expect(list.status == 0 && list.stdout.split(separator: "\n").count == attached + 1)
        // Freed descriptors can be used again.
        #expect(try h.ctl("detach", "s0").status == 0)
        _ = h.settledFileCount()
        #expect(try h.attachOverAPI("again", namespace: spaces.names[0]).0 == 201)
        #expect(h.stop(SIGTERM, timeout: 60) == 0)
    }

    /// A sandbox that opens connections without end gets its budget (100 here) and RSTs beyond
    /// it, counted as drops; its neighbour keeps downloading and `list` keeps answering, although
    /// the process limit (512) is far below what the greedy guest asks for.
    @Test func greedySandboxLeavesNeighbourAndAPIWorking() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        // No connection rate: the greedy guest's 600 connects must meet the descriptor budget,
        // not the default 200 new flows per second.
        try h.addConfigTables("[descriptors]\nper-sandbox = 100\n[limits]\nconnection-rate = 0")
        h.launcher = ["prlimit", "--nofile=512:512"]
        try h.start()
        let processes = TestProcesses()
        defer { processes.killAll() }
        let greedyNS = try h.scratch.namespace().name!
        let neighbourNS = try h.scratch.namespace().name!
        #expect(try h.ctl("attach", "greedy", "--netns", greedyNS).status == 0)
        #expect(try h.ctl("attach", "neighbour", "--netns", neighbourNS).status == 0)
        let greedyGateway = try h.addresses(of: "greedy").gateway
        let neighbourGateway = try h.addresses(of: "neighbour").gateway

        // On the host's loopback: one server that holds every connection, one that sends 1 MiB.
        let portFiles = "/tmp/gw-greedy-ports-\(h.scratch.tag)"
        defer { ["hold", "send"].forEach { try? FileManager.default.removeItem(atPath: "\(portFiles)-\($0)") } }
        _ = try startPython(
            """
            import socket, sys
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4096)
            open(sys.argv[1], "w").write(str(s.getsockname()[1]))
            held = []
            while True:
                c, _ = s.accept(); held.append(c)
            """, ["\(portFiles)-hold"], processes: processes)
        _ = try startPython(
            """
            import socket, sys, threading
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
            open(sys.argv[1], "w").write(str(s.getsockname()[1]))
            def serve(c):
                try: c.sendall(b"x" * (1 << 20))
                finally: c.close()
            while True:
                c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
            """, ["\(portFiles)-send"], processes: processes)
        let holdPort = try #require(waitForFile("\(portFiles)-hold").flatMap { Int($0) }, "no hold server")
        let sendPort = try #require(waitForFile("\(portFiles)-send").flatMap { Int($0) }, "no download server")

        // The greedy guest: 600 connections, each held; reports how many got through.
        let greedyReport = "/tmp/gw-greedy-\(h.scratch.tag)"
        defer { try? FileManager.default.removeItem(atPath: greedyReport) }
        _ = try startPython(
            """
            import socket, sys, time
            held, refused = [], 0
            for _ in range(600):
                try:
                    held.append(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3))
                except OSError:
                    refused += 1
            open(sys.argv[3], "w").write(f"{len(held)} {refused}")
            time.sleep(600)
            """, [greedyGateway, String(holdPort), greedyReport], in: greedyNS, processes: processes)
        let report = try #require(waitForFile(greedyReport, seconds: 60), "the greedy guest did not finish")
        let counts = report.split(separator: " ").compactMap { Int($0) }
        try #require(counts.count == 2)
        #expect(counts[0] <= 100 && counts[0] >= 90, "greedy guest held \(counts[0]) connections")
        #expect(counts[1] >= 500, "greedy guest was refused \(counts[1]) times")
        #expect(try h.drops(of: "greedy")["descriptorBudget", default: 0] >= 500)

        // While it holds them: the neighbour downloads, and the API answers.
        let download = try runProgram(
            "/usr/bin/env",
            [
                "ip", "netns", "exec", neighbourNS, "python3", "-c",
                """
                import socket, sys
                for _ in range(5):
                    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
                    n = 0
                    while True:
                        b = c.recv(65536)
                        if not b: break
                        n += len(b)
                    assert n == 1 << 20, n
                print("ok")
                """, neighbourGateway, String(sendPort),
            ], timeout: 60)
        #expect(download.stdout == "ok\n", "\(download.stderr)")
        let list = try h.ctl("list", timeout: 10)
        #expect(list.status == 0 && list.stdout.contains("greedy") && list.stdout.contains("neighbour"))
        #expect(try h.drops(of: "neighbour")["descriptorBudget", default: 0] == 0)
        // Two devices and the greedy guest's 100 flows, counted.
        let metrics = try TestHost.run(["curl", "-sS", "--unix-socket", h.socketPath, "http://gatewayd/metrics"])
        let inUse = metrics.split(separator: "\n").first { $0.hasPrefix("gatewayd_descriptors{kind=\"in_use\"}") }
        #expect(inUse.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 >= 102 } == true, "\(metrics)")
    }

    /// Idle connections and clients that send a request a byte at a time are closed after the
    /// configured timeouts; a client that asks in time is answered.
    @Test func idleAndSlowControlClientsAreClosed() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.addRootConfig("control-idle-timeout-ms = 500\ncontrol-request-timeout-ms = 800")
        try h.start()
        let before = h.settledFileCount()

        let idle = try (0..<20).map { _ in try connectUnix(h.socketPath) }
        let slow = try (0..<10).map { _ in try connectUnix(h.socketPath) }
        defer { (idle + slow).forEach { close($0) } }
        for fd in slow { _ = send(fd, "GET /v1/sandboxes HTTP/1.1\r\n", 28, Int32(MSG_NOSIGNAL)) }
        // Accepted (each holds a descriptor of gatewayd's) before the clock starts.
        _ = eventually(seconds: 0.25, every: 0.005) { h.openFileCount() >= before + 30 }
        #expect(h.openFileCount() >= before + 30)

        // Keep trickling header bytes for 3 s (well past both timeouts) and see who is closed.
        let start = Date()
        var closedAt: [Int32: Double] = [:]
        while Date().timeIntervalSince(start) < 3 {
            for fd in slow where closedAt[fd] == nil { _ = send(fd, "X", 1, Int32(MSG_NOSIGNAL)) }
            for fd in idle + slow where closedAt[fd] == nil && peerClosed(fd) {
                closedAt[fd] = Date().timeIntervalSince(start)
            }
            usleep(100_000)
        }
        #expect(idle.allSatisfy { closedAt[$0] != nil }, "idle connections left open: \(idle.filter { closedAt[$0] == nil }.count)")
        #expect(slow.allSatisfy { closedAt[$0] != nil }, "slow connections left open: \(slow.filter { closedAt[$0] == nil }.count)")
        // Closed for the timeouts, not at once.
        #expect(closedAt.values.allSatisfy { $0 >= 0.3 }, "\(closedAt.values.sorted())")
        #expect(h.settledFileCount(atMost: before) <= before)

        // A client that asks in time is answered, twice on one connection.
        let fd = try connectUnix(h.socketPath)
        defer { close(fd) }
        for _ in 0..<2 {
            let request = "GET /v1/sandboxes HTTP/1.1\r\nHost: gatewayd\r\n\r\n"
            #expect(send(fd, request, request.utf8.count, Int32(MSG_NOSIGNAL)) == request.utf8.count)
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            #expect(n > 0 && String(decoding: buffer[..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        }
    }
}

extension DescriptorLimitTests {
    /// Control connections beyond three quarters of the reserve (24 of 32 here) are answered
    /// 503 `busy` and closed; once the others go, requests are served again.
    @Test func connectionsBeyondTheReserveAreTurnedAway() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.addConfigTables("[descriptors]\ncontrol-reserve = 32")
        try h.start()
        var held = try (0..<24).map { _ in try connectUnix(h.socketPath) }
        defer { held.forEach { close($0) } }
        // The first 24 accepted before the extra ones arrive.
        _ = h.settledFileCount()
        let extra = try (0..<6).map { _ in try connectUnix(h.socketPath) }
        defer { extra.forEach { close($0) } }
        for fd in extra {
            var buffer = [UInt8](repeating: 0, count: 4096)
            var text = ""
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                text += String(decoding: buffer[..<n], as: UTF8.self)
            }
            #expect(text.hasPrefix("HTTP/1.1 503") && text.contains("\"busy\""), "\(text)")
        }
        // The held ones are still served.
        let request = "GET /v1/health HTTP/1.1\r\nHost: gatewayd\r\n\r\n"
        #expect(send(held[0], request, request.utf8.count, Int32(MSG_NOSIGNAL)) == request.utf8.count)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(held[0], &buffer, buffer.count, 0)
        #expect(n > 0 && String(decoding: buffer[..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        held.forEach { close($0) }
        held.removeAll()
        usleep(200_000)
        #expect(try h.ctl("list", timeout: 10).status == 0)
    }
}

/// A connected, blocking Unix stream socket.
func connectUnix(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: \(errno)") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
    }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
        close(fd)
        throw HarnessError("connect \(path): \(errno)")
    }
    return fd
}

/// Whether the server has closed the connection (EOF or reset), without blocking.
func peerClosed(_ fd: Int32) -> Bool {
    var byte: UInt8 = 0
    let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK))
    if n == 0 { return true }
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK
}
