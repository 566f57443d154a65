// The service manager's notification socket ($NOTIFY_SOCKET, sd_notify(3)): READY=1 once the
// control socket serves, STOPPING=1, RELOADING=1 and STATUS= lines, so `systemctl` knows the state.
#if canImport(Glibc)
    import Glibc
#endif
import Logging

/// Where to send service-state notifications: a Unix datagram socket given by path, or by
/// `@name` in the abstract namespace. The protocol is one datagram of `KEY=VALUE` lines, so this
/// is one `sendto(2)`; linking libsystemd for it would add a runtime dependency and nothing else.
public struct NotifySocket: Sendable, Hashable {
    /// The socket's address as `$NOTIFY_SOCKET` gives it.
    public let address: String

    /// nil when `address` is neither an absolute path nor `@name`, or longer than `sun_path`
    /// holds (vsock addresses, which a VM's manager may give, are not spoken here).
    public init?(address: String) {
        let bytes = address.utf8.count
        guard address.hasPrefix("/") || (address.hasPrefix("@") && bytes > 1) else { return nil }
        guard bytes < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return nil }
        self.address = address
    }

    /// The socket named by `$NOTIFY_SOCKET`; nil when it is unset (not started by systemd with
    /// `Type=notify`), so nothing is ever sent then.
    public static func fromEnvironment() -> NotifySocket? {
        guard let value = getenv("NOTIFY_SOCKET") else { return nil }
        return NotifySocket(address: String(cString: value))
    }

    /// The datagram for `fields`: `KEY=VALUE` lines in the order given. A value loses its line
    /// breaks, which would otherwise start a field of its own.
    public static func message(_ fields: KeyValuePairs<String, String>) -> String {
        fields.map { key, value in
            key + "=" + value.split(whereSeparator: \.isNewline).joined(separator: " ")
        }.joined(separator: "\n")
    }

    /// Sends `fields` as one datagram; the errno when that failed, 0 when it was sent. A
    /// manager that has gone away costs nothing but the log line the caller may write.
    @discardableResult
    public func send(_ fields: KeyValuePairs<String, String>) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var peer = sockaddr_un()
        peer.sun_family = sa_family_t(AF_UNIX)
        let path = Array(address.utf8)
        withUnsafeMutableBytes(of: &peer.sun_path) { sunPath in
            sunPath.copyBytes(from: path)
            // An abstract address starts with a NUL byte instead of the '@' written for it.
            if path.first == UInt8(ascii: "@") { sunPath[0] = 0 }
        }
        // An abstract address is exactly its bytes long; a path takes its terminating NUL too.
        let length =
            MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + path.count + (path.first == UInt8(ascii: "@") ? 0 : 1)
        let text = Array(Self.message(fields).utf8)
        let sent = withUnsafePointer(to: &peer) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                text.withUnsafeBytes { bytes in
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), address, socklen_t(length))
                }
            }
        }
        return sent < 0 ? errno : 0
    }

    /// The control socket serves: `READY=1` with the process systemd should watch (ours: the
    /// supervisor, or the one process without privilege separation).
    @discardableResult
    public func ready(status: String) -> Int32 {
        send(["READY": "1", "MAINPID": "\(getpid())", "STATUS": status])
    }

    /// A SIGHUP is being carried out; `READY=1` follows when it is done. systemd 253 and later
    /// want the monotonic time of the request with it.
    @discardableResult
    public func reloading() -> Int32 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        return send(["RELOADING": "1", "MONOTONIC_USEC": "\(microseconds)", "STATUS": "reloading the config"])
    }

    /// Shutdown has begun: every sandbox is being detached.
    @discardableResult
    public func stopping() -> Int32 {
        send(["STOPPING": "1", "STATUS": "stopping: detaching every sandbox"])
    }

    /// A free-form line `systemctl status` shows.
    @discardableResult
    public func status(_ text: String) -> Int32 {
        send(["STATUS": text])
    }

    /// Sends with `send` when there is a socket, and logs a notification the manager did not take.
    public static func tell(_ socket: NotifySocket?, logger: Logger, _ send: (NotifySocket) -> Int32) {
        guard let socket else { return }
        let error = send(socket)
        if error != 0 {
            logger.warning("cannot notify the service manager at \(socket.address): \(String(cString: strerror(error)))")
        }
    }
}
