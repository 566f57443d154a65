// Pieces of the tests that run gatewayd with many sandboxes or low limits: namespaces made and
// removed in bulk, attach over the API without a process per call, Python helpers run on the
// host or in a namespace, and root keys added to the harness's config.
import Foundation
import GatewayControl
import GatewayTestSupport
import Link

/// Namespaces `gwtest-TAG-bN` made with one `ip -batch` (a thousand take seconds, not minutes)
/// and removed the same way; `remove()` runs from the test's `defer`.
final class NamespaceBatch {
    let names: [String]

    init(tag: String, count: Int) throws {
        names = (0..<count).map { "gwtest-\(tag)-b\($0)" }
        do {
            try Self.batch(names.map { "netns add \($0)" })
        } catch {
            remove()
            throw error
        }
    }

    func remove() { try? Self.batch(names.map { "netns del \($0)" }) }

    private static func batch(_ lines: [String]) throws {
        let path = "/tmp/gw-nsbatch-\(UUID().uuidString)"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try TestHost.run(["ip", "-force", "-batch", path])
    }

    /// Namespaces (of these) that still have a gateway TAP in them.
    func withGatewayDevices() -> [String] {
        // Netlink in-process: a thousand `ip` processes would take longer than the shutdown.
        names.filter { name in
            guard let ns = try? NetworkNamespace(named: name), let nl = try? NetlinkSocket(in: ns) else { return false }
            return ((try? nl.links()) ?? []).contains { $0.name.hasPrefix("gwt-") }
        }
    }
}

extension DaemonHarness {
    /// Root keys put before the harness's tables (a key after `[addresses]` would land in it).
    func addRootConfig(_ lines: String) throws {
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
        try (lines + "\n" + config).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Tables added at the end of the config.
    func addConfigTables(_ text: String) throws {
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
        try (config + "\n" + text + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// POST /v1/sandboxes over the socket: the HTTP status and the answer's text.
    func attachOverAPI(_ id: String, namespace: String) throws -> (Int, String) {
        let body = Array(#"{"id":"\#(id)","netns":"\#(namespace)"}"#.utf8)
        do {
            let (status, bytes) = try ControlClient(socketPath: socketPath, timeout: 30).send(
                "POST", "/v1/sandboxes", body: body)
            return (status, String(decoding: bytes, as: UTF8.self))
        } catch {
            // An error answer comes back thrown, as the daemon's error.
            guard error.code != .unreachable && error.code != .badResponse else { throw error }
            return (error.httpStatus, "\(error.code): \(error.message)")
        }
    }

    /// A sandbox's drop counters, from `stats --json`.
    func drops(of id: String) throws -> [String: Int] {
        let out = try ctl("stats", id, "--json")
        let object = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
        return (object?["drops"] as? [String: Int]) ?? [:]
    }

    /// The guest and gateway IPv4 addresses `attach` gave a sandbox.
    func addresses(of id: String) throws -> (guest: String, gateway: String) {
        let json = try ctl("list", "--json")
        let views = try JSONDecoder().decode([SandboxView].self, from: Data(json.stdout.utf8))
        guard let v = views.first(where: { $0.id == id }) else { throw HarnessError("no sandbox \(id) in list") }
        return (v.guestIPv4, v.gatewayIPv4)
    }
}

/// A Python program written to a file and started in the background (on the host, or in a
/// namespace), killed with the test's other processes.
func startPython(
    _ source: String, _ arguments: [String], in namespace: String? = nil, processes: TestProcesses
) throws -> Process {
    let path = "/tmp/gw-py-\(UUID().uuidString).py"
    try source.write(toFile: path, atomically: true, encoding: .utf8)
    let command = ["python3", path] + arguments
    return try processes.start(namespace.map { ["ip", "netns", "exec", $0] + command } ?? command)
}

/// The text a helper wrote to `path`, once it is there (within `seconds`).
func waitForFile(_ path: String, seconds: Double = 30, until done: (String) -> Bool = { !$0.isEmpty }) -> String? {
    var text: String?
    let found = eventually(seconds: seconds, every: 0.05) {
        text = try? String(contentsOfFile: path, encoding: .utf8)
        return text.map(done) ?? false
    }
    return found ? text : nil
}

/// The shared helper (a type of the same name in this target has another shape).
typealias TestProcesses = GatewayTestSupport.BackgroundProcesses
