// Runs the built gatewayd as a subprocess with a control socket, state directory and config of
// the test's own, and gatewayctl against it; everything is stopped and removed at the end.
import Foundation
import GatewayControl
import GatewayTestSupport
import Link
import Testing

/// The package's build products (swift build puts them in .build/debug).
enum BuiltProducts {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let gatewayd = root + "/.build/debug/gatewayd"
    static let gatewayctl = root + "/.build/debug/gatewayctl"
    static let gatewaydCNI = root + "/.build/debug/gatewayd-cni"
}

final class DaemonHarness: @unchecked Sendable {
    let scratch: Scratch
    let directory: String
    let socketPath: String
    let stateDirectory: String
    let configPath: String
    let logPath: String
    private(set) var process: Process?
    /// A command gatewayd runs under, e.g. ["prlimit", "--nofile=1024:4096", "--"]; empty: none.
    var launcher: [String] = []

    init() throws {
        scratch = try Scratch()
        directory = "/tmp/gwctl-\(scratch.tag)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socketPath = directory + "/control.sock"
        stateDirectory = directory + "/state"
        configPath = directory + "/gatewayd.toml"
        logPath = directory + "/gatewayd.log"
        // A pool of our own, and a sweep limited to this test's names, so that parallel tests
        // never touch each other's devices.
        let block = Int.random(in: 200...250)
        // Host ports of its own for published ports that name none: daemons of tests running at
        // once took the same ones from the default range (one, killed and restarted, found its
        // ports taken by another). Below the kernel's ephemeral range, so no outgoing connection
        // holds them either.
        let ports = 2000 + 64 * Int.random(in: 0..<90)
        try """
        shards = 2
        pin-shards = false
        sweep-prefixes = ["gwv-\(scratch.tag)"]
        [addresses]
        ipv4-pool = "10.\(block).0.0/16"
        ipv6-pool = "fd47:57\(block % 100):\(block)::/48"
        [ports]
        range = "\(ports)-\(ports + 63)"
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts gatewayd and waits until its control socket answers.
    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BuiltProducts.gatewayd)
        p.arguments = ["--config", configPath, "--control", socketPath, "--state-dir", stateDirectory]
        if !launcher.isEmpty {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = launcher + [BuiltProducts.gatewayd] + (p.arguments ?? [])
        }
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let logFile = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        logFile.seekToEndOfFile()
        p.standardError = logFile
        p.standardOutput = logFile
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        var exited = false
        let up = eventually(seconds: 20, every: 0.05) {
            if ControlClient(socketPath: socketPath).isReachable() { return true }
            exited = !p.isRunning
            return exited
        }
        if exited { throw HarnessError("gatewayd exited with \(p.terminationStatus): \(log())") }
        if up { return }
        throw HarnessError("gatewayd did not open \(socketPath) within 20 s: \(log())")
    }

    /// The process the test started: the privileged supervisor (signals go to it; it forwards them).
    var pid: Int32 { process?.processIdentifier ?? 0 }

    /// The unprivileged worker, which holds the sandboxes, their memory and their descriptors
    /// (the supervisor's only child); the supervisor itself when it runs without one (--no-privsep).
    var workerPID: Int32 {
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").compactMap { Int32($0) }.first ?? pid
    }

    /// Sends `signal` and waits for the exit; returns the exit status.
    @discardableResult
    func stop(_ signal: Int32 = SIGTERM, timeout: Double = 20) -> Int32? {
        guard let p = process else { return nil }
        let worker = workerPID
        defer {
            process = nil
            // A supervisor killed outright takes its worker with it (SIGKILL on the parent's
            // death), a moment later: the next start must not find the old worker answering.
            if worker != p.processIdentifier { _ = eventually(seconds: 10) { kill(worker, 0) != 0 } }
        }
        if p.isRunning { kill(p.processIdentifier, signal) }
        _ = eventually(seconds: timeout) { !p.isRunning }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            return nil
        }
        return p.terminationStatus
    }

    func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// gatewayctl --control SOCKET ARGS...
    func ctl(_ arguments: String..., timeout: Double = 60) throws -> CommandResult {
        let command = arguments.first.map { [$0] } ?? []
        return try runProgram(
            BuiltProducts.gatewayctl, command + ["--control", socketPath] + arguments.dropFirst(), timeout: timeout)
    }

    /// Devices inside a namespace, by name.
    func links(in namespace: String) -> [String] {
        guard let ns = try? NetworkNamespace(named: namespace), let nl = try? NetlinkSocket(in: ns) else { return [] }
        return ((try? nl.links()) ?? []).map(\.name)
    }

    func stateFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: stateDirectory + "/sandboxes")) ?? []).sorted()
    }

    /// Makes the daemon name its host-namespace devices `gwv-TAG-N` (and gwb-, gwt-) with the
    /// test's tag, and sweep those prefixes at start. Call before `start`.
    func tagHostDevices() throws {
        let tag = scratch.tag
        var config = try String(contentsOfFile: configPath, encoding: .utf8)
        config = config.replacingOccurrences(
            of: "sweep-prefixes = [\"gwv-\(tag)\"]",
            with: "sweep-prefixes = [\"gwv-\(tag)\", \"gwb-\(tag)\", \"gwt-\(tag)\"]\nhost-device-tag = \"\(tag)\"")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// The daemon's resident set (VmRSS) in kilobytes.
    func residentKilobytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(workerPID)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    func openFileCount() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(workerPID)/fd")) ?? []).count
    }

    /// The descriptor count once it stops changing (or drops to `atMost`), within 5 s.
    func settledFileCount(atMost target: Int? = nil) -> Int {
        var last = openFileCount()
        var stableSince = Date()
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            usleep(50_000)
            let now = openFileCount()
            if let target, now <= target { return now }
            if now != last {
                last = now
                stableSince = Date()
            } else if target == nil && Date().timeIntervalSince(stableSince) >= 0.3 {
                return now
            }
        }
        return last
    }

    func tearDown() {
        stop(SIGKILL)
        scratch.cleanUp()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
