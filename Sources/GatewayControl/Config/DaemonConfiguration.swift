// Everything gatewayd can be told, from its TOML config file and then its flags: paths, shards,
// logging, address pools, published-port range, limits, DNS upstreams and denied names, and named
// policies.
import Foundation
import Gateway
import Link
import Logging
import Wire

public struct DaemonConfiguration: Sendable {
    public enum LogFormat: String, Sendable, CaseIterable {
        case human
        case json
    }

    /// A host and port written "127.0.0.1:9464" or "[::1]:9464".
    public struct HostPort: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses "HOST:PORT"; an IPv6 host is written in brackets. nil when malformed.
        public init?(_ string: String) {
            let text = Substring(string)
            let hostPart: Substring
            let portPart: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                    return nil
                }
                hostPart = text[text.index(after: text.startIndex)..<close]
                portPart = text[text.index(close, offsetBy: 2)...]
                guard IPv6Address(hostPart) != nil else { return nil }
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                hostPart = text[..<colon]
                portPart = text[text.index(after: colon)...]
                guard !hostPart.isEmpty, !hostPart.contains(":") else { return nil }
            }
            guard let port = Int(portPart), (1...65_535).contains(port) else { return nil }
            self.init(host: String(hostPart), port: port)
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public var controlPath = "/run/gatewayd/control.sock"
    /// Permission bits of the control socket: owner and group may drive the gateway.
    public var controlMode: UInt32 = 0o660
    public var stateDirectory = "/var/lib/gatewayd"
    /// nil: one shard per CPU.
    public var shards: Int?
    public var pinShards = true
    /// Microseconds a shard keeps polling for I/O before it sleeps; 0 turns polling off.
    public var busyPollMicroseconds = 50
    /// Poll only while at least this percentage of a shard's recent quiet spells ended within the
    /// window; 0: after every burst of I/O.
    public var busyPollHitPercent = 75
    /// The shards' nice value (-20…19); 0 leaves them at the process's.
    public var shardNice = 0
    public var egressPolicy = "host-only"
    public var logFormat = LogFormat.human
    public var logLevel = Logger.Level.info
    /// Also serve /metrics over TCP here.
    public var metricsAddress: HostPort?
    /// `flow-log`: a JSON-lines file of every flow decision, flow end and DNS query; reopened on
    /// SIGHUP (after logrotate moved it).
    public var flowLogPath: String?
    public var addresses = AddressPlan()
    /// Host ports handed out for published ports that name none (inclusive).
    public var publishedPortRange = 30_000...39_999
    /// The host address published ports bind when the SPEC names none: loopback, so nothing is
    /// exposed beyond the host unless asked for.
    public var publishBindAddress = "127.0.0.1"
    public var limits = EgressLimits()
    /// Inbound connections a sandbox's published ports may hold at once.
    public var maxInboundConnections = 256
    /// DNS resolvers to forward to; empty means the host's (resolv.conf).
    public var dnsUpstreams: [HostPort] = []
    public var dnsLocalNames = ["host.gateway.internal"]
    /// Names (and their subdomains) every sandbox's DNS answers with NXDOMAIN; a policy's own
    /// `denied-names` add to these.
    public var dnsDeniedNames: [String] = []
    /// `[dns] query-rate`: queries per second per sandbox.
    public var dnsQueryRate = 200
    /// `[dns] pin-capacity`: addresses one sandbox's answers may pin for domain rules at once.
    public var dnsPinCapacity = 4096
    /// `[dns] pin-ttl-floor-s`: shortest life of a pin.
    public var dnsPinTTLFloorSeconds = 60
    /// Policies defined in the file, by name, in addition to the built-in profiles.
    public var policies: [String: Policy] = [:]
    /// Remove devices with the gateway's role prefixes left in the host namespace by a crash.
    public var sweepStaleDevices = true
    /// The name prefixes swept: those of the devices the gateway creates in the host namespace
    /// (gateway TAP, bridge, VM TAP, veth), never any other "gw…" device.
    public var sweepPrefixes = [InterfaceName.Role.gatewayTAP, .bridge, .vmTAP, .veth].map(\.prefix)
    /// Put into the names of VM sandboxes' devices (`gwv-<tag>-<index>`), for a second gatewayd
    /// on the host: each sweeps only names with its own tag.
    public var hostDeviceTag = ""
    /// `[memory]`: TCP buffer memory one sandbox may hold (policies and attach may override),
    /// all sandboxes together (nil: a quarter of the machine's), the chunk size, how often idle
    /// memory goes back to the system.
    public var sandboxMemoryBudgetMiB = 32
    public var globalMemoryBudgetMiB: Int?
    public var bufferChunkKiB = 16
    public var memoryTrimIntervalMilliseconds = 1000
    /// The control plane's reserve of descriptors and each sandbox's budget (`[descriptors]`).
    public var descriptors = DescriptorLimits()
    /// `privsep`: split into a privileged supervisor and an unprivileged, system-call-filtered
    /// worker that does everything touching guest bytes or client requests. Off only for debugging.
    public var privilegeSeparation = true
    /// `user`: who the worker runs as (a name or a numeric UID); nil: `gatewayd` when that user
    /// exists, else `nobody`.
    public var workerUser: String?
    /// A control API connection with no request for this long is closed.
    public var controlIdleTimeout: Duration = .seconds(60)
    /// A control API request must be in (head and body) this long after its first byte.
    public var controlRequestTimeout: Duration = .seconds(10)
    /// `[cluster]`: keep this node, its sandboxes and routes in etcd; nil: no cluster view.
    public var cluster: ClusterConfiguration?

    public init() {}

    /// Whether `name` is one this daemon gives the devices it makes in the host namespace: a role
    /// prefix, this daemon's host-device tag and a dash when it has one, then a sandbox index.
    public func makesDevice(named name: String) -> Bool {
        let roles = [InterfaceName.Role.gatewayTAP, .bridge, .vmTAP, .veth].map(\.prefix)
        guard let role = roles.first(where: { name.hasPrefix($0) }) else { return false }
        var rest = name.dropFirst(role.count)
        if !hostDeviceTag.isEmpty {
            guard rest.hasPrefix(hostDeviceTag + "-") else { return false }
            rest = rest.dropFirst(hostDeviceTag.count + 1)
        }
        return !rest.isEmpty && rest.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// Whether `tag` may be a `host-device-tag`: 0-6 of [a-z0-9], so that a role prefix, the tag,
    /// a dash and a sandbox number fit in a device name.
    public static func isHostDeviceTag(_ tag: String) -> Bool {
        tag.count <= 6 && tag.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    /// The settings the in-process Gateway takes.
    public var gatewayConfiguration: GatewayConfiguration {
        var c = GatewayConfiguration(shards: shards)
        c.pinShards = pinShards
        c.busyPoll = .microseconds(busyPollMicroseconds)
        c.busyPollHitPercent = busyPollHitPercent
        c.shardNice = shardNice == 0 ? nil : Int32(shardNice)
        c.addresses = addresses
        c.defaultPolicy = egressPolicy
        c.policies = policies
        c.deniedNames = dnsDeniedNames
        c.limits = limits
        c.dns = dnsConfiguration
        c.hostDeviceTag = hostDeviceTag
        c.memoryBudget = sandboxMemoryBudgetMiB << 20
        if let g = globalMemoryBudgetMiB { c.globalMemoryBudget = g << 20 }
        c.bufferChunkSize = bufferChunkKiB << 10
        c.memoryTrimInterval = .milliseconds(memoryTrimIntervalMilliseconds)
        c.dnsQueryRate = dnsQueryRate
        c.flowLog.path = flowLogPath
        c.pinCapacity = dnsPinCapacity
        c.pinTTLFloor = .seconds(dnsPinTTLFloorSeconds)
        c.descriptors = descriptors
        c.publishing.limits.maxInboundConnections = maxInboundConnections
        if let bind = IPAddress(publishBindAddress) { c.publishing.defaultHostIP = bind }
        if let low = UInt16(exactly: publishedPortRange.lowerBound), let high = UInt16(exactly: publishedPortRange.upperBound) {
            c.publishing.autoPorts = AutoPortRange(ports: low...high)
        }
        return c
    }

    /// The DNS forwarder's settings: the configured upstreams, or the host's.
    public var dnsConfiguration: DNSConfiguration {
        guard !dnsUpstreams.isEmpty else {
            var c = DNSConfiguration.system()
            c.localNames = dnsLocalNames
            return c
        }
        let upstreams = dnsUpstreams.compactMap { hp in IPAddress(hp.host).map { ($0, UInt16(hp.port)) } }
        return DNSConfiguration(upstreams: upstreams, localNames: dnsLocalNames)
    }

    /// Reads the config file at `path`; defaults apply to every key it leaves out.
    public static func load(path: String) throws(ConfigError) -> DaemonConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(
                file: path, line: nil, key: nil, "cannot read the config file: \(error.localizedDescription)")
        }
        var c = DaemonConfiguration()
        try c.apply(toml: text, file: path)
        return c
    }

    /// Applies the keys set in `text` over the current values.
    public mutating func apply(toml text: String, file: String) throws(ConfigError) {
        let document: TOMLDocument
        do {
            document = try TOMLDocument(parsing: text)
        } catch {
            throw ConfigError(file: file, line: error.line, key: nil, error.reason)
        }
        let r = ConfigReader(file: file)
        for e in document.root.entries {
            switch try r.key(e, e.key, RootKey.self) {
            case .control: controlPath = try r.path(e, e.key)
            case .controlMode: controlMode = try r.mode(e, e.key)
            case .stateDir: stateDirectory = try r.path(e, e.key)
            case .shards: shards = try r.int(e, e.key, in: 1...1024)
            case .pinShards: pinShards = try r.bool(e, e.key)
            case .busyPollUs: busyPollMicroseconds = try r.int(e, e.key, in: 0...10_000)
            case .busyPollHitPercent: busyPollHitPercent = try r.int(e, e.key, in: 0...100)
            case .shardNice: shardNice = try r.int(e, e.key, in: -20...19)
            case .egressPolicy: egressPolicy = try r.string(e, e.key)
            case .logFormat:
                logFormat =
                    try r.choice(e, e.key, LogFormat.allCases.map(\.rawValue)).flatMap {
                        LogFormat(rawValue: $0)
                    } ?? .human
            case .logLevel:
                logLevel =
                    try r.choice(e, e.key, Logger.Level.allCases.map(\.rawValue)).flatMap {
                        Logger.Level(rawValue: $0)
                    } ?? .info
            case .metricsAddress: metricsAddress = try r.hostPort(e, e.key)
            case .flowLog: flowLogPath = try r.string(e, e.key)
            case .privsep: privilegeSeparation = try r.bool(e, e.key)
            case .user:
                let user = try r.string(e, e.key)
                guard !user.isEmpty, user.utf8.count <= 32, !user.contains(":"), !user.contains("/") else {
                    throw r.error(e, e.key, "'\(user)' is not a user name or UID")
                }
                workerUser = user
            case .controlIdleTimeoutMs:
                controlIdleTimeout = .milliseconds(try r.int(e, e.key, in: 10...86_400_000))
            case .controlRequestTimeoutMs:
                controlRequestTimeout = .milliseconds(try r.int(e, e.key, in: 10...3_600_000))
            case .descriptors: try applyDescriptors(r.table(e, e.key), r)
            case .sweepStaleDevices: sweepStaleDevices = try r.bool(e, e.key)
            case .sweepPrefixes:
                let list = try r.strings(e, e.key)
                if let bad = list.first(where: { !$0.hasPrefix(InterfaceName.projectPrefix) || $0.count < 3 }) {
                    throw r.error(
                        e, e.key,
                        "'\(bad)' does not start with 'gw' and one more character: "
                            + "only the gateway's devices may be swept"
                    )
                }
                sweepPrefixes = list
            case .hostDeviceTag:
                let tag = try r.string(e, e.key)
                guard Self.isHostDeviceTag(tag) else {
                    throw r.error(e, e.key, "'\(tag)' is not 0-6 lowercase letters and digits")
                }
                hostDeviceTag = tag
            case .addresses: try applyAddresses(r.table(e, e.key), r)
            case .ports: try applyPorts(r.table(e, e.key), r)
            case .limits: try applyLimits(r.table(e, e.key), r)
            case .dns: try applyDNS(r.table(e, e.key), r)
            case .policies: try applyPolicies(r.table(e, e.key), r)
            case .memory: try applyMemory(r.table(e, e.key), r)
            case .cluster: try applyCluster(r.table(e, e.key), r)
            }
        }
        // Resolved as attach resolves a sandbox's policy (profiles in any case).
        do {
            _ = try gatewayConfiguration.policy(named: egressPolicy)
        } catch {
            let line = document.root["egress-policy"]?.line
            throw ConfigError(file: file, line: line, key: "egress-policy", error.message)
        }
    }

    // Each table's keys are written once, in an enum in the order "unknown key" errors list
    // them; the compiler then holds each table's `switch` to handling every one.

    /// Top-level keys.
    private enum RootKey: String, ConfigKeys {
        case control
        case controlMode = "control-mode"
        case controlIdleTimeoutMs = "control-idle-timeout-ms"
        case controlRequestTimeoutMs = "control-request-timeout-ms"
        case descriptors
        case stateDir = "state-dir"
        case shards
        case pinShards = "pin-shards"
        case busyPollUs = "busy-poll-us"
        case busyPollHitPercent = "busy-poll-hit-percent"
        case shardNice = "shard-nice"
        case egressPolicy = "egress-policy"
        case logFormat = "log-format"
        case logLevel = "log-level"
        case metricsAddress = "metrics-address"
        case flowLog = "flow-log"
        case privsep
        case user
        case sweepStaleDevices = "sweep-stale-devices"
        case sweepPrefixes = "sweep-prefixes"
        case hostDeviceTag = "host-device-tag"
        case addresses
        case ports
        case limits
        case dns
        case policies
        case memory
        case cluster
    }

    /// Keys of `[cluster]`.
    private enum ClusterKey: String, ConfigKeys {
        case etcd
        case node
        case prefix
        case leaseTTL = "lease-ttl"
        case advertise
        case claimTimeoutMs = "claim-timeout-ms"
    }

    /// Keys of `[addresses]`.
    private enum AddressesKey: String, ConfigKeys {
        case ipv4Pool = "ipv4-pool"
        case ipv4SandboxPrefix = "ipv4-sandbox-prefix"
        case ipv6Pool = "ipv6-pool"
    }

    /// Keys of `[ports]`.
    private enum PortsKey: String, ConfigKeys {
        case range
        case bind
        case maxInboundConnections = "max-inbound-connections"
    }

    /// Keys of `[limits]`.
    private enum LimitsKey: String, ConfigKeys {
        case tcpRelays = "tcp-relays"
        case udpSessions = "udp-sessions"
        case connectTimeoutMs = "connect-timeout-ms"
        case udpIdleTimeoutS = "udp-idle-timeout-s"
        case halfOpenTimeoutMs = "half-open-timeout-ms"
        case connectionRate = "connection-rate"
        case suspectFrameRate = "suspect-frame-rate"
        case framesPerTurn = "frames-per-turn"
    }

    /// Keys of `[memory]`.
    private enum MemoryKey: String, ConfigKeys {
        case sandboxBudgetMib = "sandbox-budget-mib"
        case globalBudgetMib = "global-budget-mib"
        case chunkKib = "chunk-kib"
        case trimIntervalMs = "trim-interval-ms"
    }

    /// Keys of `[descriptors]`.
    private enum DescriptorsKey: String, ConfigKeys {
        case perSandbox = "per-sandbox"
        case controlReserve = "control-reserve"
    }

    /// Keys of `[dns]`.
    private enum DNSKey: String, ConfigKeys {
        case upstreams
        case localNames = "local-names"
        case deniedNames = "denied-names"
        case queryRate = "query-rate"
        case pinCapacity = "pin-capacity"
        case pinTTLFloor = "pin-ttl-floor-s"
    }

    /// Keys of `[policies.NAME]`.
    private enum PolicyKey: String, ConfigKeys {
        case rules
        case extends
        case `default`
        case deniedNames = "denied-names"
        case memoryBudgetMib = "memory-budget-mib"
        case dns
        case unidentifiedTraffic = "unidentified-traffic"
        case rateLimit = "rate-limit"
        case rateLimitUp = "rate-limit-up"
        case rateLimitDown = "rate-limit-down"
        case packetRate = "packet-rate"
        case connectionRate = "connection-rate"
        case maxFlows = "max-flows"
    }

    private mutating func applyAddresses(_ t: TOMLDocument.Table, _ r: ConfigReader) throws(ConfigError) {
        var v4Prefix: (IPv4Address, Int)?
        var sandboxPrefix = addresses.ipv4SandboxPrefix
        for e in t.entries {
            let key = "addresses." + e.key
            switch try r.key(e, key, AddressesKey.self) {
            case .ipv4Pool:
                let text = try r.string(e, key)
                guard let p = Self.ipv4Prefix(text) else {
                    throw r.error(
                        e, key, "'\(text)' is not an IPv4 network: write it as ADDRESS/LENGTH, e.g. 10.88.0.0/16")
                }
                v4Prefix = p
            case .ipv4SandboxPrefix: sandboxPrefix = try r.int(e, key, in: 8...30)
            case .ipv6Pool:
                let text = try r.string(e, key)
                let parts = text.split(separator: "/")
                guard parts.count == 2, let a = IPv6Address(parts[0]), parts[1] == "48", a.low == 0,
                    a.high & 0xFFFF == 0
                else {
                    throw r.error(
                        e, key, "'\(text)' is not an IPv6 /48: each sandbox takes a /64 of it, e.g. fd47:5700::/48")
                }
                addresses.ipv6Pool = a
            }
        }
        if let (network, length) = v4Prefix {
            addresses.ipv4Pool = network
            addresses.ipv4PoolPrefix = length
        }
        guard sandboxPrefix > addresses.ipv4PoolPrefix else {
            let e = t["ipv4-sandbox-prefix"] ?? t["ipv4-pool"]
            throw ConfigError(
                file: r.file, line: e?.line, key: "addresses.ipv4-sandbox-prefix",
                "/\(sandboxPrefix) per sandbox does not fit in a /\(addresses.ipv4PoolPrefix) pool: "
                    + "make it longer than the pool's"
            )
        }
        addresses.ipv4SandboxPrefix = sandboxPrefix
    }

    private mutating func applyPorts(_ t: TOMLDocument.Table, _ r: ConfigReader) throws(ConfigError) {
        for e in t.entries {
            let key = "ports." + e.key
            switch try r.key(e, key, PortsKey.self) {
            case .range:
                let text = try r.string(e, key)
                let parts = text.split(separator: "-")
                guard parts.count == 2, let lo = Int(parts[0]), let hi = Int(parts[1]), 1 <= lo, lo <= hi, hi <= 65_535
                else {
                    throw r.error(
                        e, key, "'\(text)' is not a port range: write FIRST-LAST within 1-65535, e.g. 30000-39999")
                }
                publishedPortRange = lo...hi
            case .bind:
                let text = try r.string(e, key)
                guard IPAddress(text) != nil else {
                    throw r.error(
                        e, key, "'\(text)' is not an IP address: e.g. 127.0.0.1 (loopback) or 0.0.0.0 (every interface)"
                    )
                }
                publishBindAddress = text
            case .maxInboundConnections: maxInboundConnections = try r.int(e, key, in: 1...1_000_000)
            }
        }
    }

    private mutating func applyLimits(_ t: TOMLDocument.Table, _ r: ConfigReader) throws(ConfigError) {
        for e in t.entries {
            let key = "limits." + e.key
            switch try r.key(e, key, LimitsKey.self) {
            case .tcpRelays: limits.maxTCPRelays = try r.int(e, key, in: 1...1_000_000)
            case .udpSessions: limits.maxUDPSessions = try r.int(e, key, in: 1...1_000_000)
            case .connectTimeoutMs: limits.connectTimeout = .milliseconds(try r.int(e, key, in: 1...600_000))
            case .udpIdleTimeoutS: limits.udpIdleTimeout = .seconds(try r.int(e, key, in: 1...86_400))
            case .halfOpenTimeoutMs: limits.halfOpenTimeout = .milliseconds(try r.int(e, key, in: 100...600_000))
            case .connectionRate: limits.connectionRate = try r.int(e, key, in: 0...1_000_000)
            case .suspectFrameRate: limits.suspectFrameRate = try r.int(e, key, in: 0...10_000_000)
            case .framesPerTurn: limits.framesPerTurn = try r.int(e, key, in: 1...1024)
            }
        }
    }

    private mutating func applyCluster(_ t: TOMLDocument.Table, _ r: ConfigReader) throws(ConfigError) {
        var c = cluster ?? ClusterConfiguration(endpoints: [])
        for e in t.entries {
            let key = "cluster." + e.key
            switch try r.key(e, key, ClusterKey.self) {
            case .etcd:
                var endpoints: [EtcdEndpoint] = []
                for url in try r.strings(e, key) {
                    guard let endpoint = EtcdEndpoint(url: url) else {
                        throw r.error(
                            e, key, "'\(url)' is not an etcd client URL: write http://HOST:PORT, e.g. http://127.0.0.1:2379")
                    }
                    endpoints.append(endpoint)
                }
                guard !endpoints.isEmpty else {
                    throw r.error(e, key, "no endpoint: list at least one etcd client URL, e.g. [\"http://127.0.0.1:2379\"]")
                }
                c.endpoints = endpoints
            case .node:
                let name = try r.string(e, key)
                guard ClusterConfiguration.isNodeName(name) else {
                    throw r.error(e, key, "'\(name)' is not a node name: printable ASCII without spaces or '/'")
                }
                c.node = name
            case .prefix:
                let prefix = try r.string(e, key)
                guard prefix.hasPrefix("/"), prefix.hasSuffix("/"), prefix.count >= 2 else {
                    throw r.error(e, key, "'\(prefix)' is not a key prefix: start and end it with '/', e.g. \"/gatewayd/\"")
                }
                c.prefix = prefix
            case .leaseTTL: c.leaseTTL = try r.int(e, key, in: 2...3600)
            case .advertise:
                let list = try r.strings(e, key)
                if let bad = list.first(where: { IPAddress($0) == nil }) {
                    throw r.error(e, key, "'\(bad)' is not an IP address: list the addresses other hosts reach this one at")
                }
                c.advertise = list
            case .claimTimeoutMs: c.claimTimeout = .milliseconds(try r.int(e, key, in: 10...10_000))
            }
        }
        guard !c.endpoints.isEmpty else {
            throw ConfigError(
                file: r.file, line: t.line, key: "cluster.etcd",
                "[cluster] needs etcd = [\"http://HOST:PORT\", …]: the client URLs of the etcd members")
        }
        cluster = c
    }

    private mutating func applyMemory(_ t: TOMLDocument.Table, _ r: ConfigReader) throws(ConfigError) {
        for e in t.entries {
            let key = "memory." + e.key
            switch try r.key(e, key, MemoryKey.self) {
            case .sandboxBudgetMib: sandboxMemoryBudgetMiB = try r.int(e, key, in: 1...1_048_576)
            case .globalBudgetMib: globalMemoryBudgetMiB = try r.int(e, key, in: 1...16_777_216)
            case .chunkKib:
                let k = try r.int(e, key, in: 4...1024)
                guard k & (k - 1) == 0 else { throw r.error(e, key, "\(k) is not a power of two (4, 8, 16, … 1024)") }
                bufferChunkKiB = k
            case .trimIntervalMs: memoryTrimIntervalMilliseconds = try r.int(e, key, in: 10...600_000)
            }
        }
    }

    private mutating func applyDescriptors(_ t: TOMLDocument.Table, _ r: ConfigReader) throws(ConfigError) {
        for e in t.entries {
            let key = "descriptors." + e.key
            switch try r.key(e, key, DescriptorsKey.self) {
            case .perSandbox: descriptors.perSandbox = try r.int(e, key, in: 1...10_000_000)
            case .controlReserve: descriptors.controlReserve = try r.int(e, key, in: 16...1_000_000)
            }
        }
    }

    private mutating func applyDNS(_ t: TOMLDocument.Table, _ r: ConfigReader) throws(ConfigError) {
        for e in t.entries {
            let key = "dns." + e.key
            switch try r.key(e, key, DNSKey.self) {
            case .upstreams:
                var list: [HostPort] = []
                for text in try r.strings(e, key) {
                    if IPAddress(text) != nil {
                        list.append(HostPort(host: text, port: 53))
                    } else if let hp = HostPort(text), IPAddress(hp.host) != nil {
                        list.append(hp)
                    } else {
                        throw r.error(
                            e, key, "'\(text)' is not a resolver address: write an IP, IP:PORT or [IPv6]:PORT")
                    }
                }
                dnsUpstreams = list
            case .localNames: dnsLocalNames = try r.strings(e, key)
            case .deniedNames: dnsDeniedNames = try r.dnsNames(e, key)
            case .queryRate: dnsQueryRate = try r.int(e, key, in: 1...1_000_000)
            case .pinCapacity: dnsPinCapacity = try r.int(e, key, in: 16...1_000_000)
            case .pinTTLFloor: dnsPinTTLFloorSeconds = try r.int(e, key, in: 0...86_400)
            }
        }
    }

    /// `[policies.NAME]` tables: `rules` (policy rule text, first match wins), then the rules of
    /// the profile named by `extends`, then `default`; `denied-names` for its sandboxes' DNS.
    private mutating func applyPolicies(_ t: TOMLDocument.Table, _ r: ConfigReader) throws(ConfigError) {
        for p in t.entries {
            let name = p.key
            // Profiles are found in any case, so "Public" beside "public" would only confuse.
            guard !Policy.profileNames.contains(name.lowercased()) else {
                throw r.error(p, "policies." + name, "'\(name)' is a built-in profile: give your policy another name")
            }
            var rules: [PolicyRule] = []
            var base: Policy?
            var defaultAction: PolicyAction?
            var deniedNames: [String] = []
            var memoryBudget: Int?
            var dnsMode: Policy.DNSMode?
            var unidentified: PolicyAction?
            var rates = RateLimits()
            for e in try r.table(p, "policies." + name).entries {
                let key = "policies.\(name).\(e.key)"
                switch try r.key(e, key, PolicyKey.self) {
                case .rules:
                    for (i, text) in try r.strings(e, key).enumerated() {
                        do {
                            rules.append(try PolicyRule(parsing: text))
                        } catch {
                            throw r.error(e, key, "rule \(i + 1) (\"\(text)\"): \(error.reason)")
                        }
                    }
                case .extends:
                    let profile = try r.choice(e, key, Policy.profileNames) ?? "host-only"
                    base = try? Policy.profile(named: profile)
                case .`default`:
                    defaultAction = try r.choice(e, key, PolicyAction.allCases.map(\.rawValue)).flatMap {
                        PolicyAction(rawValue: $0)
                    }
                case .deniedNames: deniedNames = try r.dnsNames(e, key)
                case .memoryBudgetMib: memoryBudget = try r.int(e, key, in: 1...1_048_576) << 20
                case .dns:
                    dnsMode = try r.choice(e, key, Policy.DNSMode.allCases.map(\.rawValue)).flatMap {
                        Policy.DNSMode(rawValue: $0)
                    }
                case .unidentifiedTraffic:
                    unidentified = try r.choice(e, key, PolicyAction.allCases.map(\.rawValue)).flatMap {
                        PolicyAction(rawValue: $0)
                    }
                case .rateLimit:
                    let rate = try r.bitRate(e, key)
                    rates.toHostBytesPerSecond = rates.toHostBytesPerSecond ?? rate
                    rates.fromHostBytesPerSecond = rates.fromHostBytesPerSecond ?? rate
                case .rateLimitUp: rates.toHostBytesPerSecond = try r.bitRate(e, key)
                case .rateLimitDown: rates.fromHostBytesPerSecond = try r.bitRate(e, key)
                case .packetRate: rates.packetsPerSecond = try r.int(e, key, in: 1...100_000_000)
                case .connectionRate: rates.connectionsPerSecond = try r.int(e, key, in: 1...1_000_000)
                case .maxFlows: rates.maxFlows = try r.int(e, key, in: 1...1_000_000)
                }
            }
            var policy = Policy(
                rules: rules + (base?.rules ?? []), default: defaultAction ?? base?.defaultAction ?? .deny,
                deniedNames: deniedNames)
            policy.memoryBudget = memoryBudget
            if let dnsMode { policy.dnsMode = dnsMode }
            if let unidentified { policy.unidentifiedTraffic = unidentified }
            policy.rateLimits = rates
            policies[name] = policy
        }
    }

    static func ipv4Prefix(_ text: String) -> (IPv4Address, Int)? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let a = IPv4Address(parts[0]), let n = Int(parts[1]), (8...30).contains(n) else {
            return nil
        }
        let mask: UInt32 = n == 0 ? 0 : ~UInt32(0) << UInt32(32 - n)
        guard a.raw & ~mask == 0 else { return nil }
        return (a, n)
    }
}

/// A table's keys: the raw value is the key as written in the file.
protocol ConfigKeys: RawRepresentable<String>, CaseIterable {}

/// Typed reads of config entries, each failure naming the key and its line.
struct ConfigReader {
    let file: String

    func error(_ e: TOMLDocument.Table.Entry, _ key: String, _ reason: String) -> ConfigError {
        ConfigError(file: file, line: e.line, key: key, reason)
    }

    private func expected(_ e: TOMLDocument.Table.Entry, _ key: String, _ what: String) -> ConfigError {
        error(e, key, "expected \(what), found \(e.value.typeName)")
    }

    /// The entry's key as one of a table's known keys, or an error that lists them.
    func key<Key: ConfigKeys>(_ e: TOMLDocument.Table.Entry, _ key: String, _: Key.Type) throws(ConfigError) -> Key {
        guard let k = Key(rawValue: e.key) else { throw unknown(e, key, known: Key.allCases.map(\.rawValue)) }
        return k
    }

    func unknown(_ e: TOMLDocument.Table.Entry, _ key: String, known: [String]) -> ConfigError {
        let name = e.key
        let near = known.min { editDistance($0, name) < editDistance($1, name) }
        var reason = "unknown key"
        if let near, editDistance(near, name) <= 2 { reason += ": did you mean '\(near)'?" }
        reason += " (known here: \(known.joined(separator: ", ")))"
        return error(e, key, reason)
    }

    func string(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> String {
        guard case .string(let s) = e.value else { throw expected(e, key, "a string") }
        return s
    }

    func path(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> String {
        let s = try string(e, key)
        guard s.hasPrefix("/") else { throw error(e, key, "'\(s)' is not an absolute path") }
        return s
    }

    func int(_ e: TOMLDocument.Table.Entry, _ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard case .integer(let n) = e.value else { throw expected(e, key, "an integer") }
        guard range.contains(n) else {
            throw error(e, key, "\(n) is out of range: use \(range.lowerBound)-\(range.upperBound)")
        }
        return n
    }

    /// A bit rate such as "100mbit" (kbit, mbit, gbit), as bytes per second.
    func bitRate(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> UInt64 {
        let text = try string(e, key)
        guard let rate = RateLimits.bytesPerSecond(parsing: text) else {
            throw error(e, key, "'\(text)' is not a rate: write a number and a unit, e.g. \"100mbit\" (kbit, mbit, gbit)")
        }
        return rate
    }

    func bool(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> Bool {
        guard case .boolean(let b) = e.value else { throw expected(e, key, "true or false") }
        return b
    }

    func strings(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> [String] {
        guard case .array(let items) = e.value else { throw expected(e, key, "an array of strings") }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item else {
                throw error(e, key, "expected an array of strings, found \(item.typeName) in it")
            }
            out.append(s)
        }
        return out
    }

    /// Domain names as an operator writes them: dot-separated labels of ASCII letters, digits,
    /// `-` and `_` (RFC 1035 §2.3.1, with the underscore of service names), each 1-63 bytes
    /// (§2.3.4), at most 253 characters, one trailing dot allowed; "." alone means every name.
    func dnsNames(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> [String] {
        let names = try strings(e, key)
        for name in names where !Self.isDNSName(name) {
            throw error(
                e, key,
                "'\(name)' is not a DNS name: write labels of letters, digits, '-' and '_' joined by dots, "
                    + "e.g. ads.example.com (an internationalised name in its xn-- form)")
        }
        return names
    }

    static func isDNSName(_ name: String) -> Bool {
        if name == "." { return true }
        var text = Substring(name)
        if text.hasSuffix(".") { text = text.dropLast() }
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        for label in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.utf8.count) else { return false }
            let ok = label.utf8.allSatisfy { b in
                (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
            }
            guard ok else { return false }
        }
        return true
    }

    func table(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> TOMLDocument.Table {
        guard case .table(let t) = e.value else { throw expected(e, key, "a table ([\(key)])") }
        return t
    }

    func choice(_ e: TOMLDocument.Table.Entry, _ key: String, _ options: [String]) throws(ConfigError) -> String? {
        let s = try string(e, key)
        guard options.contains(s) else {
            throw error(e, key, "'\(s)' is not one of \(options.joined(separator: ", "))")
        }
        return s
    }

    /// File permission bits written as an octal string ("0660") or an octal integer (0o660).
    func mode(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> UInt32 {
        let value: UInt32?
        switch e.value {
        case .string(let s): value = UInt32(s, radix: 8)
        case .integer(let n): value = (0...0o7777).contains(n) ? UInt32(n) : nil
        default: value = nil
        }
        guard let value, value <= 0o7777 else {
            throw error(e, key, "expected permission bits in octal, e.g. \"0660\"")
        }
        return value
    }

    func hostPort(_ e: TOMLDocument.Table.Entry, _ key: String) throws(ConfigError) -> DaemonConfiguration.HostPort {
        let s = try string(e, key)
        guard let hp = DaemonConfiguration.HostPort(s) else {
            throw error(e, key, "'\(s)' is not HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464")
        }
        return hp
    }
}

/// Levenshtein distance, for "did you mean" on short key names.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8)
    let b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = previous
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
