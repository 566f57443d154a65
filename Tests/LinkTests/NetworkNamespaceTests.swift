// Named and unnamed namespaces: created as `ip netns` does, visible to it, opened by name or fd,
// and entered only on a thread of their own.
import GatewayTestSupport
import Foundation
import Testing

@testable import Link

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct NetworkNamespaceTests {
    @Test func namedNamespacesAreSharedWithIproute2() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try scratch.namespace()
        let name = try #require(ns.name)
        #expect(try TestHost.run(["ip", "netns", "list"]).contains(name))
        // A bridge made through our socket shows in `ip -n`, and the other way round.
        let inside = try NetlinkSocket(in: ns)
        let ours = scratch.deviceName("b", "o")
        try inside.createBridge(named: ours)
        #expect(try TestHost.run(["ip", "-n", name, "link", "show", ours]).contains(ours))
        let theirs = scratch.deviceName("b", "i")
        try TestHost.run(["ip", "-n", name, "link", "add", theirs, "type", "bridge"])
        #expect(try inside.link(named: theirs).kind == "bridge")
        // Opening by name twice gives the same namespace.
        #expect(try NetworkNamespace(named: name).isSame(as: ns))
        // A new namespace has only loopback.
        let fresh = try NetworkNamespace.createUnnamed()
        #expect(try NetlinkSocket(in: fresh).links().map(\.name) == ["lo"])
    }

    @Test func creatingATakenNameFailsAndDeletingRemovesIt() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try scratch.namespace()
        let name = try #require(ns.name)
        do {
            _ = try NetworkNamespace.create(named: name)
            Issue.record("created twice")
        } catch {
            #expect(error.code == .nameTaken)
        }
        try NetworkNamespace.delete(named: name)
        #expect(!(try TestHost.run(["ip", "netns", "list"])).contains(name))
        #expect(throws: LinkError.self) { _ = try NetworkNamespace(named: name) }
        // The open object still works: the namespace lives while someone holds it.
        #expect(try NetlinkSocket(in: ns).links().map(\.name) == ["lo"])
    }

    /// perform runs elsewhere: the caller's thread is never switched.
    @Test func performLeavesTheCallingThreadAlone() throws {
        let ns = try NetworkNamespace.createUnnamed()
        let before = try NetworkNamespace.current()
        let seenInside = try ns.perform { () throws(LinkError) -> Bool in try NetworkNamespace.current().isSame(as: ns) }
        #expect(seenInside)
        #expect(try NetworkNamespace.current().isSame(as: before))
        #expect(!before.isSame(as: ns))
        // Errors thrown inside come back out.
        do {
            try ns.perform { () throws(LinkError) in throw LinkError(.system, operation: "probe", subject: "inside", reason: "test") }
            Issue.record("no error")
        } catch {
            #expect(error.operation == "probe")
        }
    }
}
