// The plugin configuration a runtime writes on standard input (SPEC.md, Section 1 and Section 3
// "Deriving request configuration"): the network's settings for gatewayd, the runtime's
// capability arguments, and the previous result or the valid attachments.
import Foundation
import GatewayControl

public struct NetworkConfiguration: Decodable, Sendable {
    public var cniVersion: String
    public var name: String
    public var type: String?
    /// gatewayd's control socket; nil: ControlClient.defaultSocketPath.
    public var control: String?
    public var policy: String?
    public var mtu: Int?
    /// Leave IPv4 to the container's DHCP client; false (the default): gatewayd configures it.
    public var dhcp: Bool?
    public var memoryBudgetMiB: Int?
    public var rateLimit: String?
    public var rateLimitUp: String?
    public var rateLimitDown: String?
    public var packetRate: Int?
    public var connectionRate: Int?
    public var maxFlows: Int?
    public var runtimeConfig: RuntimeConfig?
    public var args: Args?
    public var prevResult: CNIResult?
    /// GC: the attachments still in use.
    public var validAttachments: [Attachment]?

    enum CodingKeys: String, CodingKey {
        case cniVersion, name, type, control, policy, mtu, dhcp, memoryBudgetMiB, rateLimit, rateLimitUp
        case rateLimitDown, packetRate, connectionRate, maxFlows, runtimeConfig, args, prevResult
        case validAttachments = "cni.dev/valid-attachments"
    }

    /// Capability arguments (CONVENTIONS.md), present when the network's configuration declares
    /// the capability and the runtime has something to say.
    public struct RuntimeConfig: Decodable, Sendable {
        public var portMappings: [PortMapping]?
        public var bandwidth: Bandwidth?
        public var mac: String?
    }

    /// `portMappings`, as the `portmap` plugin takes them.
    public struct PortMapping: Decodable, Sendable, Hashable {
        public var hostPort: Int
        public var containerPort: Int
        public var `protocol`: String?
        public var hostIP: String?

        public init(hostPort: Int, containerPort: Int, protocol: String? = nil, hostIP: String? = nil) {
            self.hostPort = hostPort
            self.containerPort = containerPort
            self.protocol = `protocol`
            self.hostIP = hostIP
        }
    }

    /// `bandwidth`, as the `bandwidth` plugin takes it: bits per second; ingress is toward the
    /// container. Bursts are read and not used (gatewayd's limits have buckets of their own).
    public struct Bandwidth: Decodable, Sendable, Hashable {
        public var ingressRate: UInt64?
        public var ingressBurst: UInt64?
        public var egressRate: UInt64?
        public var egressBurst: UInt64?
    }

    /// `args.cni` (CONVENTIONS.md, "args in network config").
    public struct Args: Decodable, Sendable {
        public var cni: CNIArgs?

        public struct CNIArgs: Decodable, Sendable {
            public var mac: String?
        }
    }

    /// Decodes standard input; the error says which field was wrong.
    public static func decode(_ bytes: [UInt8]) throws(CNIError) -> NetworkConfiguration {
        guard !bytes.isEmpty else {
            throw CNIError(.ioFailure, "no network configuration on standard input: the runtime writes it there")
        }
        let config: NetworkConfiguration
        do {
            config = try JSONDecoder().decode(NetworkConfiguration.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw CNIError(.decodeFailure, "the network configuration cannot be read: \(ControlService.describe(error))")
        } catch {
            throw CNIError(.decodeFailure, "the network configuration cannot be read: \(error)")
        }
        guard !config.name.isEmpty else {
            throw CNIError(.invalidConfiguration, "the network configuration has an empty 'name'")
        }
        return config
    }

    /// The protocol version asked for, if this plugin speaks it.
    public func version() throws(CNIError) -> CNIVersion {
        guard let version = CNIVersion(cniVersion), CNIVersion.supported.contains(version) else {
            throw CNIError(
                .incompatibleVersion,
                "cniVersion '\(cniVersion)' is not supported: use one of \(CNIVersion.supported.map(\.description).joined(separator: ", "))")
        }
        return version
    }

    /// The guest's MAC: CNI_ARGS `MAC=`, overridden by `runtimeConfig.mac`, overridden by
    /// `args.cni.mac`, in the order the `tuning` plugin reads them.
    public func mac(cniArgs: [String: String]) -> String? {
        args?.cni?.mac ?? runtimeConfig?.mac ?? cniArgs["MAC"]
    }

    /// The published ports for `runtimeConfig.portMappings`; a mapping gatewayd cannot carry
    /// (SCTP, a port out of range) is an error naming it.
    public func publishRequests() throws(CNIError) -> [PublishRequest] {
        var requests: [PublishRequest] = []
        for mapping in runtimeConfig?.portMappings ?? [] {
            let proto = (mapping.protocol ?? "tcp").lowercased()
            guard proto == "tcp" || proto == "udp" else {
                throw CNIError(
                    .invalidConfiguration,
                    "portMappings: protocol '\(mapping.protocol ?? "")' of host port \(mapping.hostPort) is not supported: gatewayd publishes tcp and udp")
            }
            let hostIP = mapping.hostIP.flatMap { $0.isEmpty ? nil : $0 }
            let request = PublishRequest(
                hostIP: hostIP, hostPort: mapping.hostPort, guestPort: mapping.containerPort, protocol: proto)
            do {
                try request.validate()
            } catch {
                throw CNIError(.invalidConfiguration, "portMappings: \(error.message)")
            }
            requests.append(request)
        }
        return requests
    }

    /// The attach gatewayd is asked for; rates from `runtimeConfig.bandwidth` take the place of
    /// the configuration's, as the `bandwidth` plugin lets the runtime's override its own.
    public func attachRequest(id: String, netns: String, ifname: String, cniArgs: [String: String]) throws(CNIError)
        -> AttachRequest
    {
        let ports = try publishRequests()
        var request = AttachRequest(
            id: id, netns: netns, dhcp: dhcp, mtu: mtu, policy: policy, mac: mac(cniArgs: cniArgs),
            ports: ports.isEmpty ? nil : ports)
        request.ifname = ifname
        request.memoryBudgetMiB = memoryBudgetMiB
        request.rateLimit = rateLimit
        request.rateLimitUp = rateLimitUp
        request.rateLimitDown = rateLimitDown
        request.packetRate = packetRate
        request.connectionRate = connectionRate
        request.maxFlows = maxFlows
        if let bandwidth = runtimeConfig?.bandwidth {
            // 0 is the bandwidth plugin's "no limit this way".
            if let bits = bandwidth.ingressRate, bits > 0 { request.rateLimitDown = "\(bits)bit" }
            if let bits = bandwidth.egressRate, bits > 0 { request.rateLimitUp = "\(bits)bit" }
        }
        return request
    }
}
