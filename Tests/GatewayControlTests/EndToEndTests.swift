// gatewayd and gatewayctl as an operator runs them: a daemon subprocess with its own socket
// and state directory, namespaces the test creates as sandboxes, and what the user would see:
// output, exit codes, devices appearing and going, state surviving a kill -9, a readable pcap.
import Foundation
import Gateway
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct EndToEndTests {
    @Test func attachListStatsDetach() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let id = "e2e-\(h.scratch.tag)"

        let attach = try h.ctl("attach", id, "--netns", ns)
        #expect(attach.status == 0, "\(attach.stderr)")
        #expect(attach.stdout.contains("sandbox      \(id)"))
        #expect(attach.stdout.contains("namespace    \(ns)"))
        let tap = try #require(h.links(in: ns).first { $0.hasPrefix("gwt-") })
        #expect(attach.stdout.contains("tap          \(tap)"))
        #expect(h.stateFiles() == ["\(id).json"])

        let table = try h.ctl("list")
        #expect(table.status == 0)
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("ID") == true && lines.first?.contains("GATEWAY") == true)
        #expect(lines.count == 2 && lines[1].hasPrefix(id) && lines[1].contains(tap))

        let json = try h.ctl("list", "--json")
        let views = try JSONDecoder().decode([SandboxView].self, from: Data(json.stdout.utf8))
        let view = try #require(views.first)
        #expect(views.count == 1 && view.id == id && view.namespace == ns && view.tap == tap)

        // The guest reaches its gateway through the daemon's stack.
        try TestHost.run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "2", view.gatewayIPv4])
        let stats = try h.ctl("stats", id, "--json")
        #expect(stats.status == 0)
        let counters = try JSONDecoder().decode(SandboxStatsShape.self, from: Data(stats.stdout.utf8))
        #expect(counters.id == id && counters.framesIn >= 2 && counters.framesOut >= 2)
        let human = try h.ctl("stats", id)
        #expect(human.stdout.contains("frames in/out") && human.stdout.contains("drops"))

        let metrics = try TestHost.run(["curl", "-sS", "--unix-socket", h.socketPath, "http://gatewayd/metrics"])
        #expect(metrics.contains("gatewayd_sandbox_packets_total{sandbox=\"\(id)\",direction=\"in\"}"))

        let detach = try h.ctl("detach", id)
        #expect(detach.status == 0 && detach.stdout == "detached \(id)\n")
        #expect(!h.links(in: ns).contains(tap))
        #expect(h.stateFiles().isEmpty)
        #expect(try JSONDecoder().decode([SandboxView].self, from: Data(h.ctl("list", "--json").stdout.utf8)).isEmpty)
    }

    /// publish / routes / unpublish through gatewayctl: a server in the guest reached from the
    /// host's loopback, the route listed, and gone after unpublish.
    @Test func publishRoutesUnpublish() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let id = "pub-\(h.scratch.tag)"
        #expect(try h.ctl("attach", id, "--netns", ns).status == 0)
        let guestPort = Int.random(in: 8000...8999)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["ip", "netns", "exec", ns, "python3", "-c",
                            "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',\(guestPort)));s.listen()\nwhile True:\n c,_=s.accept();c.sendall(b'from the guest');c.close()"]
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        try TestHost.waitForListener(port: UInt16(guestPort), in: ns)

        let pub = try h.ctl("publish", id, String(guestPort))
        #expect(pub.status == 0, "\(pub.stderr)")
        let routes = try JSONDecoder().decode([RouteView].self, from: Data(h.ctl("routes", "--json").stdout.utf8))
        let route = try #require(routes.first)
        #expect(routes.count == 1 && route.sandbox == id && route.guestPort == guestPort && route.hostIP == "127.0.0.1")
        let got = try TestHost.run(["curl", "-sS", "--max-time", "5", "telnet://127.0.0.1:\(route.hostPort)"])
        #expect(got == "from the guest")
        // The client is in the flow log: let in, then its connection's end with the bytes.
        try waitFor(seconds: 5) {
            let records = (try? JSONDecoder().decode([FlowRecord].self, from: Data(h.ctl("flows", id, "--json").stdout.utf8))) ?? []
            return records.contains { $0.event == .end && $0.direction == "ingress" }
        }
        let records = try JSONDecoder().decode([FlowRecord].self, from: Data(h.ctl("flows", id, "--json").stdout.utf8))
        let admitted = records.first { $0.event == .flow && $0.direction == "ingress" }
        #expect(admitted?.verdict == .allowed && admitted?.destination?.hasPrefix("127.0.0.1:") == true, "\(records)")
        let ended = records.first { $0.event == .end && $0.direction == "ingress" }
        #expect(ended?.bytesOut == 14 && ended?.ending == .fin, "\(records)")

        let un = try h.ctl("unpublish", id, "\(route.hostPort):\(guestPort)")
        #expect(un.status == 0, "\(un.stderr)")
        #expect(try JSONDecoder().decode([RouteView].self, from: Data(h.ctl("routes", "--json").stdout.utf8)).isEmpty)
        let refused = try? TestHost.run(["curl", "-sS", "--max-time", "2", "telnet://127.0.0.1:\(route.hostPort)"])
        #expect(refused == nil, "the port is closed after unpublish")
    }

    struct SandboxStatsShape: Decodable {
        var id: String
        var framesIn: Int
        var framesOut: Int
    }

    @Test func eachErrorHasItsMessageAndExitCode() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let id = "err-\(h.scratch.tag)"
        #expect(try h.ctl("attach", id, "--netns", ns).status == 0)

        let unknown = try h.ctl("detach", "ghost")
        #expect(unknown.status == 2)
        #expect(unknown.stderr == "gatewayctl: no sandbox 'ghost' is attached (gatewayctl list shows those that are)\n")

        let taken = try h.ctl("attach", id, "--netns", ns)
        #expect(taken.status == 3)
        #expect(taken.stderr.contains("sandbox '\(id)' is already attached: detach it first or pick another ID"))

        let noNamespace = try h.ctl("attach", "other", "--netns", "gwtest-\(h.scratch.tag)-missing")
        #expect(noNamespace.status == 2)
        #expect(
            noNamespace.stderr.contains(
                "network namespace 'gwtest-\(h.scratch.tag)-missing' does not exist: create it first"))

        // The next sandbox takes address block 1, whose TAP name a leftover device holds.
        let crowded = try h.scratch.namespace().name!
        try TestHost.run(["ip", "-n", crowded, "link", "add", "gwt-1", "type", "bridge"])
        let deviceTaken = try h.ctl("attach", "crowded-\(h.scratch.tag)", "--netns", crowded)
        #expect(deviceTaken.status == 3)
        #expect(deviceTaken.stderr.contains("namespace '\(crowded)' already has a device gwt-1"), "\(deviceTaken.stderr)")
        #expect(try h.ctl("list").stdout.contains("crowded-") == false)

        let badSpec = try h.ctl("publish", id, "80:0/tcp")
        #expect(badSpec.status == 4)
        #expect(badSpec.stderr.contains("bad port SPEC '80:0/tcp'"))

        let badMAC = try h.ctl("attach", "m", "--netns", ns, "--mac", "nope")
        #expect(badMAC.status == 4 && badMAC.stderr.contains("MAC 'nope' is not a unicast MAC address"))

        let unknownStats = try h.ctl("stats", "ghost")
        #expect(unknownStats.status == 2)

        let path = h.directory + "/nobody.sock"
        let down = try runProgram(BuiltProducts.gatewayctl, ["list", "--control", path])
        #expect(down.status == 69)
        #expect(
            down.stderr.hasPrefix(
                "gatewayctl: cannot reach gatewayd at \(path): is it running? start it with `gatewayd` or set --control"
            ))
        // The environment variable names the socket too.
        let viaEnvironment = try runProgram(
            BuiltProducts.gatewayctl, ["list"], environment: ["GATEWAYD_CONTROL": h.socketPath])
        #expect(viaEnvironment.status == 0 && viaEnvironment.stdout.contains(id))
    }

    @Test func badConfigNamesKeyAndLine() throws {
        let dir = "/tmp/gwctl-cfg-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "shards = 2\n\n[limits]\ntcp-relay = 5\n".write(toFile: dir + "/g.toml", atomically: true, encoding: .utf8)
        let r = try runProgram(
            BuiltProducts.gatewayd,
            ["--config", dir + "/g.toml", "--control", dir + "/c.sock", "--state-dir", dir + "/s"])
        #expect(r.status == 78)
        #expect(
            r.stderr.hasPrefix(
                "gatewayd: \(dir)/g.toml:4: key 'limits.tcp-relay': unknown key: did you mean 'tcp-relays'?"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/c.sock"))
    }

    @Test func sigtermDetachesEverySandbox() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let namespaces = [try h.scratch.namespace().name!, try h.scratch.namespace().name!]
        for (i, ns) in namespaces.enumerated() {
            #expect(try h.ctl("attach", "t\(i)-\(h.scratch.tag)", "--netns", ns).status == 0)
            #expect(h.links(in: ns).contains { $0.hasPrefix("gwt-") })
        }
        #expect(h.stateFiles().count == 2)
        #expect(h.stop(SIGTERM) == 0)
        for ns in namespaces { #expect(!h.links(in: ns).contains { $0.hasPrefix("gwt-") }, "\(h.links(in: ns))") }
        #expect(h.stateFiles().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: h.socketPath))
        #expect(h.log().contains("detached sandbox t0-\(h.scratch.tag)"))
    }

    @Test func killNineThenRestartRestoresOrCleansUp() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let kept = try h.scratch.namespace().name!
        let lost = try h.scratch.namespace().name!
        let keptID = "k-\(h.scratch.tag)"
        let lostID = "l-\(h.scratch.tag)"
        #expect(try h.ctl("attach", keptID, "--netns", kept).status == 0)
        #expect(try h.ctl("attach", lostID, "--netns", lost).status == 0)
        let before = try JSONDecoder().decode([SandboxView].self, from: Data(try h.ctl("list", "--json").stdout.utf8))
        let keptMAC = try #require(before.first { $0.id == keptID }?.mac)

        h.stop(SIGKILL)
        // The devices went with the process's fds; the state files stayed.
        #expect(!h.links(in: kept).contains { $0.hasPrefix("gwt-") })
        #expect(h.stateFiles() == ["\(keptID).json", "\(lostID).json"])
        try TestHost.run(["ip", "netns", "delete", lost])

        try h.start()
        let after = try JSONDecoder().decode([SandboxView].self, from: Data(try h.ctl("list", "--json").stdout.utf8))
        #expect(after.map(\.id) == [keptID])
        let restored = try #require(after.first)
        #expect(restored.mac == keptMAC)
        #expect(h.links(in: kept).contains(restored.tap))
        #expect(h.stateFiles() == ["\(keptID).json"])
        let log = h.log()
        #expect(log.contains("restored sandbox \(keptID) in namespace \(kept)"))
        #expect(log.contains("not restoring sandbox \(lostID): its namespace \(lost) no longer exists"))
        try TestHost.run(["ip", "netns", "exec", kept, "ping", "-c", "1", "-W", "2", restored.gatewayIPv4])
        #expect(h.stop(SIGTERM) == 0)
        #expect(!h.links(in: kept).contains { $0.hasPrefix("gwt-") })
    }

    @Test func startupSweepsStaleDevices() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.tagHostDevices()
        let tag = h.scratch.tag
        // A persistent VM TAP and a bridge such as a crashed run of this daemon leaves.
        let stale = ["gwv-\(tag)-7", "gwb-\(tag)-12"]
        try TestHost.run(["ip", "tuntap", "add", "dev", stale[0], "mode", "tap"])
        try TestHost.run(["ip", "link", "add", stale[1], "type", "bridge"])
        // Under the same prefixes but not names this daemon makes: another gateway's (other
        // tag), a hand-made one, and one under no sweep prefix at all.
        let bystanders = ["gwv-\(tag)x-1", "gwb-\(tag)-lab", h.scratch.deviceName("b", "keep")]
        defer { for name in bystanders + stale { try? h.scratch.host.deleteLink(named: name) } }
        for name in bystanders { try TestHost.run(["ip", "link", "add", name, "type", "bridge"]) }
        try h.start()
        let names = try h.scratch.host.links().map(\.name)
        for name in stale {
            #expect(!names.contains(name))
            #expect(h.log().contains("removed stale device \(name)"))
        }
        for name in bystanders { #expect(names.contains(name), "\(name) must survive the sweep") }
    }

    @Test func captureWhileTheGuestPingsReadsInTcpdump() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let id = "cap-\(h.scratch.tag)"
        let view = try JSONDecoder().decode(
            SandboxView.self, from: Data(try h.ctl("attach", id, "--netns", ns, "--json").stdout.utf8))
        let file = h.directory + "/capture.pcap"
        let capture = Process()
        capture.executableURL = URL(fileURLWithPath: BuiltProducts.gatewayctl)
        capture.arguments = ["capture", id, "--control", h.socketPath, "-w", file, "--count", "6"]
        let err = Pipe()
        capture.standardError = err
        try capture.run()
        // The capture is registered once the pcap header has been written.
        _ = eventually(seconds: 10) { (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0 >= 24 }
        try TestHost.run(["ip", "netns", "exec", ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", view.gatewayIPv4])
        _ = eventually(seconds: 20) { !capture.isRunning }
        if capture.isRunning { capture.terminate() }
        capture.waitUntilExit()
        #expect(capture.terminationStatus == 0)
        #expect(
            String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                == "captured 6 frame(s) to \(file)\n")

        let text = try TestHost.run(["tcpdump", "-nr", file])
        #expect(text.contains("\(view.guestIPv4) > \(view.gatewayIPv4): ICMP echo request"), "\(text)")
        #expect(text.contains("\(view.gatewayIPv4) > \(view.guestIPv4): ICMP echo reply"), "\(text)")
        #expect(text.split(separator: "\n").count == 6)
        // A capture of an unknown sandbox fails before writing anything useful.
        let unknown = try h.ctl("capture", "ghost", "-w", h.directory + "/none.pcap", "--count", "1")
        #expect(unknown.status == 2)
    }

    @Test func hundredAttachDetachCyclesLeakNoDevicesOrDescriptors() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let client = ControlClient(socketPath: h.socketPath)
        let id = "cyc-\(h.scratch.tag)"
        // One cycle first, so lazily opened descriptors (netlink sockets, pools) exist before counting.
        _ = try client.call("POST", "/v1/sandboxes", body: AttachRequest(id: id, netns: ns), as: SandboxView.self)
        _ = try client.call("DELETE", "/v1/sandboxes/\(id)", as: [String: AnyCodable].self)
        // The daemon closes each control connection just after the client has read the answer.
        let fdsBefore = h.settledFileCount()
        #expect(fdsBefore > 5, "no /proc/\(h.workerPID)/fd to count")
        let linksBefore = h.links(in: ns)
        for _ in 0..<100 {
            let view = try client.call(
                "POST", "/v1/sandboxes", body: AttachRequest(id: id, netns: ns), as: SandboxView.self)
            #expect(h.links(in: ns).contains(view.tap))
            _ = try client.call("DELETE", "/v1/sandboxes/\(id)", as: [String: AnyCodable].self)
        }
        #expect(h.settledFileCount(atMost: fdsBefore) == fdsBefore)
        #expect(h.links(in: ns) == linksBefore)
        #expect(h.stateFiles().isEmpty)
    }

    @Test func detachedSandboxesGiveTheirMemoryBack() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let client = ControlClient(socketPath: h.socketPath)
        let namespaces = try (0..<100).map { _ in try h.scratch.namespace().name! }
        func attachAll() throws {
            for (i, ns) in namespaces.enumerated() {
                _ = try client.call(
                    "POST", "/v1/sandboxes", body: AttachRequest(id: "mem\(i)-\(h.scratch.tag)", netns: ns),
                    as: SandboxView.self)
            }
        }
        func detachAll() throws {
            for i in namespaces.indices {
                _ = try client.call("DELETE", "/v1/sandboxes/mem\(i)-\(h.scratch.tag)", as: [String: AnyCodable].self)
            }
        }
        // A first round so that what stays for the daemon's life (pools, caches) is in place.
        try attachAll()
        try detachAll()
        // Detach answers before the devices are gone and trims a moment after a burst: the
        // baseline is taken once both are done.
        Thread.sleep(forTimeInterval: 1)
        let before = try h.residentKilobytes()
        try attachAll()
        let attached = try h.residentKilobytes()
        try detachAll()
        // Detach trims freed memory a moment later, once per burst.
        var after = 0
        _ = try eventually(seconds: 3, every: 0.1) {
            after = try h.residentKilobytes()
            return after - before < (attached - before) / 2
        }
        // Each idle sandbox holds tens of kilobytes (buffers, stack state); once they are gone
        // most of that must leave the process, not stay cached in malloc's arenas.
        #expect(attached - before > 400, "100 sandboxes should take more than 400 kB (\(before) → \(attached) kB)")
        #expect(after - before < (attached - before) / 2, "RSS \(before) → \(attached) → \(after) kB")
    }
}

/// Any JSON value, for answers whose shape the test does not care about.
struct AnyCodable: Decodable {
    init(from decoder: any Decoder) throws {}
}
