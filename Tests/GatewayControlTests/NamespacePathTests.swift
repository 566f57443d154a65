// Attach by namespace path with a chosen interface name, as container runtimes do it: a
// namespace held only by a process (/proc/PID/ns/net), a guest interface called eth0, a restart
// that finds the same namespace, and one that finds the process gone.
import Foundation
import GatewayControl
import GatewayTestSupport
import Link
import Testing

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct NamespacePathTests {
    /// A process in a network namespace of its own that nobody named: what a container is to us.
    static func container(_ background: GatewayTestSupport.BackgroundProcesses) throws -> (process: Process, path: String) {
        let host = try NetworkNamespace.current().identity
        let process = try background.start(["unshare", "--net", "sleep", "600"])
        let path = "/proc/\(process.processIdentifier)/ns/net"
        // unshare switches namespace before it runs sleep; until then the path is still the host's.
        let ready = eventually(seconds: 5, every: 0.02) {
            guard let ns = try? NetworkNamespace(path: path) else { return false }
            return ns.identity != host
        }
        try #require(ready, "unshare did not enter a namespace of its own")
        return (process, path)
    }

    static func inside(_ path: String, _ command: [String]) throws -> String {
        try TestHost.run(["nsenter", "--net=\(path)"] + command)
    }

    /// Attaches sandbox `id` into the namespace at `path` as eth0, as a container runtime would.
    static func attachAsEth0(_ h: DaemonHarness, _ id: String, _ path: String) throws -> SandboxView {
        let attached = try h.ctl("attach", id, "--netns", path, "--ifname", "eth0", "--json")
        try #require(attached.status == 0, "\(attached.stderr)")
        return try JSONDecoder().decode(SandboxView.self, from: Data(attached.stdout.utf8))
    }

    func list(_ h: DaemonHarness) throws -> [SandboxView] {
        try JSONDecoder().decode([SandboxView].self, from: Data(try h.ctl("list", "--json").stdout.utf8))
    }

    @Test func attachByPathNamesTheInterfaceAndCarriesTraffic() throws {
        let h = try DaemonHarness()
        let background = GatewayTestSupport.BackgroundProcesses()
        defer {
            background.killAll()
            h.tearDown()
        }
        try h.start()
        let (_, path) = try Self.container(background)
        let id = "np-\(h.scratch.tag)"
        let view = try Self.attachAsEth0(h, id, path)
        #expect(view.tap == "eth0")
        #expect(view.namespace == path)

        // The kernel inside sees eth0 with the sandbox's address and a default route through the gateway.
        let addresses = try Self.inside(path, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        #expect(addresses.contains("\(view.guestIPv4)/\(view.prefixLength)"), "\(addresses)")
        let route = try Self.inside(path, ["ip", "-4", "route", "show", "default"])
        #expect(route.contains("via \(view.gatewayIPv4) dev eth0"), "\(route)")
        let link = try Self.inside(path, ["ip", "-o", "link", "show", "dev", "eth0"])
        #expect(link.contains(view.mac), "\(link)")
        // Nothing of the sandbox's in the host namespace.
        #expect(!(try TestHost.run(["ip", "-o", "link", "show"])).contains("eth0@") )

        // The guest reaches a server on the host's loopback through the gateway address.
        let port = Int(TestHost.freePort())
        let www = h.directory + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "through eth0\n".write(toFile: www + "/file", atomically: true, encoding: .utf8)
        _ = try background.start(["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", www])
        try TestHost.waitForListener(port: UInt16(port))
        let fetched = try Self.inside(path, ["curl", "-sS", "--max-time", "10", "http://\(view.gatewayIPv4):\(port)/file"])
        #expect(fetched == "through eth0\n")

        // One sandbox per namespace, by path as by name.
        let again = try h.ctl("attach", id + "-2", "--netns", path, "--ifname", "eth1")
        #expect(again.status != 0)
        #expect(again.stderr.contains("already has sandbox '\(id)'"), "\(again.stderr)")
        // A namespace whose own eth0 is taken by another device: refused as such, and that device kept.
        let (_, other) = try Self.container(background)
        _ = try Self.inside(other, ["ip", "link", "add", "eth0", "type", "bridge"])
        let taken = try h.ctl("attach", id + "-3", "--netns", other, "--ifname", "eth0")
        #expect(taken.status != 0)
        #expect(taken.stderr.contains("already has a device eth0"), "\(taken.stderr)")
        #expect(try Self.inside(other, ["ip", "-d", "-o", "link", "show", "dev", "eth0"]).contains("bridge"))

        #expect(try h.ctl("detach", id).status == 0)
        let gone = eventually(seconds: 5) {
            (try? Self.inside(path, ["ip", "-o", "link", "show"]))?.contains("eth0") == false
        }
        #expect(gone, "eth0 outlived the detach")
        #expect(h.stateFiles().isEmpty)
    }

    @Test func badPathsAndNamesAreRefusedClearly() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let tag = h.scratch.tag
        // No such namespace: the process is not there.
        let missing = try h.ctl("attach", "nx-\(tag)", "--netns", "/proc/999999999/ns/net")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("does not exist: is its process still running?"), "\(missing.stderr)")
        // A regular file that is no namespace, and a FIFO that would block an open.
        let plain = h.directory + "/plain"
        try "x".write(toFile: plain, atomically: true, encoding: .utf8)
        let notNamespace = try h.ctl("attach", "nf-\(tag)", "--netns", plain)
        #expect(notNamespace.status != 0)
        #expect(notNamespace.stderr.contains("not a namespace file"), "\(notNamespace.stderr)")
        let fifo = h.directory + "/fifo"
        #expect(mkfifo(fifo, 0o644) == 0)
        let blocked = try h.ctl("attach", "nb-\(tag)", "--netns", fifo, timeout: 20)
        #expect(blocked.status != 0)
        #expect(blocked.stderr.contains("not a namespace file"), "\(blocked.stderr)")
        // The host's own namespace: a device, address and default route there would be the host's.
        let host = try h.ctl("attach", "nh-\(tag)", "--netns", "/proc/\(h.pid)/ns/net", "--ifname", "eth9")
        #expect(host.status != 0)
        #expect(host.stderr.contains("host's own network namespace"), "\(host.stderr)")
        #expect(!(try TestHost.run(["ip", "-o", "link", "show"])).contains("eth9"))
        // Names the kernel would refuse, and a name for a VM.
        let ns = try h.scratch.namespace().name!
        let badName = try h.ctl("attach", "ni-\(tag)", "--netns", ns, "--ifname", "eth0:1")
        #expect(badName.status != 0)
        #expect(badName.stderr.contains("interface name 'eth0:1' is not valid"), "\(badName.stderr)")
        let vm = try h.ctl("attach", "nv-\(tag)", "--vm", "--ifname", "eth0")
        #expect(vm.status != 0)
        #expect(try list(h).isEmpty)
    }

    @Test func aRestartFindsTheSameNamespaceOrLetsTheSandboxGo() throws {
        let h = try DaemonHarness()
        let background = GatewayTestSupport.BackgroundProcesses()
        defer {
            background.killAll()
            h.tearDown()
        }
        try h.start()
        let (holder, path) = try Self.container(background)
        let id = "nr-\(h.scratch.tag)"
        let view = try Self.attachAsEth0(h, id, path)

        // kill -9: the device goes with the worker; the restart makes eth0 again in that namespace.
        _ = h.stop(SIGKILL)
        try h.start()
        let restored = try #require(try list(h).first { $0.id == id })
        #expect(restored.tap == "eth0")
        #expect(restored.guestIPv4 == view.guestIPv4)
        #expect(restored.mac == view.mac)
        let addresses = try Self.inside(path, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        #expect(addresses.contains(view.guestIPv4), "\(addresses)")

        // The container ends while gatewayd is down; whatever process has that PID next, the
        // sandbox is not restored into it, and its state file goes.
        _ = h.stop(SIGKILL)
        // SIGKILL: the test runner's children may inherit a mask that blocks SIGTERM.
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        try h.start()
        #expect(try list(h).isEmpty)
        #expect(h.stateFiles().isEmpty)
        #expect(h.log().contains("not restoring sandbox \(id)"), "\(h.log().suffix(2000))")
    }
}
