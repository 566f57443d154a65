// Shared pieces of the link integration tests: the root check, names no parallel test can
// collide with, a scratch area that removes every device and namespace a test made (also when an
// expectation fails or something throws), and shell-outs to iproute2 and ethtool.
import Foundation
import Testing
import Wire

@testable import Link

enum Host {
    /// Integration tests create devices and namespaces: they need root and the tun driver.
    static let canCreateDevices = getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/net/tun")

    /// Runs a command and returns its standard output; throws with its output when it fails.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
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

    struct CommandFailed: Error, CustomStringConvertible {
        let arguments: [String]
        let status: Int32
        let output: String
        var description: String { "\(arguments.joined(separator: " ")) exited \(status): \(output)" }
    }
}

/// Everything one test creates, named with a random tag and removed when the test ends.
///
/// Device names are `gw<role><tag>-<suffix>` (e.g. `gwtk3j9x-a`, 10 bytes); namespaces are
/// `gwtest-<tag>-<n>`. `cleanUp()` runs from `defer` in each test and again from deinit, so a
/// failed expectation or a thrown error still leaves the host as it was.
final class Scratch {
    let tag: String
    let host: NetlinkSocket
    private var namespaceNames: [String] = []

    init() throws {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        tag = String((0..<5).map { _ in alphabet.randomElement()! })
        host = try NetlinkSocket()
    }

    deinit { cleanUp() }

    /// A device name unique to this test: `gw` + role letter + tag + `-` + suffix.
    func deviceName(_ role: Character, _ suffix: String) -> String { "gw\(role)\(tag)-\(suffix)" }

    /// A fresh named namespace, removed at cleanup.
    func namespace() throws -> NetworkNamespace {
        let name = "gwtest-\(tag)-\(namespaceNames.count)"
        namespaceNames.append(name)
        return try NetworkNamespace.create(named: name)
    }

    /// Deletes every host device carrying this test's tag, then the namespaces (and with them
    /// whatever devices are inside). Errors are ignored: it may run twice, after a partial setup.
    func cleanUp() {
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
func randomMAC() -> MACAddress {
    MACAddress(raw: 0x0200_0000_0000 | UInt64.random(in: 0...0xFF_FFFF_FFFF))
}

extension TAPDevice {
    /// Writes `frame` behind a zeroed virtio-net header (no offload requested: flags 0, GSO none).
    func send(_ frame: [UInt8]) throws {
        let bytes = [UInt8](repeating: 0, count: vnetHeaderSize) + frame
        let written = try bytes.withUnsafeBytes { try write($0) }
        #expect(written == bytes.count)
    }

    /// Reads frames until `match` accepts one (returned without its virtio-net header), or
    /// `seconds` pass. Every other frame goes to `other` (which may answer it) and is dropped.
    func receive(
        within seconds: Double = 5, other: ([UInt8]) throws -> Void = { _ in },
        where match: ([UInt8]) -> Bool
    ) throws -> [UInt8]? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var buffer = [UInt8](repeating: 0, count: frameBufferSize)
        while ContinuousClock.now < deadline {
            let left = deadline - ContinuousClock.now
            let ms = Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            guard try waitUntilReadable(timeoutMilliseconds: ms) else { continue }
            while let n = try buffer.withUnsafeMutableBytes({ try read(into: $0) }) {
                guard n >= vnetHeaderSize else { continue }
                let frame = Array(buffer[vnetHeaderSize..<n])
                if match(frame) { return frame }
                try other(frame)
            }
        }
        return nil
    }
}
