// Shutdown and detach with many sandboxes: SIGTERM with 1,000 attached ends within a generous
// bound and leaves no device; a sandbox detached and attached again at once in the same namespace
// (same ID, same address block, same device name) works every time, although its old device is
// still being removed when the detach answers.
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"), .serialized)
struct ShutdownScaleTests {
    @Test func sigtermWithAThousandSandboxes() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        let spaces = try NamespaceBatch(tag: h.scratch.tag, count: 1000)
        defer { spaces.remove() }
        h.launcher = ["prlimit", "--nofile=8192:8192"]
        try h.start()
        for (i, ns) in spaces.names.enumerated() {
            let (status, text) = try h.attachOverAPI("s\(i)", namespace: ns)
            try #require(status == 201, "attach #\(i + 1): \(status) \(text)")
        }
        #expect(spaces.withGatewayDevices().count == 1000)
        let start = Date()
        let status = h.stop(SIGTERM, timeout: 30)
        let seconds = Date().timeIntervalSince(start)
        print("SIGTERM with 1000 sandboxes: exited after \(String(format: "%.2f", seconds)) s")
        #expect(status == 0, "gatewayd did not exit within 30 s of SIGTERM")
        #expect(seconds < 30)
        #expect(spaces.withGatewayDevices().isEmpty)
        #expect(h.log().contains("stopped"))
    }

    /// Detach answers before the kernel has removed the device; an attach right after, in the
    /// same namespace with the same ID, must not collide with the old device (its name, its
    /// default route), even when that device waits behind others to be closed. The address
    /// block comes back at once: the first attach after a detach gets the lowest free one.
    @Test func detachThenAttachAgainAtOnce() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let others = try NamespaceBatch(tag: h.scratch.tag, count: 20)
        defer { others.remove() }
        for (i, other) in others.names.enumerated() { #expect(try h.attachOverAPI("o\(i)", namespace: other).0 == 201) }
        let (first, text) = try h.attachOverAPI("again", namespace: ns)
        try #require(first == 201, "\(text)")
        let client = ControlClient(socketPath: h.socketPath)
        for round in 0..<10 {
            // Twenty detaches first, so that the old device of "again" waits behind theirs for
            // a thread to close it: the new one must not collide with it.
            for i in 0..<20 { #expect(try client.send("DELETE", "/v1/sandboxes/o\(i)").0 == 200) }
            let (status, _) = try client.send("DELETE", "/v1/sandboxes/again")
            #expect(status == 200)
            // The ID is free at once (the lowest free address block goes to it).
            let (attach, answer) = try h.attachOverAPI("again", namespace: ns)
            try #require(attach == 201, "round \(round): \(answer)")
            for (i, other) in others.names.enumerated() {
                let (code, text) = try h.attachOverAPI("o\(i)", namespace: other)
                #expect(code == 201, "\(text)")
            }
        }
        // One device in the namespace, and the guest reaches its gateway through it.
        #expect(h.links(in: ns).filter { $0.hasPrefix("gwt-") }.count == 1)
        try TestHost.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", h.addresses(of: "again").gateway])
        // Every device closed: the descriptors come back (a TAP and nothing else per sandbox).
        #expect(try client.send("DELETE", "/v1/sandboxes/again").0 == 200)
        #expect(eventually { !h.links(in: ns).contains { $0.hasPrefix("gwt-") } })
        #expect(h.stop(SIGTERM, timeout: 30) == 0)
        #expect(others.withGatewayDevices().isEmpty)
    }
}
