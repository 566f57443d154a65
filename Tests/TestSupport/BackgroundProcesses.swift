// Processes a test starts in the background (servers, clients in namespaces), killed when it
// ends; and the wait for a server to be listening.
import Foundation

public final class BackgroundProcesses: @unchecked Sendable {
    private var processes: [Process] = []

    public init() {}

    /// Starts `arguments` (looked up on PATH) with its output discarded.
    public func start(_ arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        processes.append(p)
        return p
    }

    /// SIGKILL: children may inherit a mask that blocks SIGTERM from the test runner.
    public func killAll() {
        for p in processes where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        processes.removeAll()
    }
}

extension TestHost {
    public struct TimedOut: Error {}

    /// Waits until something listens on `port` (TCP), or has bound it (UDP), in namespace `ns`
    /// or on the host.
    public static func waitForListener(port: UInt16, in ns: String? = nil, udp: Bool = false, seconds: Double = 10) throws {
        let ss = "ss -\(udp ? "u" : "t")lnH 'sport = :\(port)' | grep -q ."
        let command = ns.map { "ip netns exec \($0) sh -c \"\(ss)\"" } ?? ss
        try waitFor(seconds: seconds, every: 0.05) { (try? run(["sh", "-c", command])) != nil }
    }
}
