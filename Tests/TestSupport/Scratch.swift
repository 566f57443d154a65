// Shared pieces of the root integration tests: the root check, shell-outs to iproute2 and other
// tools, and a scratch area that removes every device and namespace a test made, even on failure.
import Foundation
import Link
import Wire

public enum TestHost {
    /// Integration tests create devices and namespaces: they need root and the tun driver.
    public static let canCreateDevices = getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/net/tun")

    /// Runs a command and returns its standard output; throws with its output when it fails.
    @discardableResult
    public static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: stdout, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw CommandFailed(arguments: arguments, status: process.terminationStatus, output: text + String(decoding: stderr, as: UTF8.self))
        }
        return text
    }

    public struct CommandFailed: Error, CustomStringConvertible {
        let arguments: [String]
        let status: Int32
        let output: String
        public var description: String { "\(arguments.joined(separator: " ")) exited \(status): \(output)" }
    }
}

/// Everything one test creates, named with a random tag and removed when the test ends.
///
/// Device names are `gw<role><tag>-<suffix>` (e.g. `gwtk3j9x-a`, 10 bytes); namespaces are
/// `gwtest-<tag>-<n>`. `cleanUp()` runs from `defer` in each test and again from deinit, so a
/// failed expectation or a thrown error still leaves the host as it was.
public final class Scratch {
    public let tag: String
    public let host: NetlinkSocket
    private var namespaceNames: [String] = []

    public init() throws {
        // A test writing to a child that died (a killed server's pipe) must see EPIPE and fail,
        // not take the whole test process down with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        tag = String((0..<5).map { _ in alphabet.randomElement()! })
        host = try NetlinkSocket()
    }

    deinit { cleanUp() }

    /// A device name unique to this test: `gw` + role letter + tag + `-` + suffix.
    public func deviceName(_ role: Character, _ suffix: String) -> String { "gw\(role)\(tag)-\(suffix)" }

    /// A fresh named namespace, removed at cleanup.
    public func namespace() throws -> NetworkNamespace {
        let name = "gwtest-\(tag)-\(namespaceNames.count)"
        namespaceNames.append(name)
        return try NetworkNamespace.create(named: name)
    }

    /// Deletes every host device carrying this test's tag, then the namespaces (and with them
    /// whatever devices are inside). Errors are ignored: it may run twice, after a partial setup.
    public func cleanUp() {
        if let links = try? host.links() {
            for link in links where link.name.hasPrefix("gw") && link.name.dropFirst(3).hasPrefix(tag) {
                try? host.deleteLink(named: link.name)
            }
        }
        for name in namespaceNames {
            try? NetworkNamespace.delete(named: name)
        }
        namespaceNames.removeAll()
    }
}

/// A locally administered unicast MAC address with random low bytes.
public func randomMAC() -> MACAddress {
    MACAddress(raw: 0x0200_0000_0000 | UInt64.random(in: 0...0xFF_FFFF_FFFF))
}

