// The privileged supervisor's side of privilege separation: each request from the worker is
// checked against the pools, device names, namespaces and paths before anything is done, and
// descriptors cross the socket to the worker's client.
import Foundation
import Gateway
@testable import GatewayControl
import GatewayTestSupport
import Link
import Testing
import Wire

@Suite struct PrivilegeServerTests {
    static let plan = AddressPlan()

    static func server(flowLog: String? = nil, shardNice: Int = 0) -> PrivilegeServer {
        var c = DaemonConfiguration()
        c.flowLogPath = flowLog
        c.shardNice = shardNice
        // Never the host's devices: other tests' run beside these.
        c.sweepPrefixes = []
        return PrivilegeServer(configuration: c, configPath: nil)
    }

    /// Block `block`'s own TAP, in `namespace`, with the block's addresses unless changed.
    static func link(
        _ namespace: String, block: Int = 5, device: String? = nil, guest: String? = nil, gateway: String? = nil,
        expectedIdentity: String? = nil
    ) -> PrivilegeRequest {
        // Any block's addresses for one outside the pool (which has none).
        let a = plan.assignment(index: (0..<plan.capacity).contains(block) ? block : 5)
        return .openNamespaceLink(
            .init(
                sandbox: "t", namespace: namespace, device: device ?? InterfaceName.make(.gatewayTAP, id: String(block)),
                addressBlock: block, mtu: 1500, guestMAC: nil, guestIPv4: guest ?? a.guestIPv4.description,
                prefixLength: a.prefixLength, gatewayIPv4: gateway ?? a.gatewayIPv4.description,
                expectedIdentity: expectedIdentity))
    }

    /// The refusal's message; fails the test when the request was carried out.
    static func refusal(_ request: PrivilegeRequest, server: PrivilegeServer = server()) -> String {
        let answer = server.handle(request)
        if answer.descriptor >= 0 { close(answer.descriptor) }
        #expect(answer.reply.error != nil, "\(request.name) was carried out")
        return answer.reply.error?.message ?? ""
    }

    @Test func refusesOurNamesOfAnotherBlockAndNamesTheKernelWouldNot() throws {
        try #require(TestHost.canCreateDevices)
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try scratch.namespace()
        let name = try #require(ns.name)
        for device in ["gwt-6", "gwb-5", "gwv-5", "gwt-5x"] {
            let message = Self.refusal(Self.link(name, device: device))
            #expect(message.contains("is not block 5's"), "\(device): \(message)")
        }
        for device in ["eth0:1", "a b", "", "..", "x/y", String(repeating: "e", count: 16)] {
            let message = Self.refusal(Self.link(name, device: device))
            #expect(message.contains("not a valid interface name"), "\(device): \(message)")
        }
        let nl = try NetlinkSocket(in: ns)
        #expect(try nl.links().map(\.name) == ["lo"], "a refused request made a device")
    }

    @Test func refusesNamespacesOutsideRunNetns() {
        for name in ["../../proc/1/ns/net", "a/b", "..", "", "."] {
            let message = Self.refusal(Self.link(name))
            #expect(message.contains("is not a namespace name"), "\(name): \(message)")
        }
        // A name that `ip netns` does not know.
        let missing = Self.server().handle(Self.link("gwtest-none-\(UInt32.random(in: 0...UInt32.max))"))
        #expect(missing.reply.error?.message.contains("does not exist") == true)
        #expect(missing.descriptor < 0)
    }

    @Test func opensAPathOnlyForAGuestsNamespaceThatIsStillTheSame() throws {
        try #require(TestHost.canCreateDevices)
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        // The host's own namespace, by any path: never.
        for path in ["/proc/\(getpid())/ns/net", "/proc/self/ns/net"] {
            let message = Self.refusal(Self.link(path, device: "eth9"))
            #expect(message.contains("host's own network namespace"), "\(path): \(message)")
        }
        #expect(!(try NetlinkSocket().links()).map(\.name).contains("eth9"))
        let ns = try scratch.namespace()
        let path = NetworkNamespace.runDirectory + "/" + (try #require(ns.name))
        // Another namespace than the one the sandbox was attached to: not found, and nothing made.
        let moved = Self.server().handle(Self.link(path, device: "eth0", expectedIdentity: "1:2"))
        #expect(moved.descriptor < 0)
        #expect(moved.reply.error?.code == GatewayError.Code.namespaceNotFound.rawValue)
        #expect(moved.reply.error?.message.contains("not the one it was attached to") == true)
        let nl = try NetlinkSocket(in: ns)
        #expect(try nl.links().map(\.name) == ["lo"])
        // The same namespace by path, with a guest's own name: made, addressed, handed over.
        let answer = Self.server().handle(Self.link(path, device: "eth0", expectedIdentity: ns.identity.description))
        #expect(answer.reply.error == nil, "\(answer.reply.error?.message ?? "")")
        #expect(answer.reply.link?.device == "eth0")
        #expect(answer.reply.link?.namespaceIdentity == ns.identity.description)
        #expect(answer.descriptor >= 0)
        #expect(try nl.links().map(\.name).contains("eth0"))
        if answer.descriptor >= 0 { close(answer.descriptor) }
    }

    @Test func refusesAddressesOutsideThePool() {
        let other = Self.plan.assignment(index: 6)
        let cases: [(String?, String?)] = [
            ("198.18.0.2", nil), (nil, "198.18.0.1"), (other.guestIPv4.description, nil),
            (nil, other.gatewayIPv4.description), ("not-an-address", nil),
        ]
        for (guest, gateway) in cases {
            let message = Self.refusal(Self.link("gwtest-x", guest: guest, gateway: gateway))
            #expect(
                message.contains("is not block 5's of the pool") || message.contains("malformed or incomplete address"),
                "\(guest ?? "-") via \(gateway ?? "-"): \(message)")
        }
        for block in [-1, Self.plan.capacity, Int.max] {
            #expect(Self.refusal(Self.link("gwtest-x", block: block, device: "gwt-0")).contains("outside the pool"))
            #expect(Self.refusal(.removeVMLink(addressBlock: block)).contains("outside the pool"))
            #expect(
                Self.refusal(.createVMLink(.init(sandbox: "t", addressBlock: block, mtu: 1500, reuse: false)))
                    .contains("outside the pool"))
        }
    }

    @Test func refusesPortsThatNeedNoPrivilegeAndFilesItDoesNotName() {
        #expect(Self.refusal(.bindPort(address: "127.0.0.1", port: 8080, protocol: "tcp")).contains("not below 1024"))
        #expect(Self.refusal(.bindPort(address: "127.0.0.1", port: 0, protocol: "tcp")).contains("not below 1024"))
        #expect(Self.refusal(.bindPort(address: "localhost", port: 80, protocol: "tcp")).contains("not an IP address"))
        #expect(Self.refusal(.bindPort(address: "127.0.0.1", port: 80, protocol: "sctp")).contains("protocol"))
        let server = Self.server(flowLog: "/tmp/gw-flows-\(UInt32.random(in: 0...UInt32.max)).log")
        #expect(Self.refusal(.openFlowLog(path: "/etc/shadow"), server: server).contains("not the configured flow log"))
        #expect(Self.refusal(.openFlowLog(path: "/etc/shadow")).contains("not the configured flow log"))
    }

    @Test func setsOnlyTheShardNiceOnlyForTheWorkersThreads() {
        let server = Self.server(shardNice: -10)
        let me = getpid()
        // Not the configured value (-10), or a thread of another process than the asking worker.
        #expect(Self.refusal(.setThreadNice(thread: me, nice: -20), server: server).contains("not the configured"))
        let answer = server.handle(.setThreadNice(thread: 1, nice: -10), worker: me)
        #expect(answer.reply.error?.message.contains("is not one of the worker's") == true)
        #expect(server.handle(.setThreadNice(thread: me, nice: -10), worker: 0).reply.error != nil)
    }

    @Test func opensTheBlocksOwnDeviceAndHandsItOver() throws {
        try #require(TestHost.canCreateDevices)
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try scratch.namespace()
        let name = try #require(ns.name)
        let answer = Self.server().handle(Self.link(name))
        #expect(answer.reply.error == nil, "\(answer.reply.error?.message ?? "")")
        let link = try #require(answer.reply.link)
        #expect(link.device == "gwt-5")
        #expect(answer.descriptor >= 0)
        let nl = try NetlinkSocket(in: ns)
        let addresses = try nl.addresses(ofLink: "gwt-5").map(\.address.description)
        #expect(addresses.contains(Self.plan.assignment(index: 5).guestIPv4.description))
        // The descriptor is the device's only queue: closing it removes the device.
        close(answer.descriptor)
        #expect(eventually(seconds: 5) { (try? nl.link(named: "gwt-5")) == nil })
    }

    @Test func clientAndServerPassDescriptorsAndRefusals() throws {
        let path = "/tmp/gw-flows-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(path) }
        let server = Self.server(flowLog: path)
        let (mine, theirs) = try PrivilegeChannel.pair()
        let served = Thread {
            let channel = PrivilegeChannel(fd: mine)
            while server.serveOne(channel, log: { _, _, _ in }).open {}
            close(mine)
        }
        served.start()
        let client = PrivilegeClient(descriptor: theirs)
        // A descriptor crosses: what the worker writes lands in the file root opened.
        let log = try client.openFlowLog(path: path)
        let line = Array("{\"flow\":1}\n".utf8)
        #expect(write(log.rawValue, line, line.count) == line.count)
        log.close()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "{\"flow\":1}\n")
        // A refusal arrives as the gateway error it is, and the channel goes on serving.
        #expect(throws: GatewayError.self) { try client.openFlowLog(path: "/etc/passwd") }
        do {
            _ = try client.openFlowLog(path: "/etc/passwd")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("not the configured flow log"))
        }
        #expect(client.vmLinkSurvives(addressBlock: 5) == false)
        // Bytes that are no request are refused, and the next request is still answered.
        let garbage = Array("{\"nonsense\":".utf8)
        #expect(send(theirs, garbage, garbage.count, 0) == garbage.count)
        var reply = [UInt8](repeating: 0, count: 4096)
        let n = recv(theirs, &reply, reply.count, 0)
        #expect(n > 0 && String(decoding: reply[0..<max(n, 0)], as: UTF8.self).contains("refused"))
        #expect(try client.sweepStaleDevices(keeping: []) == [])
        shutdown(theirs, Int32(SHUT_RDWR))
        #expect(eventually(seconds: 5) { served.isFinished })
        close(theirs)
    }
}
