// gatewayd-cni's logic without a gatewayd: environments and configurations as runtimes write
// them, a gatewayd answered from memory, and the JSON the runtime would read back.
import CNI
import Foundation
import Gateway
import GatewayControl
import Testing

/// A gatewayd that keeps its sandboxes in a dictionary and records what it was asked.
final class RecordedGatewayd: GatewaydCalls, @unchecked Sendable {
    var attached: [String: SandboxView] = [:]
    var requests: [AttachRequest] = []
    var detached: [String] = []
    /// Thrown by every call when set.
    var failure: ControlError?

    func attach(_ request: AttachRequest) throws(ControlError) -> SandboxView {
        requests.append(request)
        if let failure { throw failure }
        guard attached[request.id] == nil else { throw ControlError(.sandboxExists, "sandbox '\(request.id)' exists") }
        var view = CNIPluginTests.view(id: request.id)
        view.tap = request.ifname ?? "gwt-0"
        view.namespace = request.netns
        if let mac = request.mac { view.mac = mac }
        attached[request.id] = view
        return view
    }

    func sandbox(_ id: String) throws(ControlError) -> SandboxView {
        if let failure { throw failure }
        guard let view = attached[id] else { throw ControlError(.unknownSandbox, "no sandbox '\(id)' is attached") }
        return view
    }

    func sandboxes() throws(ControlError) -> [SandboxView] {
        if let failure { throw failure }
        return attached.values.sorted { $0.id < $1.id }
    }

    func detach(_ id: String) throws(ControlError) {
        if let failure { throw failure }
        guard attached.removeValue(forKey: id) != nil else {
            throw ControlError(.unknownSandbox, "no sandbox '\(id)' is attached")
        }
        detached.append(id)
    }

    func health() throws(ControlError) {
        if let failure { throw failure }
    }
}

struct CNIPluginTests {
    static let netns = "/run/netns/cni-1234"
    static let containerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

    /// A sandbox as gatewayd answers it.
    static func view(id: String) -> SandboxView {
        let json = """
            {"id": "\(id)", "mode": "netns", "shard": 0, "tap": "eth0", "namespace": "\(netns)",
             "mac": "62:13:1c:88:05:e8", "gatewayMAC": "02:47:57:00:00:00",
             "guestIPv4": "10.88.0.2", "gatewayIPv4": "10.88.0.1", "prefixLength": 28,
             "guestIPv6": "fd47:5700::6013:1cff:fe88:5e8", "guestIPv6Prefix": "fd47:5700::/64",
             "gatewayIPv6": "fd47:5700::1", "mtu": 1500, "policy": "host-only", "dhcp": false, "ports": []}
            """
        return try! JSONDecoder().decode(SandboxView.self, from: Data(json.utf8))
    }

    static func environment(_ command: String, _ extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "CNI_COMMAND": command, "CNI_CONTAINERID": containerID, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin",
        ]
        env.merge(extra) { $1 }
        return env
    }

    static func config(_ fields: String = "", version: String = "1.0.0") -> [UInt8] {
        let extra = fields.isEmpty ? "" : ", " + fields
        return Array(#"{"cniVersion": "\#(version)", "name": "gw-net", "type": "gatewayd-cni"\#(extra)}"#.utf8)
    }

    func run(_ gatewayd: RecordedGatewayd, _ env: [String: String], _ input: [UInt8]) -> CNIPlugin.Outcome {
        CNIPlugin { _ in gatewayd }.run(environment: env, input: input)
    }

    func json(_ outcome: CNIPlugin.Outcome) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(outcome.output)) as? [String: Any])
    }

    /// The error result's code and message; fails the test if the outcome is a success.
    func error(_ outcome: CNIPlugin.Outcome) throws -> (code: Int, msg: String) {
        #expect(outcome.exitStatus != 0)
        let object = try json(outcome)
        return (try #require(object["code"] as? Int), try #require(object["msg"] as? String))
    }

    // MARK: - Sandbox IDs

    @Test func sandboxIDIsStableShortAndValidForGatewayd() throws {
        let a = Attachment(containerID: Self.containerID, ifname: "eth0")
        let id = SandboxIdentity.sandboxID(network: "gw-net", attachment: a)
        #expect(id == SandboxIdentity.sandboxID(network: "gw-net", attachment: a))
        #expect(id.count == 25 && id.hasPrefix(SandboxIdentity.prefix(network: "gw-net")))
        #expect(id.wholeMatch(of: /cni-[0-9a-f]{8}-[0-9a-f]{12}/) != nil)
        try SandboxSpec.validate(id: id)
        // Another interface of the same container, or the same one in another network, is another sandbox.
        #expect(SandboxIdentity.sandboxID(network: "gw-net", attachment: .init(containerID: Self.containerID, ifname: "eth1")) != id)
        #expect(!SandboxIdentity.sandboxID(network: "other", attachment: a).hasPrefix(SandboxIdentity.prefix(network: "gw-net")))
        // SHA-256's known answer for "abc" (FIPS 180-2) pins the hash itself.
        #expect(SandboxIdentity.prefix(network: "abc") == "cni-ba7816bf-")
    }

    // MARK: - Environment

    @Test(arguments: [
        (["CNI_COMMAND": ""], "CNI_COMMAND"),
        (["CNI_COMMAND": "ATTACH"], "CNI_COMMAND"),
        (["CNI_CONTAINERID": ""], "CNI_CONTAINERID"),
        (["CNI_CONTAINERID": "-leading-dash"], "CNI_CONTAINERID"),
        (["CNI_IFNAME": "an-interface-name-too-long"], "CNI_IFNAME"),
        (["CNI_IFNAME": "eth/0"], "CNI_IFNAME"),
        (["CNI_NETNS": ""], "CNI_NETNS"),
        (["CNI_NETNS": "relative/ns"], "CNI_NETNS"),
        (["CNI_ARGS": "IgnoreUnknown=1;broken"], "CNI_ARGS"),
    ])
    func badEnvironmentNamesTheVariable(_ change: [String: String], _ variable: String) throws {
        let gatewayd = RecordedGatewayd()
        let (code, msg) = try error(run(gatewayd, Self.environment("ADD", change), Self.config()))
        #expect(code == 4)
        #expect(msg.contains(variable))
        #expect(gatewayd.requests.isEmpty)
    }

    @Test func delNeedsNoNamespace() {
        let gatewayd = RecordedGatewayd()
        var env = Self.environment("DEL")
        env["CNI_NETNS"] = nil
        #expect(run(gatewayd, env, Self.config()).exitStatus == 0)
    }

    // MARK: - Configuration and versions

    @Test func versionListsWhatThePluginSpeaks() throws {
        let outcome = run(RecordedGatewayd(), ["CNI_COMMAND": "VERSION"], Array(#"{"cniVersion": "0.4.0"}"#.utf8))
        #expect(outcome.exitStatus == 0)
        let object = try json(outcome)
        #expect(object["cniVersion"] as? String == "0.4.0")
        #expect(object["supportedVersions"] as? [String] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    }

    @Test func unsupportedVersionIsCode1() throws {
        let (code, msg) = try error(run(RecordedGatewayd(), Self.environment("ADD"), Self.config(version: "0.2.0")))
        #expect(code == 1 && msg.contains("0.2.0") && msg.contains("1.0.0"))
        let check = try error(run(RecordedGatewayd(), Self.environment("CHECK"), Self.config(version: "0.3.1")))
        #expect(check.code == 1 && check.msg.contains("CHECK"))
    }

    @Test func undecodableConfigurationNamesTheField() throws {
        let (code, msg) = try error(run(RecordedGatewayd(), Self.environment("ADD"), Self.config(#""mtu": "big""#)))
        #expect(code == 6 && msg.contains("'mtu'"))
        let garbage = try error(run(RecordedGatewayd(), Self.environment("ADD"), Array("not json".utf8)))
        #expect(garbage.code == 6)
        let empty = try error(run(RecordedGatewayd(), Self.environment("ADD"), []))
        #expect(empty.code == 5)
    }

    @Test func errorResultCarriesTheRuntimesVersion() throws {
        let gatewayd = RecordedGatewayd()
        gatewayd.failure = ControlError(.system, "TUNSETIFF failed")
        let outcome = run(gatewayd, Self.environment("ADD"), Self.config(version: "0.4.0"))
        let object = try json(outcome)
        #expect(object["cniVersion"] as? String == "0.4.0")
        #expect(object["code"] as? Int == 100 && object["msg"] as? String == "TUNSETIFF failed")
        #expect((object["details"] as? String)?.contains("POST /v1/sandboxes with system") == true)
    }

    // MARK: - ADD

    @Test func addAsksGatewaydForTheAttachmentTheRuntimeDescribes() throws {
        let gatewayd = RecordedGatewayd()
        let input = Self.config(
            """
            "control": "/tmp/gw.sock", "policy": "public", "mtu": 1400, "dhcp": true, "memoryBudgetMiB": 8,
            "rateLimit": "10mbit", "maxFlows": 64, "packetRate": 1000, "connectionRate": 50,
            "args": {"cni": {"mac": "02:00:00:00:00:03"}},
            "runtimeConfig": {
              "mac": "02:00:00:00:00:02",
              "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                               {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"}],
              "bandwidth": {"ingressRate": 8000000, "ingressBurst": 1000, "egressRate": 0}
            }
            """)
        var socket: String?
        let plugin = CNIPlugin { path in
            socket = path
            return gatewayd
        }
        let outcome = plugin.run(environment: Self.environment("ADD", ["CNI_ARGS": "IgnoreUnknown=1;MAC=02:00:00:00:00:01"]), input: input)
        #expect(outcome.exitStatus == 0, "\(String(decoding: outcome.output, as: UTF8.self))")
        #expect(socket == "/tmp/gw.sock")
        let request = try #require(gatewayd.requests.first)
        #expect(request.id == SandboxIdentity.sandboxID(network: "gw-net", attachment: .init(containerID: Self.containerID, ifname: "eth0")))
        #expect(request.netns == Self.netns && request.ifname == "eth0" && request.vm == nil)
        #expect(request.policy == "public" && request.mtu == 1400 && request.dhcp == true && request.memoryBudgetMiB == 8)
        #expect(request.maxFlows == 64 && request.packetRate == 1000 && request.connectionRate == 50)
        // args.cni.mac wins over runtimeConfig.mac, which wins over CNI_ARGS.
        #expect(request.mac == "02:00:00:00:00:03")
        #expect(request.ports == [
            PublishRequest(hostIP: nil, hostPort: 8080, guestPort: 80, protocol: "tcp"),
            PublishRequest(hostIP: "127.0.0.1", hostPort: 5353, guestPort: 53, protocol: "udp"),
        ])
        // 8 Mbit/s into the container is 1 MB/s from the host; 0 leaves the configured rate.
        #expect(request.rateLimit == "10mbit" && request.rateLimitUp == nil)
        #expect(request.rateLimitDown.flatMap(RateLimits.bytesPerSecond(parsing:)) == 1_000_000)
    }

    @Test func macFallsBackToRuntimeConfigThenCNIArgs() throws {
        let gatewayd = RecordedGatewayd()
        let env = Self.environment("ADD", ["CNI_ARGS": "MAC=02:00:00:00:00:01"])
        _ = run(gatewayd, env, Self.config(#""runtimeConfig": {"mac": "02:00:00:00:00:02"}"#))
        _ = run(gatewayd, Self.environment("ADD", ["CNI_ARGS": "MAC=02:00:00:00:00:01", "CNI_IFNAME": "eth1"]), Self.config())
        #expect(gatewayd.requests.map(\.mac) == ["02:00:00:00:00:02", "02:00:00:00:00:01"])
    }

    @Test func addResultHasTheInterfaceAddressesRoutesAndResolver() throws {
        let outcome = run(RecordedGatewayd(), Self.environment("ADD"), Self.config())
        #expect(outcome.exitStatus == 0)
        let result = try JSONDecoder().decode(CNIResult.self, from: Data(outcome.output))
        #expect(result.cniVersion == "1.0.0")
        let interface = try #require(result.interfaces?.first)
        #expect(result.interfaces?.count == 1)
        #expect(interface.name == "eth0" && interface.mac == "62:13:1c:88:05:e8" && interface.sandbox == Self.netns)
        #expect(interface.mtu == nil)
        #expect(result.ips?.map(\.address) == ["10.88.0.2/28", "fd47:5700::6013:1cff:fe88:5e8/64"])
        #expect(result.ips?.map(\.gateway) == ["10.88.0.1", "fd47:5700::1"])
        #expect(result.ips?.map(\.interface) == [0, 0])
        #expect(result.routes?.map(\.dst) == ["0.0.0.0/0", "::/0"])
        #expect(result.routes?.map(\.gw) == ["10.88.0.1", "fd47:5700::1"])
        #expect(result.dns?.nameservers == ["10.88.0.1"])
        // No "version" key in a 1.0.0 result.
        #expect(!String(decoding: outcome.output, as: UTF8.self).contains("\"version\""))
    }

    @Test func olderResultsTagTheFamilyNewerOnesTheMTU() throws {
        let old = try JSONDecoder().decode(
            CNIResult.self, from: Data(run(RecordedGatewayd(), Self.environment("ADD"), Self.config(version: "0.4.0")).output))
        #expect(old.ips?.map(\.version) == ["4", "6"] && old.interfaces?.first?.mtu == nil)
        let new = try JSONDecoder().decode(
            CNIResult.self, from: Data(run(RecordedGatewayd(), Self.environment("ADD"), Self.config(version: "1.1.0")).output))
        #expect(new.ips?.map(\.version) == [nil, nil] && new.interfaces?.first?.mtu == 1500)
    }

    @Test(arguments: [
        (ControlError.Code.invalidArgument, 7), (.badSpec, 7), (.policyDenied, 7), (.unreachable, 11), (.exhausted, 11),
        (.busy, 11), (.namespaceNotFound, 4), (.sandboxExists, 100), (.portInUse, 100), (.system, 100),
    ])
    func gatewaydRefusalKeepsItsMessage(_ code: ControlError.Code, _ cniCode: Int) throws {
        let gatewayd = RecordedGatewayd()
        gatewayd.failure = ControlError(code, "what gatewayd said about \(code)")
        let (got, msg) = try error(run(gatewayd, Self.environment("ADD"), Self.config()))
        #expect(got == cniCode)
        #expect(msg == "what gatewayd said about \(code)")
    }

    @Test func portMappingGatewaydCannotCarryIsAConfigurationError() throws {
        let gatewayd = RecordedGatewayd()
        let sctp = try error(run(gatewayd, Self.environment("ADD"), Self.config(
            #""runtimeConfig": {"portMappings": [{"hostPort": 9000, "containerPort": 9000, "protocol": "sctp"}]}"#)))
        #expect(sctp.code == 7 && sctp.msg.contains("sctp") && sctp.msg.contains("9000"))
        let range = try error(run(gatewayd, Self.environment("ADD"), Self.config(
            #""runtimeConfig": {"portMappings": [{"hostPort": 70000, "containerPort": 80}]}"#)))
        #expect(range.code == 7 && range.msg.contains("70000"))
        #expect(gatewayd.requests.isEmpty)
    }

    @Test func addAfterAnotherPluginIsRefused() throws {
        let (code, msg) = try error(run(RecordedGatewayd(), Self.environment("ADD"), Self.config(#""prevResult": {"cniVersion": "1.0.0"}"#)))
        #expect(code == 7 && msg.contains("first"))
    }

    // MARK: - DEL, CHECK, GC, STATUS

    @Test func delDetachesAndIsIdempotent() throws {
        let gatewayd = RecordedGatewayd()
        #expect(run(gatewayd, Self.environment("ADD"), Self.config()).exitStatus == 0)
        let id = try #require(gatewayd.attached.keys.first)
        #expect(run(gatewayd, Self.environment("DEL"), Self.config()).exitStatus == 0)
        #expect(gatewayd.detached == [id] && gatewayd.attached.isEmpty)
        let again = run(gatewayd, Self.environment("DEL"), Self.config())
        #expect(again.exitStatus == 0 && again.output.isEmpty && again.note?.contains("not attached") == true)
        gatewayd.failure = ControlError(.unreachable, "cannot reach gatewayd")
        #expect(run(gatewayd, Self.environment("DEL"), Self.config()).exitStatus == 0)
        gatewayd.failure = ControlError(.system, "netlink said no")
        #expect(try error(run(gatewayd, Self.environment("DEL"), Self.config())).msg == "netlink said no")
    }

    @Test func checkFindsTheAttachmentAsAdded() throws {
        let gatewayd = RecordedGatewayd()
        let added = run(gatewayd, Self.environment("ADD"), Self.config())
        let prev = String(decoding: added.output.dropLast(), as: UTF8.self)
        let input = Self.config(#""prevResult": \#(prev)"#)
        #expect(run(gatewayd, Self.environment("CHECK"), input).exitStatus == 0)

        // Another namespace, or another address than the runtime was told, is a failed check.
        let moved = try error(run(gatewayd, Self.environment("CHECK", ["CNI_NETNS": "/proc/1/ns/net"]), input))
        #expect(moved.code == 101 && moved.msg.contains("/proc/1/ns/net"))
        let id = try #require(gatewayd.attached.keys.first)
        gatewayd.attached[id]?.guestIPv4 = "10.88.0.3"
        let readdressed = try error(run(gatewayd, Self.environment("CHECK"), input))
        #expect(readdressed.code == 101 && readdressed.msg.contains("10.88.0.3/28"))

        gatewayd.attached.removeAll()
        let gone = try error(run(gatewayd, Self.environment("CHECK"), input))
        #expect(gone.code == 101 && gone.msg.contains(id))
    }

    @Test func gcDetachesOnlyThisNetworksStaleSandboxes() throws {
        let gatewayd = RecordedGatewayd()
        for container in ["aaa", "bbb", "ccc"] {
            #expect(run(gatewayd, Self.environment("ADD", ["CNI_CONTAINERID": container]), Self.config()).exitStatus == 0)
        }
        let otherNetwork = Array(#"{"cniVersion": "1.1.0", "name": "other", "type": "gatewayd-cni"}"#.utf8)
        #expect(run(gatewayd, Self.environment("ADD", ["CNI_CONTAINERID": "ddd"]), otherNetwork).exitStatus == 0)
        gatewayd.attached["by-hand"] = Self.view(id: "by-hand")

        let input = Self.config(
            #""cni.dev/valid-attachments": [{"containerID": "aaa", "ifname": "eth0"}, {"containerID": "ccc", "ifname": "eth0"}]"#,
            version: "1.1.0")
        let outcome = run(gatewayd, ["CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"], input)
        #expect(outcome.exitStatus == 0)
        let stale = SandboxIdentity.sandboxID(network: "gw-net", attachment: .init(containerID: "bbb", ifname: "eth0"))
        #expect(gatewayd.detached == [stale])
        #expect(gatewayd.attached.count == 4)
    }

    @Test func statusSaysWhetherGatewaydAnswers() throws {
        let gatewayd = RecordedGatewayd()
        #expect(run(gatewayd, ["CNI_COMMAND": "STATUS"], Self.config(version: "1.1.0")).exitStatus == 0)
        gatewayd.failure = ControlError(.unreachable, "cannot reach gatewayd at /run/gatewayd/control.sock")
        let (code, msg) = try error(run(gatewayd, ["CNI_COMMAND": "STATUS"], Self.config(version: "1.1.0")))
        #expect(code == 50 && msg.contains("cannot reach gatewayd"))
    }
}
