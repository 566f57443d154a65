// attach, detach, list and stats: the sandbox subcommands.
import ArgumentParser
import Gateway
import GatewayControl

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach a network namespace or a VM as a sandbox and print its addresses.",
        discussion: """
            With --vm, gatewayd makes a TAP for the VM monitor to open by name and prints it with the MAC \
            the guest must use, e.g. for QEMU: -netdev tap,id=n0,ifname=TAP,script=no,downscript=no,vnet_hdr=on \
            -device virtio-net-pci,netdev=n0,mac=MAC. The guest configures itself by DHCP and SLAAC.
            """)

    @OptionGroup var options: ControlOptions

    @Argument(help: "The sandbox ID: 1-64 letters, digits, '-', '_' or '.'.")
    var id: String

    @Option(
        help: "The network namespace to give a link: its name as 'ip netns list' shows it, or the path of a namespace file (/proc/PID/ns/net).")
    var netns: String?

    @Option(help: "With --netns: the interface's name inside the namespace (default gwt-N).")
    var ifname: String?

    @Flag(help: "Attach a VM: make a TAP for its monitor to open (instead of --netns).")
    var vm = false

    @Option(help: "With --vm: the user ID that may open the TAP without CAP_NET_ADMIN.")
    var owner: UInt32?

    @Option(help: "With --vm: the group ID that may open the TAP without CAP_NET_ADMIN.")
    var group: UInt32?

    @Flag(help: "Leave addressing to the guest's DHCP client instead of configuring it (a VM always does).")
    var dhcp = false

    @Option(help: "The link's MTU (576-65520).")
    var mtu: Int?

    @Option(help: "Egress policy: host-only, public, open, or one gatewayd's config defines.")
    var policy: String?

    @Option(help: "The guest's MAC address (default: random in a namespace, from the sandbox's index for a VM).")
    var mac: String?

    @Option(help: "TCP buffer memory the sandbox may hold, in MiB (default: its policy's, else gatewayd's).")
    var memoryBudgetMib: Int?

    @Option(help: "Bytes per second each way, as a bit rate: 100mbit, 1gbit, 512kbit (default: its policy's, else none).")
    var rateLimit: String?

    @Option(help: "As --rate-limit, to the host only (the guest's uploads).")
    var rateLimitUp: String?

    @Option(help: "As --rate-limit, from the host only (the guest's downloads).")
    var rateLimitDown: String?

    @Option(help: "UDP datagrams per second, each way (default: its policy's, else none).")
    var packetRate: Int?

    @Option(help: "New flows per second (default: its policy's, else gatewayd's).")
    var connectionRate: Int?

    @Option(help: "TCP flows and UDP sessions open at once (default: its policy's, else none).")
    var maxFlows: Int?

    @Option(
        name: .customLong("publish"),
        help: ArgumentHelp(
            "Publish a port with the attach (repeatable): \(PublishRequest.syntax). If one fails, the attach is undone.",
            valueName: "SPEC"))
    var publish: [String] = []

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func validate() throws {
        if vm == (netns != nil) { throw ValidationError("give either --netns NAME or --vm") }
        if !vm && (owner != nil || group != nil) { throw ValidationError("--owner and --group go with --vm") }
        if vm && ifname != nil { throw ValidationError("--ifname goes with --netns (a VM's TAP is gwv-N)") }
    }

    func run() throws {
        let ports = try publish.map { text in try perform { () throws(ControlError) in try PublishRequest(parsing: text) } }
        var request = AttachRequest(
            id: id, netns: netns, vm: vm ? AttachRequest.VM(owner: owner, group: group) : nil,
            dhcp: dhcp ? true : nil, mtu: mtu, policy: policy, mac: mac, ports: ports.isEmpty ? nil : ports, ifname: ifname)
        request.memoryBudgetMiB = memoryBudgetMib
        request.rateLimit = rateLimit
        request.rateLimitUp = rateLimitUp
        request.rateLimitDown = rateLimitDown
        request.packetRate = packetRate
        request.connectionRate = connectionRate
        request.maxFlows = maxFlows
        // Checked here, a bad value is reported before any round trip.
        _ = try perform { () throws(ControlError) in try request.spec() }
        let view = try perform { () throws(ControlError) in
            try options.client.call("POST", "/v1/sandboxes", body: request, as: SandboxView.self)
        }
        if let warning = view.warning { printError("warning: \(warning)") }
        if json { return printJSON(view) }
        print(describe(view))
    }
}

/// A sandbox as "key  value" lines.
func describe(_ s: SandboxView) -> String {
    var t = TextTable("sandbox", s.id)
    t.add("mode", s.mode)
    if s.mode == "vm" {
        t.add("tap", "\(s.tap) (QEMU: -netdev tap,ifname=\(s.tap),script=no,downscript=no,vnet_hdr=on)")
        t.add("mac", "\(s.mac) (the guest must use it; other source MACs are dropped)")
        t.add("bridge", s.bridge ?? "-")
    } else {
        t.add("namespace", s.namespace ?? "-")
        t.add("tap", s.tap)
        t.add("mac", s.mac)
    }
    t.add("ipv4", s.dhcp ? "by DHCP from \(s.gatewayIPv4)" : "\(s.guestIPv4)/\(s.prefixLength) via \(s.gatewayIPv4)")
    t.add("ipv6", "\(s.guestIPv6) (SLAAC in \(s.guestIPv6Prefix)) via \(s.gatewayIPv6)")
    t.add("gateway mac", s.gatewayMAC)
    t.add("shard", String(s.shard))
    t.add("mtu", String(s.mtu))
    t.add("policy", s.policy)
    t.add("ports", s.ports.isEmpty ? "-" : s.ports.map(portText).joined(separator: ", "))
    for warning in s.restoreWarnings ?? [] { t.add("restore", warning) }
    return t.rendered
}

func portText(_ r: RouteView) -> String {
    portText(hostIP: r.hostIP, hostPort: r.hostPort, guestPort: r.guestPort, protocol: r.protocol)
}

/// `HOST:PORT->GUEST/PROTO`, an IPv6 host in brackets: a published port, local or from etcd.
func portText(hostIP: String, hostPort: Int, guestPort: Int, protocol proto: String) -> String {
    let host = hostIP.contains(":") ? "[\(hostIP)]" : hostIP
    return "\(host):\(hostPort)->\(guestPort)/\(proto)"
}

struct Detach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detach a sandbox: its flows are reset and its interface removed.")

    @OptionGroup var options: ControlOptions

    @Argument(help: "The sandbox ID.")
    var id: String

    func run() throws {
        _ = try perform { () throws(ControlError) in try checkID(id) }
        struct Detached: Decodable { var id: String }
        _ = try perform { () throws(ControlError) in
            try options.client.call("DELETE", "/v1/sandboxes/\(id)", as: Detached.self)
        }
        print("detached \(id)")
    }
}

/// Rejects IDs that the daemon would (and that would not fit in a URL path segment).
func checkID(_ id: String) throws(ControlError) {
    do {
        try SandboxSpec.validate(id: id)
    } catch {
        throw ControlError(.invalidArgument, error.message)
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the attached sandboxes (with --cluster: every node's, from etcd).")

    @OptionGroup var options: ControlOptions

    @OptionGroup var cluster: ClusterOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        if let reader = try perform({ () throws(ControlError) in try cluster.reader() }) {
            return try printClusterSandboxes(reader, json: json)
        }
        let list = try perform { () throws(ControlError) in
            try options.client.call("GET", "/v1/sandboxes", as: [SandboxView].self)
        }
        if json { return printJSON(list) }
        var t = TextTable("ID", "MODE", "NETNS", "SHARD", "TAP", "MAC", "IPV4", "GATEWAY", "IPV6", "PORTS")
        for s in list {
            t.add(
                s.id, s.mode, s.namespace ?? "-", String(s.shard), s.tap, s.mac,
                s.dhcp ? "dhcp" : "\(s.guestIPv4)/\(s.prefixLength)", s.gatewayIPv4, s.guestIPv6,
                s.ports.isEmpty ? "-" : s.ports.map(portText).joined(separator: ","))
        }
        print(t.rendered)
        for s in list {
            for warning in s.restoreWarnings ?? [] { printError("warning: sandbox \(s.id): \(warning)") }
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a sandbox's counters.")

    @OptionGroup var options: ControlOptions

    @Argument(help: "The sandbox ID.")
    var id: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        _ = try perform { () throws(ControlError) in try checkID(id) }
        let s = try perform { () throws(ControlError) in
            try options.client.call("GET", "/v1/sandboxes/\(id)/stats", as: SandboxStats.self)
        }
        if json { return printJSON(s) }
        var t = TextTable("sandbox", s.id)
        t.add("frames in/out", "\(s.framesIn) / \(s.framesOut)")
        t.add("bytes in/out", "\(s.bytesIn) / \(s.bytesOut)")
        t.add("to/from host", "\(s.bytesToHost) / \(s.bytesFromHost) bytes")
        t.add("tcp flows", "\(s.tcpFlowsActive) open, \(s.tcpFlowsTotal) total")
        t.add("udp sessions", String(s.udpSessions))
        let m = s.memory
        t.add(
            "tcp buffers",
            "\(m.heldBytes >> 10) KiB held (peak \(m.peakHeldBytes >> 10)), \(m.reservedBytes >> 10) of \(m.budgetBytes >> 10) KiB budget reserved"
                + (m.budgetShortfalls > 0 ? String(format: ", at budget %.1f s (%d times)", m.secondsAtBudget, m.budgetShortfalls) : ""))
        let r = s.rateLimits
        let rate = { (bytes: UInt64?) in bytes.map { RateLimits.bitRateText($0) } ?? "none" }
        t.add(
            "rate limits",
            "up \(rate(r.toHostBytesPerSecond)) (limited \(String(format: "%.1f", r.secondsLimitedToHost)) s), down \(rate(r.fromHostBytesPerSecond)) (limited \(String(format: "%.1f", r.secondsLimitedFromHost)) s); refused \(r.connectionsRefused) over the rate, \(r.flowsRefused) over max-flows; \(r.udpDropped) datagrams dropped; \(r.halfOpenResets) half-open resets")
        let c = s.counters
        if let suspect = c["frames_suspect_total"] {
            t.add(
                "suspect frames",
                "\(suspect) (not flow traffic); \(c["frames_policed_total"] ?? 0) dropped over the rate; device left unread \(c["device_pauses_total"] ?? 0) times, \(c["device_paused_ms_total"] ?? 0) ms")
        }
        let drops = s.drops.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        t.add("drops", drops.isEmpty ? "none" : drops.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print(t.rendered)
    }
}

struct SetPolicy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Switch a running sandbox to another policy.",
        discussion: "New flows and DNS queries follow it at once; open flows it denies are reset unless --keep-flows.")

    @OptionGroup var options: ControlOptions

    @Argument(help: "The sandbox ID.")
    var id: String

    @Argument(help: "A profile (host-only, public, open) or a policy from the config.")
    var policy: String

    @Flag(help: "Keep open flows the new policy would deny.")
    var keepFlows = false

    @Flag(help: "Print JSON instead of a sentence.")
    var json = false

    func run() throws {
        _ = try perform { () throws(ControlError) in try checkID(id) }
        let changed = try perform { () throws(ControlError) in
            try options.client.call(
                "PUT", "/v1/sandboxes/\(id)/policy", body: PolicyChange(policy: policy, keepFlows: keepFlows),
                as: PolicyChanged.self)
        }
        if json { return printJSON(changed) }
        print("sandbox \(id) now runs policy \(changed.policy) (\(changed.flowsReset) open flow(s) reset)")
    }
}
