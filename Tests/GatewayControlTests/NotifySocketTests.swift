// The service-manager notifications (sd_notify's datagrams) as a socket of the test's own receives
// them: their text, both kinds of address, and what happens when nobody listens.
import Foundation
import GatewayControl
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A Unix datagram socket standing in for systemd's notification socket.
final class NotifyListener {
    let fd: Int32
    /// As `$NOTIFY_SOCKET` would name it: a path, or `@name` for the abstract namespace.
    let address: String
    private let path: String?

    init(abstract: Bool = false) throws {
        let name = "gw-notify-\(UInt32.random(in: 0...UInt32.max))"
        address = abstract ? "@" + name : "/tmp/" + name + ".sock"
        path = abstract ? nil : address
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(errno)") }
        var local = sockaddr_un()
        local.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(address.utf8)
        withUnsafeMutableBytes(of: &local.sun_path) { sunPath in
            sunPath.copyBytes(from: bytes)
            if abstract { sunPath[0] = 0 }
        }
        let length = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1)
        let rc = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        guard rc == 0 else {
            close(fd)
            throw HarnessError("bind \(address): \(String(cString: strerror(errno)))")
        }
        // The daemon's supervisor is root, but a test may run gatewayd as another user.
        if let path { chmod(path, 0o666) }
    }

    /// The next datagram within `seconds`; nil when none came.
    func receive(within seconds: Double = 5) -> String? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(seconds * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// Datagrams until one has `line` among its lines (or `seconds` pass); all of them, in order.
    func receive(until line: String, within seconds: Double = 20) -> [String] {
        var seen: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard let message = receive(within: deadline.timeIntervalSinceNow) else { break }
            seen.append(message)
            if message.split(separator: "\n").contains(Substring(line)) { break }
        }
        return seen
    }

    deinit {
        close(fd)
        if let path { unlink(path) }
    }
}

/// The `KEY=VALUE` fields of a notification.
func notificationFields(_ message: String) -> [String: String] {
    var fields: [String: String] = [:]
    for line in message.split(separator: "\n") {
        guard let equals = line.firstIndex(of: "=") else { continue }
        fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
    }
    return fields
}

struct NotifySocketTests {
    @Test(arguments: [false, true])
    func readyNamesTheProcessAndItsStatus(abstract: Bool) throws {
        let listener = try NotifyListener(abstract: abstract)
        let socket = try #require(NotifySocket(address: listener.address))
        #expect(socket.ready(status: "serving 3 sandboxes") == 0)
        let message = try #require(listener.receive())
        #expect(message == "READY=1\nMAINPID=\(getpid())\nSTATUS=serving 3 sandboxes")
    }

    @Test func stoppingReloadingAndStatus() throws {
        let listener = try NotifyListener()
        let socket = try #require(NotifySocket(address: listener.address))
        socket.stopping()
        let stopping = notificationFields(try #require(listener.receive()))
        #expect(stopping["STOPPING"] == "1")
        #expect(stopping["STATUS"] != nil)

        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        socket.reloading()
        let reloading = notificationFields(try #require(listener.receive()))
        #expect(reloading["RELOADING"] == "1")
        // systemd matches the reload to its request by this time: it must be the monotonic clock's.
        let sent = try #require(reloading["MONOTONIC_USEC"].flatMap { UInt64($0) })
        let before = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        #expect(sent >= before && sent < before + 5_000_000)

        socket.status("the worker exited with 1;\nrestarting it")
        #expect(listener.receive() == "STATUS=the worker exited with 1; restarting it")
    }

    @Test func fieldsKeepTheirOrderAndLoseLineBreaks() {
        #expect(NotifySocket.message(["READY": "1", "STATUS": "a\nb\r\nc"]) == "READY=1\nSTATUS=a b c")
    }

    @Test(arguments: ["", "relative/path", "@", "vsock:2:1234", "/" + String(repeating: "x", count: 200)])
    func addressesItCannotUseAreRefused(address: String) {
        #expect(NotifySocket(address: address) == nil)
    }

    @Test func aSocketNobodyListensOnGivesTheError() throws {
        let socket = try #require(NotifySocket(address: "/tmp/gw-notify-absent-\(UInt32.random(in: 0...UInt32.max)).sock"))
        #expect(socket.ready(status: "serving") == ENOENT)
    }
}
