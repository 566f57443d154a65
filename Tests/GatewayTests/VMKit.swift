// The VM guest kit (Sandboxes/vm) as the tests use it: built once per run (installing QEMU and the
// cloud kernel when missing), and a booted guest whose console the test reads line by line.
import Foundation
import GatewayTestSupport
import Link
import Synchronization

enum VMKit {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sandboxes/vm").path
    /// Shared with boot.sh's default, so a developer's kit and the tests' are built once.
    static let kit = ProcessInfo.processInfo.environment["GW_VM_KIT"] ?? "/var/tmp/gateway-vm-kit"

    /// nil once the kit is built and QEMU is there; otherwise why the VM tests cannot run.
    static let unavailableReason: String? = prepare()

    static var isReady: Bool {
        if let reason = unavailableReason { print("VM tests skipped: \(reason)") }
        return unavailableReason == nil
    }

    private static func prepare() -> String? {
        guard TestHost.canCreateDevices else { return "they need root and /dev/net/tun" }
        if (try? TestHost.run(["sh", "-c", "command -v qemu-system-x86_64"])) == nil {
            let install = "apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null"
            let script = "export DEBIAN_FRONTEND=noninteractive; \(install) || (apt-get update -qq && \(install))"
            _ = try? TestHost.run(["sh", "-c", script])
            if (try? TestHost.run(["sh", "-c", "command -v qemu-system-x86_64"])) == nil {
                return "qemu-system-x86 is not installed and could not be (Tools/install-deps.sh installs it)"
            }
        }
        do {
            try TestHost.run(["timeout", "600", directory + "/build-initramfs.sh", "-o", kit])
        } catch {
            return "the guest kit could not be built (linux-image-cloud-amd64, busybox-static): \(error)"
        }
        return nil
    }

    /// A tag for one test's device names (`gwv-<tag>-N`), and the sweep that removes whatever a
    /// failed test left with it.
    static func deviceTag() -> String {
        String((0..<5).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
    }

    static func sweep(tag: String, host: NetlinkSocket) {
        for role in ["gwv-", "gwt-", "gwb-"] { _ = try? host.sweepStaleDevices(prefix: role + tag + "-") }
    }

    /// Boots the kit on `tap` with boot.sh; the guest runs `command` and powers off.
    static func boot(tap: String, mac: String, command: String, timeout: Int = 300) throws -> GuestConsole {
        try GuestConsole(
            arguments: [directory + "/boot.sh", tap, mac, command],
            environment: ["GW_VM_KIT": kit, "GW_VM_TIMEOUT": String(timeout)])
    }
}

/// A running guest: its console collected as it arrives, its exit status at the end.
final class GuestConsole: Sendable {
    private let process: Process
    private let output = Collected()
    private let errors = Collected()

    /// Bytes a pipe's handler appends on its own thread.
    private final class Collected: Sendable {
        private let bytes = Mutex<[UInt8]>([])
        func append(_ data: Data) { bytes.withLock { $0 += data } }
        var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) } }
    }

    init(arguments: [String], environment: [String: String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = FileHandle.nullDevice
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        for (pipe, sink) in [(out, output), (err, errors)] {
            pipe.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                // End of file: without this the handler would be called again and again.
                if data.isEmpty { handle.readabilityHandler = nil } else { sink.append(data) }
            }
        }
        try process.run()
    }

    /// Console lines so far.
    var lines: [String] {
        output.text.split(separator: "\n").map(String.init)
    }

    var transcript: String {
        output.text + errors.text
    }

    /// The value after `prefix` on the first console line that starts with it.
    func value(_ prefix: String) -> String? {
        lines.first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    func values(_ prefix: String) -> [String] {
        lines.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// Waits for a console line starting with `prefix`; throws with the transcript when the guest
    /// ends or the time runs out first.
    func waitForLine(_ prefix: String, seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if value(prefix) != nil { return }
            if !process.isRunning {
                usleep(100_000)
                if value(prefix) != nil { return }
                throw GuestFailure("the guest ended before printing '\(prefix)':\n\(transcript)")
            }
            usleep(50_000)
        }
        throw GuestFailure("no '\(prefix)' from the guest within \(Int(seconds)) s:\n\(transcript)")
    }

    /// Waits for boot.sh to end (the guest powered off); returns its status (the command's).
    func waitForExit(seconds: Double) throws -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        guard !process.isRunning else {
            terminate()
            throw GuestFailure("the guest did not power off within \(Int(seconds)) s:\n\(transcript)")
        }
        // The last bytes may still be on their way through the pipe.
        usleep(100_000)
        return process.terminationStatus
    }

    /// Stops boot.sh and QEMU with it (boot.sh runs QEMU in its own process group under timeout).
    func terminate() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

struct GuestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
