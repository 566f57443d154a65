// A restart after kill -9 as the sandboxes see it: the same addresses, MACs, routes and published
// ports, a reset (not a hang) for a flow that was open, and state files or host ports that
// cannot be restored reported while the rest comes back.
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct RestartTests {
    /// A TCP server in a namespace that greets every client and closes.
    static func greeter(port: Int) -> String {
        """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('0.0.0.0', \(port))); s.listen()
        while True:
            c, _ = s.accept(); c.sendall(b'from the guest'); c.close()
        """
    }

    /// A UDP server in a namespace that sends every datagram back.
    static func udpEcho(port: Int) -> String {
        """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', \(port)))
        while True:
            d, a = s.recvfrom(2048); s.sendto(d, a)
        """
    }

    /// A host server on loopback that accepts and holds every connection open.
    static func holder(port: Int) -> String {
        """
        import socket, time
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', \(port))); s.listen()
        held = []
        while True:
            c, _ = s.accept(); held.append(c)
        """
    }

    /// A guest client that opens a connection, waits for `go` to exist, then sends a byte and
    /// writes to `out` what became of the connection and how long that took.
    static func waitingClient(host: String, port: Int, go: String, out: String) -> String {
        """
        import socket, os, time
        s = socket.create_connection(('\(host)', \(port)), timeout=5)
        open('\(out)', 'w').write('connected\\n')
        while not os.path.exists('\(go)'):
            time.sleep(0.05)
        t = time.time(); s.settimeout(20)
        try:
            s.send(b'x'); d = s.recv(1); what = 'data' if d else 'eof'
        except ConnectionResetError:
            what = 'reset'
        except socket.timeout:
            what = 'timeout'
        except OSError as e:
            what = 'error %d' % e.errno
        open('\(out)', 'w').write('%s %.2f\\n' % (what, time.time() - t))
        """
    }

    static func udpExchange(port: Int) throws -> String {
        try TestHost.run([
            "python3", "-c",
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
            s.sendto(b'echo me', ('127.0.0.1', \(port))); print(s.recv(100).decode(), end='')
            """,
        ])
    }

    static func waitFor(_ path: String, containing text: String, seconds: Double = 10) -> String {
        var content = ""
        _ = eventually(seconds: seconds, every: 0.05) {
            content = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            return content.contains(text)
        }
        return content
    }

    /// POSTs `body` with curl, so the HTTP status is the one on the wire; returns it and the error.
    static func post(_ h: DaemonHarness, _ path: String, _ body: some Encodable) throws -> (Int, ControlError) {
        let json = String(decoding: try JSONEncoder().encode(body), as: UTF8.self)
        let out = try TestHost.run([
            "curl", "-sS", "--unix-socket", h.socketPath, "-X", "POST", "-H", "Content-Type: application/json",
            "-d", json, "-w", "\n%{http_code}", "http://gatewayd\(path)",
        ])
        let lines = out.split(separator: "\n")
        let status = Int(lines.last ?? "") ?? 0
        let text = lines.dropLast().joined(separator: "\n")
        return (status, try JSONDecoder().decode(ControlError.Body.self, from: Data(text.utf8)).error)
    }

    func list(_ h: DaemonHarness) throws -> [SandboxView] {
        try JSONDecoder().decode([SandboxView].self, from: Data(try h.ctl("list", "--json").stdout.utf8))
    }

    func routes(_ h: DaemonHarness) throws -> [RouteView] {
        try JSONDecoder().decode([RouteView].self, from: Data(try h.ctl("routes", "--json").stdout.utf8))
    }

    /// The guest-side view of its link: addresses and routes as the kernel in the namespace has them
    /// (without the interface index, which a new device never keeps).
    func kernelView(_ ns: String) throws -> String {
        try TestHost.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "scope", "global"])
            .split(separator: "\n").map { $0.split(separator: " ").dropFirst().prefix(3).joined(separator: " ") }.joined(separator: "\n")
            + "\n" + (try TestHost.run(["ip", "-n", ns, "-4", "route"]))
    }

    @Test func killNineAndRestartIsInvisibleToTheSandboxes() throws {
        let h = try DaemonHarness()
        let background = GatewayTestSupport.BackgroundProcesses()
        defer {
            background.killAll()
            h.tearDown()
        }
        try h.start()
        let tag = h.scratch.tag
        let nsA = try h.scratch.namespace().name!
        let nsB = try h.scratch.namespace().name!
        let idA = "ra-\(tag)"
        let idB = "rb-\(tag)"
        let tcpGuest = Int.random(in: 8000...8999)
        let udpGuest = tcpGuest + 1000
        // Attached in the reverse of ID order: b takes the first address block, a the second.
        let b = try h.ctl("attach", idB, "--netns", nsB)
        #expect(b.status == 0, "\(b.stderr)")
        let a = try h.ctl("attach", idA, "--netns", nsA, "--publish", String(tcpGuest))
        #expect(a.status == 0, "\(a.stderr)")
        #expect(try h.ctl("publish", idB, "\(udpGuest)/udp").status == 0)
        let doomed = try h.ctl("publish", idB, "\(tcpGuest + 1)", "--json")
        #expect(doomed.status == 0, "\(doomed.stderr)")
        let doomedPort = try JSONDecoder().decode(RouteView.self, from: Data(doomed.stdout.utf8)).hostPort

        _ = try background.start(["ip", "netns", "exec", nsA, "python3", "-c", Self.greeter(port: tcpGuest)])
        _ = try background.start(["ip", "netns", "exec", nsB, "python3", "-c", Self.udpEcho(port: udpGuest)])
        try TestHost.waitForListener(port: UInt16(tcpGuest), in: nsA)
        try TestHost.waitForListener(port: UInt16(udpGuest), in: nsB, udp: true)

        let before = try list(h)
        let routesBefore = try routes(h)
        let viewA = try #require(before.first { $0.id == idA })
        let viewB = try #require(before.first { $0.id == idB })
        let tcpPort = try #require(routesBefore.first { $0.sandbox == idA && $0.protocol == "tcp" }).hostPort
        let udpPort = try #require(routesBefore.first { $0.sandbox == idB && $0.protocol == "udp" }).hostPort
        #expect(routesBefore.count == 3)
        #expect(try TestHost.run(["curl", "-sS", "--max-time", "5", "telnet://127.0.0.1:\(tcpPort)"]) == "from the guest")
        #expect(try Self.udpExchange(port: udpPort) == "echo me")
        let kernelBefore = try [kernelView(nsA), kernelView(nsB)]

        // A guest flow that is open when the daemon dies, to a server on the host's loopback.
        let hostPort = Int(TestHost.freePort())
        _ = try background.start(["python3", "-c", Self.holder(port: hostPort)])
        try TestHost.waitForListener(port: UInt16(hostPort))
        let go = h.directory + "/go"
        let outcome = h.directory + "/flow"
        _ = try background.start([
            "ip", "netns", "exec", nsA, "python3", "-c",
            Self.waitingClient(host: viewA.gatewayIPv4, port: hostPort, go: go, out: outcome),
        ])
        #expect(Self.waitFor(outcome, containing: "connected").contains("connected"))

        h.stop(SIGKILL)
        // Meanwhile another process takes one published port, and a file that is not a state
        // file appears among the state files.
        _ = try background.start(["python3", "-c", Self.holder(port: doomedPort)])
        try TestHost.waitForListener(port: UInt16(doomedPort))
        let junk = h.stateDirectory + "/sandboxes/junk.json"
        try Data("{\"formatVersion\": 1, \"sandbox\": {\"id\": ".utf8).write(to: URL(fileURLWithPath: junk))

        try h.start()
        let after = try list(h)
        #expect(after.map(\.id) == [idA, idB])
        for old in [viewA, viewB] {
            let new = try #require(after.first { $0.id == old.id })
            #expect(new.guestIPv4 == old.guestIPv4 && new.gatewayIPv4 == old.gatewayIPv4)
            #expect(new.guestIPv6Prefix == old.guestIPv6Prefix && new.gatewayIPv6 == old.gatewayIPv6)
            #expect(new.mac == old.mac && new.gatewayMAC == old.gatewayMAC)
            #expect(new.tap == old.tap && new.mtu == old.mtu && new.policy == old.policy)
        }
        let kernelAfter = try [kernelView(nsA), kernelView(nsB)]
        #expect(kernelAfter == kernelBefore, "\(kernelBefore) → \(kernelAfter)")
        #expect(try routes(h) == routesBefore.filter { $0.hostPort != doomedPort })

        // The taken port is reported in the log and in list; the rest came back.
        let newB = try #require(after.first { $0.id == idB })
        let warning = try #require(newB.restoreWarnings?.first)
        #expect(warning.contains("\(doomedPort)") && warning.contains("in use by another process"), "\(warning)")
        #expect(after.first { $0.id == idA }?.restoreWarnings == nil)
        let log = h.log()
        #expect(log.contains("sandbox \(idB): port 127.0.0.1:\(doomedPort):\(tcpGuest + 1)/tcp was not published again"))
        #expect(try h.ctl("list").stderr.contains("warning: sandbox \(idB): port 127.0.0.1:\(doomedPort)"))
        // The junk file is reported and set aside; it stopped nothing.
        #expect(log.contains("skipped state file \(junk)"))
        #expect(h.stateFiles().contains("junk.json.rejected"))

        // The guests' configured gateways answer, and so do the published ports.
        try TestHost.run(["ip", "netns", "exec", nsA, "ping", "-c", "1", "-W", "2", viewA.gatewayIPv4])
        try TestHost.run(["ip", "netns", "exec", nsB, "ping", "-c", "1", "-W", "2", viewB.gatewayIPv4])
        #expect(try TestHost.run(["curl", "-sS", "--max-time", "5", "telnet://127.0.0.1:\(tcpPort)"]) == "from the guest")
        #expect(try Self.udpExchange(port: udpPort) == "echo me")

        // The flow open across the restart is reset as soon as the guest sends on it.
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        let result = Self.waitFor(outcome, containing: " ", seconds: 25).split(separator: " ")
        #expect(result.first == "reset", "\(result)")
        #expect((result.last.flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 99) < 3)

        // A second restart restores the same again (the state files were kept up to date).
        h.stop(SIGKILL)
        try h.start()
        #expect(try list(h).map(\.guestIPv4) == after.map(\.guestIPv4))
        #expect(h.stop(SIGTERM) == 0)
    }

    /// A file an older gatewayd wrote (the bare attach request, no block) is restored on a free
    /// block after the sandboxes whose files name theirs, so it cannot take one of those blocks
    /// although its ID comes first; it is then rewritten in the current format.
    @Test func filesOfAnOlderGatewaydAreRestoredOnAFreeBlock() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let tag = h.scratch.tag
        let nsNew = try h.scratch.namespace().name!
        let nsOld = try h.scratch.namespace().name!
        let current = "z-\(tag)"
        let old = "a-\(tag)"
        let attached = try h.ctl("attach", current, "--netns", nsNew, "--json")
        let view = try JSONDecoder().decode(SandboxView.self, from: Data(attached.stdout.utf8))
        h.stop(SIGKILL)
        let legacy = h.stateDirectory + "/sandboxes/\(old).json"
        try Data(#"{"id": "\#(old)", "netns": "\#(nsOld)", "mac": "02:00:00:00:00:42"}"#.utf8)
            .write(to: URL(fileURLWithPath: legacy))

        try h.start()
        let after = try list(h)
        #expect(after.map(\.id) == [old, current])
        #expect(after.last?.guestIPv4 == view.guestIPv4)
        #expect(after.first?.mac == "02:00:00:00:00:42" && after.first?.guestIPv4 != view.guestIPv4)
        let rewritten = try String(contentsOfFile: legacy, encoding: .utf8)
        #expect(rewritten.contains("\"formatVersion\" : 1") && rewritten.contains("\"addressBlock\" : 1"), "\(rewritten)")
    }

    /// `attach --publish`: the ports come with the attach; when the second one conflicts, the
    /// attach is undone: no sandbox, no device, no port, no state file, and the ID free again.
    @Test func attachWithPortsPublishesThemOrUndoesTheAttach() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let tag = h.scratch.tag
        let ns1 = try h.scratch.namespace().name!
        let ns2 = try h.scratch.namespace().name!
        let first = "p1-\(tag)"
        let second = "p2-\(tag)"
        let attached = try h.ctl("attach", first, "--netns", ns1, "--publish", "80", "--publish", "0:53/udp", "--json")
        #expect(attached.status == 0, "\(attached.stderr)")
        let view = try JSONDecoder().decode(SandboxView.self, from: Data(attached.stdout.utf8))
        #expect(Set(view.ports.map { "\($0.guestPort)/\($0.protocol)" }) == ["80/tcp", "53/udp"])
        let taken = try #require(view.ports.first { $0.protocol == "tcp" }).hostPort
        let state = try JSONDecoder().decode(
            SandboxState.self,
            from: Data(contentsOf: URL(fileURLWithPath: h.stateDirectory + "/sandboxes/\(first).json")))
        #expect(Set(state.sandbox.ports ?? []) == Set(view.ports.map {
            PublishRequest(hostIP: $0.hostIP, hostPort: $0.hostPort, guestPort: $0.guestPort, protocol: $0.protocol)
        }))
        let text = try h.ctl("attach", "p3-\(tag)", "--netns", try h.scratch.namespace().name!, "--publish", "81")
        #expect(text.status == 0 && text.stdout.contains("ports        127.0.0.1:"), "\(text.stdout)")

        let routesBefore = try routes(h)
        let failed = try h.ctl("attach", second, "--netns", ns2, "--publish", "82", "--publish", "\(taken):83")
        #expect(failed.status == 3, "\(failed.stderr)")
        #expect(failed.stderr.contains("sandbox '\(second)' was not attached: port \(taken):83/tcp"), "\(failed.stderr)")
        #expect(failed.stderr.contains("already published by sandbox '\(first)'"), "\(failed.stderr)")
        #expect(try list(h).contains { $0.id == second } == false)
        #expect(try routes(h) == routesBefore)
        #expect(!h.links(in: ns2).contains { $0.hasPrefix("gwt-") })
        #expect(!h.stateFiles().contains("\(second).json"))
        // Unpublish updates the state file as publish does.
        #expect(try h.ctl("unpublish", first, "\(taken)/tcp").status == 0)
        let trimmed = try JSONDecoder().decode(
            SandboxState.self,
            from: Data(contentsOf: URL(fileURLWithPath: h.stateDirectory + "/sandboxes/\(first).json")))
        #expect(trimmed.sandbox.ports?.map { "\($0.guestPort)/\($0.protocol)" } == ["53/udp"])
        // A spec that does not parse is refused before anything is sent.
        let bad = try h.ctl("attach", second, "--netns", ns2, "--publish", "nope")
        #expect(bad.status == 4 && bad.stderr.contains("bad port SPEC 'nope'"), "\(bad.stderr)")
        // Everything the failed attach held is free again.
        let retry = try h.ctl("attach", second, "--netns", ns2, "--publish", "82")
        #expect(retry.status == 0, "\(retry.stderr)")
    }

    /// The error classes of item 8 through the control API: a second sandbox in a namespace is a
    /// conflict (409 deviceExists), a host IP that is not this host's is the caller's mistake
    /// (400 invalidArgument naming it); neither leaves anything behind.
    @Test func conflictsAndForeignAddressesHaveTheirOwnErrors() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let tag = h.scratch.tag
        let ns = try h.scratch.namespace().name!
        let id = "e8-\(tag)"
        _ = try ControlClient(socketPath: h.socketPath).call(
            "POST", "/v1/sandboxes", body: AttachRequest(id: id, netns: ns), as: SandboxView.self)
        let links = h.links(in: ns)

        let (status, error) = try Self.post(h, "/v1/sandboxes", AttachRequest(id: "\(id)-2", netns: ns))
        #expect(status == 409 && error.code == .deviceExists, "\(status) \(error)")
        #expect(error.message.contains("namespace '\(ns)' already has sandbox '\(id)'"), "\(error.message)")
        #expect(h.links(in: ns) == links)
        let second = try h.ctl("attach", "\(id)-2", "--netns", ns)
        #expect(second.status == 3, "\(second.stderr)")

        // A documentation address (RFC 5737) no interface has: the bind fails, nothing is sent.
        let spec = PublishRequest(hostIP: "192.0.2.1", hostPort: 8080, guestPort: 80, protocol: "tcp")
        let (pubStatus, pubError) = try Self.post(h, "/v1/sandboxes/\(id)/ports", spec)
        #expect(pubStatus == 400 && pubError.code == .invalidArgument, "\(pubStatus) \(pubError)")
        #expect(pubError.message.contains("192.0.2.1"), "\(pubError.message)")
        // Asking for an automatic port there is refused as plainly, not after trying the range.
        let auto = try h.ctl("publish", id, "192.0.2.1:0:80/udp")
        #expect(auto.status == 4 && auto.stderr.contains("cannot publish on 192.0.2.1"), "\(auto.stderr)")
        #expect(try routes(h).isEmpty)
    }
}
