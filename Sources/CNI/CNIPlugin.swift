// One run of gatewayd-cni: the command from the environment, the configuration from standard
// input, the calls to gatewayd, and what goes to standard output with which exit status.
import Foundation
import GatewayControl

public struct CNIPlugin {
    /// What the process prints on standard output and exits with.
    public struct Outcome: Sendable, Equatable {
        public var output: [UInt8]
        public var exitStatus: Int32
        /// A line for standard error (the runtime's log), e.g. why a DEL found nothing to do.
        public var note: String?
    }

    /// Opens the calls to the gatewayd whose control socket the configuration names.
    let connect: (String) -> any GatewaydCalls

    public init(connect: @escaping (String) -> any GatewaydCalls) {
        self.connect = connect
    }

    public func run(environment: [String: String], input: [UInt8]) -> Outcome {
        // Errors before the configuration is read travel in the newest version: the runtime's
        // choice is not known yet.
        var version = CNIVersion.latest.description
        do {
            let env = try CNIEnvironment(environment)
            if env.command == .version { return Self.versionOutcome(input) }
            let config = try NetworkConfiguration.decode(input)
            version = config.cniVersion
            return try run(env, config, config.version())
        } catch {
            return Outcome(output: Self.encode(error.body(version: version)), exitStatus: 1, note: nil)
        }
    }

    private func run(_ env: CNIEnvironment, _ config: NetworkConfiguration, _ version: CNIVersion) throws(CNIError)
        -> Outcome
    {
        let gatewayd = connect(config.control ?? ControlClient.defaultSocketPath)
        switch env.command {
        case .add:
            return try add(env, config, version, gatewayd)
        case .del:
            let note = try del(env, config, gatewayd)
            return Outcome(output: [], exitStatus: 0, note: note)
        case .check:
            guard version >= CNIVersion.check else {
                throw CNIError(.incompatibleVersion, "CHECK needs cniVersion \(CNIVersion.check) or later, not \(version)")
            }
            try check(env, config, gatewayd)
            return Outcome(output: [], exitStatus: 0)
        case .gc:
            guard version >= CNIVersion.garbageCollection else {
                throw CNIError(.incompatibleVersion, "GC needs cniVersion \(CNIVersion.garbageCollection), not \(version)")
            }
            let removed = try gc(config, gatewayd)
            return Outcome(output: [], exitStatus: 0, note: removed.isEmpty ? nil : "detached \(removed.joined(separator: ", "))")
        case .status:
            do {
                try gatewayd.health()
            } catch {
                throw CNIError(.notAvailable, error.message, details: "gatewayd answered GET /v1/health with \(error.code)")
            }
            return Outcome(output: [], exitStatus: 0)
        case .version:
            return Self.versionOutcome([])
        }
    }

    // MARK: - Commands

    private func add(
        _ env: CNIEnvironment, _ config: NetworkConfiguration, _ version: CNIVersion, _ gatewayd: any GatewaydCalls
    ) throws(CNIError) -> Outcome {
        let attachment = try env.attachment()
        guard config.prevResult == nil else {
            throw CNIError(
                .invalidConfiguration,
                "gatewayd-cni makes the container's interface itself: put it first in the network's plugin list")
        }
        let id = SandboxIdentity.sandboxID(network: config.name, attachment: attachment)
        let netns = try env.namespacePath()
        let request = try config.attachRequest(id: id, netns: netns, ifname: attachment.ifname, cniArgs: env.args)
        let view: SandboxView
        do {
            view = try gatewayd.attach(request)
        } catch {
            throw CNIError(error, during: "POST /v1/sandboxes")
        }
        return Outcome(output: Self.encode(CNIResult(view: view, netns: netns, version: version)), exitStatus: 0)
    }

    /// Best effort, as SPEC.md asks of DEL: a sandbox already gone, or a gatewayd that is not
    /// running (and so holds no sandbox), is success. Returns what the runtime's log should know.
    private func del(_ env: CNIEnvironment, _ config: NetworkConfiguration, _ gatewayd: any GatewaydCalls)
        throws(CNIError) -> String?
    {
        let attachment = try env.attachment()
        let id = SandboxIdentity.sandboxID(network: config.name, attachment: attachment)
        do {
            try gatewayd.detach(id)
            return nil
        } catch where error.code == .unknownSandbox {
            return "sandbox \(id) was not attached"
        } catch where error.code == .unreachable {
            return "gatewayd is not running, so sandbox \(id) is not attached"
        } catch {
            throw CNIError(error, during: "DELETE /v1/sandboxes/\(id)")
        }
    }

    /// The sandbox exists, in the namespace and under the name the runtime gave, with the
    /// addresses of the previous result.
    private func check(_ env: CNIEnvironment, _ config: NetworkConfiguration, _ gatewayd: any GatewaydCalls)
        throws(CNIError)
    {
        let attachment = try env.attachment()
        let id = SandboxIdentity.sandboxID(network: config.name, attachment: attachment)
        let view: SandboxView
        do {
            view = try gatewayd.sandbox(id)
        } catch where error.code == .unknownSandbox {
            throw CNIError(
                .attachmentChanged, "gatewayd has no sandbox \(id) for container \(attachment.containerID)",
                details: "it was detached, or gatewayd restarted without its state directory")
        } catch {
            throw CNIError(error, during: "GET /v1/sandboxes/\(id)")
        }
        var found: [String] = []
        if view.tap != attachment.ifname { found.append("its interface is \(view.tap), not \(attachment.ifname)") }
        if let namespace = view.namespace, let netns = env.netns, !Self.sameNamespace(namespace, netns) {
            found.append("it is attached to namespace \(namespace), not \(netns)")
        }
        found += config.prevResult?.differences(from: view, ifname: attachment.ifname) ?? []
        guard found.isEmpty else {
            throw CNIError(.attachmentChanged, "sandbox \(id) is not as attached: \(found.joined(separator: "; "))")
        }
    }

    /// gatewayd shows a namespace by the name or the path it was attached with.
    static func sameNamespace(_ shown: String, _ netns: String) -> Bool {
        shown == netns || "\(AttachRequest.namespaceDirectory)/\(shown)" == netns
    }

    /// Detaches this network's sandboxes that no valid attachment derives; goes on past a
    /// failure and reports them all. Returns the IDs detached.
    private func gc(_ config: NetworkConfiguration, _ gatewayd: any GatewaydCalls) throws(CNIError) -> [String] {
        let prefix = SandboxIdentity.prefix(network: config.name)
        let valid = Set((config.validAttachments ?? []).map { SandboxIdentity.sandboxID(network: config.name, attachment: $0) })
        let all: [SandboxView]
        do {
            all = try gatewayd.sandboxes()
        } catch {
            throw CNIError(error, during: "GET /v1/sandboxes")
        }
        var removed: [String] = []
        var failures: [String] = []
        for view in all where view.id.hasPrefix(prefix) && !valid.contains(view.id) {
            do {
                try gatewayd.detach(view.id)
                removed.append(view.id)
            } catch where error.code == .unknownSandbox {
                continue
            } catch {
                failures.append("\(view.id): \(error.message)")
            }
        }
        guard failures.isEmpty else {
            throw CNIError(
                .gatewaydRefused, "\(failures.count) stale sandbox(es) could not be detached",
                details: failures.joined(separator: "; "))
        }
        return removed
    }

    // MARK: - Output

    struct VersionResult: Encodable {
        var cniVersion: String
        var supportedVersions: [String]
    }

    /// VERSION answers in the version the input names, whatever it is (SPEC.md: "The value of
    /// cniVersion specified on input"), and in the newest when there is none.
    static func versionOutcome(_ input: [UInt8]) -> Outcome {
        struct Asked: Decodable { var cniVersion: String? }
        let asked = (try? JSONDecoder().decode(Asked.self, from: Data(input)))?.cniVersion
        let result = VersionResult(
            cniVersion: asked ?? CNIVersion.latest.description,
            supportedVersions: CNIVersion.supported.map(\.description))
        return Outcome(output: encode(result), exitStatus: 0)
    }

    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8)) + [0x0A]
    }
}
